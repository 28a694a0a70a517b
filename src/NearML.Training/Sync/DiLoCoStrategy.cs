using NearML.Core;
using NearML.Core.Collectives;
using NearML.Training.Optim;

namespace NearML.Training.Sync;

/// <summary>
/// DiLoCo (arXiv 2311.08105): each worker runs H inner optimizer steps on its own data (the inner optimizer and its
/// state stay local), then the group averages the pseudo-gradients Δ = θ_global − θ_local, weighted by the samples
/// behind them and encoded as <see cref="DiLoCoOptions.Encoding"/>, and every worker applies the same outer
/// SGD-with-Nesterov-momentum step (<see cref="NesterovOuterOptimizer"/>) to θ_global and restarts from it.
/// </summary>
public sealed class DiLoCoStrategy : SyncStrategy
{
    private readonly Optimizer _inner;
    private readonly DiLoCoOptions _options;
    private readonly IPayloadCodec _codec;
    private readonly ParameterSet _global;
    private readonly NesterovOuterOptimizer _outer;
    private readonly ParameterSet _delta;
    private readonly ParameterSet _mean;
    private long _samplesSinceSync;
    private int _stepsSinceSync;

    /// <summary>Creates the strategy. The current <paramref name="parameters"/> become the global parameters.</summary>
    /// <param name="collective">This worker's endpoint.</param>
    /// <param name="parameters">The model's parameters (equal on every worker at the start).</param>
    /// <param name="innerOptimizer">The local optimizer (for example AdamW); its state never leaves the worker.</param>
    /// <param name="options">Settings; <see langword="null"/> for the published defaults.</param>
    public DiLoCoStrategy(ICollective collective, ParameterSet parameters, Optimizer innerOptimizer, DiLoCoOptions? options = null)
        : base(collective, parameters)
    {
        ArgumentNullException.ThrowIfNull(innerOptimizer);
        innerOptimizer.Layout.EnsureSameAs(parameters.Layout);
        _options = options ?? new DiLoCoOptions();
        _options.Validate();
        _inner = innerOptimizer;
        _codec = PayloadCodecs.Create(_options.Encoding, _options.QuantizationBlockSize);
        _global = parameters.Clone();
        _outer = new NesterovOuterOptimizer(parameters.Layout, _options.OuterLearningRate, _options.OuterMomentum, _options.Nesterov);
        _delta = parameters.CreateZeros();
        _mean = parameters.CreateZeros();
    }

    /// <inheritdoc/>
    public override string Kind => "diloco";

    /// <inheritdoc/>
    public override ParameterSet GlobalParameters => _global;

    /// <summary>Gets the number of outer steps taken (the tag of the next exchange).</summary>
    public long OuterStep { get; private set; }

    /// <summary>Gets the inner steps taken since the last exchange.</summary>
    public int StepsSinceSync => _stepsSinceSync;

    /// <inheritdoc/>
    public override async ValueTask<SyncStepResult> StepAsync(ParameterSet gradients, int samples, CancellationToken cancellationToken = default)
    {
        ValidateStep(gradients, samples);
        _inner.Step(Parameters, gradients);
        LocalStep++;
        _stepsSinceSync++;
        _samplesSinceSync += samples;
        return _stepsSinceSync >= _options.InnerSteps
            ? await SyncAsync(cancellationToken).ConfigureAwait(false)
            : SyncStepResult.Local;
    }

    /// <summary>
    /// Runs the outer step now, whatever the inner step count (for example a slow worker at a round deadline: its
    /// pseudo-gradient is weighted by the fewer samples behind it). A worker with no samples since the last exchange
    /// abstains: it does not receive that round's mean, keeps its previous global parameters and must adopt a
    /// member's state (<see cref="SyncStrategy.RestoreState"/>) before contributing again.
    /// </summary>
    /// <param name="cancellationToken">Cancels waiting for the group.</param>
    /// <returns>Who took part.</returns>
    public async ValueTask<SyncStepResult> SyncAsync(CancellationToken cancellationToken = default)
    {
        var round = OuterStep;
        ReduceResult? r = null;
        if (_samplesSinceSync == 0)
        {
            await Collective.AbstainAsync(round, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            _delta.SetDifference(_global, Parameters);
            r = await Collective.AllReduceMeanAsync(round, _delta.Buffer, _samplesSinceSync, _codec, _mean.Buffer, cancellationToken).ConfigureAwait(false);
            RejectionLog.AddRange(r.Rejections);
        }

        // An abstainer does not see the mean (see the remarks above); everyone else applies the same outer step.
        if (r is { HasResult: true })
        {
            _outer.Step(_global, _mean);
        }

        Parameters.CopyFrom(_global);
        OuterStep++;
        _stepsSinceSync = 0;
        _samplesSinceSync = 0;
        return new SyncStepResult(true, r?.Participants.Count ?? 0, r?.Rejections.Count ?? 0);
    }

    /// <inheritdoc/>
    protected override IReadOnlyList<(string Part, ParameterSet Set)> StateParts() =>
        [("local", Parameters), ("global", _global), ("outer_momentum", _outer.MomentumBuffer)];

    /// <inheritdoc/>
    protected override void WriteMetadata(IDictionary<string, string> metadata)
    {
        metadata["nearml.diloco.outer_step"] = OuterStep.ToString(System.Globalization.CultureInfo.InvariantCulture);
        metadata["nearml.diloco.steps_since_sync"] = _stepsSinceSync.ToString(System.Globalization.CultureInfo.InvariantCulture);
        metadata["nearml.diloco.samples_since_sync"] = _samplesSinceSync.ToString(System.Globalization.CultureInfo.InvariantCulture);
        metadata["nearml.diloco.encoding"] = _codec.Name;
    }

    /// <inheritdoc/>
    protected override void ReadMetadata(IReadOnlyDictionary<string, string> metadata)
    {
        var outer = ReadLong(metadata, "nearml.diloco.outer_step");
        var steps = ReadLong(metadata, "nearml.diloco.steps_since_sync");
        var samples = ReadLong(metadata, "nearml.diloco.samples_since_sync");
        OuterStep = outer;
        _stepsSinceSync = (int)steps;
        _samplesSinceSync = samples;
    }
}
