using BenchmarkDotNet.Attributes;
using NearML.Core;
using NearML.Core.Protocol;

namespace NearML.Protocol.Benchmarks;

/// <summary>Cost of hashing a 100 MiB parameter set into a manifest (what each side pays once per transfer).</summary>
[MemoryDiagnoser]
public class ManifestBenchmarks
{
    private ParameterSet _set = null!;

    [GlobalSetup]
    public void Setup()
    {
        _set = ParameterSet.Create(("w", [25 * 1024 * 1024]));
        new Random(1).NextBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(_set.Data));
    }

    [Benchmark]
    public int Compute_manifest_100MiB() => ParameterManifest.Compute(_set).ChunkCount;
}
