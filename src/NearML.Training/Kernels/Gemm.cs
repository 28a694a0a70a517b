using System.Numerics.Tensors;
using NearML.Training.Kernels.Internal;

namespace NearML.Training.Kernels;

/// <summary>
/// Single-precision general matrix multiply on row-major data:
/// C ← α·op(A)·op(B) + β·C, where op(X) is X or Xᵀ.
/// </summary>
/// <remarks>
/// <para>
/// This is the engine's one matrix-product entry point; every Linear, attention and convolution (im2col) product
/// goes through it. The <c>ld*</c> arguments are row strides
/// (elements between consecutive rows of the stored matrix).
/// </para>
/// <para>
/// The product is packed and cache-blocked (KC×NR panels of B shared by all threads, MC×KC blocks of A per thread)
/// around a register-blocked FMA micro-kernel: 8×32 on AVX-512, 6×16 on AVX2+FMA, 4×8 of
/// <see cref="System.Runtime.Intrinsics.Vector128{T}"/> on other CPUs (ARM64); the family is
/// <see cref="KernelThreads.Isa"/>. Large products run on <see cref="KernelThreads.Count"/> threads.
/// Packing buffers are kept per thread, so steady-state calls allocate nothing on the managed heap.
/// </para>
/// </remarks>
public static class Gemm
{
    [ThreadStatic]
    private static GemmJob? t_job;

    [ThreadStatic]
    private static GemmThreadState? t_state;

    [ThreadStatic]
    private static PackBuffer? t_packedB;

    /// <summary>
    /// Forces a micro-kernel family for every call (tests switch intrinsics off with it); <see cref="GemmPath.Auto"/>
    /// picks the best the CPU supports.
    /// </summary>
    internal static GemmPath ForcedPath { get; set; }

