using NearML.Training.Tensors;

namespace NearML.Training.Tests.Engine;

/// <summary>
/// Finite-difference checks of every op's backward: L = Σ out ⊙ R for a fixed random R; the analytic ∂L/∂x from
/// <see cref="Tape.Backward(Tensor, ReadOnlySpan{float})"/> must match (L(x + h) − L(x − h))/2h, L accumulated in
/// double, h = 1e-2 (float32 forward), tolerance 2e-2·max(1, |g|).
/// </summary>
[TestClass]
public sealed class GradCheckTests
{
    private static Tensor Rand(Random rng, bool grad, params int[] shape)
    {
        var t = Tensor.Create(grad, shape);
        var d = t.Data;
        for (var i = 0; i < d.Length; i++)
        {
            // keep away from 0 so ReLU/max kinks are not straddled by ±h
            var v = (float)((rng.NextDouble() * 2) - 1);
            d[i] = v + (v >= 0 ? 0.05f : -0.05f);
        }

        return t;
    }

    private static void GradCheck(Func<Tape, Tensor> f, params Tensor[] inputs)
    {
        var tape = new Tape();
        var outShape = f(tape).Length;
        var rng = new Random(99);
        var r = new float[outShape];
        for (var i = 0; i < r.Length; i++)
        {
            r[i] = (float)((rng.NextDouble() * 2) - 1);
        }

        double Loss()
        {
            tape.Reset();
            var o = f(tape).Data;
            double acc = 0;
            for (var i = 0; i < o.Length; i++)
            {
                acc += (double)o[i] * r[i];
            }

            return acc;
        }

        foreach (var x in inputs)
        {
            x.ZeroGrad();
        }

        tape.Reset();
        tape.Backward(f(tape), r);
        const float H = 1e-2f;
        foreach (var x in inputs)
        {
            var analytic = x.Grad.ToArray();
            var d = x.Data;
            var step = Math.Max(1, d.Length / 24);
            for (var i = 0; i < d.Length; i += step)
            {
                var keep = d[i];
                d[i] = keep + H;
                var lp = Loss();
                d[i] = keep - H;
                var lm = Loss();
                d[i] = keep;
                var numeric = (lp - lm) / (2 * H);
                Assert.AreEqual(numeric, analytic[i], 2e-2 * Math.Max(1, Math.Abs(numeric)), $"element {i} of input {x.ShapeText}");
            }
        }
    }

    [TestMethod]
    public void Linear_all_activations()
    {
        var rng = new Random(1);
        foreach (var act in new[] { Activation.None, Activation.Relu, Activation.Gelu, Activation.GeluTanh })
        {
            var x = Rand(rng, true, 3, 5);
            var w = Rand(rng, true, 4, 5);
            var b = Rand(rng, true, 4);
            GradCheck(t => t.Linear(x, w, b, act), x, w, b);
        }
    }

    [TestMethod]
    public void MatMul_all_transposes()
    {
        var rng = new Random(2);
        foreach (var ta in new[] { false, true })
        {
            foreach (var tb in new[] { false, true })
            {
                var a = ta ? Rand(rng, true, 2, 4, 3) : Rand(rng, true, 2, 3, 4);
                var b = tb ? Rand(rng, true, 2, 5, 4) : Rand(rng, true, 2, 4, 5);
                GradCheck(t => t.MatMul(a, b, ta, tb), a, b);
            }
        }

        var a2 = Rand(rng, true, 2, 3, 4);
        var b2 = Rand(rng, true, 4, 6);
        GradCheck(t => t.MatMul(a2, b2), a2, b2);
    }

