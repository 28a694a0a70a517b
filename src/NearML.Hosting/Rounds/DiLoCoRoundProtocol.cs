using Google.Protobuf;
using NearML.Core.Contracts;
using NearML.Hosting.Coordinator;
using NearML.Hosting.Jobs;

namespace NearML.Hosting.Rounds;

/// <summary>
/// Plain DiLoCo rounds (docs/protocol.md, "Rounds"): every cohort member downloads the global parameters, trains H inner
/// steps and sends its pseudo-gradient Δ = θ_global − θ_local as one <c>Update</c> (encoded as
/// <see cref="NearMLCoordinatorOptions.UpdateEncoding"/>); at the deadline (or when all arrived) the updates are screened and
/// averaged by Core's one reducer and the job's <see cref="NearML.Training.Sync.NesterovOuterOptimizer"/> steps the global
/// parameters — the same reduce and outer step as <see cref="NearML.Training.Sync.DiLoCoStrategy"/> in process.
/// </summary>
internal sealed class DiLoCoRoundProtocol(NearMLCoordinatorOptions options) : IRoundProtocol
{
    private readonly UpdateReduction _updates = new();

    public string Name => "diloco";

    public int MinimumCohort => 1;

    public UpdateEncoding UpdateEncoding => UpdateEncodings.Parse(options.UpdateEncoding);

    public async Task<RoundResult> RunAsync(RoundContext context, CancellationToken cancellationToken)
    {
        await UpdateReduction.AssignAllAsync(context, cancellationToken).ConfigureAwait(false);
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            var remaining = context.Deadline - context.Time.GetUtcNow();
            var delay = Task.Delay(remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero, context.Time, timeout.Token);
            await Task.WhenAny(Task.WhenAll(context.Cohort.Select(p => p.Submitted)), delay).ConfigureAwait(false);
            await timeout.CancelAsync().ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
        }

        var mean = _updates.MeanBuffer(context.Parameters);
        var reduced = _updates.CollectAndReduce(context, mean);
        if (reduced.Accepted.Count == 0)
        {
            return reduced.ToResult(updated: false);
        }

        context.OuterOptimizer.Step(context.Parameters, mean);
        return reduced.ToResult(updated: true);
    }

    public bool OnMessage(RoundParticipant from, IMessage message) => false;
}
