using System.Numerics.Tensors;
using NearML.Training.Tensors.Internal;

namespace NearML.Training.Tensors;

public sealed partial class Tape
{
    /// <summary>Looks up rows of an embedding table.</summary>
    /// <param name="weight">The table [vocabulary, dim].</param>
    /// <param name="ids">Row indices; product(<paramref name="idShape"/>) of them are read from <paramref name="offset"/>.</param>
    /// <param name="offset">Index of the first id.</param>
    /// <param name="idShape">The shape of the ids (e.g. [batch, time]); the result is [..idShape, dim].</param>
    /// <returns>The embeddings.</returns>
    /// <exception cref="ArgumentOutOfRangeException">An id is outside the table.</exception>
    public Tensor Embedding(Tensor weight, int[] ids, int offset, params ReadOnlySpan<int> idShape)
    {
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(ids);
        if (weight.Rank != 2)
        {
            throw new ShapeMismatchException($"embedding: the table must be [vocabulary, dim], got {weight.ShapeText}.");
        }

        if (idShape.Length >= MaxRank)
        {
            throw new ShapeMismatchException($"embedding: ids of shape {Tensor.Format(idShape)} give a result of rank above {MaxRank}.");
        }

        var count = Tensor.CheckShape(idShape);
        if (offset < 0 || (long)offset + count > ids.Length)
        {
            throw new ShapeMismatchException($"embedding: ids of shape {Tensor.Format(idShape)} from offset {offset} do not fit a buffer of {ids.Length}.");
        }

        int v = weight[0], d = weight[1];
        Span<int> shape = stackalloc int[idShape.Length + 1];
        idShape.CopyTo(shape);
        shape[^1] = d;
        var req = Needs(weight);
        var y = Rent(shape, req);
        var wd = weight.Data;
        var yd = y.Data;
        for (var i = 0; i < count; i++)
        {
            var id = ids[offset + i];
            if ((uint)id >= (uint)v)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"embedding: id #{i} is {id}, outside [0, {v}).");
            }

