using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NearML.Training.Kernels;
using NearML.Training.Tensors.Internal;

namespace NearML.Training.Tensors;

public sealed partial class Tape
{
    private ConvJob? _conv;
    private PoolJob? _pool;

    /// <summary>
    /// 2-D convolution (cross-correlation, like PyTorch) with an optional fused activation. Each image is one GEMM
    /// written straight into the NCHW output, W[O × C·kh·kw] · im2col(image)[C·kh·kw × Ho·Wo] (a 1×1 convolution with
    /// stride 1 and no padding multiplies the image itself), followed by one bias + activation pass over the image's
    /// output while it is still in cache. The images of the batch are split over two lanes (the caller and one helper
    /// thread) when <see cref="KernelThreads.Count"/> ≥ 2; each lane's GEMMs run single-threaded.
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
        var direct = kh == 1 && kw == 1 && stride == 1 && padding == 0;
        var req = Needs(x, weight) || (GradEnabled && bias is not null && bias.RequiresGrad);

        // Training keeps every image's im2col for the backward pass; evaluation uses one buffer per lane.
        var col = req && !direct ? Rent(n, ckk, plane, false) : null;
        var y = Rent(n, o, ho, wo, req);
        var job = _conv ??= new ConvJob();
        job.Set(x, weight, bias, y, col, activation, stride, padding, direct);
        job.EnsureLaneBuffers(col is null && !direct ? ckk * plane : 0, 0);
        RunLanes(job, n);
        job.Clear();

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

    /// <summary>
    /// Gets or sets a value indicating whether convolutions run all images on the calling thread (tests compare it with
    /// the two-lane split, which must give identical results).
    /// </summary>
    internal bool SingleLane { get; set; }

    /// <summary>Runs <paramref name="job"/> over <paramref name="count"/> images, in two lanes when the kernels may use two threads.</summary>
    private void RunLanes(RangeJob job, int count)
    {
        if (!SingleLane && KernelThreads.Count >= 2 && count >= 2)
        {
            PairRunner.Run(job, count);
        }
        else
        {
            job.Run(0, count, 0);
        }
    }

    /// <summary>im2col of one image [C, H, W] into [C·kh·kw, Ho·Wo].</summary>
    internal static void Im2ColImage(ReadOnlySpan<float> img, int c, int h, int w, int kh, int kw, int stride, int pad, int ho, int wo, Span<float> col)
    {
        var plane = ho * wo;
        for (var ci = 0; ci < c; ci++)
        {
            var src = img.Slice(ci * h * w, h * w);
            for (var ki = 0; ki < kh; ki++)
            {
                for (var kj = 0; kj < kw; kj++)
                {
                    var row = col.Slice((((ci * kh) + ki) * kw + kj) * plane, plane);
                    if (stride == 1 && pad == 0)
                    {
                        // every tap is inside the image: rows of wo consecutive pixels
                        var s0 = (ki * w) + kj;
                        for (var oi = 0; oi < ho; oi++)
                        {
                            src.Slice(s0 + (oi * w), wo).CopyTo(row.Slice(oi * wo, wo));
                        }

                        continue;
                    }

                    for (var oi = 0; oi < ho; oi++)
                    {
                        var ii = (oi * stride) - pad + ki;
                        var dst = row.Slice(oi * wo, wo);
                        if ((uint)ii >= (uint)h)
                        {
                            dst.Clear();
                            continue;
                        }

                        var srow = src.Slice(ii * w, w);
                        if (stride == 1)
                        {
                            // columns j with 0 ≤ j − pad + kj < w
                            var lo = Math.Min(Math.Max(0, pad - kj), wo);
                            var hi = Math.Min(wo, w + pad - kj);
                            dst[..lo].Clear();
                            if (hi > lo)
                            {
                                srow.Slice(lo - pad + kj, hi - lo).CopyTo(dst[lo..hi]);
                            }

                            if (hi < wo)
                            {
                                dst[Math.Max(hi, lo)..].Clear();
                            }
                        }
                        else
                        {
                            for (var oj = 0; oj < wo; oj++)
                            {
                                var jj = (oj * stride) - pad + kj;
                                dst[oj] = (uint)jj < (uint)w ? srow[jj] : 0f;
                            }
                        }
                    }
                }
            }
        }
    }

