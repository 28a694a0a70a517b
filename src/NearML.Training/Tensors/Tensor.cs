using System.Runtime.CompilerServices;

namespace NearML.Training.Tensors;

/// <summary>
/// A float32 tensor: contiguous, row-major, of rank 0 to 4, possibly a view over a segment of a larger buffer
/// (a model's parameters and gradients are views into two <see cref="NearML.Core.ParameterSet"/>s).
/// </summary>
/// <remarks>
/// Tensors produced by a <see cref="Tape"/> are pooled by the tape and reused on the next step: do not keep a reference
/// to an intermediate result across <see cref="Tape.Reset"/>. Gradients of leaf tensors (parameters and tensors made
/// with <see cref="Create(bool, int[])"/>) accumulate until cleared; intermediate gradients live for one backward pass.
/// </remarks>
public sealed class Tensor
{
    private readonly int[] _dims = new int[Tape.MaxRank];
    internal float[] _data;
    internal int _offset;
    internal float[]? _grad;
    internal int _gradOffset;
    internal Tensor? _base;
    internal long _gradStamp = -1;
    internal bool _leaf;

    internal Tensor(float[] data, int offset, float[]? grad, int gradOffset, ReadOnlySpan<int> shape, bool requiresGrad, bool leaf)
    {
        _data = data;
        _offset = offset;
        _grad = grad;
        _gradOffset = gradOffset;
        _leaf = leaf;
        RequiresGrad = requiresGrad;
        SetShape(shape);
    }

    /// <summary>Creates a zero-filled leaf tensor that owns its storage.</summary>
    /// <param name="requiresGrad">Whether gradients flow into it (its gradient buffer accumulates until cleared).</param>
    /// <param name="shape">The dimensions (0 to 4 of them, each positive).</param>
    /// <returns>The tensor.</returns>
    public static Tensor Create(bool requiresGrad, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        var n = CheckShape(shape);
        return new Tensor(new float[n], 0, requiresGrad ? new float[n] : null, 0, shape, requiresGrad, leaf: true);
    }

    /// <summary>Creates a leaf tensor over an existing array (no copy).</summary>
    /// <param name="data">The elements, row-major; its length must equal the product of <paramref name="shape"/>.</param>
    /// <param name="requiresGrad">Whether gradients flow into it.</param>
    /// <param name="shape">The dimensions.</param>
    /// <returns>The tensor.</returns>
    public static Tensor FromArray(float[] data, bool requiresGrad, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(shape);
        var n = CheckShape(shape);
        if (data.Length != n)
        {
            throw new ShapeMismatchException($"An array of {data.Length} elements cannot hold shape {Format(shape)} ({n} elements).");
        }

        return new Tensor(data, 0, requiresGrad ? new float[n] : null, 0, shape, requiresGrad, leaf: true);
    }

