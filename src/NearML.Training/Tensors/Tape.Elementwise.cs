using System.Numerics.Tensors;
using NearML.Training.Tensors.Internal;

namespace NearML.Training.Tensors;

public sealed partial class Tape
{
    /// <summary>
    /// a + b, where <paramref name="b"/> has the shape of <paramref name="a"/> or of its trailing dimensions
    /// (broadcast over the leading ones: a row bias [n], a position table [t, d] over [batch, t, d]).
    /// </summary>
    /// <param name="a">The left operand.</param>
    /// <param name="b">The right operand (same shape or a suffix of a's shape).</param>
    /// <returns>The sum, shaped like <paramref name="a"/>.</returns>
    public Tensor Add(Tensor a, Tensor b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (b.Rank > a.Rank || !a.Shape[(a.Rank - b.Rank)..].SequenceEqual(b.Shape))
        {
            throw Mismatch("add", a, b, "the right operand's shape must equal the left's or its trailing dimensions");
        }

        var req = Needs(a, b);
        var y = Rent(a.Shape, req);
        var bl = b.Length;
        var yd = y.Data;
        var ad = a.Data;
        var bd = b.Data;
        for (var off = 0; off < yd.Length; off += bl)
        {
            TensorPrimitives.Add(ad.Slice(off, bl), bd, yd.Slice(off, bl));
        }

        if (req)
        {
            ref var node = ref Record(OpCode.Add, y);
            node.A = a;
            node.B = b;
        }

        return y;
    }

    private void AddBackward(ref Node node)
    {
        var g = GradOf(node.Out!);
        var a = node.A!;
        var b = node.B!;
        if (a.RequiresGrad)
        {
            var da = GradAcc(a, out var fresh);
            if (fresh)
            {
                g.CopyTo(da);
            }
            else
            {
                TensorPrimitives.Add(da, g, da);
            }
        }

        if (b.RequiresGrad)
        {
            var db = GradAcc(b, out var fresh);
            var bl = b.Length;
            var start = 0;
            if (fresh)
            {
                g[..bl].CopyTo(db);
                start = bl;
            }

            for (var off = start; off < g.Length; off += bl)
            {
                TensorPrimitives.Add(db, g.Slice(off, bl), db);
            }
        }
    }

    /// <summary>Element-wise product of two tensors of the same shape.</summary>
    /// <param name="a">The left operand.</param>
    /// <param name="b">The right operand.</param>
    /// <returns>a ⊙ b.</returns>
    public Tensor Mul(Tensor a, Tensor b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (!a.HasShape(b.Shape))
        {
            throw Mismatch("mul", a, b, "element-wise product needs equal shapes");
        }

        var req = Needs(a, b);
        var y = Rent(a.Shape, req);
        TensorPrimitives.Multiply(a.Data, b.Data, y.Data);
        if (req)
        {
            ref var node = ref Record(OpCode.Mul, y);
            node.A = a;
            node.B = b;
        }

        return y;
    }

    private void MulBackward(ref Node node)
    {
        var g = GradOf(node.Out!);
        var a = node.A!;
        var b = node.B!;
        if (a.RequiresGrad)
        {
            var da = GradAcc(a, out var fresh);
            if (fresh)
            {
                TensorPrimitives.Multiply(g, b.Data, da);
            }
            else
            {
                TensorPrimitives.MultiplyAdd(g, b.Data, da, da);
            }
        }

        if (b.RequiresGrad)
        {
            var db = GradAcc(b, out var fresh);
            if (fresh)
            {
                TensorPrimitives.Multiply(g, a.Data, db);
            }
            else
            {
                TensorPrimitives.MultiplyAdd(g, a.Data, db, db);
            }
        }
    }

    /// <summary>Multiplies every element by a constant.</summary>
    /// <param name="x">The tensor.</param>
    /// <param name="scale">The constant.</param>
    /// <returns>scale·x.</returns>
    public Tensor Scale(Tensor x, float scale)
    {
        ArgumentNullException.ThrowIfNull(x);
        var req = Needs(x);
        var y = Rent(x.Shape, req);
        TensorPrimitives.Multiply(x.Data, scale, y.Data);
        if (req)
        {
            ref var node = ref Record(OpCode.Scale, y);
            node.A = x;
            node.F0 = scale;
        }

        return y;
    }

    /// <summary>Rectified linear unit, max(x, 0).</summary>
    /// <param name="x">The input.</param>
    /// <returns>The activation.</returns>
    public Tensor Relu(Tensor x) => Unary(OpCode.Relu, x, 0);

