using NearML.Training.Tensors;

namespace NearML.Training.Tests.Engine;

/// <summary>
/// The per-image convolution paths (im2col + GEMM, 1×1 without im2col, two lanes) and the vectorised 2×2 max-pool
/// against naive double-precision references, on batch sizes that do not split evenly.
/// </summary>
[TestClass]
public sealed class ConvPoolTests
{
    public static IEnumerable<object[]> ConvCases =>
    [
        // n, c, h, w, o, k, stride, pad, relu
        [1, 3, 5, 6, 4, 1, 1, 0, false],   // 1×1 direct path, single image
        [3, 5, 4, 7, 6, 1, 1, 0, true],    // 1×1 direct path, odd batch
        [5, 4, 7, 7, 3, 1, 2, 0, false],   // 1×1 with stride: im2col path
        [3, 2, 6, 5, 4, 3, 1, 0, true],    // 3×3 valid
        [5, 3, 7, 6, 5, 3, 1, 1, false],   // 3×3 padded
        [4, 2, 9, 8, 3, 3, 2, 1, true],    // strided and padded
        [1, 1, 28, 28, 8, 3, 1, 0, true],  // the CNN's first layer, one image
        [7, 6, 13, 13, 9, 3, 1, 0, true],  // the CNN's second layer shape, odd batch
    ];

    [TestMethod]
    [DynamicData(nameof(ConvCases))]
    public void Conv2d_matches_a_naive_reference(int n, int c, int h, int w, int o, int k, int stride, int pad, bool relu)
    {
        var rng = new Random((n * 1000) + (c * 100) + (k * 10) + stride);
        var x = Rand(rng, true, n, c, h, w);
        var wt = Rand(rng, true, o, c, k, k);
        var b = Rand(rng, true, o);
        var tape = new Tape();
        var y = tape.Conv2d(x, wt, b, stride, pad, relu ? Activation.Relu : Activation.None);
        var ho = ((h + (2 * pad) - k) / stride) + 1;
        var wo = ((w + (2 * pad) - k) / stride) + 1;
        CollectionAssert.AreEqual(new[] { n, o, ho, wo }, y.Shape.ToArray());
        var gy = new float[y.Length];
        for (var i = 0; i < gy.Length; i++)
        {
            gy[i] = (float)((rng.NextDouble() * 2) - 1);
        }

        var (ey, edx, edw, edb) = Naive(x.Data.ToArray(), wt.Data.ToArray(), b.Data.ToArray(), gy, n, c, h, w, o, k, stride, pad, relu);
        Check.Close(ey, y.Data, "y", 1e-5, 1e-5);
        tape.Backward(y, gy);
        Check.Close(edx, x.Grad, "dx", 1e-4, 1e-5);
        Check.Close(edw, wt.Grad, "dw", 1e-4, 1e-5);
        Check.Close(edb, b.Grad, "db", 1e-4, 1e-5);
    }

    [TestMethod]
    [DataRow(1, 1, 0)]
    [DataRow(2, 3, 0)]
    [DataRow(5, 3, 1)]
    [DataRow(9, 1, 0)]
    [DataRow(64, 3, 0)]
    public void Two_lanes_give_the_same_bits_as_one_for_conv_and_pool(int n, int k, int pad)
    {
        var rng = new Random(n + k);
        var x = Rand(rng, true, n, 4, 11, 9);
        var wt = Rand(rng, true, 6, 4, k, k);
        var b = Rand(rng, true, 6);
        float[] Run(bool single, out float[] dx, out float[] dw, out float[] db)
        {
            x.ZeroGrad();
            wt.ZeroGrad();
            b.ZeroGrad();
            var tape = new Tape { SingleLane = single };
            float[] y = [];
            for (var rep = 0; rep < 2; rep++)
            {
                // twice: the second step reuses every pooled buffer and accumulates into the parameter gradients
                tape.Reset();
                var t = tape.MaxPool2d(tape.Conv2d(x, wt, b, 1, pad, Activation.Relu), 2);
                y = t.Data.ToArray();
                tape.Backward(t, Enumerable.Range(0, t.Length).Select(i => MathF.Sin(i * 0.37f)).ToArray());
            }

            dx = x.Grad.ToArray();
            dw = wt.Grad.ToArray();
            db = b.Grad.ToArray();
            return y;
        }

        var y1 = Run(true, out var dx1, out var dw1, out var db1);
        var y2 = Run(false, out var dx2, out var dw2, out var db2);
        CollectionAssert.AreEqual(y1, y2, "y");
        CollectionAssert.AreEqual(dx1, dx2, "dx");
        CollectionAssert.AreEqual(dw1, dw2, "dw");
        CollectionAssert.AreEqual(db1, db2, "db");
    }

    [TestMethod]
    public void Evaluation_without_gradients_matches_training_forward()
    {
        var rng = new Random(11);
        var x = Rand(rng, false, 5, 3, 10, 10);
        var wt = Rand(rng, true, 4, 3, 3, 3);
        var b = Rand(rng, true, 4);
        var train = new Tape();
        var yt = train.Conv2d(x, wt, b, 1, 1, Activation.Relu).Data.ToArray();
        var eval = new Tape { GradEnabled = false };
        var ye = eval.Conv2d(x, wt, b, 1, 1, Activation.Relu);
        Assert.IsFalse(ye.RequiresGrad);
        CollectionAssert.AreEqual(yt, ye.Data.ToArray());
        Assert.AreEqual(0, eval.RecordedCount);
    }

