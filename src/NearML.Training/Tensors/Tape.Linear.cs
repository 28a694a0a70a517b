using System.Numerics.Tensors;
using NearML.Training.Kernels;
using NearML.Training.Tensors.Internal;

namespace NearML.Training.Tensors;

public sealed partial class Tape
{
    /// <summary>
    /// y = act(x·Wᵀ + b) over the last dimension of <paramref name="x"/> (PyTorch's <c>F.linear</c> plus an optional
    /// fused activation).
    /// </summary>
    /// <param name="x">Input [..., in].</param>
    /// <param name="weight">Weight [out, in].</param>
    /// <param name="bias">Bias [out], or <see langword="null"/>.</param>
    /// <param name="activation">The fused activation.</param>
    /// <returns>Output [..., out].</returns>
    public Tensor Linear(Tensor x, Tensor weight, Tensor? bias, Activation activation = Activation.None)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(weight);
        if (weight.Rank != 2 || x.Rank < 1 || x.Dim(-1) != weight[1])
        {
            throw Mismatch("linear", x, weight, "input [..., in] needs weight [out, in]");
        }

        var n = weight[0];
        var k = weight[1];
        if (bias is not null && (bias.Rank != 1 || bias.Length != n))
        {
            throw Mismatch("linear", weight, bias, "bias must be [out]");
        }

        var m = x.Length / k;
        Span<int> shape = stackalloc int[x.Rank];
        x.Shape.CopyTo(shape);
        shape[^1] = n;
        var req = Needs(x, weight) || (GradEnabled && bias is not null && bias.RequiresGrad);
        var y = Rent(shape, req);
        Tensor? pre = null;
        var target = y;
        if (activation is Activation.Gelu or Activation.GeluTanh)
        {
            pre = Rent(shape, false);
            target = pre;
        }

        var t = target.Data;
        var beta = 0f;
        if (bias is not null)
        {
            var b = bias.Data;
            for (var r = 0; r < m; r++)
            {
                b.CopyTo(t.Slice(r * n, n));
            }

            beta = 1f;
        }

        Gemm.Sgemm(false, true, m, n, k, 1f, x.Data, k, weight.Data, k, beta, t, n);
        if (pre is not null)
        {
            RunGelu(activation, backward: false, pre, y);
        }
        else
        {
            ApplyActivation(activation, t, y.Data);
        }
        if (req)
        {
            ref var node = ref Record(OpCode.Linear, y);
            node.A = x;
            node.B = weight;
            node.C = bias;
            node.S0 = pre;
            node.I0 = (int)activation;
            node.I1 = m;
            node.I2 = n;
            node.I3 = k;
        }

