using System.Runtime.CompilerServices;
using NearML.Training.Tensors.Internal;

namespace NearML.Training.Tensors;

/// <summary>
/// Records operations for reverse-mode automatic differentiation and owns the buffers of their results.
/// </summary>
/// <remarks>
/// <para>A tape is used once per step: <see cref="Reset"/>, run the forward operations (methods of this class),
/// then <see cref="Backward(Tensor)"/>. Result tensors, saved activations and index buffers come from pools keyed by
/// the order in which operations ask for them, so a step that repeats the previous step's sequence of shapes reuses
/// every buffer and allocates nothing on the managed heap.</para>
/// <para>Gradients of leaf tensors (parameters) accumulate into their gradient buffers; clear them before a step
/// (for a model, <c>Gradients.Clear()</c>). Gradients of intermediate results are written on first touch, so they need
/// no clearing. Not thread-safe: one tape per training thread.</para>
/// </remarks>
public sealed partial class Tape
{
    /// <summary>The largest tensor rank the engine supports.</summary>
    public const int MaxRank = 4;

    private readonly List<Tensor> _owned = [];
    private readonly List<Tensor> _views = [];
    private readonly List<int[]> _ints = [];
    private Node[] _nodes = new Node[64];
    private int _nodeCount;
    private int _ownedCursor;
    private int _viewCursor;
    private int _intCursor;
    private long _step;
    private float[] _scratch = new float[1024];
    private float[] _scratch2 = new float[1024];
    private int _dropoutCalls;

    /// <summary>Gets or sets a value indicating whether operations are recorded for backward (false for evaluation).</summary>
    /// <value>The default value is <see langword="true"/>.</value>
    public bool GradEnabled { get; set; } = true;

    /// <summary>Gets or sets a value indicating whether training-only behaviour (dropout) is active.</summary>
    /// <value>The default value is <see langword="true"/>.</value>
    public bool Training { get; set; } = true;

    /// <summary>Gets or sets the seed of dropout masks; masks are a pure function of (seed, step, call, element).</summary>
    /// <value>The default value is 0.</value>
    public ulong DropoutSeed { get; set; }

    /// <summary>Gets the number of <see cref="Reset"/> calls so far.</summary>
    public long StepIndex { get; private set; }

    /// <summary>Gets the number of operations recorded since the last <see cref="Reset"/>.</summary>
    public int RecordedCount => _nodeCount;

    /// <summary>Forgets the recorded operations and makes every pooled buffer available again.</summary>
    public void Reset()
    {
        _nodes.AsSpan(0, _nodeCount).Clear();
        _nodeCount = 0;
        _ownedCursor = 0;
        _viewCursor = 0;
        _intCursor = 0;
        _dropoutCalls = 0;
        StepIndex++;
    }

    /// <summary>Wraps a batch segment as an input tensor (no copy, no gradient), rejecting NaN or infinite values.</summary>
    /// <param name="data">The buffer.</param>
    /// <param name="offset">The first element.</param>
    /// <param name="shape">The dimensions.</param>
    /// <returns>A pooled view valid until the next <see cref="Reset"/>.</returns>
    /// <exception cref="NonFiniteValueException">The segment holds a NaN or infinity.</exception>
    public Tensor Input(float[] data, int offset, params ReadOnlySpan<int> shape)
    {
        ArgumentNullException.ThrowIfNull(data);
        var n = Tensor.CheckShape(shape);
        if (offset < 0 || (long)offset + n > data.Length)
        {
            throw new ShapeMismatchException($"Input of shape {Tensor.Format(shape)} at offset {offset} does not fit a buffer of {data.Length} elements.");
        }

        var bad = Simd.IndexOfNonFinite(data.AsSpan(offset, n));
        if (bad >= 0)
        {
            throw new NonFiniteValueException("input", bad, data[offset + bad]);
        }

        var t = NextView();
        t._data = data;
        t._offset = offset;
        t._grad = null;
        t._gradOffset = 0;
        t._base = null;
        t._leaf = true;
        t.RequiresGrad = false;
        t.SetShape(shape);
        return t;
    }