    [TestMethod]
    [DataRow(8, 8)]
    [DataRow(26, 26)]
    [DataRow(11, 11)]
    [DataRow(9, 27)]
    [DataRow(2, 3)]
    [DataRow(5, 17)]
    public void MaxPool2x2_matches_the_scalar_rule_with_ties_and_nan(int h, int w)
    {
        var rng = new Random((h * 100) + w);
        const int planes = 3;
        var x = new float[planes * h * w];
        for (var i = 0; i < x.Length; i++)
        {
            // many ties (zeros and repeated small integers, like ReLU output) and a few NaNs
            var r = rng.Next(20);
            x[i] = r < 6 ? 0f : r == 6 ? float.NaN : r < 10 ? rng.Next(3) : (float)rng.NextDouble();
        }

        int ho = h / 2, wo = w / 2;
        var y = new float[planes * ho * wo];
        var idx = new int[y.Length];
        Tape.MaxPool2x2(x, y, idx, planes, h, w, ho, wo);
        var o = 0;
        for (var p = 0; p < planes; p++)
        {
            for (var oi = 0; oi < ho; oi++)
            {
                for (var oj = 0; oj < wo; oj++, o++)
                {
                    var r0 = (p * h * w) + (2 * oi * w) + (2 * oj);
                    int[] order = [r0, r0 + 1, r0 + w, r0 + w + 1];
                    var bi = order[0];
                    foreach (var j in order[1..])
                    {
                        if (x[j] > x[bi] || float.IsNaN(x[j]))
                        {
                            bi = j;
                        }
                    }

                    Assert.AreEqual(bi, idx[o], $"index of output {o}");
                    Assert.AreEqual(BitConverter.SingleToInt32Bits(x[bi]), BitConverter.SingleToInt32Bits(y[o]), $"value of output {o}");
                }
            }
        }
    }

    [TestMethod]
    public void MaxPool_backward_routes_each_gradient_to_its_argmax()
    {
        var rng = new Random(3);
        var x = Rand(rng, true, 3, 2, 9, 13);
        var tape = new Tape();
        var y = tape.MaxPool2d(x, 2);
        var gy = Enumerable.Range(1, y.Length).Select(i => (float)i).ToArray();
        tape.Backward(y, gy);
        var dx = x.Grad.ToArray();
        var routed = 0;
        for (var i = 0; i < dx.Length; i++)
        {
            if (dx[i] != 0f)
            {
                routed++;
                var yi = Array.IndexOf(gy, dx[i]);
                Assert.AreEqual(y.Data[yi], x.Data[i], $"dx[{i}] went to a non-maximum");
            }
        }

        Assert.AreEqual(y.Length, routed);
    }

    private static Tensor Rand(Random rng, bool grad, params int[] shape)
    {
        var t = Tensor.Create(grad, shape);
        var d = t.Data;
        for (var i = 0; i < d.Length; i++)
        {
            d[i] = (float)((rng.NextDouble() * 2) - 1);
        }

        return t;
    }

    private static (float[] Y, float[] Dx, float[] Dw, float[] Db) Naive(
        float[] x, float[] wt, float[] b, float[] gy, int n, int c, int h, int w, int o, int k, int stride, int pad, bool relu)
    {
        var ho = ((h + (2 * pad) - k) / stride) + 1;
        var wo = ((w + (2 * pad) - k) / stride) + 1;
        var y = new float[n * o * ho * wo];
        var dx = new double[x.Length];
        var dw = new double[wt.Length];
        var db = new double[o];
        for (var s = 0; s < n; s++)
        {
            for (var oc = 0; oc < o; oc++)
            {
                for (var oi = 0; oi < ho; oi++)
                {
                    for (var oj = 0; oj < wo; oj++)
                    {
                        double acc = b[oc];
                        for (var ci = 0; ci < c; ci++)
                        {
                            for (var ki = 0; ki < k; ki++)
                            {
                                for (var kj = 0; kj < k; kj++)
                                {
                                    int ii = (oi * stride) - pad + ki, jj = (oj * stride) - pad + kj;
                                    if ((uint)ii < (uint)h && (uint)jj < (uint)w)
                                    {
                                        acc += (double)wt[(((oc * c) + ci) * k + ki) * k + kj] * x[(((s * c) + ci) * h + ii) * w + jj];
                                    }
                                }
                            }
                        }

                        var yi = (((s * o) + oc) * ho + oi) * wo + oj;
                        y[yi] = relu && acc <= 0 ? 0f : (float)acc;
                        double g = relu && acc <= 0 ? 0 : gy[yi];
                        db[oc] += g;
                        for (var ci = 0; ci < c; ci++)
                        {
                            for (var ki = 0; ki < k; ki++)
                            {
                                for (var kj = 0; kj < k; kj++)
                                {
                                    int ii = (oi * stride) - pad + ki, jj = (oj * stride) - pad + kj;
                                    if ((uint)ii < (uint)h && (uint)jj < (uint)w)
                                    {
                                        var xi = (((s * c) + ci) * h + ii) * w + jj;
                                        var wi = (((oc * c) + ci) * k + ki) * k + kj;
                                        dw[wi] += g * x[xi];
                                        dx[xi] += g * wt[wi];
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }

        return (y, dx.Select(v => (float)v).ToArray(), dw.Select(v => (float)v).ToArray(), db.Select(v => (float)v).ToArray());
    }
}