    /// <summary>GELU: exact (erf) form by default, or the tanh approximation.</summary>
    /// <param name="x">The input.</param>
    /// <param name="tanhApproximation">Use ½x(1 + tanh(√(2/π)(x + 0.044715x³))).</param>
    /// <returns>The activation.</returns>
    public Tensor Gelu(Tensor x, bool tanhApproximation = false) => Unary(OpCode.Gelu, x, tanhApproximation ? 1 : 0);

    /// <summary>Hyperbolic tangent.</summary>
    /// <param name="x">The input.</param>
    /// <returns>tanh(x).</returns>
    public Tensor Tanh(Tensor x) => Unary(OpCode.Tanh, x, 0);

    private Tensor Unary(OpCode op, Tensor x, int flag)
    {
        ArgumentNullException.ThrowIfNull(x);
        var req = Needs(x);
        var y = Rent(x.Shape, req);
        switch (op)
        {
            case OpCode.Relu:
                TensorPrimitives.Max(x.Data, 0f, y.Data);
                break;
            case OpCode.Gelu when flag == 0:
                Simd.GeluErf(x.Data, y.Data);
                break;
            case OpCode.Gelu:
                Simd.GeluTanh(x.Data, y.Data);
                break;
            default:
                TensorPrimitives.Tanh(x.Data, y.Data);
                break;
        }

        if (req)
        {
            ref var node = ref Record(op, y);
            node.A = x;
            node.I0 = flag;
        }

        return y;
    }

    private void UnaryBackward(ref Node node)
    {
        var x = node.A!;
        if (!x.RequiresGrad)
        {
            return;
        }

        var y = node.Out!;
        var g = GradOf(y);
        switch (node.Op)
        {
            case OpCode.Scale:
                {
                    var dx = GradAcc(x, out var fresh);
                    if (fresh)
                    {
                        TensorPrimitives.Multiply(g, node.F0, dx);
                    }
                    else
                    {
                        TensorPrimitives.MultiplyAdd(g, node.F0, dx, dx);
                    }

                    return;
                }

            case OpCode.Relu:
                Simd.ReluBackwardInPlace(g, y.Data);
                break;
            case OpCode.Gelu when node.I0 == 0:
                Simd.GeluErfBackwardInPlace(g, x.Data);
                break;
            case OpCode.Gelu:
                Simd.GeluTanhBackwardInPlace(g, x.Data);
                break;
            default:
                {
                    // g ← g·(1 − y²)
                    var s = Scratch(g.Length).AsSpan(0, g.Length);
                    TensorPrimitives.Multiply(y.Data, y.Data, s);
                    TensorPrimitives.Subtract(1f, s, s);
                    TensorPrimitives.Multiply(g, s, g);
                    break;
                }
        }

        var d = GradAcc(x, out var f);
        if (f)
        {
            g.CopyTo(d);
        }
        else
        {
            TensorPrimitives.Add(d, g, d);
        }
    }

    /// <summary>Sum of all elements.</summary>
    /// <param name="x">The tensor.</param>
    /// <returns>A scalar (rank 0).</returns>
    public Tensor Sum(Tensor x) => Reduce(x, 1f);

    /// <summary>Mean of all elements.</summary>
    /// <param name="x">The tensor.</param>
    /// <returns>A scalar (rank 0).</returns>
    public Tensor Mean(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        return Reduce(x, 1f / x.Length);
    }

    private Tensor Reduce(Tensor x, float scale)
    {
        ArgumentNullException.ThrowIfNull(x);
        var req = Needs(x);
        var y = Scalar(req);
        double acc = 0;
        var d = x.Data;
        const int Block = 4096;
        for (var i = 0; i < d.Length; i += Block)
        {
            acc += TensorPrimitives.Sum(d.Slice(i, Math.Min(Block, d.Length - i)));
        }

        y.Data[0] = (float)(acc * scale);
        if (req)
        {
            ref var node = ref Record(OpCode.Sum, y);
            node.A = x;
            node.F0 = scale;
        }

        return y;
    }

    private void SumBackward(ref Node node)
    {
        var x = node.A!;
        if (!x.RequiresGrad)
        {
            return;
        }

        var v = GradOf(node.Out!)[0] * node.F0;
        var dx = GradAcc(x, out var fresh);
        if (fresh)
        {
            dx.Fill(v);
        }
        else
        {
            TensorPrimitives.Add(dx, v, dx);
        }
    }

