using System.Numerics.Tensors;
using NearML.Training.Kernels;
using NearML.Training.Tensors.Internal;

namespace NearML.Training.Tensors;

public sealed partial class Tape
{
    /// <summary>
    /// 2-D convolution (cross-correlation, like PyTorch) with an optional fused activation, computed as one GEMM over
    /// the whole batch: im2col [C·kh·kw, N·Ho·Wo], W·col, then bias + activation while writing NCHW.
    /// </summary>
    /// <param name="x">Input [N, C, H, W].</param>
    /// <param name="weight">Filters [O, C, kh, kw].</param>
    /// <param name="bias">Bias [O] or <see langword="null"/>.</param>
    /// <param name="stride">Stride (both directions).</param>
    /// <param name="padding">Zero padding (both directions).</param>
    /// <param name="activation">The fused activation (<see cref="Activation.None"/> or <see cref="Activation.Relu"/>).</param>
    /// <returns>Output [N, O, Ho, Wo].</returns>
    public Tensor Conv2d(Tensor x, Tensor weight, Tensor? bias, int stride = 1, int padding = 0, Activation activation = Activation.None)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(stride);
        ArgumentOutOfRangeException.ThrowIfNegative(padding);
        if (activation is not (Activation.None or Activation.Relu))
        {
            throw new ArgumentOutOfRangeException(nameof(activation), activation, "conv2d fuses only ReLU.");
        }

        if (x.Rank != 4 || weight.Rank != 4 || x[1] != weight[1])
        {
            throw Mismatch("conv2d", x, weight, "input [N, C, H, W] needs weight [O, C, kh, kw]");
        }

        int n = x[0], c = x[1], h = x[2], w = x[3];
        int o = weight[0], kh = weight[2], kw = weight[3];
        if (bias is not null && (bias.Rank != 1 || bias.Length != o))
        {
            throw Mismatch("conv2d", weight, bias, "bias must be [out_channels]");
        }

        var ho = ((h + (2 * padding) - kh) / stride) + 1;
        var wo = ((w + (2 * padding) - kw) / stride) + 1;
        if (ho <= 0 || wo <= 0 || h + (2 * padding) < kh || w + (2 * padding) < kw)
        {
            throw Mismatch("conv2d", x, weight, "the kernel is larger than the padded input");
        }

        var ckk = c * kh * kw;
        var plane = ho * wo;
        var cols = n * plane;
        var req = Needs(x, weight) || (GradEnabled && bias is not null && bias.RequiresGrad);
        var col = Rent(ckk, cols, false);
        Im2Col(x.Data, n, c, h, w, kh, kw, stride, padding, ho, wo, col.Data);
        var y = Rent(n, o, ho, wo, req);
        var prod = Scratch(o * cols).AsSpan(0, o * cols);
        Gemm.Sgemm(false, false, o, cols, ckk, 1f, weight.Data, ckk, col.Data, cols, 0f, prod, cols);
        var yd = y.Data;
        var bd = bias is null ? default : bias.Data;
        for (var oc = 0; oc < o; oc++)
        {
            var b = bias is null ? 0f : bd[oc];
            for (var s = 0; s < n; s++)
            {
                var src = prod.Slice((oc * cols) + (s * plane), plane);
                var dst = yd.Slice(((s * o) + oc) * plane, plane);
                TensorPrimitives.Add(src, b, dst);
                if (activation == Activation.Relu)
                {
                    TensorPrimitives.Max(dst, 0f, dst);
                }
            }
        }

        if (req)
        {
            ref var node = ref Record(OpCode.Conv2d, y);
            node.A = x;
            node.B = weight;
            node.C = bias;
            node.S0 = col;
            node.I0 = (int)activation;
            node.I1 = stride;
            node.I2 = padding;
        }