    [TestMethod]
    public void Elementwise_ops()
    {
        var rng = new Random(3);
        var a = Rand(rng, true, 2, 3, 4);
        var b = Rand(rng, true, 2, 3, 4);
        var bias = Rand(rng, true, 4);
        var suffix = Rand(rng, true, 3, 4);
        GradCheck(t => t.Add(a, b), a, b);
        GradCheck(t => t.Add(a, bias), a, bias);
        GradCheck(t => t.Add(a, suffix), a, suffix);
        GradCheck(t => t.Mul(a, b), a, b);
        GradCheck(t => t.Scale(a, -1.7f), a);
        GradCheck(t => t.Relu(a), a);
        GradCheck(t => t.Gelu(a), a);
        GradCheck(t => t.Gelu(a, tanhApproximation: true), a);
        GradCheck(t => t.Tanh(a), a);
        GradCheck(t => t.Sum(a), a);
        GradCheck(t => t.Mean(a), a);
        GradCheck(t => t.Transpose(a, 0, 2), a);
        GradCheck(t => t.Relu(t.Reshape(a, 6, 4)), a);
    }

    [TestMethod]
    public void Softmax_family()
    {
        var rng = new Random(4);
        var x = Rand(rng, true, 3, 7);
        GradCheck(t => t.Softmax(x), x);
        GradCheck(t => t.LogSoftmax(x), x);
        var targets = new[] { 0, 6, 3 };
        GradCheck(t => t.CrossEntropy(x, targets), x);
    }

    [TestMethod]
    public void Embedding_and_layer_norm()
    {
        var rng = new Random(5);
        var w = Rand(rng, true, 6, 4);
        var ids = new[] { 1, 5, 1, 0, 3, 5 };
        GradCheck(t => t.Embedding(w, ids, 0, 2, 3), w);
        var x = Rand(rng, true, 3, 8);
        var g = Rand(rng, true, 8);
        var b = Rand(rng, true, 8);
        GradCheck(t => t.LayerNorm(x, g, b), x, g, b);
    }

    [TestMethod]
    public void Conv_and_pool()
    {
        var rng = new Random(6);
        var x = Rand(rng, true, 2, 2, 6, 5);
        var w = Rand(rng, true, 3, 2, 3, 3);
        var b = Rand(rng, true, 3);
        GradCheck(t => t.Conv2d(x, w, b), x, w, b);
        // the fused ReLU is checked against PyTorch (conv2d_s2p1_relu); here its kinks would straddle ±h
        GradCheck(t => t.Conv2d(x, w, b, stride: 2, padding: 1), x, w, b);
        GradCheck(t => t.MaxPool2d(x, 2), x);
    }

    [TestMethod]
    public void Attention()
    {
        var rng = new Random(7);
        var qkv = Rand(rng, true, 2, 5, 12);
        GradCheck(t => t.CausalSelfAttention(qkv, 2), qkv);
    }

    [TestMethod]
    public void Dropout_is_seeded_scaled_and_its_backward_uses_the_same_mask()
    {
        var rng = new Random(8);
        var x = Rand(rng, true, 100, 100);
        var tape = new Tape { DropoutSeed = 42 };
        tape.Reset();
        var y = tape.Dropout(x, 0.3f);
        var r = new float[y.Length];
        for (var i = 0; i < r.Length; i++)
        {
            r[i] = (float)rng.NextDouble() + 0.5f;
        }

        tape.Backward(y, r);
        var dropped = 0;
        for (var i = 0; i < y.Length; i++)
        {
            if (y.Data[i] == 0f)
            {
                dropped++;
                Assert.AreEqual(0f, x.Grad[i]);
            }
            else
            {
                Assert.AreEqual(x.Data[i] / 0.7f, y.Data[i], 1e-6f);
                Assert.AreEqual(r[i] / 0.7f, x.Grad[i], 1e-5f);
            }
        }

        Assert.AreEqual(0.3, dropped / 10000.0, 0.02);

        // same seed and step → same mask; another step → another mask; evaluation → identity
        var again = new Tape { DropoutSeed = 42 };
        again.Reset();
        CollectionAssert.AreEqual(y.Data.ToArray(), again.Dropout(x, 0.3f).Data.ToArray());
        again.Reset();
        CollectionAssert.AreNotEqual(y.Data.ToArray(), again.Dropout(x, 0.3f).Data.ToArray());
        again.Training = false;
        Assert.AreSame(x, again.Dropout(x, 0.3f));
    }
}