    /// <summary>Creates a leaf tensor viewing a segment of a value buffer and (optionally) a gradient buffer with the same layout.</summary>
    /// <param name="data">The value buffer.</param>
    /// <param name="offset">The index of the first element in both buffers.</param>
    /// <param name="grad">The gradient buffer, or <see langword="null"/> for a tensor without gradient.</param>
    /// <param name="shape">The dimensions.</param>
    /// <returns>The view.</returns>
    public static Tensor View(float[] data, int offset, float[]? grad, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(shape);
        var n = CheckShape(shape);
        if (offset < 0 || (long)offset + n > data.Length || (grad is not null && (long)offset + n > grad.Length))
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"A view of shape {Format(shape)} at offset {offset} does not fit the buffer.");
        }

        return new Tensor(data, offset, grad, offset, shape, grad is not null, leaf: true);
    }

    /// <summary>Gets the number of dimensions.</summary>
    public int Rank { get; private set; }

    /// <summary>Gets the number of elements.</summary>
    public int Length { get; private set; }

    /// <summary>Gets a value indicating whether gradients are computed for this tensor.</summary>
    public bool RequiresGrad { get; internal set; }

    /// <summary>Gets the dimensions, outermost first.</summary>
    public ReadOnlySpan<int> Shape => _dims.AsSpan(0, Rank);

    /// <summary>Gets the shape as text, e.g. <c>[32, 128]</c>.</summary>
    public string ShapeText => Format(Shape);

    /// <summary>Gets the elements.</summary>
    public Span<float> Data => _data.AsSpan(_offset, Length);

    /// <summary>Gets the gradient buffer (for an intermediate result, valid after a backward pass that reached it).</summary>
    /// <exception cref="InvalidOperationException">The tensor does not require gradients.</exception>
    public Span<float> Grad
    {
        get
        {
            var g = Root._grad;
            if (g is null)
            {
                throw new InvalidOperationException($"This tensor ({ShapeText}) has no gradient.");
            }

            return g.AsSpan(_gradOffset, Length);
        }
    }

    /// <summary>Gets a value indicating whether a gradient buffer exists.</summary>
    public bool HasGrad => Root._grad is not null;

    /// <summary>Gets the size of one dimension; negative indices count from the end.</summary>
    /// <param name="dim">The dimension.</param>
    /// <returns>Its size.</returns>
    public int Dim(int dim)
    {
        if (dim < 0)
        {
            dim += Rank;
        }

        if ((uint)dim >= (uint)Rank)
        {
            throw new ArgumentOutOfRangeException(nameof(dim), $"Dimension {dim} does not exist in shape {ShapeText}.");
        }

        return _dims[dim];
    }

    /// <summary>Gets a value indicating whether the shape equals <paramref name="shape"/>.</summary>
    /// <param name="shape">The dimensions to compare with.</param>
    /// <returns><see langword="true"/> when equal.</returns>
    public bool HasShape(ReadOnlySpan<int> shape) => Shape.SequenceEqual(shape);

    /// <summary>Sets every gradient element to zero (for leaf tensors whose gradient accumulates).</summary>
    public void ZeroGrad()
    {
        if (Root._grad is not null)
        {
            Grad.Clear();
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"Tensor{ShapeText}";

    internal Tensor Root => _base ?? this;

    /// <summary>Points a parameter tensor at its segment of a parameter buffer and a gradient buffer.</summary>
    internal void Bind(float[] data, float[] grad, int offset)
    {
        _data = data;
        _offset = offset;
        _grad = grad;
        _gradOffset = offset;
        _base = null;
        _leaf = true;
        RequiresGrad = true;
    }

    internal int Capacity => _data.Length;

    internal int this[int i] => _dims[i];

    internal void SetShape(ReadOnlySpan<int> shape)
    {
        if (shape.Length > Tape.MaxRank)
        {
            throw new ArgumentException($"Rank {shape.Length} is not supported (at most {Tape.MaxRank}).", nameof(shape));
        }

        Rank = shape.Length;
        var n = 1;
        for (var i = 0; i < shape.Length; i++)
        {
            _dims[i] = shape[i];
            n *= shape[i];
        }

        Length = n;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal int RowLength() => Rank == 0 ? 1 : _dims[Rank - 1];

    internal static int CheckShape(ReadOnlySpan<int> shape)
    {
        if (shape.Length > Tape.MaxRank)
        {
            throw new ArgumentException($"Rank {shape.Length} is not supported (at most {Tape.MaxRank}).", nameof(shape));
        }

        long n = 1;
        foreach (var d in shape)
        {
            if (d <= 0)
            {
                throw new ArgumentException($"Shape {Format(shape)} has a non-positive dimension.", nameof(shape));
            }

            n *= d;
            if (n > Array.MaxLength)
            {
                throw new ArgumentException($"Shape {Format(shape)} is too large.", nameof(shape));
            }
        }

        return (int)n;
    }

    internal static string Format(ReadOnlySpan<int> shape)
    {
        var sb = new System.Text.StringBuilder("[");
        for (var i = 0; i < shape.Length; i++)
        {
            if (i > 0)
            {
                sb.Append(", ");
            }

            sb.Append(shape[i]);
        }

        return sb.Append(']').ToString();
    }
}
