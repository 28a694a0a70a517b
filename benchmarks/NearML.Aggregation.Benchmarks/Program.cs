using BenchmarkDotNet.Running;

// BenchmarkDotNet suites: `dotnet run -c Release --project benchmarks/NearML.Aggregation.Benchmarks -- --filter '*'`.
// Console modes: `-- ka` (key agreement probe), `-- e2e [options]` (end-to-end rounds, see EndToEnd.cs).
if (args.Length > 0 && args[0] == "ka")
{
    KaProbe.Run();
    return 0;
}

var summaries = BenchmarkSwitcher.FromAssembly(typeof(KaProbe).Assembly).Run(args);
return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
