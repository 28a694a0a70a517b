using System.Numerics.Tensors;
using NearML.Training.Kernels;
using NearML.Training.Tensors.Internal;

namespace NearML.Training.Tensors;

public sealed partial class Tape
{
    private AttentionJob? _attention;

    /// <summary>
    /// Rows per block of the causal attention (forward and backward): row block [i0, i1) multiplies only the keys
    /// [0, i1) it can see, so the GEMMs skip the masked upper triangle (all but the diagonal blocks). Tests and
    /// benchmarks may change it; every value gives the same bits while T ≤ the GEMM's depth block (256).
    /// </summary>
    internal static int AttentionBlockRows = 32;

    /// <summary>
    /// Causal multi-head self-attention core, fused per head: from packed projections [B, T, 3C] (q | k | v, heads of
    /// C/H contiguous inside each) computes softmax(q·kᵀ/√(C/H) + causal mask)·v and returns [B, T, C] with heads
    /// concatenated — PyTorch's split/view/transpose/matmul/masked_fill/softmax/matmul/transpose sequence in one op.
    /// The (batch, head) pairs are claimed one at a time by two threads; each is walked in row blocks that skip the masked
    /// upper triangle of the scores (see <see cref="AttentionBlockRows"/>).
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
        private int _next;
        private int _count;
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
            _next = 0;
            _count = qkv[0] * heads;
        }

        public void Clear()
        {
            _tape = null;
            _qkv = _y = _probs = null;
            _gradOut = _dqkv = null;
        }

        public override void Run(int start, int end, int lane)
        {
            // The pairs are claimed one at a time from a shared counter instead of the fixed halves PairRunner offers:
            // on a shared machine one lane may start late or lose its core, and the other then takes over its pairs.
            // Which lane computes a pair does not change its bits.
            int pair;
            while ((pair = Interlocked.Increment(ref _next) - 1) < _count)
            {
                if (_backward)
                {
                    Backward(pair, lane);
                }
                else
                {
                    Forward(pair);
                }
            }
        }

        private void Forward(int pair)
        {
            var qkv = _qkv!;
            int t = qkv[1], c3 = qkv[2];
            var c = c3 / 3;
            var hs = c / _heads;
            var scale = 1f / MathF.Sqrt(hs);
            var qd = qkv.Data;
            var yd = _y!.Data;
            var pd = _probs!.Data;
            var block = Math.Max(1, AttentionBlockRows);
            int bi = pair / _heads, h = pair % _heads;
            var baseQ = (bi * t * c3) + (h * hs);
            var baseY = (bi * t * c) + (h * hs);
            var k = qd[(baseQ + c)..];
            var v = qd[(baseQ + (2 * c))..];
            var p = pd.Slice(pair * t * t, t * t);
            for (var i0 = 0; i0 < t; i0 += block)
            {
                // Row block [i0, i1) attends to keys [0, i1) only: its scores, softmax and P·V while they are in cache.
                var i1 = Math.Min(i0 + block, t);
                var rows = i1 - i0;
                var pb = p[(i0 * t)..];
                Gemm.Sgemm(false, true, rows, i1, hs, scale, qd[(baseQ + (i0 * c3))..], c3, k, c3, 0f, pb, t);
                for (var i = i0; i < i1; i++)
                {
                    var row = p.Slice(i * t, i + 1);
                    var max = TensorPrimitives.Max(row);
                    TensorPrimitives.Subtract(row, max, row);
                    TensorPrimitives.Exp(row, row);
                    TensorPrimitives.Multiply(row, 1f / TensorPrimitives.Sum(row), row);
                    p.Slice((i * t) + i + 1, t - i - 1).Clear();
                }

                Gemm.Sgemm(false, false, rows, hs, i1, 1f, pb, t, v, c3, 0f, yd[(baseY + (i0 * c))..], c);
            }
        }

        private void Backward(int pair, int lane)
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
            var block = Math.Max(1, AttentionBlockRows);
            int bi = pair / _heads, h = pair % _heads;
            var baseQ = (bi * t * c3) + (h * hs);
            var baseY = (bi * t * c) + (h * hs);
            var k = qd[(baseQ + c)..];
            var v = qd[(baseQ + (2 * c))..];
            var p = pd.Slice(pair * t * t, t * t);

            // Query rows [i0, i1): dP = dY·Vᵀ over keys [0, i1); dS = P ⊙ (dP − rowsum(dP ⊙ P)); dQ = scale·dS·K.
            for (var i0 = 0; i0 < t; i0 += block)
            {
                var i1 = Math.Min(i0 + block, t);
                var rows = i1 - i0;
                var db = ds[(i0 * t)..];
                Gemm.Sgemm(false, true, rows, i1, hs, 1f, g[(baseY + (i0 * c))..], c, v, c3, 0f, db, t);
                for (var i = i0; i < i1; i++)
                {
                    var dr = ds.Slice(i * t, i + 1);
                    var pr = p.Slice(i * t, i + 1);
                    var dot = TensorPrimitives.Dot(dr, pr);
                    TensorPrimitives.Subtract(dr, dot, dr);
                    TensorPrimitives.Multiply(dr, pr, dr);
                    ds.Slice((i * t) + i + 1, t - i - 1).Clear();
                }

                Gemm.Sgemm(false, false, rows, hs, i1, scale, db, t, k, c3, beta, dqkv[(baseQ + (i0 * c3))..], c3);
            }

            // Key rows [j0, j1) receive from query rows [j0, t) only: dV = Pᵀ·dY and dK = scale·dSᵀ·Q.
            for (var j0 = 0; j0 < t; j0 += block)
            {
                var j1 = Math.Min(j0 + block, t);
                var cols = j1 - j0;
                var corner = (j0 * t) + j0;
                var offset = baseQ + (j0 * c3);
                Gemm.Sgemm(true, false, cols, hs, t - j0, 1f, p[corner..], t, g[(baseY + (j0 * c))..], c, beta, dqkv[(offset + (2 * c))..], c3);
                Gemm.Sgemm(true, false, cols, hs, t - j0, scale, ds[corner..], t, qd[offset..], c3, beta, dqkv[(offset + c)..], c3);
            }
        }
    }
}
