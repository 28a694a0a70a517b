namespace NearML.Training.Sync.Internal;

/// <summary>
/// The chunked orthonormal DCT-II of one tensor as DeMo uses it. A 1-D tensor of length L is cut into L/n chunks of
/// n (n = largest divisor of L ≤ target); a 2-D tensor [R, C] (higher ranks are flattened to [shape0, rest]) into
/// (R/n1)×(C/n2) blocks of n1×n2, transformed separably. Coefficients are laid out per chunk: 1-D [chunk, freq],
/// 2-D [chunk-row, chunk-col, freq-row·n2 + freq-col], so chunk c owns coefficients [c·K, (c+1)·K) with K = n or n1·n2.
/// Arithmetic is in double precision; inputs and outputs are float32.
/// </summary>
internal sealed class DctPlan
{
    private readonly double[] _b1; // basis[j * n + b] = DCT coefficient b's weight for input j
    private readonly double[] _b2;
    private readonly double[] _scratch;

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
        _b1 = Basis(N1);
        _b2 = Basis(N2);
        _scratch = new double[N1 * N2];
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

    /// <summary>Transforms <paramref name="x"/> (the tensor, row-major) into per-chunk coefficients.</summary>
    public void Encode(ReadOnlySpan<float> x, Span<float> coefficients)
    {
        int n1 = N1, n2 = N2;
        var t = _scratch;
        for (var cy = 0; cy < ChunkRows; cy++)
        {
            for (var cx = 0; cx < ChunkCols; cx++)
            {
                var outBase = ((cy * ChunkCols) + cx) * n1 * n2;

                // t[j, d] = Σ_l x[cy·n1 + j, cx·n2 + l] · B2[l, d]
                for (var j = 0; j < n1; j++)
                {
                    var row = x.Slice(((cy * n1) + j) * Cols + (cx * n2), n2);
                    for (var d = 0; d < n2; d++)
                    {
                        double s = 0;
                        for (var l = 0; l < n2; l++)
                        {
                            s += row[l] * _b2[(l * n2) + d];
                        }

                        t[(j * n2) + d] = s;
                    }
                }

                // c[b, d] = Σ_j B1[j, b] · t[j, d]
                for (var b = 0; b < n1; b++)
                {
                    for (var d = 0; d < n2; d++)
                    {
                        double s = 0;
                        for (var j = 0; j < n1; j++)
                        {
                            s += _b1[(j * n1) + b] * t[(j * n2) + d];
                        }

                        coefficients[outBase + (b * n2) + d] = (float)s;
                    }
                }
            }
        }
    }

    /// <summary>Adds the inverse transform of one coefficient to a dense double accumulator of the tensor.</summary>
    public void AccumulateInverse(int chunk, int index, double value, Span<double> accumulator)
    {
        int n1 = N1, n2 = N2;
        var cy = chunk / ChunkCols;
        var cx = chunk % ChunkCols;
        var b = index / n2;
        var d = index % n2;
        for (var j = 0; j < n1; j++)
        {
            var wj = value * _b1[(j * n1) + b];
            var row = accumulator.Slice(((cy * n1) + j) * Cols + (cx * n2), n2);
            for (var l = 0; l < n2; l++)
            {
                row[l] += wj * _b2[(l * n2) + d];
            }
        }
    }
}