    /// <summary>Runs the backward pass from a scalar (one-element) result, seeding its gradient with 1.</summary>
    /// <param name="loss">The result to differentiate, usually a loss.</param>
    /// <exception cref="NonFiniteValueException">The loss is NaN or infinite.</exception>
    public void Backward(Tensor loss)
    {
        ArgumentNullException.ThrowIfNull(loss);
        if (loss.Length != 1)
        {
            throw new ShapeMismatchException($"Backward without an output gradient needs a one-element result, got shape {loss.ShapeText}.");
        }

        var v = loss.Data[0];
        if (!float.IsFinite(v))
        {
            throw new NonFiniteValueException("loss", -1, v);
        }

        Span<float> one = [1f];
        Backward(loss, one);
    }

    /// <summary>Runs the backward pass from any recorded result with a given output gradient.</summary>
    /// <param name="output">The result.</param>
    /// <param name="outputGrad">∂L/∂output, same number of elements.</param>
    public void Backward(Tensor output, ReadOnlySpan<float> outputGrad)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (outputGrad.Length != output.Length)
        {
            throw new ShapeMismatchException($"Output gradient has {outputGrad.Length} elements but the output has shape {output.ShapeText}.");
        }

        if (!output.RequiresGrad)
        {
            throw new InvalidOperationException("The output does not depend on any tensor that requires gradients (or was computed with GradEnabled = false).");
        }

        _step++;
        var g = GradAcc(output, out var fresh);
        if (fresh)
        {
            outputGrad.CopyTo(g);
        }
        else
        {
            System.Numerics.Tensors.TensorPrimitives.Add(g, outputGrad, g);
        }

