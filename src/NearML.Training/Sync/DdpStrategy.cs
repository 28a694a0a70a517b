using NearML.Core;
using NearML.Core.Collectives;
using NearML.Training.Optim;

namespace NearML.Training.Sync;

/// <summary>
/// Data-parallel training, the baseline: every step the workers' gradients are averaged (weighted by their sample
/// counts, float32 on the wire) and every worker applies the same optimizer step to the same parameters.
/// </summary>
public sealed class DdpStrategy : SyncStrategy
{
    private readonly Optimizer _optimizer;
    private readonly ParameterSet _mean;

    /// <summary>Creates the strategy.</summary>
    /// <param name="collective">This worker's endpoint.</param>
    /// <param name="parameters">The model's parameters (equal on every worker at the start).</param>
    /// <param name="optimizer">The optimizer applied to the averaged gradients (its state evolves identically on every worker).</param>
    public DdpStrategy(ICollective collective, ParameterSet parameters, Optimizer optimizer)
        : base(collective, parameters)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        optimizer.Layout.EnsureSameAs(parameters.Layout);
        _optimizer = optimizer;
        _mean = parameters.CreateZeros();
    }

    /// <inheritdoc/>
    public override string Kind => "ddp";

    /// <inheritdoc/>
    public override ParameterSet GlobalParameters => Parameters;

    /// <inheritdoc/>
    public override async ValueTask<SyncStepResult> StepAsync(ParameterSet gradients, int samples, CancellationToken cancellationToken = default)
    {
        ValidateStep(gradients, samples);
        var round = LocalStep;
        LocalStep++;
        if (samples == 0)
        {
            await Collective.AbstainAsync(round, cancellationToken).ConfigureAwait(false);
            return SyncStepResult.Local;
        }

        var r = await Collective.AllReduceMeanAsync(round, gradients.Buffer, samples, Float32Codec.Instance, _mean.Buffer, cancellationToken).ConfigureAwait(false);
        RejectionLog.AddRange(r.Rejections);
        if (r.HasResult)
        {
            _optimizer.Step(Parameters, _mean);
        }

        return new SyncStepResult(true, r.Participants.Count, r.Rejections.Count);
    }

    /// <inheritdoc/>
    protected override IReadOnlyList<(string Part, ParameterSet Set)> StateParts() => [("params", Parameters)];
}