    /// <summary>A view with another shape over the same elements (no copy; gradients flow through the shared buffer).</summary>
    /// <param name="x">The tensor.</param>
    /// <param name="shape">The new dimensions; one may be -1 (inferred).</param>
    /// <returns>The view, valid until the next <see cref="Reset"/>.</returns>
    public Tensor Reshape(Tensor x, params ReadOnlySpan<int> shape)
    {
        ArgumentNullException.ThrowIfNull(x);
        Span<int> s = stackalloc int[shape.Length];
        shape.CopyTo(s);
        var infer = -1;
        long known = 1;
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] == -1 && infer < 0)
            {
                infer = i;
            }
            else if (s[i] <= 0)
            {
                throw new ShapeMismatchException($"reshape: target shape {Tensor.Format(shape)} has an invalid dimension.");
            }
            else
            {
                known *= s[i];
            }
        }

        if (infer >= 0)
        {
            s[infer] = known == 0 ? 0 : (int)(x.Length / known);
            known *= s[infer];
        }

        if (known != x.Length)
        {
            throw new ShapeMismatchException($"reshape: shape {x.ShapeText} ({x.Length} elements) cannot be viewed as {Tensor.Format(shape)}.");
        }

        return ViewOf(x, s);
    }

    /// <summary>Swaps two dimensions (copies into a contiguous result).</summary>
    /// <param name="x">The tensor (rank ≤ 4).</param>
    /// <param name="dim0">The first dimension (negative counts from the end).</param>
    /// <param name="dim1">The second dimension.</param>
    /// <returns>The transposed tensor.</returns>
    public Tensor Transpose(Tensor x, int dim0, int dim1)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (dim0 < 0)
        {
            dim0 += x.Rank;
        }

        if (dim1 < 0)
        {
            dim1 += x.Rank;
        }

        if ((uint)dim0 >= (uint)x.Rank || (uint)dim1 >= (uint)x.Rank)
        {
            throw new ShapeMismatchException($"transpose: dimensions ({dim0}, {dim1}) do not exist in shape {x.ShapeText}.");
        }

        Span<int> s = stackalloc int[x.Rank];
        x.Shape.CopyTo(s);
        (s[dim0], s[dim1]) = (s[dim1], s[dim0]);
        var req = Needs(x);
        var y = Rent(s, req);
        Permute(x.Data, x.Shape, dim0, dim1, y.Data, false);
        if (req)
        {
            ref var node = ref Record(OpCode.Transpose, y);
            node.A = x;
            node.I0 = dim0;
            node.I1 = dim1;
        }

        return y;
    }

    private void TransposeBackward(ref Node node)
    {
        var x = node.A!;
        if (!x.RequiresGrad)
        {
            return;
        }

        var y = node.Out!;
        var dx = GradAcc(x, out var fresh);
        Permute(GradOf(y), y.Shape, node.I0, node.I1, dx, !fresh);
    }

    /// <summary>dst = src with dimensions d0 and d1 swapped (src has shape <paramref name="shape"/>).</summary>
    private static void Permute(ReadOnlySpan<float> src, ReadOnlySpan<int> shape, int d0, int d1, Span<float> dst, bool accumulate)
    {
        Span<int> dims = stackalloc int[MaxRank];
        Span<int> strides = stackalloc int[MaxRank];
        var pad = MaxRank - shape.Length;
        for (var i = 0; i < MaxRank; i++)
        {
            dims[i] = i < pad ? 1 : shape[i - pad];
        }

        var st = 1;
        for (var i = MaxRank - 1; i >= 0; i--)
        {
            strides[i] = st;
            st *= dims[i];
        }

        d0 += pad;
        d1 += pad;
        (dims[d0], dims[d1]) = (dims[d1], dims[d0]);
        (strides[d0], strides[d1]) = (strides[d1], strides[d0]);
        var o = 0;
        for (var i0 = 0; i0 < dims[0]; i0++)
        {
            for (var i1 = 0; i1 < dims[1]; i1++)
            {
                for (var i2 = 0; i2 < dims[2]; i2++)
                {
                    var baseIdx = (i0 * strides[0]) + (i1 * strides[1]) + (i2 * strides[2]);
                    var s3 = strides[3];
                    var n3 = dims[3];
                    if (accumulate)
                    {
                        for (var i3 = 0; i3 < n3; i3++)
                        {
                            dst[o++] += src[baseIdx + (i3 * s3)];
                        }
                    }
                    else if (s3 == 1)
                    {
                        src.Slice(baseIdx, n3).CopyTo(dst.Slice(o, n3));
                        o += n3;
                    }
                    else
                    {
                        for (var i3 = 0; i3 < n3; i3++)
                        {
                            dst[o++] = src[baseIdx + (i3 * s3)];
                        }
                    }
                }
            }
        }
    }
}