        for (var i = _nodeCount - 1; i >= 0; i--)
        {
            ref var node = ref _nodes[i];
            if (!HasGrad(node.Out!))
            {
                continue;
            }

            BackwardNode(ref node);
        }
    }

    // ----------------------------------------------------------------------------------------------------------
    // pools
    // ----------------------------------------------------------------------------------------------------------
    internal Tensor Rent(ReadOnlySpan<int> shape, bool requiresGrad)
    {
        var n = Tensor.CheckShape(shape);
        Tensor t;
        if (_ownedCursor < _owned.Count)
        {
            t = _owned[_ownedCursor];
            if (t.Capacity < n)
            {
                t = new Tensor(new float[n], 0, null, 0, shape, requiresGrad, leaf: false);
                _owned[_ownedCursor] = t;
            }
        }
        else
        {
            t = new Tensor(new float[n], 0, null, 0, shape, requiresGrad, leaf: false);
            _owned.Add(t);
        }

        _ownedCursor++;
        t.SetShape(shape);
        t.RequiresGrad = requiresGrad;
        t._gradStamp = -1;
        return t;
    }

    internal Tensor Rent(int d0, bool requiresGrad)
    {
        Span<int> s = [d0];
        return Rent(s, requiresGrad);
    }

    internal Tensor Rent(int d0, int d1, bool requiresGrad)
    {
        Span<int> s = [d0, d1];
        return Rent(s, requiresGrad);
    }

    internal Tensor Rent(int d0, int d1, int d2, bool requiresGrad)
    {
        Span<int> s = [d0, d1, d2];
        return Rent(s, requiresGrad);
    }

    internal Tensor Rent(int d0, int d1, int d2, int d3, bool requiresGrad)
    {
        Span<int> s = [d0, d1, d2, d3];
        return Rent(s, requiresGrad);
    }

    internal Tensor Scalar(bool requiresGrad) => Rent([], requiresGrad);

    private Tensor NextView()
    {
        Tensor t;
        if (_viewCursor < _views.Count)
        {
            t = _views[_viewCursor];
        }
        else
        {
            t = new Tensor(Array.Empty<float>(), 0, null, 0, [], false, leaf: true);
            _views.Add(t);
        }

        _viewCursor++;
        return t;
    }

    internal Tensor ViewOf(Tensor src, ReadOnlySpan<int> shape)
    {
        var t = NextView();
        var root = src.Root;
        t._data = src._data;
        t._offset = src._offset;
        t._grad = root._leaf ? root._grad : null;
        t._gradOffset = src._gradOffset;
        t._base = root;
        t._leaf = false;
        t.RequiresGrad = src.RequiresGrad;
        t._gradStamp = -1;
        t.SetShape(shape);
        return t;
    }

    internal int[] RentInts(int n)
    {
        int[] a;
        if (_intCursor < _ints.Count)
        {
            a = _ints[_intCursor];
            if (a.Length < n)
            {
                a = new int[n];
                _ints[_intCursor] = a;
            }
        }
        else
        {
            a = new int[n];
            _ints.Add(a);
        }

        _intCursor++;
        return a;
    }

    /// <summary>A tape-wide scratch buffer (contents undefined; valid until the next call).</summary>
    internal float[] Scratch(int n)
    {
        if (_scratch.Length < n)
        {
            _scratch = new float[Math.Max(n, _scratch.Length * 2)];
        }

        return _scratch;
    }

    /// <summary>A second scratch buffer, independent of <see cref="Scratch"/>.</summary>
    internal float[] Scratch2(int n)
    {
        if (_scratch2.Length < n)
        {
            _scratch2 = new float[Math.Max(n, _scratch2.Length * 2)];
        }

        return _scratch2;
    }

    // ----------------------------------------------------------------------------------------------------------
    // recording and gradient buffers
    // ----------------------------------------------------------------------------------------------------------
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool Needs(Tensor a) => GradEnabled && a.RequiresGrad;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool Needs(Tensor a, Tensor? b) => GradEnabled && (a.RequiresGrad || (b is not null && b.RequiresGrad));

    internal ref Node Record(OpCode op, Tensor output)
    {
        if (_nodeCount == _nodes.Length)
        {
            Array.Resize(ref _nodes, _nodes.Length * 2);
        }

        ref var n = ref _nodes[_nodeCount++];
        n = default;
        n.Op = op;
        n.Out = output;
        return ref n;
    }

    /// <summary>Whether <paramref name="t"/> received a gradient in the current backward pass.</summary>
    internal bool HasGrad(Tensor t)
    {
        var r = t.Root;
        return r._leaf ? r._grad is not null : r._gradStamp == _step;
    }

    /// <summary>The gradient of <paramref name="t"/> (read-only use; caller checked <see cref="HasGrad"/>).</summary>
    internal static Span<float> GradOf(Tensor t)
    {
        var r = t.Root;
        return r._grad!.AsSpan(t._gradOffset, t.Length);
    }

    /// <summary>
    /// The gradient buffer of <paramref name="t"/> for accumulation. <paramref name="fresh"/> is true when this is the
    /// first contribution of this pass: the contents are then undefined and must be overwritten, not added to.
    /// </summary>
    internal Span<float> GradAcc(Tensor t, out bool fresh)
    {
        var r = t.Root;
        if (r._leaf)
        {
            fresh = false;
            return r._grad!.AsSpan(t._gradOffset, t.Length);
        }

        if (r._gradStamp != _step)
        {
            r._gradStamp = _step;
            if (r._grad is null || r._grad.Length < r.Capacity)
            {
                r._grad = new float[r.Capacity];
            }

            fresh = true;
        }
        else
        {
            fresh = false;
        }

        return r._grad!.AsSpan(t._gradOffset, t.Length);
    }

    /// <summary>The gradient buffer of <paramref name="t"/>, zeroed on first touch, for += accumulation.</summary>
    internal Span<float> GradZeroed(Tensor t)
    {
        var g = GradAcc(t, out var fresh);
        if (fresh)
        {
            g.Clear();
        }

        return g;
    }

    /// <summary>The GEMM β for accumulating into the gradient of <paramref name="t"/> (0 on first touch).</summary>
    internal float GradBeta(Tensor t, out Span<float> g)
    {
        g = GradAcc(t, out var fresh);
        return fresh ? 0f : 1f;
    }

    internal static ShapeMismatchException Mismatch(string op, Tensor a, Tensor b, string detail) =>
        new($"{op}: shapes {a.ShapeText} and {b.ShapeText} do not fit ({detail}).");
}
