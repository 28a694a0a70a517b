using BenchmarkDotNet.Running;
using NearML.Protocol.Benchmarks;

// Console harnesses for the two protocol targets, plus BenchmarkDotNet micro-benchmarks:
//   dotnet run -c Release --project benchmarks/NearML.Protocol.Benchmarks -- transfer [--mb 100] [--runs 3] [--json FILE] [--alloc-trace]
//   dotnet run -c Release --project benchmarks/NearML.Protocol.Benchmarks -- idle [--connections 200] [--interval 15] [--settle 15] [--window 45]
//   dotnet run -c Release --project benchmarks/NearML.Protocol.Benchmarks -- bdn --filter '*'
// All traffic stays on 127.0.0.1.
return args.FirstOrDefault() switch
{
    "transfer" => await TransferHarness.RunAsync(args[1..]),
    "idle" => await IdleHarness.RunAsync(args[1..]),
    "bdn" => RunBenchmarkDotNet(args[1..]),
    _ => Usage(),
};

static int RunBenchmarkDotNet(string[] args)
{
    BenchmarkSwitcher.FromAssembly(typeof(TransferHarness).Assembly).Run(args);
    return 0;
}

static int Usage()
{
    Console.Error.WriteLine("usage: NearML.Protocol.Benchmarks transfer [--mb N] [--runs N] | idle [--connections N] [--interval S] [--window S] | bdn [BenchmarkDotNet args]");
    return 2;
}
