using System.Collections.Concurrent;
using NearML.Training.Kernels;

namespace NearML.Training.Sync.Internal;

/// <summary>
/// The chunked orthonormal DCT-II of one tensor as DeMo uses it. A 1-D tensor of length L is cut into L/n chunks of
/// n (n = largest divisor of L ≤ target); a 2-D tensor [R, C] (higher ranks are flattened to [shape0, rest]) into
/// (R/n1)×(C/n2) blocks of n1×n2, transformed separably. Coefficients are laid out per chunk: 1-D [chunk, freq],
/// 2-D [chunk-row, chunk-col, freq-row·n2 + freq-col], so chunk c owns coefficients [c·K, (c+1)·K) with K = n or n1·n2.
/// Both directions are float32 matrix products through the engine's SGEMM with a cached basis per chunk size (as the
/// reference computes in float32); one plan is not thread-safe (it owns its scratch).
/// </summary>
internal sealed class DctPlan
{
    private static readonly ConcurrentDictionary<int, float[]> FloatBases = new();
    private readonly float[] _f1; // basis[j * n + b] = DCT coefficient b's weight for input j
    private readonly float[] _f2;
    private readonly float[] _t;
    private readonly float[] _band;

    public DctPlan(int[] shape, int target)
    {
        if (shape.Length <= 1)
        {
            Rows = 1;
            Cols = shape.Length == 0 ? 1 : shape[0];
            N1 = 1;
            N2 = LargestDivisorAtMost(Cols, target);
        }
        else
        {
            Rows = shape[0];
            Cols = 1;
            for (var i = 1; i < shape.Length; i++)
            {
                Cols *= shape[i];
            }

            N1 = LargestDivisorAtMost(Rows, target);
            N2 = LargestDivisorAtMost(Cols, target);
        }

        Is2D = shape.Length > 1;
        ChunkRows = Rows / N1;
        ChunkCols = Cols / N2;
        _f1 = FloatBasis(N1);
        _f2 = FloatBasis(N2);
        _t = N1 == 1 ? [] : new float[Rows * Cols];
        _band = N1 == 1 ? [] : new float[N1 * Cols];
    }

    public bool Is2D { get; }

    public int Rows { get; }

    public int Cols { get; }

    public int N1 { get; }

    public int N2 { get; }

    public int ChunkRows { get; }

    public int ChunkCols { get; }

    public int ChunkCount => ChunkRows * ChunkCols;

    public int CoefficientsPerChunk => N1 * N2;

    /// <summary>Largest divisor of <paramref name="n"/> that is ≤ <paramref name="target"/> (DeMo's _get_smaller_split).</summary>
    public static int LargestDivisorAtMost(int n, int target)
    {
        for (var d = Math.Min(n, target); d >= 1; d--)
        {
            if (n % d == 0)
            {
                return d;
            }
        }

        return 1;
    }

    /// <summary>Orthonormal DCT-II basis: m[j·n + b] = s_b·cos(π(2j+1)b / 2n), s_0 = √(1/n), s_b = √(2/n).</summary>
    public static double[] Basis(int n)
    {
        var m = new double[n * n];
        for (var j = 0; j < n; j++)
        {
            for (var b = 0; b < n; b++)
            {
                var s = b == 0 ? Math.Sqrt(1.0 / n) : Math.Sqrt(2.0 / n);
                m[(j * n) + b] = s * Math.Cos(Math.PI * ((2 * j) + 1) * b / (2.0 * n));
            }
        }

        return m;
    }

    /// <summary>Gets the orthonormal DCT-II basis of size <paramref name="n"/> in float32 (cached per size, shared by
    /// every plan; read-only by convention).</summary>
    public static float[] FloatBasis(int n) => FloatBases.GetOrAdd(n, static size => [.. Basis(size).Select(static v => (float)v)]);

    /// <summary>
    /// Transforms <paramref name="x"/> (the tensor, row-major) into per-chunk coefficients. Float32 matrix products
    /// through <see cref="Gemm.Sgemm(bool, bool, int, int, int, float, ReadOnlySpan{float}, int, ReadOnlySpan{float}, int, float, Span{float}, int)"/>:
    /// the rows of every chunk times B2 as one product over the whole tensor, then per chunk-row B1ᵀ times that band.
    /// </summary>
    public void Encode(ReadOnlySpan<float> x, Span<float> coefficients)
    {
        int n1 = N1, n2 = N2;
        var rowChunks = Rows * ChunkCols; // every n2-long row piece of every chunk, in storage order
        if (n1 == 1)
        {
            // One chunk row of height 1: the layout [chunk, freq] equals the storage order of the row transform.
            Gemm.Sgemm(false, false, rowChunks, n2, n2, 1f, x, n2, _f2, n2, 0f, coefficients, n2);
            return;
        }

        var t = _t.AsSpan(0, Rows * Cols);
        Gemm.Sgemm(false, false, rowChunks, n2, n2, 1f, x, n2, _f2, n2, 0f, t, n2);
        var band = _band.AsSpan(0, n1 * Cols);
        for (var cy = 0; cy < ChunkRows; cy++)
        {
            // band[b, (cx, d)] = Σ_j B1[j, b] · t[cy·n1 + j, (cx, d)]
            Gemm.Sgemm(true, false, n1, Cols, n1, 1f, _f1, n1, t.Slice(cy * n1 * Cols, n1 * Cols), Cols, 0f, band, Cols);

            // [b, cx, d] → [cx, b, d]
            var outBase = cy * ChunkCols * n1 * n2;
            for (var b = 0; b < n1; b++)
            {
                for (var cx = 0; cx < ChunkCols; cx++)
                {
                    band.Slice((b * Cols) + (cx * n2), n2).CopyTo(coefficients.Slice(outBase + (((cx * n1) + b) * n2), n2));
                }
            }
        }
    }

    /// <summary>Inverse of <see cref="Encode"/>: per-chunk coefficients (dense, zeros where absent) to the tensor.</summary>
    public void Decode(ReadOnlySpan<float> coefficients, Span<float> x)
    {
        int n1 = N1, n2 = N2;
        var rowChunks = Rows * ChunkCols;
        if (n1 == 1)
        {
            // x[chunk, l] = Σ_d c[chunk, d] · B2[l, d]
            Gemm.Sgemm(false, true, rowChunks, n2, n2, 1f, coefficients, n2, _f2, n2, 0f, x, n2);
            return;
        }

        var t = _t.AsSpan(0, Rows * Cols);
        var band = _band.AsSpan(0, n1 * Cols);
        for (var cy = 0; cy < ChunkRows; cy++)
        {
            var inBase = cy * ChunkCols * n1 * n2;
            for (var b = 0; b < n1; b++)
            {
                for (var cx = 0; cx < ChunkCols; cx++)
                {
                    coefficients.Slice(inBase + (((cx * n1) + b) * n2), n2).CopyTo(band.Slice((b * Cols) + (cx * n2), n2));
                }
            }

            // t[cy·n1 + j, (cx, d)] = Σ_b B1[j, b] · band[b, (cx, d)]
            Gemm.Sgemm(false, false, n1, Cols, n1, 1f, _f1, n1, band, Cols, 0f, t.Slice(cy * n1 * Cols, n1 * Cols), Cols);
        }

        Gemm.Sgemm(false, true, rowChunks, n2, n2, 1f, t, n2, _f2, n2, 0f, x, n2);
    }
}
