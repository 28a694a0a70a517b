using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace NearML.Training.Kernels.Internal;

/// <summary>
/// A register-blocked GEMM micro-kernel: C[0..MR, 0..NR] (+)= Apanel · Bpanel over <c>kc</c> steps, where the A panel
/// holds MR values per k (k-major, packed and zero-padded) and the B panel NR values per k, either packed (k-major,
/// zero-padded, <c>ldb = NR</c>) or read in place from a row-major op(B) (<c>ldb</c> = its row stride).
/// </summary>
internal interface IMicroKernel
{
    /// <summary>Gets the rows of C one call produces.</summary>
    static abstract int MR { get; }

    /// <summary>Gets the columns of C one call produces.</summary>
    static abstract int NR { get; }

    /// <summary>Computes the MR×NR tile at <paramref name="c"/> (row stride <paramref name="ldc"/>).</summary>
    /// <param name="kc">Depth of the packed panels.</param>
    /// <param name="a">Packed A panel (kc×MR).</param>
    /// <param name="b">B panel: NR values per k, consecutive k <paramref name="ldb"/> elements apart.</param>
    /// <param name="ldb">Distance between the panel's rows: NR when packed, B's row stride when read in place.</param>
    /// <param name="c">Top-left element of the C tile.</param>
    /// <param name="ldc">Row stride of C.</param>
    /// <param name="accumulate">Add to C (true) or overwrite it without reading it (false).</param>
    static abstract unsafe void Run(nint kc, float* a, float* b, nint ldb, float* c, nint ldc, bool accumulate);
}

/// <summary>
/// Portable micro-kernel on <see cref="Vector128{T}"/> (what ARM64 runs, and any x64 CPU without AVX2 + FMA): a 6×8 tile of
/// C in 12 accumulators, which fit the 16 xmm registers of SSE as well as NEON's 32. Multiply-adds are fused where the CPU
/// has FMA (x64 FMA3, ARM64 AdvSimd), so those CPUs compute bit-identical results on this path.
/// </summary>
internal readonly struct PortableMicroKernel : IMicroKernel
{
    public static int MR => 6;

    public static int NR => 8;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void Run(nint kc, float* a, float* b, nint ldb, float* c, nint ldc, bool accumulate)
    {
        var c00 = Vector128<float>.Zero; var c01 = Vector128<float>.Zero;
        var c10 = Vector128<float>.Zero; var c11 = Vector128<float>.Zero;
        var c20 = Vector128<float>.Zero; var c21 = Vector128<float>.Zero;
        var c30 = Vector128<float>.Zero; var c31 = Vector128<float>.Zero;
        var c40 = Vector128<float>.Zero; var c41 = Vector128<float>.Zero;
        var c50 = Vector128<float>.Zero; var c51 = Vector128<float>.Zero;
        for (nint p = 0; p < kc; p++)
        {
            var b0 = Vector128.Load(b);
            var b1 = Vector128.Load(b + 4);
            var a0 = Vector128.Create(a[0]);
            c00 = MultiplyAdd(a0, b0, c00);
            c01 = MultiplyAdd(a0, b1, c01);
            var a1 = Vector128.Create(a[1]);
            c10 = MultiplyAdd(a1, b0, c10);
            c11 = MultiplyAdd(a1, b1, c11);
            var a2 = Vector128.Create(a[2]);
            c20 = MultiplyAdd(a2, b0, c20);
            c21 = MultiplyAdd(a2, b1, c21);
            var a3 = Vector128.Create(a[3]);
            c30 = MultiplyAdd(a3, b0, c30);
            c31 = MultiplyAdd(a3, b1, c31);
            var a4 = Vector128.Create(a[4]);
            c40 = MultiplyAdd(a4, b0, c40);
            c41 = MultiplyAdd(a4, b1, c41);
            var a5 = Vector128.Create(a[5]);
            c50 = MultiplyAdd(a5, b0, c50);
            c51 = MultiplyAdd(a5, b1, c51);
            a += 6;
            b += ldb;
        }

        if (accumulate)
        {
            c00 += Vector128.Load(c + (0 * ldc));
            c01 += Vector128.Load(c + (0 * ldc) + 4);
            c10 += Vector128.Load(c + (1 * ldc));
            c11 += Vector128.Load(c + (1 * ldc) + 4);
            c20 += Vector128.Load(c + (2 * ldc));
            c21 += Vector128.Load(c + (2 * ldc) + 4);
            c30 += Vector128.Load(c + (3 * ldc));
            c31 += Vector128.Load(c + (3 * ldc) + 4);
            c40 += Vector128.Load(c + (4 * ldc));
            c41 += Vector128.Load(c + (4 * ldc) + 4);
            c50 += Vector128.Load(c + (5 * ldc));
            c51 += Vector128.Load(c + (5 * ldc) + 4);
        }

        c00.Store(c + (0 * ldc));
        c01.Store(c + (0 * ldc) + 4);
        c10.Store(c + (1 * ldc));
        c11.Store(c + (1 * ldc) + 4);
        c20.Store(c + (2 * ldc));
        c21.Store(c + (2 * ldc) + 4);
        c30.Store(c + (3 * ldc));
        c31.Store(c + (3 * ldc) + 4);
        c40.Store(c + (4 * ldc));
        c41.Store(c + (4 * ldc) + 4);
        c50.Store(c + (5 * ldc));
        c51.Store(c + (5 * ldc) + 4);
    }

    /// <summary>x·y + z, fused (one rounding) where the CPU has an FMA instruction.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> MultiplyAdd(Vector128<float> x, Vector128<float> y, Vector128<float> z)
    {
        if (Fma.IsSupported)
        {
            return Fma.MultiplyAdd(x, y, z);
        }

        if (AdvSimd.IsSupported)
        {
            return AdvSimd.FusedMultiplyAdd(z, x, y);
        }

        return (x * y) + z;
    }
}
