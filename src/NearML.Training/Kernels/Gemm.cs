using System.Numerics.Tensors;

namespace NearML.Training.Kernels;

/// <summary>
/// Single-precision general matrix multiply on row-major data:
/// C ← α·op(A)·op(B) + β·C, where op(X) is X or Xᵀ.
/// </summary>
/// <remarks>
/// This is the engine's one matrix-product entry point; every Linear, attention and convolution (im2col) product
/// goes through it. The <c>ld*</c> arguments are row strides
/// (elements between consecutive rows of the stored matrix).
/// </remarks>
public static class Gemm
{
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
    public static void Sgemm(
        bool transA, bool transB, int m, int n, int k,
        float alpha, ReadOnlySpan<float> a, int lda,
        ReadOnlySpan<float> b, int ldb,
        float beta, Span<float> c, int ldc)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        if (m == 0 || n == 0)
        {
            return;
        }

        for (var i = 0; i < m; i++)
        {
            var crow = c.Slice(i * ldc, n);
            if (beta == 0f)
            {
                crow.Clear();
            }
            else if (beta != 1f)
            {
                TensorPrimitives.Multiply(crow, beta, crow);
            }

            for (var p = 0; p < k; p++)
            {
                var aip = alpha * (transA ? a[(p * lda) + i] : a[(i * lda) + p]);
                if (aip == 0f)
                {
                    continue;
                }

                if (!transB)
                {
                    TensorPrimitives.MultiplyAdd(b.Slice(p * ldb, n), aip, crow, crow);
                }
                else
                {
                    for (var j = 0; j < n; j++)
                    {
                        crow[j] += aip * b[(j * ldb) + p];
                    }
                }
            }
        }
    }
}
