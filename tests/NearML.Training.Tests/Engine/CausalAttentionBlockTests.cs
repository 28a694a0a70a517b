using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using NearML.Training.Kernels;
using NearML.Training.Tensors;

namespace NearML.Training.Tests.Engine;

/// <summary>
/// The causal attention op multiplies only the unmasked blocks (row block [i0, i1) against keys [0, i1); key block
/// [j0, j1) against queries [j0, T)). The skipped terms are exact zeros, so forward and backward must give the same
/// bits as the full-matrix computation the op used before (kept here as <see cref="FullMatrixReference"/>), for every
/// block size, odd and even T, several head counts and head sizes, a fresh gradient (β 0) and an accumulated one (β 1).
/// </summary>
[TestClass]
public sealed class CausalAttentionBlockTests
{
    private static readonly (int Heads, int HeadSize)[] HeadShapes = [(1, 1), (2, 5), (3, 8), (4, 32)];
    private static readonly int[] BlockSizes = [1, 7, 32, 64];

    [TestMethod]
    [DataRow(1)]
    [DataRow(2)]
    [DataRow(7)]
    [DataRow(33)]
    [DataRow(128)]
    [DataRow(129)]
    public void Blocked_forward_and_backward_give_the_full_matrix_bits(int t)
    {
        var keep = Tape.AttentionBlockRows;
        try
        {
            var rng = new Random(1000 + t);
            foreach (var (heads, hs) in HeadShapes)
            {
                foreach (var magnitude in new[] { 1f, 40f })
                {
                    // magnitude 40 drives many probabilities to exactly 0 inside the visible part as well.
                    const int B = 2;
                    var c = heads * hs;
                    var qkv = Noise(rng, B * t * 3 * c, magnitude);
                    var gy = Noise(rng, B * t * c, 1f);
                    var g0 = Noise(rng, qkv.Length, 1f);
                    var (yRef, pRef) = FullMatrixReference.Forward(qkv, B, t, c, heads);
                    var dFresh = FullMatrixReference.Backward(qkv, pRef, gy, B, t, c, heads, 0f, new float[qkv.Length]);
                    var dAcc = FullMatrixReference.Backward(qkv, pRef, gy, B, t, c, heads, 1f, (float[])g0.Clone());
                    foreach (var block in BlockSizes)
                    {
                        Tape.AttentionBlockRows = block;
                        var what = $"T {t}, {heads} heads of {hs}, magnitude {magnitude}, block {block}";

                        // β 0: the packed qkv is an intermediate result whose gradient the attention writes first.
                        var x = Tensor.FromArray((float[])qkv.Clone(), true, B, t, 3 * c);
                        var tape = new Tape();
                        var inner = tape.Scale(x, 1f);
                        var y = tape.CausalSelfAttention(inner, heads);
                        AssertBits(yRef, y.Data, "forward, " + what);
                        tape.Backward(y, gy);
                        AssertBits(dFresh, inner.Grad, "backward β 0, " + what);

                        // β 1: a leaf whose gradient already holds g0 accumulates.
                        var leaf = Tensor.FromArray((float[])qkv.Clone(), true, B, t, 3 * c);
                        g0.CopyTo(leaf.Grad);
                        tape.Reset();
                        var y2 = tape.CausalSelfAttention(leaf, heads);
                        AssertBits(yRef, y2.Data, "forward (leaf), " + what);
                        tape.Backward(y2, gy);
                        AssertBits(dAcc, leaf.Grad, "backward β 1, " + what);
                    }
                }
            }
        }
        finally
        {
            Tape.AttentionBlockRows = keep;
        }
    }

