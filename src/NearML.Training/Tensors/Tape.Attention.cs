using System.Numerics.Tensors;
using NearML.Training.Kernels;
using NearML.Training.Tensors.Internal;

namespace NearML.Training.Tensors;

public sealed partial class Tape
{
    private AttentionJob? _attention;

    /// <summary>
    /// Causal multi-head self-attention core, fused per head: from packed projections [B, T, 3C] (q | k | v, heads of
    /// C/H contiguous inside each) computes softmax(q·kᵀ/√(C/H) + causal mask)·v and returns [B, T, C] with heads
    /// concatenated — PyTorch's split/view/transpose/matmul/masked_fill/softmax/matmul/transpose sequence in one op.
    /// The (batch, head) pairs are split over two threads.
    /// </summary>
    /// <param name="qkv">Packed projections [B, T, 3C].</param>
    /// <param name="heads">Number of heads H (must divide C).</param>
    /// <returns>The attention output [B, T, C].</returns>
    public Tensor CausalSelfAttention(Tensor qkv, int heads)
    {
        ArgumentNullException.ThrowIfNull(qkv);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(heads);
        if (qkv.Rank != 3 || qkv[2] % 3 != 0 || (qkv[2] / 3) % heads != 0)
        {
            throw new ShapeMismatchException($"attention: packed qkv {qkv.ShapeText} must be [B, T, 3C] with C divisible by {heads} heads.");
        }

        int b = qkv[0], t = qkv[1], c3 = qkv[2];
        var req = Needs(qkv);
        var y = Rent(b, t, c3 / 3, req);
        var probs = Rent(b, heads, t, t, false);
        var job = _attention ??= new AttentionJob();
        job.Set(this, qkv, heads, y, probs, backward: false, gradOut: null, dqkv: null, beta: 0f);
        PairRunner.Run(job, b * heads);
        job.Clear();
        if (req)
        {
            ref var node = ref Record(OpCode.Attention, y);
            node.A = qkv;
            node.S0 = probs;
            node.I0 = heads;
        }

        return y;
    }

    private void AttentionBackward(ref Node node)
    {
        var qkv = node.A!;
        if (!qkv.RequiresGrad)
        {
            return;
        }

        var y = node.Out!;
        var beta = GradBeta(qkv, out _);
        var root = qkv.Root;
        var t = qkv[1];
        Scratch(t * t);
        Scratch2(t * t);
        var job = _attention ??= new AttentionJob();
        job.Set(this, qkv, node.I0, y, node.S0!, backward: true, gradOut: y.Root._grad, dqkv: root._grad, beta: beta);
        PairRunner.Run(job, qkv[0] * node.I0);
        job.Clear();
    }

    private sealed class AttentionJob : RangeJob
    {
        private Tape? _tape;
        private Tensor? _qkv;
        private Tensor? _y;
        private Tensor? _probs;
        private float[]? _gradOut;
        private float[]? _dqkv;
        private int _heads;
        private bool _backward;
        private float _beta;

        public void Set(Tape tape, Tensor qkv, int heads, Tensor y, Tensor probs, bool backward, float[]? gradOut, float[]? dqkv, float beta)
        {
            _tape = tape;
            _qkv = qkv;
            _heads = heads;
            _y = y;
            _probs = probs;
            _backward = backward;
            _gradOut = gradOut;
            _dqkv = dqkv;
            _beta = beta;
        }

        public void Clear()
        {
            _tape = null;
            _qkv = _y = _probs = null;
            _gradOut = _dqkv = null;
        }

        public override void Run(int start, int end, int lane)
        {
            if (_backward)
            {
                Backward(start, end, lane);
            }
            else
            {
                Forward(start, end);
            }
        }

        private void Forward(int start, int end)
        {
            var qkv = _qkv!;
            int t = qkv[1], c3 = qkv[2];
            var c = c3 / 3;
            var hs = c / _heads;
            var scale = 1f / MathF.Sqrt(hs);
            var qd = qkv.Data;
            var yd = _y!.Data;
            var pd = _probs!.Data;
            for (var pair = start; pair < end; pair++)
            {
                int bi = pair / _heads, h = pair % _heads;
                var q = qd[((bi * t * c3) + (h * hs))..];
                var k = qd[((bi * t * c3) + c + (h * hs))..];
                var v = qd[((bi * t * c3) + (2 * c) + (h * hs))..];
                var p = pd.Slice(pair * t * t, t * t);
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

                Gemm.Sgemm(false, false, t, hs, t, 1f, p, t, v, c3, 0f, yd[((bi * t * c) + (h * hs))..], c);
            }
        }

        private void Backward(int start, int end, int lane)
        {
            var qkv = _qkv!;
            int t = qkv[1], c3 = qkv[2];
            var c = c3 / 3;
            var hs = c / _heads;
            var scale = 1f / MathF.Sqrt(hs);
            var qd = qkv.Data;
            var pd = _probs!.Data;
            var y = _y!;
            var g = _gradOut.AsSpan(y._gradOffset, y.Length);
            var dqkv = _dqkv.AsSpan(qkv._gradOffset, qkv.Length);
            var ds = (lane == 0 ? _tape!.Scratch(t * t) : _tape!.Scratch2(t * t)).AsSpan(0, t * t);
            var beta = _beta;
            for (var pair = start; pair < end; pair++)
            {
                int bi = pair / _heads, h = pair % _heads;
                var baseQ = (bi * t * c3) + (h * hs);
                var q = qd[baseQ..];
                var k = qd[(baseQ + c)..];
                var v = qd[(baseQ + (2 * c))..];
                var p = pd.Slice(pair * t * t, t * t);
                var gy = g[((bi * t * c) + (h * hs))..];

                // dV = Pᵀ·dY
                Gemm.Sgemm(true, false, t, hs, t, 1f, p, t, gy, c, beta, dqkv[(baseQ + (2 * c))..], c3);

                // dP = dY·Vᵀ ; dS = P ⊙ (dP − rowsum(dP ⊙ P))
                Gemm.Sgemm(false, true, t, t, hs, 1f, gy, c, v, c3, 0f, ds, t);
                for (var i = 0; i < t; i++)
                {
                    var dr = ds.Slice(i * t, i + 1);
                    var pr = p.Slice(i * t, i + 1);
                    var dot = TensorPrimitives.Dot(dr, pr);
                    TensorPrimitives.Subtract(dr, dot, dr);
                    TensorPrimitives.Multiply(dr, pr, dr);
                    ds.Slice((i * t) + i + 1, t - i - 1).Clear();
                }

                // dQ = scale·dS·K ; dK = scale·dSᵀ·Q
                Gemm.Sgemm(false, false, t, hs, t, scale, ds, t, k, c3, beta, dqkv[baseQ..], c3);
                Gemm.Sgemm(true, false, t, hs, t, scale, ds, t, q, c3, beta, dqkv[(baseQ + c)..], c3);
            }
        }
    }
}
