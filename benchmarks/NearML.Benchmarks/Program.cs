using BenchmarkDotNet.Running;
using NearML.Benchmarks;

// Two modes:
//   compare <workload> [options]   console harness printing one JSON line per measurement (used by
//                                  benchmarks/compare-pytorch.sh next to the PyTorch reference scripts);
//   crypto [--runs 3] [--seconds 0.3]  ed25519/X25519 paths side by side (CryptoPaths.cs);
//   anything else                  BenchmarkDotNet suites, e.g. `-- --filter '*Gemm*'`.
if (args.Length > 0 && args[0] == "crypto")
{
    return CryptoPaths.Run(args[1..]);
}

if (args.Length > 0 && args[0] == "compare")
{
    return CompareCommand.Run(args[1..]);
}

BenchmarkSwitcher.FromAssembly(typeof(CompareCommand).Assembly).Run(args);
return 0;
