using BenchmarkDotNet.Running;
using NearML.Aggregation.Benchmarks;

// BenchmarkDotNet suites: `dotnet run -c Release --project benchmarks/NearML.Aggregation.Benchmarks -- --filter '*'`.
// Console modes: `-- ka` (key agreement probe), `-- e2e [options]` (end-to-end rounds, see EndToEnd.cs).
if (args.Length > 0 && args[0] == "ka")
{
    KaProbe.Run();
    return 0;
}

if (args.Length > 0 && args[0] == "e2e")
{
    return EndToEnd.Run(args[1..]);
}

if (args.Length > 0 && args[0] == "server-workload")
{
    return EndToEnd.ServerWorkload(args[1..]);
}

if (args.Length > 0 && args[0] == "client-masking")
{
    return EndToEnd.ClientMasking(args[1..]);
}

if (args.Length > 0 && args[0] == "diloco")
{
    return DiLoCoBytes.Run(args[1..]);
}

if (args.Length > 0 && args[0] == "params")
{
    foreach (var (n, gk, gt) in new[] { (100, 12, 6), (1000, 30, 17), (10_000, 34, 20) })
    {
        var p = NearML.Aggregation.SecAggParameters.Find(n, 0.05, 0.05);
        Console.WriteLine($"| {n} | {p.Degree} / {p.Threshold} | {gk} / {gt} | 2^{p.SecurityFailureLog2:F1} | 2^{p.CorrectnessFailureLog2:F1} |");
    }

    return 0;
}

var summaries = BenchmarkSwitcher.FromAssembly(typeof(KaProbe).Assembly).Run(args);
return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
