using System.Numerics.Tensors;
using NearML.Training.Tensors.Internal;

namespace NearML.Training.Tensors;

public sealed partial class Tape
{
    /// <summary>Softmax over the last dimension.</summary>
    /// <param name="x">The input.</param>
    /// <returns>Probabilities, same shape.</returns>
    public Tensor Softmax(Tensor x) => SoftmaxCore(x, log: false);

    /// <summary>Log-softmax over the last dimension.</summary>
    /// <param name="x">The input.</param>
    /// <returns>Log-probabilities, same shape.</returns>
    public Tensor LogSoftmax(Tensor x) => SoftmaxCore(x, log: true);

    private Tensor SoftmaxCore(Tensor x, bool log)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank < 1)
        {
            throw new ShapeMismatchException($"softmax: needs at least one dimension, got shape {x.ShapeText}.");
        }

        var req = Needs(x);
        var y = Rent(x.Shape, req);
        var n = x.RowLength();
        var xd = x.Data;
        var yd = y.Data;
        for (var off = 0; off < xd.Length; off += n)
        {
            var row = xd.Slice(off, n);
            var dst = yd.Slice(off, n);
            var max = TensorPrimitives.Max(row);
            TensorPrimitives.Subtract(row, max, dst);
            if (log)
            {
                var s = Scratch(n).AsSpan(0, n);
                TensorPrimitives.Exp(dst, s);
                TensorPrimitives.Subtract(dst, MathF.Log(TensorPrimitives.Sum(s)), dst);
            }
            else
            {
                TensorPrimitives.Exp(dst, dst);
                TensorPrimitives.Multiply(dst, 1f / TensorPrimitives.Sum(dst), dst);
            }
        }

        if (req)
        {
            ref var node = ref Record(log ? OpCode.LogSoftmax : OpCode.Softmax, y);
            node.A = x;
        }

        return y;
    }

    private void SoftmaxBackward(ref Node node)
    {
        var x = node.A!;
        if (!x.RequiresGrad)
        {
            return;
        }

        var y = node.Out!;
        var n = y.RowLength();
        var g = GradOf(y);
        var yd = y.Data;
        var dx = GradAcc(x, out var fresh);
        var s = Scratch(n).AsSpan(0, n);
        var log = node.Op == OpCode.LogSoftmax;
        for (var off = 0; off < g.Length; off += n)
        {
            var gr = g.Slice(off, n);
            var yr = yd.Slice(off, n);
            var dr = dx.Slice(off, n);
            if (log)
            {
                // dx = g − softmax·Σg
                TensorPrimitives.Exp(yr, s);
                TensorPrimitives.Multiply(s, -TensorPrimitives.Sum(gr), s);
                TensorPrimitives.Add(s, gr, s);
            }
            else
            {
                // dx = y ⊙ (g − ⟨g, y⟩)
                var dot = TensorPrimitives.Dot(gr, yr);
                TensorPrimitives.Subtract(gr, dot, s);
                TensorPrimitives.Multiply(s, yr, s);
            }

            if (fresh)
            {
                s.CopyTo(dr);
            }
            else
            {
                TensorPrimitives.Add(dr, s, dr);
            }
        }
    }

    /// <summary>
    /// Mean cross-entropy of logits against class indices, fused with the log-softmax (PyTorch's
    /// <c>F.cross_entropy(logits, targets)</c> with mean reduction and no ignored index).
    /// </summary>
    /// <param name="logits">Logits [rows, classes] (leading dimensions are flattened into rows).</param>
    /// <param name="targets">Class indices; rows-many are read starting at <paramref name="offset"/>.</param>
    /// <param name="offset">Index of the first target.</param>
    /// <returns>The scalar loss.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A target is not a valid class index.</exception>
    /// <exception cref="NonFiniteValueException">The loss is NaN or infinite (non-finite logits).</exception>
    public Tensor CrossEntropy(Tensor logits, int[] targets, int offset = 0)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(targets);
        if (logits.Rank < 1)
        {
            throw new ShapeMismatchException($"cross_entropy: logits need a class dimension, got shape {logits.ShapeText}.");
        }

        var c = logits.RowLength();
        var rows = logits.Length / c;
        if (offset < 0 || (long)offset + rows > targets.Length)
        {
            throw new ShapeMismatchException($"cross_entropy: logits {logits.ShapeText} need {rows} targets from offset {offset}, but the target buffer has {targets.Length}.");
        }

        var req = Needs(logits);
        var probs = Rent(logits.Shape, false);
        var xd = logits.Data;
        var pd = probs.Data;
        double total = 0;
        for (var r = 0; r < rows; r++)
        {
            var t = targets[offset + r];
            if ((uint)t >= (uint)c)
            {
                throw new ArgumentOutOfRangeException(nameof(targets), t, $"cross_entropy: target #{r} is {t}, outside [0, {c}).");
            }

            var row = xd.Slice(r * c, c);
            var pr = pd.Slice(r * c, c);
            var max = TensorPrimitives.Max(row);
            TensorPrimitives.Subtract(row, max, pr);
            TensorPrimitives.Exp(pr, pr);
            var sum = TensorPrimitives.Sum(pr);
            total += max + Math.Log(sum) - row[t];
            TensorPrimitives.Multiply(pr, 1f / sum, pr);
        }

        var loss = Scalar(req);
        var value = (float)(total / rows);
        if (!float.IsFinite(value))
        {
            throw new NonFiniteValueException("cross-entropy loss", -1, value);
        }

        loss.Data[0] = value;
        if (req)
        {
            ref var node = ref Record(OpCode.CrossEntropy, loss);
            node.A = logits;
            node.S0 = probs;
            node.Ints = targets;
            node.I0 = offset;
            node.I1 = rows;
            node.I2 = c;
        }

        return loss;
    }

    private void CrossEntropyBackward(ref Node node)
    {
        var x = node.A!;
        if (!x.RequiresGrad)
        {
            return;
        }

        var scale = GradOf(node.Out!)[0] / node.I1;
        var probs = node.S0!.Data;
        var dx = GradAcc(x, out var fresh);
        var targets = node.Ints!;
        int rows = node.I1, c = node.I2, offset = node.I0;
        if (fresh)
        {
            TensorPrimitives.Multiply(probs, scale, dx);
        }
        else
        {
            TensorPrimitives.MultiplyAdd(probs, scale, dx, dx);
        }

        for (var r = 0; r < rows; r++)
        {
            dx[(r * c) + targets[offset + r]] -= scale;
        }
    }
}
