using Google.Protobuf;
using NearML.Core.Contracts;
using NearML.Hosting.Coordinator;

namespace NearML.Hosting.Rounds;

/// <summary>
/// How one training round runs between the coordinator and its cohort: the unit of orchestration. The session host
/// (<see cref="CoordinatorService"/>) admits workers, picks the round's cohort, calls <see cref="RunAsync"/> once per
/// round with a <see cref="RoundContext"/>, and records what the protocol returns (parameter version, checkpoint,
/// ledger receipts, round record). A protocol assigns work (<see cref="RoundContext.AssignAsync"/>), exchanges its own
/// frames (<see cref="OnMessage"/>), reduces contributions with Core's one reducer and applies Training's outer optimizer
/// to <see cref="RoundContext.Parameters"/>.
/// </summary>
/// <remarks>
/// The built-in protocols are plain DiLoCo (<c>Rounds/DiLoCoRoundProtocol.cs</c>), secure DiLoCo over SecAgg+
/// (<c>Rounds/SecureDiLoCoRoundProtocol.cs</c>) and the relay for DDP and DeMo (<c>Rounds/RelayRoundProtocol.cs</c>); the
/// host picks one from <see cref="NearMLCoordinatorOptions"/> unless an <see cref="IRoundProtocol"/> is registered in the
/// service collection, which then runs every round. Frames arrive on the workers' connection threads while
/// <see cref="RunAsync"/> runs: <see cref="OnMessage"/> must be thread-safe.
/// </remarks>
public interface IRoundProtocol
{
    /// <summary>Gets the protocol's name (logs, docs).</summary>
    string Name { get; }

    /// <summary>Gets the fewest workers a round of this protocol needs (the host waits for max(this, MinWorkers)).</summary>
    int MinimumCohort { get; }

    /// <summary>Gets the encoding the workers' <c>Update</c> frames must use (announced as <c>HyperParameters.update_encoding</c>).</summary>
    UpdateEncoding UpdateEncoding { get; }

    /// <summary>Runs one round with <see cref="RoundContext.Cohort"/>: assign, exchange, reduce, outer step.</summary>
    /// <param name="context">The round: cohort, global parameters, outer optimizer, assignment and rejection helpers.</param>
    /// <param name="cancellationToken">Stops the round (the coordinator is stopping).</param>
    /// <returns>Whether the global parameters changed and whose work is credited.</returns>
    Task<RoundResult> RunAsync(RoundContext context, CancellationToken cancellationToken);

    /// <summary>
    /// Handles a frame a worker sent after admission that the host does not handle itself (the host handles heartbeats,
    /// progress, parameter downloads, <c>Update</c> frames and goodbyes).
    /// </summary>
    /// <param name="from">The sender.</param>
    /// <param name="message">The frame.</param>
    /// <returns><see langword="true"/> when the frame belongs to this protocol (handled, or ignored with a logged reason);
    /// <see langword="false"/> when it does not (the host then logs an <c>AggregationEnvelope</c> or <c>RelayContribution</c>
    /// as ignored and refuses any other type as a protocol fault).</returns>
    bool OnMessage(RoundParticipant from, IMessage message);
}

/// <summary>One contribution a round credits (a ledger receipt per contribution).</summary>
/// <param name="Participant">Who contributed.</param>
/// <param name="Update">What it contributed: samples credited, payload hash and size, compute time.</param>
public sealed record RoundContribution(RoundParticipant Participant, SubmittedUpdate Update);

/// <summary>What a round protocol returns to the host.</summary>
/// <param name="Updated">Whether the protocol changed <see cref="RoundContext.Parameters"/> (the host then publishes a new parameter version).</param>
/// <param name="Accepted">The credited contributions (receipts), in cohort order.</param>
/// <param name="Rejected">How many cohort members' contributions were refused.</param>
/// <param name="MeanLoss">The sample-weighted mean of the reported training losses, or NaN.</param>
/// <param name="UpdateBytes">The accepted payload bytes.</param>
public sealed record RoundResult(bool Updated, IReadOnlyList<RoundContribution> Accepted, int Rejected, double MeanLoss, long UpdateBytes)
{
    /// <summary>Gets a result of a round that changed nothing and credited no one.</summary>
    /// <param name="rejected">How many contributions were refused.</param>
    /// <returns>The result.</returns>
    public static RoundResult Empty(int rejected) => new(false, [], rejected, double.NaN, 0);
}
