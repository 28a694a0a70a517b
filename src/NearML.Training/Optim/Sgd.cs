using System.Numerics.Tensors;
using NearML.Core;
using NearML.Training.Optim.Internal;

namespace NearML.Training.Optim;

/// <summary>Hyper-parameters of <see cref="Sgd"/>, with PyTorch's <c>torch.optim.SGD</c> defaults.</summary>
public sealed class SgdOptions
{
    /// <summary>Gets or sets the learning rate.</summary>
    /// <value>The default value is 0.01 (PyTorch requires it explicitly).</value>
    public double LearningRate { get; set; } = 0.01;

    /// <summary>Gets or sets the momentum factor (0 disables the momentum buffer).</summary>
    /// <value>The default value is 0.</value>
    public double Momentum { get; set; }

    /// <summary>Gets or sets the dampening applied to the gradient when it enters the momentum buffer.</summary>
    /// <value>The default value is 0.</value>
    public double Dampening { get; set; }

    /// <summary>Gets or sets whether to use Nesterov momentum (needs momentum &gt; 0 and dampening 0).</summary>
    /// <value>The default value is <see langword="false"/>.</value>
    public bool Nesterov { get; set; }

    /// <summary>Gets or sets the L2 weight decay added to the gradient (coupled, as in PyTorch's SGD).</summary>
    /// <value>The default value is 0.</value>
    public double WeightDecay { get; set; }

    /// <summary>Gets or sets which tensors get weight decay (like a PyTorch parameter group with <c>weight_decay=0</c> for the rest).</summary>
    /// <value>The default value is <see langword="null"/>: every tensor (PyTorch's single parameter group).</value>
    public Func<TensorEntry, bool>? WeightDecayFilter { get; set; }
}

/// <summary>
/// Stochastic gradient descent with PyTorch 1.13's exact order of operations (<c>_single_tensor_sgd</c>):
/// <c>d = g + wd·p</c>; on the first step <c>buf = d</c>, afterwards <c>buf = momentum·buf + (1 − dampening)·d</c>;
/// <c>d = d + momentum·buf</c> (Nesterov) or <c>d = buf</c>; <c>p = p − lr·d</c>. Scalars are rounded to float32 as
/// PyTorch does, and every <c>add_(x, alpha)</c> is one fused multiply-add as in ATen's vectorised CPU kernel, so the
/// results match PyTorch on AVX2/AVX-512 CPUs bit for bit. A step allocates nothing.
/// </summary>
public sealed class Sgd : Optimizer
{
    private const int Chunk = 4096;
    private readonly float[] _scratch = new float[Chunk];
    private readonly ParameterSet? _momentumBuffer;
    private readonly DecaySegments _segments;

    /// <summary>Initializes SGD for parameters with the given layout.</summary>
    /// <param name="layout">The parameter layout.</param>
    /// <param name="options">The hyper-parameters (copied).</param>
    /// <exception cref="ArgumentOutOfRangeException">A hyper-parameter is negative or not finite, or Nesterov is requested without momentum or with dampening.</exception>
    public Sgd(ParameterLayout layout, SgdOptions options)
        : base(layout, options?.LearningRate ?? throw new ArgumentNullException(nameof(options)))
    {
        CheckNonNegative(options.Momentum, nameof(options.Momentum));
        CheckNonNegative(options.Dampening, nameof(options.Dampening));
        CheckNonNegative(options.WeightDecay, nameof(options.WeightDecay));
        if (options.Nesterov && (options.Momentum <= 0 || options.Dampening != 0))
        {
            throw new ArgumentOutOfRangeException(nameof(options), "Nesterov momentum requires a momentum > 0 and zero dampening (as in PyTorch).");
        }

        Momentum = options.Momentum;
        Dampening = options.Dampening;
        Nesterov = options.Nesterov;
        WeightDecay = options.WeightDecay;
        _momentumBuffer = Momentum != 0 ? new ParameterSet(layout) : null;
        _segments = new DecaySegments(layout, options.WeightDecayFilter);
    }

    /// <summary>Gets the momentum factor.</summary>
    public double Momentum { get; }