            wd.Slice(id * d, d).CopyTo(yd.Slice(i * d, d));
        }

        if (req)
        {
            ref var node = ref Record(OpCode.Embedding, y);
            node.A = weight;
            node.Ints = ids;
            node.I0 = offset;
            node.I1 = count;
            node.I2 = d;
        }

        return y;
    }

    private void EmbeddingBackward(ref Node node)
    {
        var w = node.A!;
        var g = GradOf(node.Out!);
        var dw = GradZeroed(w);
        var ids = node.Ints!;
        int offset = node.I0, count = node.I1, d = node.I2;
        for (var i = 0; i < count; i++)
        {
            var row = dw.Slice(ids[offset + i] * d, d);
            TensorPrimitives.Add(row, g.Slice(i * d, d), row);
        }
    }

    /// <summary>Layer normalisation over the last dimension: (x − mean)/√(var + ε)·γ + β (biased variance).</summary>
    /// <param name="x">Input [..., d].</param>
    /// <param name="gamma">Scale [d].</param>
    /// <param name="beta">Shift [d].</param>
    /// <param name="eps">ε.</param>
    /// <returns>The normalised tensor.</returns>
    public Tensor LayerNorm(Tensor x, Tensor gamma, Tensor beta, float eps = 1e-5f)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(gamma);
        ArgumentNullException.ThrowIfNull(beta);
        var d = x.RowLength();
        if (x.Rank < 1 || gamma.Rank != 1 || gamma.Length != d)
        {
            throw Mismatch("layer_norm", x, gamma, "weight must be [last dimension of input]");
        }

        if (!beta.HasShape(gamma.Shape))
        {
            throw Mismatch("layer_norm", gamma, beta, "weight and bias must have the same shape");
        }

        var rows = x.Length / d;
        var req = Needs(x, gamma) || (GradEnabled && beta.RequiresGrad);
        var y = Rent(x.Shape, req);
        var xhat = Rent(x.Shape, false);
        var rstd = Rent(rows, false);
        var xd = x.Data;
        var hd = xhat.Data;
        var yd = y.Data;
        var rs = rstd.Data;
        var gd = gamma.Data;
        var bd = beta.Data;
        for (var r = 0; r < rows; r++)
        {
            var row = xd.Slice(r * d, d);
            var h = hd.Slice(r * d, d);
            var mean = TensorPrimitives.Sum(row) / d;
            TensorPrimitives.Subtract(row, mean, h);
            var variance = TensorPrimitives.SumOfSquares(h) / d;
            var inv = 1f / MathF.Sqrt(variance + eps);
            rs[r] = inv;
            TensorPrimitives.Multiply(h, inv, h);
            TensorPrimitives.MultiplyAdd(h, gd, bd, yd.Slice(r * d, d));
        }

        if (req)
        {
            ref var node = ref Record(OpCode.LayerNorm, y);
            node.A = x;
            node.B = gamma;
            node.C = beta;
            node.S0 = xhat;
            node.S1 = rstd;
            node.I0 = rows;
            node.I1 = d;
        }

        return y;
    }

    private void LayerNormBackward(ref Node node)
    {
        var x = node.A!;
        var gamma = node.B!;
        var beta = node.C!;
        int rows = node.I0, d = node.I1;
        var g = GradOf(node.Out!);
        var hd = node.S0!.Data;
        var rs = node.S1!.Data;
        var gd = gamma.Data;
        var dgamma = gamma.RequiresGrad ? GradZeroed(gamma) : default;
        var dbeta = beta.RequiresGrad ? GradZeroed(beta) : default;
        var fresh = false;
        var dx = x.RequiresGrad ? GradAcc(x, out fresh) : default;
        var s = Scratch(d).AsSpan(0, d);
        for (var r = 0; r < rows; r++)
        {
            var gr = g.Slice(r * d, d);
            var hr = hd.Slice(r * d, d);
            if (gamma.RequiresGrad)
            {
                TensorPrimitives.MultiplyAdd(gr, hr, dgamma, dgamma);
            }

            if (beta.RequiresGrad)
            {
                TensorPrimitives.Add(dbeta, gr, dbeta);
            }

            if (!x.RequiresGrad)
            {
                continue;
            }

            // dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = g·γ
            TensorPrimitives.Multiply(gr, gd, s);
            var m1 = TensorPrimitives.Sum(s) / d;
            var m2 = TensorPrimitives.Dot(s, hr) / d;
            TensorPrimitives.MultiplyAdd(hr, -m2, s, s);
            TensorPrimitives.Subtract(s, m1, s);
            var dr = dx.Slice(r * d, d);
            if (fresh)
            {
                TensorPrimitives.Multiply(s, rs[r], dr);
            }
            else
            {
                TensorPrimitives.MultiplyAdd(s, rs[r], dr, dr);
            }
        }
    }

    /// <summary>
    /// Inverted dropout: while <see cref="Training"/>, zeroes each element with probability <paramref name="p"/> and
    /// scales the rest by 1/(1−p). The mask is a pure function of (<see cref="DropoutSeed"/>, step, call, element),
    /// so runs are reproducible and the backward pass recomputes it instead of storing it.
    /// </summary>
    /// <param name="x">The input.</param>
    /// <param name="p">The drop probability in [0, 1).</param>
    /// <returns>The masked tensor (or <paramref name="x"/> itself when not training or p = 0).</returns>
    public Tensor Dropout(Tensor x, float p)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (!(p >= 0f && p < 1f))
        {
            throw new ArgumentOutOfRangeException(nameof(p), p, "Dropout probability must be in [0, 1).");
        }

        if (!Training || p == 0f)
        {
            return x;
        }

        var call = _dropoutCalls++;
        var req = Needs(x);
        var y = Rent(x.Shape, req);
        var key = DropoutKey(StepIndex, call);
        ApplyDropout(x.Data, y.Data, key, p, accumulate: false);
        if (req)
        {
            ref var node = ref Record(OpCode.Dropout, y);
            node.A = x;
            node.F0 = p;
            node.L0 = (long)key;
        }

        return y;
    }

    private ulong DropoutKey(long step, int call) => DropoutSeed ^ Mix((ulong)step * 0x9E3779B97F4A7C15UL) ^ Mix(((ulong)call + 1) * 0xD1B54A32D192ED03UL);

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    private static void ApplyDropout(ReadOnlySpan<float> x, Span<float> y, ulong key, float p, bool accumulate)
    {
        var scale = 1f / (1f - p);
        var threshold = (ulong)(p * 16777216.0);
        for (var i = 0; i < y.Length; i++)
        {
            var keep = (Mix(key + ((ulong)i * 0x9E3779B97F4A7C15UL)) >> 40) >= threshold;
            var v = keep ? x[i] * scale : 0f;
            y[i] = accumulate ? y[i] + v : v;
        }
    }

    private void DropoutBackward(ref Node node)
    {
        var x = node.A!;
        if (!x.RequiresGrad)
        {
            return;
        }

        var dx = GradAcc(x, out var fresh);
        ApplyDropout(GradOf(node.Out!), dx, (ulong)node.L0, node.F0, accumulate: !fresh);
    }

    private void BackwardNode(ref Node node)
    {
        switch (node.Op)
        {
            case OpCode.Linear:
                LinearBackward(ref node);
                break;
            case OpCode.MatMul:
                MatMulBackward(ref node);
                break;
            case OpCode.Add:
                AddBackward(ref node);
                break;
            case OpCode.Mul:
                MulBackward(ref node);
                break;
            case OpCode.Scale:
            case OpCode.Relu:
            case OpCode.Gelu:
            case OpCode.Tanh:
                UnaryBackward(ref node);
                break;
            case OpCode.Softmax:
            case OpCode.LogSoftmax:
                SoftmaxBackward(ref node);
                break;
            case OpCode.CrossEntropy:
                CrossEntropyBackward(ref node);
                break;
            case OpCode.Sum:
                SumBackward(ref node);
                break;
            case OpCode.Transpose:
                TransposeBackward(ref node);
                break;
            case OpCode.Embedding:
                EmbeddingBackward(ref node);
                break;
            case OpCode.LayerNorm:
                LayerNormBackward(ref node);
                break;
            case OpCode.Dropout:
                DropoutBackward(ref node);
                break;
            case OpCode.Conv2d:
                Conv2dBackward(ref node);
                break;
            case OpCode.MaxPool2d:
                MaxPool2dBackward(ref node);
                break;
            case OpCode.Attention:
                AttentionBackward(ref node);
                break;
            default:
                throw new InvalidOperationException($"No backward for {node.Op}.");
        }
    }
}
