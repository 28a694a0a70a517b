using System.Numerics.Tensors;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using NearML.Training.Kernels;

namespace NearML.Benchmarks;

/// <summary>
/// SGEMM throughput and allocation: the packed kernel on 1 and 2 threads against a row-by-row
/// <see cref="TensorPrimitives"/> loop (the engine's first, unblocked implementation) as the baseline.
/// Run: <c>dotnet run -c Release --project benchmarks/NearML.Benchmarks -- --filter '*GemmBenchmarks*'</c>.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(InProcessConfig))]
public class GemmBenchmarks
{
    private float[] _a = [];
    private float[] _b = [];
    private float[] _c = [];

    /// <summary>Square size (m = n = k).</summary>
    [Params(128, 512, 1024)]
    public int Size { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(0);
        _a = new float[Size * Size];
        _b = new float[Size * Size];
        _c = new float[Size * Size];
        for (var i = 0; i < _a.Length; i++)
        {
            _a[i] = (float)rng.NextDouble();
            _b[i] = (float)rng.NextDouble();
        }
    }

    [Benchmark(Baseline = true)]
    public void RowLoopReference()
    {
        var n = Size;
        for (var i = 0; i < n; i++)
        {
            var crow = _c.AsSpan(i * n, n);
            crow.Clear();
            for (var p = 0; p < n; p++)
            {
                TensorPrimitives.MultiplyAdd(_b.AsSpan(p * n, n), _a[(i * n) + p], crow, crow);
            }
        }
    }

    [Benchmark]
    public void Packed1Thread()
    {
        KernelThreads.Count = 1;
        Gemm.Sgemm(false, false, Size, Size, Size, 1f, _a, Size, _b, Size, 0f, _c, Size);
    }

    [Benchmark]
    public void Packed2Threads()
    {
        KernelThreads.Count = 2;
        Gemm.Sgemm(false, false, Size, Size, Size, 1f, _a, Size, _b, Size, 0f, _c, Size);
    }

    [Benchmark]
    public void Packed2Threads_TransposedB()
    {
        KernelThreads.Count = 2;
        Gemm.Sgemm(false, true, Size, Size, Size, 1f, _a, Size, _b, Size, 0f, _c, Size);
    }

    private sealed class InProcessConfig : ManualConfig
    {
        public InProcessConfig()
        {
            AddJob(Job.ShortRun.WithToolchain(InProcessEmitToolchain.Instance));
        }
    }
}
