using NearML.Hosting.Benchmarks;

// Coordinator copies benchmark (issue 15 §2 "Copies"):
//   dotnet run -c Release --project benchmarks/NearML.Hosting.Benchmarks -- rounds [--workers 50] [--hidden 679] [--rounds 5] [--warmup 2] [--encodings int8,fp32] [--download 1] [--json out.jsonl]
// The coordinator runs in this process (a real CoordinatorService in a generic host, TLS on 127.0.0.1); the workers run in a
// child process ("workers" mode) so that GC.GetTotalAllocatedBytes and the process CPU time measured here are the
// coordinator's alone.
return args.FirstOrDefault() switch
{
    "rounds" => await RoundsHarness.RunAsync(args[1..]),
    "workers" => await BenchWorkers.RunAsync(args[1..]),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: NearML.Hosting.Benchmarks rounds [--workers N] [--hidden N] [--rounds N] [--warmup N] [--encodings int8,fp32] [--download 0|1] [--json FILE]");
    return 2;
}
