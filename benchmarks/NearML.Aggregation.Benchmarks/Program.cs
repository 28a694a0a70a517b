using BenchmarkDotNet.Running;
using NearML.Aggregation.Benchmarks;

// BenchmarkDotNet suites: `dotnet run -c Release --project benchmarks/NearML.Aggregation.Benchmarks -- --filter '*'`.
// Console modes: `-- ka` (key agreement probe), `-- e2e [options]` (end-to-end rounds, see EndToEnd.cs).
if (args.Length > 0 && args[0] == "ka")
{
    KaProbe.Run();
    return 0;
}

if (args.Length > 0 && args[0] == "diloco-accuracy")
{
    return await DiLoCoAccuracy.Run(args[1..]);
}

if (args.Length > 0 && args[0] == "micro")
{
    return Micro.Run();
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
    // Same rows as finder_check.py, which recomputes them with exact rational arithmetic.
    Console.WriteLine("| n | γ | δ | NearML k / t (t max) | Google k / t | security bound | correctness bound |");
    Console.WriteLine("|---|---|---|---|---|---|---|");
    foreach (var (n, g, d, gk, gt) in new[]
    {
        (100, 0.05, 0.05, 12, 6), (1000, 0.05, 0.05, 30, 17), (10_000, 0.05, 0.05, 34, 20), (100_000, 0.05, 0.05, 36, 21),
        (1_000_000, 0.05, 0.05, 38, 22), (100, 0.05, 0.1, 0, 0), (1000, 0.05, 0.1, 0, 0), (100, 0.05, 0.33, 28, 6),
        (1000, 0.05, 0.33, 72, 24), (100, 0.33, 0.05, 34, 29), (1000, 0.33, 0.05, 78, 60), (100, 0.33, 0.33, 68, 34),
    })
    {
        var p = NearML.Aggregation.SecAggParameters.Find(n, g, d);
        string google = gk == 0 ? "—" : $"{gk} / {gt}";
        Console.WriteLine($"| {n:N0} | {g} | {d} | {p.Degree} / {p.Threshold} ({p.MaxThreshold}) | {google} | {Bound(p.SecurityFailureLog2)} | {Bound(p.CorrectnessFailureLog2)} |");
    }

    return 0;

    static string Bound(double log2) => double.IsNegativeInfinity(log2) ? "0 (impossible)" : $"2^{log2:F1}";
}

var summaries = BenchmarkSwitcher.FromAssembly(typeof(KaProbe).Assembly).Run(args);
return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
