using BenchmarkDotNet.Running;
using NearML.Ledger.Benchmarks;

// `dotnet run -c Release --project benchmarks/NearML.Ledger.Benchmarks -- ledger [entries]` runs the ledger
// throughput harness (append in batches of 1,000; verify the chain; verify signatures).
// Anything else goes to BenchmarkDotNet: `-- --filter '*'`.
if (args.Length > 0 && args[0] == "ledger")
{
    int entries = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 1_000_000;
    LedgerHarness.Run(entries);
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(LedgerHarness).Assembly).Run(args);