    /// <summary>Computes C ← α·op(A)·op(B) + β·C.</summary>
    /// <param name="transA">Whether to use Aᵀ (A stored as k×m) instead of A (stored m×k).</param>
    /// <param name="transB">Whether to use Bᵀ (B stored as n×k) instead of B (stored k×n).</param>
    /// <param name="m">Rows of op(A) and C.</param>
    /// <param name="n">Columns of op(B) and C.</param>
    /// <param name="k">Columns of op(A), rows of op(B).</param>
    /// <param name="alpha">Scale of the product.</param>
    /// <param name="a">A's elements.</param>
    /// <param name="lda">A's row stride.</param>
    /// <param name="b">B's elements.</param>
    /// <param name="ldb">B's row stride.</param>
    /// <param name="beta">Scale of C's previous contents (0 ignores them, even NaN).</param>
    /// <param name="c">C's elements (m×n).</param>
    /// <param name="ldc">C's row stride.</param>
    /// <exception cref="ArgumentOutOfRangeException">A dimension is negative or a stride is shorter than its row.</exception>
    /// <exception cref="ArgumentException">A span is too short for the shape and stride it is described with.</exception>
    /// <exception cref="InvalidOperationException">The <c>NEARML_ISA</c> environment variable names an unknown
    /// instruction set or one this CPU lacks (and <see cref="KernelThreads.Isa"/> was not set since).</exception>
    public static void Sgemm(
        bool transA, bool transB, int m, int n, int k,
        float alpha, ReadOnlySpan<float> a, int lda,
        ReadOnlySpan<float> b, int ldb,
        float beta, Span<float> c, int ldc)
    {
        Sgemm(ForcedPath, KernelThreads.Count, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }

    /// <summary>
    /// <see cref="Sgemm(bool, bool, int, int, int, float, ReadOnlySpan{float}, int, ReadOnlySpan{float}, int, float, Span{float}, int)"/>
    /// with an explicit micro-kernel family and thread count (tests and benchmarks).
    /// </summary>
    internal static unsafe void Sgemm(
        GemmPath path, int threads,
        bool transA, bool transB, int m, int n, int k,
        float alpha, ReadOnlySpan<float> a, int lda,
        ReadOnlySpan<float> b, int ldb,
        float beta, Span<float> c, int ldc, long parallelThreshold = -1)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        CheckOperand(nameof(a), nameof(lda), a.Length, lda, transA ? k : m, transA ? m : k);
        CheckOperand(nameof(b), nameof(ldb), b.Length, ldb, transB ? n : k, transB ? k : n);
        CheckOperand(nameof(c), nameof(ldc), c.Length, ldc, m, n);
        if (path == GemmPath.Auto)
        {
            if (GemmDriver.SelectionError is { } error)
            {
                throw new InvalidOperationException(error);
            }

            path = GemmDriver.SelectedPath;
        }
        else if (!GemmDriver.IsSupported(path))
        {
            throw new PlatformNotSupportedException($"The {path} GEMM micro-kernel needs instructions this CPU lacks.");
        }

        if (m == 0 || n == 0)
        {
            return;
        }

        // β: 0 overwrites C without reading it (NaN in C is ignored, as in BLAS); 1 accumulates; anything else is
        // applied once up front and the product then accumulates.
        var overwrite = beta == 0f;
        if (!overwrite && beta != 1f)
        {
            for (var i = 0; i < m; i++)
            {
                var row = c.Slice(i * ldc, n);
                TensorPrimitives.Multiply(row, beta, row);
            }
        }

        if (k == 0 || alpha == 0f)
        {
            if (overwrite)
            {
                for (var i = 0; i < m; i++)
                {
                    c.Slice(i * ldc, n).Clear();
                }
            }

            return;
        }

        fixed (float* pa = a)
        fixed (float* pb = b)
        fixed (float* pc = c)
        {
            var job = t_job ??= new GemmJob();
            job.Path = path;
            job.TransA = transA;
            job.TransB = transB;
            job.M = m;
            job.K = k;
            job.Alpha = alpha;
            job.A = pa;
            job.Lda = lda;
            job.Ldb = ldb;
            job.Ldc = ldc;
            job.OverwriteFirst = overwrite;

            // Packed B is bounded (GemmDriver.MaxPackedB floats); wider products run as column slabs one after another.
            var nr = GemmDriver.NR(path);
            var mr = GemmDriver.MR(path);
            var slabPanels = (int)Math.Clamp(GemmDriver.MaxPackedB / ((long)k * nr), 1, int.MaxValue / nr);
            var slab = Math.Min(n, slabPanels * nr);
            var threshold = parallelThreshold >= 0 ? parallelThreshold : KernelThreads.ParallelThreshold;
            for (var j0 = 0; j0 < n; j0 += slab)
            {
                var width = Math.Min(slab, n - j0);
                job.N = width;
                job.B = pb + (transB ? (nint)j0 * ldb : j0);
                job.C = pc + j0;
                var tiles = (long)((m + mr - 1) / mr) * ((width + nr - 1) / nr);
                var parallel = threads > 1 && tiles > 1 && (long)m * width * k >= threshold;
                if (!parallel || !GemmWorkers.TryRun(job, threads))
                {
                    GemmDriver.Prepare(job, 1, t_packedB ??= new PackBuffer());
                    GemmDriver.Work(job, job.Generation, t_state ??= new GemmThreadState());
                }
            }

            job.A = null;
            job.B = null;
            job.C = null;
        }
    }

    private static void CheckOperand(string name, string strideName, int length, int stride, int rows, int cols)
    {
        if (stride < Math.Max(1, cols))
        {
            throw new ArgumentOutOfRangeException(
                strideName, stride, $"The row stride {strideName} must be at least max(1, {cols}) for a {rows}×{cols} {name}.");
        }

        if (rows > 0 && cols > 0 && length < (((long)(rows - 1) * stride) + cols))
        {
            throw new ArgumentException(
                $"{name} holds {length} elements but a {rows}×{cols} matrix with row stride {stride} needs {((long)(rows - 1) * stride) + cols}.",
                name);
        }
    }
}