    /// <summary>Adds col2im of one image's [C·kh·kw, Ho·Wo] gradient into its [C, H, W] gradient.</summary>
    internal static void Col2ImAddImage(ReadOnlySpan<float> col, int c, int h, int w, int kh, int kw, int stride, int pad, int ho, int wo, Span<float> dx)
    {
        var plane = ho * wo;
        for (var ci = 0; ci < c; ci++)
        {
            var img = dx.Slice(ci * h * w, h * w);
            for (var ki = 0; ki < kh; ki++)
            {
                for (var kj = 0; kj < kw; kj++)
                {
                    var row = col.Slice((((ci * kh) + ki) * kw + kj) * plane, plane);
                    for (var oi = 0; oi < ho; oi++)
                    {
                        var ii = (oi * stride) - pad + ki;
                        if ((uint)ii >= (uint)h)
                        {
                            continue;
                        }

                        var src = row.Slice(oi * wo, wo);
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

    private void Conv2dBackward(ref Node node)
    {
        var x = node.A!;
        var weight = node.B!;
        var bias = node.C;
        var y = node.Out!;
        var n = x[0];
        int o = weight[0], ckk = weight[1] * weight[2] * weight[3];
        var direct = node.S0 is null;
        var needW = weight.RequiresGrad;
        var needB = bias is not null && bias.RequiresGrad;
        var needX = x.RequiresGrad;
        if (!needW && !needB && !needX)
        {
            return;
        }

        var dxFresh = false;
        if (needX)
        {
            GradAcc(x, out dxFresh);
        }

        var job = _conv ??= new ConvJob();
        job.Set(x, weight, bias, y, node.S0, (Activation)node.I0, node.I1, node.I2, direct);
        job.EnsureLaneBuffers(needX && !direct ? ckk * y[2] * y[3] : 0, ckk * o);
        job.SetBackward(y.Root._grad!, y._gradOffset, needW, needB, needX ? x.Root._grad : null, x._gradOffset, dxFresh);
        RunLanes(job, n);
        job.Clear();

        // Reduce the two halves' partial sums (fixed split at n/2, so the result does not depend on threading).
        var mid = n / 2;
        if (needW)
        {
            var beta = GradBeta(weight, out var dw);
            var p0 = job.PartialW(0);
            var p1 = job.PartialW(1);
            for (var oc = 0; oc < o; oc++)
            {
                var drow = dw.Slice(oc * ckk, ckk);
                for (var k = 0; k < ckk; k++)
                {
                    var v = mid > 0 ? p0[(k * o) + oc] + p1[(k * o) + oc] : p1[(k * o) + oc];
                    drow[k] = beta == 0f ? v : drow[k] + v;
                }
            }
        }

        if (needB)
        {
            var db = GradZeroed(bias!);
            if (mid > 0)
            {
                TensorPrimitives.Add(db, job.PartialB(0)[..o], db);
            }

            TensorPrimitives.Add(db, job.PartialB(1)[..o], db);
        }
    }

    /// <summary>The per-image work of a convolution, forward or backward, over a range of images.</summary>
    private sealed class ConvJob : RangeJob
    {
        private readonly float[][] _laneCol = [[], []];
        private readonly float[][] _partW = [[], []];
        private readonly float[][] _partB = [[], []];
        private Tensor? _x;
        private Tensor? _w;
        private Tensor? _b;
        private Tensor? _y;
        private Tensor? _col;
        private Activation _activation;
        private int _stride;
        private int _pad;
        private bool _direct;
        private bool _backward;
        private float[]? _g;
        private int _gOffset;
        private bool _needW;
        private bool _needB;
        private float[]? _dx;
        private int _dxOffset;
        private bool _dxFresh;

        public void Set(Tensor x, Tensor w, Tensor? b, Tensor y, Tensor? col, Activation activation, int stride, int pad, bool direct)
        {
            _x = x;
            _w = w;
            _b = b;
            _y = y;
            _col = col;
            _activation = activation;
            _stride = stride;
            _pad = pad;
            _direct = direct;
            _backward = false;
        }

        public void SetBackward(float[] g, int gOffset, bool needW, bool needB, float[]? dx, int dxOffset, bool dxFresh)
        {
            _backward = true;
            _g = g;
            _gOffset = gOffset;
            _needW = needW;
            _needB = needB;
            _dx = dx;
            _dxOffset = dxOffset;
            _dxFresh = dxFresh;
        }

        /// <summary>Grows the per-lane im2col buffers and the per-half partial dW/db buffers (on the calling thread).</summary>
        public void EnsureLaneBuffers(int colLength, int partialWLength)
        {
            var o = _w![0];
            for (var i = 0; i < 2; i++)
            {
                if (_laneCol[i].Length < colLength)
                {
                    _laneCol[i] = new float[colLength];
                }

                if (_partW[i].Length < partialWLength)
                {
                    _partW[i] = new float[partialWLength];
                }

                if (_partB[i].Length < o)
                {
                    _partB[i] = new float[o];
                }
            }
        }

        public ReadOnlySpan<float> PartialW(int half) => _partW[half];

        public ReadOnlySpan<float> PartialB(int half) => _partB[half];

        public void Clear()
        {
            _x = _w = _b = _y = _col = null;
            _g = _dx = null;
        }

        public override void Run(int start, int end, int lane)
        {
            if (_backward)
            {
                Backward(start, end, lane);
            }
            else
            {
                Forward(start, end, lane);
            }
        }

        private void Forward(int start, int end, int lane)
        {
            var x = _x!;
            int c = x[1], h = x[2], w = x[3];
            var y = _y!;
            int o = y[1], ho = y[2], wo = y[3];
            int kh = _w![2], kw = _w[3];
            var ckk = c * kh * kw;
            var plane = ho * wo;
            var wd = _w.Data;
            var bd = _b is null ? default : _b.Data;
            var xd = x.Data;
            var yd = y.Data;
            for (var s = start; s < end; s++)
            {
                var xs = xd.Slice(s * c * h * w, c * h * w);
                ReadOnlySpan<float> src;
                if (_direct)
                {
                    src = xs;
                }
                else
                {
                    var colS = _col is null ? _laneCol[lane].AsSpan(0, ckk * plane) : _col.Data.Slice(s * ckk * plane, ckk * plane);
                    Im2ColImage(xs, c, h, w, kh, kw, _stride, _pad, ho, wo, colS);
                    src = colS;
                }

                var ys = yd.Slice(s * o * plane, o * plane);
                Gemm.Sgemm(Gemm.ForcedPath, 1, false, false, o, plane, ckk, 1f, wd, ckk, src, plane, 0f, ys, plane);
                if (_b is not null || _activation == Activation.Relu)
                {
                    for (var oc = 0; oc < o; oc++)
                    {
                        var row = ys.Slice(oc * plane, plane);
                        if (_activation == Activation.Relu)
                        {
                            Simd.AddRelu(row, _b is null ? 0f : bd[oc]);
                        }
                        else
                        {
                            TensorPrimitives.Add(row, bd[oc], row);
                        }
                    }
                }
            }
        }

        private void Backward(int start, int end, int lane)
        {
            var x = _x!;
            int n = x[0], c = x[1], h = x[2], w = x[3];
            var y = _y!;
            int o = y[1], ho = y[2], wo = y[3];
            int kh = _w![2], kw = _w[3];
            var ckk = c * kh * kw;
            var plane = ho * wo;
            var mid = n / 2;
            var wd = _w.Data;
            var xd = x.Data;
            var yd = y.Data;
            var g = _g.AsSpan(_gOffset, y.Length);
            for (var s = start; s < end; s++)
            {
                var half = s < mid ? 0 : 1;
                var first = s == 0 || s == mid;
                var gs = g.Slice(s * o * plane, o * plane);
                if (_activation == Activation.Relu)
                {
                    Simd.ReluBackwardInPlace(gs, yd.Slice(s * o * plane, o * plane));
                }

                if (_needB)
                {
                    var pb = _partB[half].AsSpan(0, o);
                    for (var oc = 0; oc < o; oc++)
                    {
                        var sum = TensorPrimitives.Sum(gs.Slice(oc * plane, plane));
                        pb[oc] = first ? sum : pb[oc] + sum;
                    }
                }

                ReadOnlySpan<float> src = _direct ? xd.Slice(s * c * h * w, c * h * w) : _col!.Data.Slice(s * ckk * plane, ckk * plane);
                if (_needW)
                {
                    // dWᵀ[C·kh·kw × O] (+)= col[C·kh·kw × HW] · gᵀ[HW × O]
                    Gemm.Sgemm(Gemm.ForcedPath, 1, false, true, ckk, o, plane, 1f, src, plane, gs, plane, first ? 0f : 1f, _partW[half], o);
                }

                if (_dx is not null)
                {
                    var dxs = _dx.AsSpan(_dxOffset + (s * c * h * w), c * h * w);
                    if (_direct)
                    {
                        Gemm.Sgemm(Gemm.ForcedPath, 1, true, false, ckk, plane, o, 1f, wd, ckk, gs, plane, _dxFresh ? 0f : 1f, dxs, plane);
                    }
                    else
                    {
                        var dcol = _laneCol[lane].AsSpan(0, ckk * plane);
                        Gemm.Sgemm(Gemm.ForcedPath, 1, true, false, ckk, plane, o, 1f, wd, ckk, gs, plane, 0f, dcol, plane);
                        if (_dxFresh)
                        {
                            dxs.Clear();
                        }

                        Col2ImAddImage(dcol, c, h, w, kh, kw, _stride, _pad, ho, wo, dxs);
                    }
                }
            }
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
            var job = _pool ??= new PoolJob();
            job.Set(x, y, idx);
            RunLanes(job, n);
            job.Clear();
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

    /// <summary>
    /// 2×2, stride-2 max pooling with argmax indices. Ties keep the first element in (top-left, top-right,
    /// bottom-left, bottom-right) order and a NaN wins (the last NaN in that order), like the general kernel; four
    /// outputs at a time with SSE de-interleaving, scalar for the rest of a row.
    /// </summary>
    internal static void MaxPool2x2(ReadOnlySpan<float> xd, Span<float> yd, int[]? idx, int planes, int h, int w, int ho, int wo) =>
        MaxPool2x2(xd, yd, idx, 0, planes, h, w, ho, wo);

    /// <summary>2×2, stride-2 max pooling of planes [<paramref name="planeStart"/>, <paramref name="planeEnd"/>) into the same places of the whole output.</summary>
    internal static void MaxPool2x2(ReadOnlySpan<float> xd, Span<float> yd, int[]? idx, int planeStart, int planeEnd, int h, int w, int ho, int wo)
    {
        var o = planeStart * ho * wo;
        var lanes = Vector128.Create(0, 2, 4, 6);
        var offR = Vector128.Create(1);
        var offW = Vector128.Create(w);
        var offW1 = Vector128.Create(w + 1);
        for (var p = planeStart; p < planeEnd; p++)
        {
            var baseIdx = p * h * w;
            for (var oi = 0; oi < ho; oi++)
            {
                var r0 = baseIdx + (2 * oi * w);
                var r1 = r0 + w;
                var oj = 0;
                if (Sse.IsSupported)
                {
                    for (; oj + 4 <= wo && (2 * oj) + 8 <= w; oj += 4)
                    {
                        var j = 2 * oj;
                        var t0 = Vector128.Create(xd.Slice(r0 + j, 4));
                        var t1 = Vector128.Create(xd.Slice(r0 + j + 4, 4));
                        var b0 = Vector128.Create(xd.Slice(r1 + j, 4));
                        var b1 = Vector128.Create(xd.Slice(r1 + j + 4, 4));
                        var best = Sse.Shuffle(t0, t1, 0b10_00_10_00);
                        var off = Vector128<int>.Zero;
                        var v = Sse.Shuffle(t0, t1, 0b11_01_11_01);
                        var m = Vector128.GreaterThan(v, best) | ~Vector128.Equals(v, v);
                        best = Vector128.ConditionalSelect(m, v, best);
                        off = Vector128.ConditionalSelect(m.AsInt32(), offR, off);
                        v = Sse.Shuffle(b0, b1, 0b10_00_10_00);
                        m = Vector128.GreaterThan(v, best) | ~Vector128.Equals(v, v);
                        best = Vector128.ConditionalSelect(m, v, best);
                        off = Vector128.ConditionalSelect(m.AsInt32(), offW, off);
                        v = Sse.Shuffle(b0, b1, 0b11_01_11_01);
                        m = Vector128.GreaterThan(v, best) | ~Vector128.Equals(v, v);
                        best = Vector128.ConditionalSelect(m, v, best);
                        off = Vector128.ConditionalSelect(m.AsInt32(), offW1, off);
                        best.CopyTo(yd.Slice(o, 4));
                        if (idx is not null)
                        {
                            (Vector128.Create(r0 + j) + lanes + off).CopyTo(idx.AsSpan(o, 4));
                        }

                        o += 4;
                    }
                }

                for (; oj < wo; oj++)
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

        var y = node.Out!;
        GradAcc(x, out var fresh);
        var job = _pool ??= new PoolJob();
        job.Set(x, y, node.Ints!);
        job.SetBackward(y.Root._grad!, y._gradOffset, x.Root._grad!, x._gradOffset, fresh);
        RunLanes(job, x[0]);
        job.Clear();
    }

    /// <summary>Max-pool work over a range of images: the 2×2 forward, or the backward scatter of any pooling.</summary>
    private sealed class PoolJob : RangeJob
    {
        private Tensor? _x;
        private Tensor? _y;
        private int[]? _idx;
        private bool _backward;
        private float[]? _g;
        private int _gOffset;
        private float[]? _dx;
        private int _dxOffset;
        private bool _dxFresh;

        public void Set(Tensor x, Tensor y, int[]? idx)
        {
            _x = x;
            _y = y;
            _idx = idx;
            _backward = false;
        }

        public void SetBackward(float[] g, int gOffset, float[] dx, int dxOffset, bool dxFresh)
        {
            _backward = true;
            _g = g;
            _gOffset = gOffset;
            _dx = dx;
            _dxOffset = dxOffset;
            _dxFresh = dxFresh;
        }

        public void Clear()
        {
            _x = _y = null;
            _idx = null;
            _g = _dx = null;
        }

        public override void Run(int start, int end, int lane)
        {
            var x = _x!;
            var y = _y!;
            int c = x[1], h = x[2], w = x[3], ho = y[2], wo = y[3];
            if (!_backward)
            {
                MaxPool2x2(x.Data, y.Data, _idx, start * c, end * c, h, w, ho, wo);
                return;
            }

            // Windows never leave their plane, so each image's gradient is written by one lane only.
            var dx = _dx.AsSpan(_dxOffset, x.Length);
            var perImage = c * h * w;
            if (_dxFresh)
            {
                dx.Slice(start * perImage, (end - start) * perImage).Clear();
            }

            var g = _g.AsSpan(_gOffset, y.Length);
            var idx = _idx!;
            for (int i = start * c * ho * wo, e = end * c * ho * wo; i < e; i++)
            {
                dx[idx[i]] += g[i];
            }
        }
    }

}