        return y;
    }

    private static void Im2Col(ReadOnlySpan<float> x, int n, int c, int h, int w, int kh, int kw, int stride, int pad, int ho, int wo, Span<float> col)
    {
        var cols = n * ho * wo;
        for (var ci = 0; ci < c; ci++)
        {
            for (var ki = 0; ki < kh; ki++)
            {
                for (var kj = 0; kj < kw; kj++)
                {
                    var row = col.Slice((((ci * kh) + ki) * kw + kj) * cols, cols);
                    var p = 0;
                    for (var s = 0; s < n; s++)
                    {
                        var img = x.Slice(((s * c) + ci) * h * w, h * w);
                        for (var oi = 0; oi < ho; oi++)
                        {
                            var ii = (oi * stride) - pad + ki;
                            var dst = row.Slice(p, wo);
                            p += wo;
                            if ((uint)ii >= (uint)h)
                            {
                                dst.Clear();
                                continue;
                            }

                            var src = img.Slice(ii * w, w);
                            if (stride == 1)
                            {
                                // columns j with 0 ≤ j − pad + kj < w
                                var lo = Math.Max(0, pad - kj);
                                var hi = Math.Min(wo, w + pad - kj);
                                dst[..Math.Min(lo, wo)].Clear();
                                if (hi > lo)
                                {
                                    src.Slice(lo - pad + kj, hi - lo).CopyTo(dst[lo..hi]);
                                }

                                if (hi < wo)
                                {
                                    dst[Math.Max(hi, 0)..].Clear();
                                }
                            }
                            else
                            {
                                for (var oj = 0; oj < wo; oj++)
                                {
                                    var jj = (oj * stride) - pad + kj;
                                    dst[oj] = (uint)jj < (uint)w ? src[jj] : 0f;
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    private static void Col2ImAdd(ReadOnlySpan<float> col, int n, int c, int h, int w, int kh, int kw, int stride, int pad, int ho, int wo, Span<float> dx)
    {
        var cols = n * ho * wo;
        for (var ci = 0; ci < c; ci++)
        {
            for (var ki = 0; ki < kh; ki++)
            {
                for (var kj = 0; kj < kw; kj++)
                {
                    var row = col.Slice((((ci * kh) + ki) * kw + kj) * cols, cols);
                    var p = 0;
                    for (var s = 0; s < n; s++)
                    {
                        var img = dx.Slice(((s * c) + ci) * h * w, h * w);
                        for (var oi = 0; oi < ho; oi++)
                        {
                            var ii = (oi * stride) - pad + ki;
                            var src = row.Slice(p, wo);
                            p += wo;
                            if ((uint)ii >= (uint)h)
                            {
                                continue;
                            }

                            var dst = img.Slice(ii * w, w);
                            if (stride == 1)
                            {
                                var lo = Math.Max(0, pad - kj);
                                var hi = Math.Min(wo, w + pad - kj);
                                if (hi > lo)
                                {
                                    var d = dst.Slice(lo - pad + kj, hi - lo);
                                    TensorPrimitives.Add(d, src[lo..hi], d);
                                }
                            }
                            else
                            {
                                for (var oj = 0; oj < wo; oj++)
                                {
                                    var jj = (oj * stride) - pad + kj;
                                    if ((uint)jj < (uint)w)
                                    {
                                        dst[jj] += src[oj];
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    private void Conv2dBackward(ref Node node)
    {
        var x = node.A!;
        var weight = node.B!;
        var bias = node.C;
        var y = node.Out!;
        int n = x[0], c = x[1], h = x[2], w = x[3];
        int o = weight[0], kh = weight[2], kw = weight[3];
        int ho = y[2], wo = y[3];
        int stride = node.I1, pad = node.I2;
        var plane = ho * wo;
        var cols = n * plane;
        var ckk = c * kh * kw;
        var g = GradOf(y);
        if ((Activation)node.I0 == Activation.Relu)
        {
            Simd.ReluBackwardInPlace(g, y.Data);
        }

        // gP [O, N·Ho·Wo]
        var gp = Scratch(o * cols).AsSpan(0, o * cols);
        for (var oc = 0; oc < o; oc++)
        {
            for (var s = 0; s < n; s++)
            {
                g.Slice(((s * o) + oc) * plane, plane).CopyTo(gp.Slice((oc * cols) + (s * plane), plane));
            }
        }

        if (bias is not null && bias.RequiresGrad)
        {
            var db = GradZeroed(bias);
            for (var oc = 0; oc < o; oc++)
            {
                db[oc] += TensorPrimitives.Sum(gp.Slice(oc * cols, cols));
            }
        }

        var colData = node.S0!.Data;
        if (weight.RequiresGrad)
        {
            var beta = GradBeta(weight, out var dw);
            Gemm.Sgemm(false, true, o, ckk, cols, 1f, gp, cols, colData, cols, beta, dw, ckk);
        }

        if (x.RequiresGrad)
        {
            var dcol = Scratch2(ckk * cols).AsSpan(0, ckk * cols);
            Gemm.Sgemm(true, false, ckk, cols, o, 1f, weight.Data, ckk, gp, cols, 0f, dcol, cols);
            var dx = GradZeroed(x);
            Col2ImAdd(dcol, n, c, h, w, kh, kw, stride, pad, ho, wo, dx);
        }
    }

    /// <summary>2-D max pooling without padding (floor mode).</summary>
    /// <param name="x">Input [N, C, H, W].</param>
    /// <param name="kernel">Window size.</param>
    /// <param name="stride">Stride (0 means equal to <paramref name="kernel"/>, PyTorch's default).</param>
    /// <returns>Output [N, C, (H − k)/s + 1, (W − k)/s + 1].</returns>
    public Tensor MaxPool2d(Tensor x, int kernel, int stride = 0)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(kernel);
        ArgumentOutOfRangeException.ThrowIfNegative(stride);
        if (stride == 0)
        {
            stride = kernel;
        }

        if (x.Rank != 4 || x[2] < kernel || x[3] < kernel)
        {
            throw new ShapeMismatchException($"max_pool2d: input {x.ShapeText} must be [N, C, H, W] with H, W ≥ kernel {kernel}.");
        }

        int n = x[0], c = x[1], h = x[2], w = x[3];
        var ho = ((h - kernel) / stride) + 1;
        var wo = ((w - kernel) / stride) + 1;
        var req = Needs(x);
        var y = Rent(n, c, ho, wo, req);
        var idx = req ? RentInts(y.Length) : null;
        var xd = x.Data;
        var yd = y.Data;
        if (kernel == 2 && stride == 2)
        {
            MaxPool2x2(xd, yd, idx, n * c, h, w, ho, wo);
        }
        else
        {
            MaxPoolGeneral(xd, yd, idx, n * c, h, w, ho, wo, kernel, stride);
        }

        if (req)
        {
            ref var node = ref Record(OpCode.MaxPool2d, y);
            node.A = x;
            node.Ints = idx;
        }

        return y;
    }

    private static void MaxPool2x2(ReadOnlySpan<float> xd, Span<float> yd, int[]? idx, int planes, int h, int w, int ho, int wo)
    {
        var o = 0;
        for (var p = 0; p < planes; p++)
        {
            var baseIdx = p * h * w;
            for (var oi = 0; oi < ho; oi++)
            {
                var r0 = baseIdx + (2 * oi * w);
                var r1 = r0 + w;
                for (var oj = 0; oj < wo; oj++)
                {
                    var j = 2 * oj;
                    var bi = r0 + j;
                    var best = xd[bi];
                    var v = xd[r0 + j + 1];
                    if (v > best || float.IsNaN(v))
                    {
                        best = v;
                        bi = r0 + j + 1;
                    }

                    v = xd[r1 + j];
                    if (v > best || float.IsNaN(v))
                    {
                        best = v;
                        bi = r1 + j;
                    }

                    v = xd[r1 + j + 1];
                    if (v > best || float.IsNaN(v))
                    {
                        best = v;
                        bi = r1 + j + 1;
                    }

                    yd[o] = best;
                    if (idx is not null)
                    {
                        idx[o] = bi;
                    }

                    o++;
                }
            }
        }
    }

    private static void MaxPoolGeneral(ReadOnlySpan<float> xd, Span<float> yd, int[]? idx, int planes, int h, int w, int ho, int wo, int kernel, int stride)
    {
        var o = 0;
        for (var p = 0; p < planes; p++)
        {
            var baseIdx = p * h * w;
            for (var oi = 0; oi < ho; oi++)
            {
                for (var oj = 0; oj < wo; oj++)
                {
                    var best = float.NegativeInfinity;
                    var bi = baseIdx + (oi * stride * w) + (oj * stride);
                    for (var ki = 0; ki < kernel; ki++)
                    {
                        var r = baseIdx + (((oi * stride) + ki) * w) + (oj * stride);
                        for (var kj = 0; kj < kernel; kj++)
                        {
                            var v = xd[r + kj];
                            if (v > best || float.IsNaN(v))
                            {
                                best = v;
                                bi = r + kj;
                                if (float.IsNaN(v))
                                {
                                    ki = kernel;
                                    break;
                                }
                            }
                        }
                    }

                    yd[o] = best;
                    if (idx is not null)
                    {
                        idx[o] = bi;
                    }

                    o++;
                }
            }
        }
    }

    private void MaxPool2dBackward(ref Node node)
    {
        var x = node.A!;
        if (!x.RequiresGrad)
        {
            return;
        }

        var g = GradOf(node.Out!);
        var dx = GradZeroed(x);
        var idx = node.Ints!;
        for (var i = 0; i < g.Length; i++)
        {
            dx[idx[i]] += g[i];
        }
    }

}