    [TestMethod]
    public void Forward_and_backward_allocate_nothing_after_warm_up()
    {
        var rng = new Random(5);
        var qkv = Tensor.FromArray(Noise(rng, 4 * 128 * 384, 1f), true, 4, 128, 384);
        var gy = Noise(rng, 4 * 128 * 128, 1f);
        var tape = new Tape();
        void Step()
        {
            tape.Reset();
            var y = tape.CausalSelfAttention(qkv, 4);
            tape.Backward(y, gy);
        }

        for (var i = 0; i < 3; i++)
        {
            Step();
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 5; i++)
        {
            Step();
        }

        Assert.AreEqual(0L, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    private static float[] Noise(Random rng, int n, float magnitude)
    {
        var a = new float[n];
        for (var i = 0; i < n; i++)
        {
            a[i] = (float)((rng.NextDouble() * 2) - 1) * magnitude;
        }

        return a;
    }

    private static void AssertBits(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what)
    {
        Assert.AreEqual(expected.Length, actual.Length, what);
        for (var i = 0; i < expected.Length; i++)
        {
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
            {
                Assert.Fail($"{what}: element {i} is {actual[i]:R}, the full-matrix computation gives {expected[i]:R}.");
            }
        }
    }

    /// <summary>The op's former full-matrix computation per (batch, head): T×T scores, softmax, P·V and its backward.</summary>
    private static class FullMatrixReference
    {
        public static (float[] Y, float[] P) Forward(float[] qkv, int b, int t, int c, int heads)
        {
            var c3 = 3 * c;
            var hs = c / heads;
            var scale = 1f / MathF.Sqrt(hs);
            var y = new float[b * t * c];
            var probs = new float[b * heads * t * t];
            for (var pair = 0; pair < b * heads; pair++)
            {
                int bi = pair / heads, h = pair % heads;
                var q = qkv.AsSpan((bi * t * c3) + (h * hs));
                var k = qkv.AsSpan((bi * t * c3) + c + (h * hs));
                var v = qkv.AsSpan((bi * t * c3) + (2 * c) + (h * hs));
                var p = probs.AsSpan(pair * t * t, t * t);
                Gemm.Sgemm(false, true, t, t, hs, scale, q, c3, k, c3, 0f, p, t);
                for (var i = 0; i < t; i++)
                {
                    var row = p.Slice(i * t, i + 1);
                    var max = TensorPrimitives.Max(row);
                    TensorPrimitives.Subtract(row, max, row);
                    TensorPrimitives.Exp(row, row);
                    TensorPrimitives.Multiply(row, 1f / TensorPrimitives.Sum(row), row);
                    p.Slice((i * t) + i + 1, t - i - 1).Clear();
                }

                Gemm.Sgemm(false, false, t, hs, t, 1f, p, t, v, c3, 0f, y.AsSpan((bi * t * c) + (h * hs)), c);
            }

            return (y, probs);
        }

        public static float[] Backward(float[] qkv, float[] probs, float[] gy, int b, int t, int c, int heads, float beta, float[] dqkv)
        {
            var c3 = 3 * c;
            var hs = c / heads;
            var scale = 1f / MathF.Sqrt(hs);
            var ds = new float[t * t];
            for (var pair = 0; pair < b * heads; pair++)
            {
                int bi = pair / heads, h = pair % heads;
                var baseQ = (bi * t * c3) + (h * hs);
                var q = qkv.AsSpan(baseQ);
                var k = qkv.AsSpan(baseQ + c);
                var v = qkv.AsSpan(baseQ + (2 * c));
                var p = probs.AsSpan(pair * t * t, t * t);
                var g = gy.AsSpan((bi * t * c) + (h * hs));
                Gemm.Sgemm(true, false, t, hs, t, 1f, p, t, g, c, beta, dqkv.AsSpan(baseQ + (2 * c)), c3);
                Gemm.Sgemm(false, true, t, t, hs, 1f, g, c, v, c3, 0f, ds, t);
                for (var i = 0; i < t; i++)
                {
                    var dr = ds.AsSpan(i * t, i + 1);
                    var pr = p.Slice(i * t, i + 1);
                    var dot = TensorPrimitives.Dot(dr, pr);
                    TensorPrimitives.Subtract(dr, dot, dr);
                    TensorPrimitives.Multiply(dr, pr, dr);
                    ds.AsSpan((i * t) + i + 1, t - i - 1).Clear();
                }

                Gemm.Sgemm(false, false, t, hs, t, scale, ds, t, k, c3, beta, dqkv.AsSpan(baseQ), c3);
                Gemm.Sgemm(true, false, t, hs, t, scale, ds, t, q, c3, beta, dqkv.AsSpan(baseQ + c), c3);
            }

            return dqkv;
        }
    }
}
