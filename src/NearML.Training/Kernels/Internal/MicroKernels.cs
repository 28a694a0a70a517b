using System.Numerics;
using System.Runtime.CompilerServices;

namespace NearML.Training.Kernels.Internal;

/// <summary>
/// A register-blocked GEMM micro-kernel: C[0..MR, 0..NR] (+)= Apanel · Bpanel over <c>kc</c> steps, where the A panel
/// holds MR values per k (k-major) and the B panel NR values per k (k-major), both packed and zero-padded.
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
    /// <param name="b">Packed B panel (kc×NR).</param>
    /// <param name="c">Top-left element of the C tile.</param>
    /// <param name="ldc">Row stride of C.</param>
    /// <param name="accumulate">Add to C (true) or overwrite it without reading it (false).</param>
    static abstract unsafe void Run(nint kc, float* a, float* b, float* c, nint ldc, bool accumulate);
}

/// <summary>Portable micro-kernel on <see cref="Vector{T}"/> (any CPU): a 4×(2·Vector&lt;float&gt;.Count) tile.</summary>
internal readonly struct PortableMicroKernel : IMicroKernel
{
    public static int MR => 4;

    public static int NR => 2 * Vector<float>.Count;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void Run(nint kc, float* a, float* b, float* c, nint ldc, bool accumulate)
    {
        var w = Vector<float>.Count;
        Vector<float> c00 = default, c01 = default, c10 = default, c11 = default;
        Vector<float> c20 = default, c21 = default, c30 = default, c31 = default;
        for (nint p = 0; p < kc; p++)
        {
            var b0 = Vector.Load(b);
            var b1 = Vector.Load(b + w);
            var a0 = new Vector<float>(a[0]);
            c00 += a0 * b0;
            c01 += a0 * b1;
            var a1 = new Vector<float>(a[1]);
            c10 += a1 * b0;
            c11 += a1 * b1;
            var a2 = new Vector<float>(a[2]);
            c20 += a2 * b0;
            c21 += a2 * b1;
            var a3 = new Vector<float>(a[3]);
            c30 += a3 * b0;
            c31 += a3 * b1;
            a += 4;
            b += 2 * w;
        }

        var r1 = c + ldc;
        var r2 = c + (2 * ldc);
        var r3 = c + (3 * ldc);
        if (accumulate)
        {
            c00 += Vector.Load(c);
            c01 += Vector.Load(c + w);
            c10 += Vector.Load(r1);
            c11 += Vector.Load(r1 + w);
            c20 += Vector.Load(r2);
            c21 += Vector.Load(r2 + w);
            c30 += Vector.Load(r3);
            c31 += Vector.Load(r3 + w);
        }

        c00.Store(c);
        c01.Store(c + w);
        c10.Store(r1);
        c11.Store(r1 + w);
        c20.Store(r2);
        c21.Store(r2 + w);
        c30.Store(r3);
        c31.Store(r3 + w);
    }
}