    /// <summary>Gets the dampening.</summary>
    public double Dampening { get; }

    /// <summary>Gets a value indicating whether Nesterov momentum is used.</summary>
    public bool Nesterov { get; }

    /// <summary>Gets the (coupled) weight decay.</summary>
    public double WeightDecay { get; }

    /// <inheritdoc/>
    public override string Kind => "sgd";

    /// <summary>Gets the momentum buffer (aliases internal state; <see langword="null"/> without momentum).</summary>
    public ParameterSet? MomentumBuffer => _momentumBuffer;

    /// <inheritdoc/>
    public override void Step(ParameterSet parameters, ParameterSet gradients)
    {
        ValidateStep(parameters, gradients);
        var wd = (float)WeightDecay;
        var mom = (float)Momentum;
        var keep = (float)(1 - Dampening);
        var negLr = (float)-LearningRate;
        var first = StepCount == 0;
        var p = parameters.Buffer;
        var g = gradients.Buffer;
        var buf = _momentumBuffer?.Buffer;
        foreach (var (segStart, segLength, decays) in _segments.Segments)
        {
            for (var i = segStart; i < segStart + segLength; i += Chunk)
            {
                var n = Math.Min(Chunk, segStart + segLength - i);
                var pc = p.AsSpan(i, n);
                ReadOnlySpan<float> d = g.AsSpan(i, n);
                var scratch = _scratch.AsSpan(0, n);
                if (WeightDecay != 0 && decays)
                {
                    // d_p = d_p.add(param, alpha=weight_decay)
                    TensorPrimitives.FusedMultiplyAdd(pc, wd, d, scratch);
                    d = scratch;
                }

                if (buf is not null)
                {
                    var bc = buf.AsSpan(i, n);
                    if (first)
                    {
                        d.CopyTo(bc);
                    }
                    else
                    {
                        // buf.mul_(momentum).add_(d_p, alpha=1 - dampening)
                        TensorPrimitives.Multiply(bc, mom, bc);
                        TensorPrimitives.FusedMultiplyAdd(d, keep, bc, bc);
                    }

                    if (Nesterov)
                    {
                        // d_p = d_p.add(buf, alpha=momentum)
                        TensorPrimitives.FusedMultiplyAdd(bc, mom, d, scratch);
                        d = scratch;
                    }
                    else
                    {
                        d = bc;
                    }
                }

                // param.add_(d_p, alpha=-lr)
                TensorPrimitives.FusedMultiplyAdd(d, negLr, pc, pc);
            }
        }

        StepCount++;
    }

    /// <inheritdoc/>
    public override OptimizerState ExportState()
    {
        var buffers = new Dictionary<string, ParameterSet>(StringComparer.Ordinal);
        if (_momentumBuffer is not null)
        {
            buffers["momentum_buffer"] = _momentumBuffer.Clone();
        }

        return CreateState(buffers);
    }

    /// <inheritdoc/>
    public override void ImportState(OptimizerState state)
    {
        CheckKind(state);
        var buffer = _momentumBuffer is not null ? RequireBuffer(state, "momentum_buffer") : null;
        if (_momentumBuffer is null && state.Buffers.Count != 0)
        {
            throw new InvalidOptimizerStateException("The state has a momentum buffer but this SGD has no momentum.");
        }

        if (buffer is not null)
        {
            _momentumBuffer!.CopyFrom(buffer);
        }

        StepCount = state.StepCount;
        LearningRate = state.LearningRate;
    }

    /// <inheritdoc/>
    protected override IReadOnlyDictionary<string, double> GetHyperparameters() => new Dictionary<string, double>(StringComparer.Ordinal)
    {
        ["momentum"] = Momentum,
        ["dampening"] = Dampening,
        ["nesterov"] = Nesterov ? 1 : 0,
        ["weight_decay"] = WeightDecay,
        ["decayed_tensors"] = _segments.DecayedTensors,
    };

    private static void CheckNonNegative(double value, string name)
    {
        if (!double.IsFinite(value) || value < 0)
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be a finite non-negative number.");
        }
    }
}