        return y;
    }

    /// <summary>
    /// A GELU of a Linear (forward: y = GELU(pre); backward: the output gradient times GELU'(pre), in place) over both
    /// engine threads when it is large enough to repay the hand-off. The split is in blocks of
    /// <see cref="GeluBlock"/> elements, a multiple of every vector width, so each element goes through the same
    /// vector or scalar code as in one pass: the bits do not depend on the split.
    /// </summary>
    private void RunGelu(Activation activation, bool backward, Tensor pre, Tensor y)
    {
        var length = pre.Length;
        if (length < GeluParallelMin)
        {
            if (backward)
            {
                ActivationBackwardInPlace(activation, GradOf(y), y, pre);
            }
            else
            {
                ApplyActivation(activation, pre.Data, y.Data);
            }

            return;
        }

        var job = _gelu ??= new GeluJob();
        job.Set(activation, backward, pre, y);
        PairRunner.Run(job, (length + GeluBlock - 1) / GeluBlock);
        job.Clear();
    }

    /// <summary>Elements per unit of the two-thread GELU split (a multiple of every vector width).</summary>
    private const int GeluBlock = 256;

    /// <summary>Below this many elements a GELU runs on the calling thread alone.</summary>
    private const int GeluParallelMin = 1 << 15;

    private GeluJob? _gelu;

    private sealed class GeluJob : RangeJob
    {
        private Activation _activation;
        private bool _backward;
        private Tensor? _pre;
        private Tensor? _y;

        public void Set(Activation activation, bool backward, Tensor pre, Tensor y)
        {
            _activation = activation;
            _backward = backward;
            _pre = pre;
            _y = y;
        }

        public void Clear() => _pre = _y = null;

        public override void Run(int start, int end, int lane)
        {
            var pre = _pre!.Data;
            var first = start * GeluBlock;
            var count = Math.Min(end * GeluBlock, pre.Length) - first;
            if (count <= 0)
            {
                return;
            }

            var x = pre.Slice(first, count);
            if (_backward)
            {
                var g = GradOf(_y!).Slice(first, count);
                if (_activation == Activation.Gelu)
                {
                    Simd.GeluErfBackwardInPlace(g, x);
                }
                else
                {
                    Simd.GeluTanhBackwardInPlace(g, x);
                }
            }
            else
            {
                ApplyActivation(_activation, x, _y!.Data.Slice(first, count));
            }
        }
    }

    private static void ApplyActivation(Activation activation, Span<float> pre, Span<float> y)
    {
        switch (activation)
        {
            case Activation.Relu:
                TensorPrimitives.Max(pre, 0f, y);
                break;
            case Activation.Gelu:
                Simd.GeluErf(pre, y);
                break;
            case Activation.GeluTanh:
                Simd.GeluTanh(pre, y);
                break;
            default:
                break;
        }
    }

    /// <summary>Turns the output gradient into the pre-activation gradient, in place.</summary>
    private static void ActivationBackwardInPlace(Activation activation, Span<float> g, Tensor y, Tensor? pre)
    {
        switch (activation)
        {
            case Activation.Relu:
                Simd.ReluBackwardInPlace(g, y.Data);
                break;
            case Activation.Gelu:
                Simd.GeluErfBackwardInPlace(g, pre!.Data);
                break;
            case Activation.GeluTanh:
                Simd.GeluTanhBackwardInPlace(g, pre!.Data);
                break;
            default:
                break;
        }
    }

    private void LinearBackward(ref Node node)
    {
        var x = node.A!;
        var w = node.B!;
        var bias = node.C;
        int m = node.I1, n = node.I2, k = node.I3;
        var g = GradOf(node.Out!);
        if (node.S0 is { } preActivation)
        {
            RunGelu((Activation)node.I0, backward: true, preActivation, node.Out!);
        }
        else
        {
            ActivationBackwardInPlace((Activation)node.I0, g, node.Out!, node.S0);
        }
        if (x.RequiresGrad)
        {
            var beta = GradBeta(x, out var dx);
            Gemm.Sgemm(false, false, m, k, n, 1f, g, n, w.Data, k, beta, dx, k);
        }

        if (w.RequiresGrad)
        {
            var beta = GradBeta(w, out var dw);
            Gemm.Sgemm(true, false, n, k, m, 1f, g, n, x.Data, k, beta, dw, k);
        }

        if (bias is not null && bias.RequiresGrad)
        {
            Simd.SumRowsInto(g, n, GradZeroed(bias));
        }
    }

    /// <summary>
    /// Matrix product op(a)·op(b) over the last two dimensions. With a 2-D <paramref name="b"/> (and no transposed a),
    /// every leading dimension of <paramref name="a"/> is treated as rows; otherwise both operands must have the same
    /// leading (batch) dimensions.
    /// </summary>
    /// <param name="a">Left operand [..., m, k] (or [..., k, m] with <paramref name="transA"/>).</param>
    /// <param name="b">Right operand [..., k, n] (or [..., n, k] with <paramref name="transB"/>).</param>
    /// <param name="transA">Use the transpose of a's last two dimensions.</param>
    /// <param name="transB">Use the transpose of b's last two dimensions.</param>
    /// <returns>The product [..., m, n].</returns>
    public Tensor MatMul(Tensor a, Tensor b, bool transA = false, bool transB = false)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        int batch, m, k, n;
        Span<int> shape = stackalloc int[Math.Max(a.Rank, 2)];
        if (b.Rank == 2 && !transA && a.Rank >= 1)
        {
            k = a.Dim(-1);
            var kb = transB ? b[1] : b[0];
            n = transB ? b[0] : b[1];
            if (k != kb)
            {
                throw Mismatch("matmul", a, b, $"inner dimensions {k} and {kb} differ");
            }

            batch = 1;
            m = a.Length / k;
            shape = shape[..a.Rank];
            a.Shape.CopyTo(shape);
            shape[^1] = n;
        }
        else
        {
            if (a.Rank < 2 || a.Rank != b.Rank)
            {
                throw Mismatch("matmul", a, b, "batched operands need the same rank ≥ 2");
            }

            batch = 1;
            for (var i = 0; i < a.Rank - 2; i++)
            {
                if (a[i] != b[i])
                {
                    throw Mismatch("matmul", a, b, $"batch dimension {i} differs");
                }

                batch *= a[i];
            }

            m = transA ? a.Dim(-1) : a.Dim(-2);
            k = transA ? a.Dim(-2) : a.Dim(-1);
            var kb = transB ? b.Dim(-1) : b.Dim(-2);
            n = transB ? b.Dim(-2) : b.Dim(-1);
            if (k != kb)
            {
                throw Mismatch("matmul", a, b, $"inner dimensions {k} and {kb} differ");
            }

            a.Shape.CopyTo(shape);
            shape[^2] = m;
            shape[^1] = n;
        }

        var req = Needs(a, b);
        var c = Rent(shape, req);
        MatMulCore(transA, transB, batch, m, n, k, a.Data, b.Data, 0f, c.Data);
        if (req)
        {
            ref var node = ref Record(OpCode.MatMul, c);
            node.A = a;
            node.B = b;
            node.I0 = transA ? 1 : 0;
            node.I1 = transB ? 1 : 0;
            node.I2 = batch;
            node.I3 = m;
            node.I4 = n;
            node.I5 = k;
        }

        return c;
    }

    private static void MatMulCore(bool ta, bool tb, int batch, int m, int n, int k, ReadOnlySpan<float> a, ReadOnlySpan<float> b, float beta, Span<float> c)
    {
        for (var i = 0; i < batch; i++)
        {
            Gemm.Sgemm(ta, tb, m, n, k, 1f, a.Slice(i * m * k, m * k), ta ? m : k, b.Slice(i * k * n, k * n), tb ? k : n, beta, c.Slice(i * m * n, m * n), n);
        }
    }

    private void MatMulBackward(ref Node node)
    {
        var a = node.A!;
        var b = node.B!;
        bool ta = node.I0 != 0, tb = node.I1 != 0;
        int batch = node.I2, m = node.I3, n = node.I4, k = node.I5;
        var g = GradOf(node.Out!);
        if (a.RequiresGrad)
        {
            var beta = GradBeta(a, out var da);
            for (var i = 0; i < batch; i++)
            {
                var gi = g.Slice(i * m * n, m * n);
                var bi = b.Data.Slice(i * k * n, k * n);
                var dai = da.Slice(i * m * k, m * k);
                if (!ta)
                {
                    // dA [m,k] = dC [m,n] · op(B)ᵀ
                    Gemm.Sgemm(false, !tb, m, k, n, 1f, gi, n, bi, tb ? k : n, beta, dai, k);
                }
                else
                {
                    // dA stored [k,m] = op(B) · dCᵀ
                    Gemm.Sgemm(tb, true, k, m, n, 1f, bi, tb ? k : n, gi, n, beta, dai, m);
                }
            }
        }

        if (b.RequiresGrad)
        {
            var beta = GradBeta(b, out var db);
            for (var i = 0; i < batch; i++)
            {
                var gi = g.Slice(i * m * n, m * n);
                var ai = a.Data.Slice(i * m * k, m * k);
                var dbi = db.Slice(i * k * n, k * n);
                if (!tb)
                {
                    // dB [k,n] = op(A)ᵀ · dC
                    Gemm.Sgemm(!ta, false, k, n, m, 1f, ai, ta ? m : k, gi, n, beta, dbi, n);
                }
                else
                {
                    // dB stored [n,k] = dCᵀ · op(A)
                    Gemm.Sgemm(true, ta, n, k, m, 1f, gi, n, ai, ta ? m : k, beta, dbi, k);
                }
            }
        }
    }
}
