using Microsoft.Extensions.Logging;
using NearML.Core;
using NearML.Core.Contracts;
using NearML.Hosting.Coordinator;
using NearML.Training.Sync;

namespace NearML.Hosting.Rounds;

/// <summary>
/// One round as the session host hands it to an <see cref="IRoundProtocol"/>: the cohort, the global parameters and
/// the job's outer optimizer (both owned and checkpointed by the host), and the helpers every protocol needs — assigning
/// work, crediting samples, rejecting with a logged reason.
/// </summary>
public sealed class RoundContext
{
    private readonly Func<RoundParticipant, Action<HyperParameters>?, CancellationToken, Task> _assign;
    private readonly Func<RoundParticipant, long> _assignedRecords;
    private readonly Action<RoundParticipant, string, string> _reject;

    internal RoundContext(
        long round,
        long parameterVersion,
        IReadOnlyList<RoundParticipant> cohort,
        DateTimeOffset deadline,
        long startedTimestamp,
        NearMLCoordinatorOptions options,
        ParameterSet parameters,
        NesterovOuterOptimizer outerOptimizer,
        TimeProvider time,
        ILogger logger,
        Func<RoundParticipant, Action<HyperParameters>?, CancellationToken, Task> assign,
        Func<RoundParticipant, long> assignedRecords,
        Action<RoundParticipant, string, string> reject)
    {
        Round = round;
        ParameterVersion = parameterVersion;
        Cohort = cohort;
        Deadline = deadline;
        StartedTimestamp = startedTimestamp;
        Options = options;
        Parameters = parameters;
        OuterOptimizer = outerOptimizer;
        Time = time;
        Logger = logger;
        _assign = assign;
        _assignedRecords = assignedRecords;
        _reject = reject;
    }

    /// <summary>Gets the round number.</summary>
    public long Round { get; }

    /// <summary>Gets the parameter version the round starts from (what the cohort downloads).</summary>
    public long ParameterVersion { get; }

    /// <summary>Gets the round's cohort, ascending by worker id (ordinal): the order contributions are reduced in.</summary>
    public IReadOnlyList<RoundParticipant> Cohort { get; }

    /// <summary>Gets the round's deadline (start + <see cref="NearMLCoordinatorOptions.RoundTimeout"/>).</summary>
    public DateTimeOffset Deadline { get; }

    /// <summary>Gets the <see cref="TimeProvider.GetTimestamp"/> at which the round started.</summary>
    public long StartedTimestamp { get; }

    /// <summary>Gets the coordinator's options.</summary>
    public NearMLCoordinatorOptions Options { get; }

    /// <summary>Gets the global parameters: the protocol updates them in place and reports it with <see cref="RoundResult.Updated"/>.</summary>
    public ParameterSet Parameters { get; }

    /// <summary>Gets the job's outer optimizer (its momentum is checkpointed with <see cref="Parameters"/>).</summary>
    public NesterovOuterOptimizer OuterOptimizer { get; }

    /// <summary>Gets the clock.</summary>
    public TimeProvider Time { get; }

    /// <summary>Gets the coordinator's logger.</summary>
    public ILogger Logger { get; }

    /// <summary>
    /// Starts <paramref name="participant"/>'s round (its <see cref="RoundParticipant.Submitted"/> is reset) and sends its
    /// <c>JobAssignment</c>: the parameter version and root, the model, the job's hyperparameters (with
    /// <see cref="IRoundProtocol.UpdateEncoding"/> as the update encoding and <see cref="IRoundProtocol.Name"/> as the round protocol), its shards and the deadline.
    /// </summary>
    /// <param name="participant">A cohort member.</param>
    /// <param name="customize">Adds protocol settings to the hyperparameters (for example the SecAgg+ configuration), or <see langword="null"/>.</param>
    /// <param name="cancellationToken">Stops the send.</param>
    /// <returns>A task that completes when the assignment was sent (or the connection closed).</returns>
    public Task AssignAsync(RoundParticipant participant, Action<HyperParameters>? customize, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(participant);
        return _assign(participant, customize, cancellationToken);
    }

    /// <summary>Gets the number of dataset records in the shards assigned to <paramref name="participant"/> this round.</summary>
    /// <param name="participant">A cohort member.</param>
    /// <returns>Records.</returns>
    public long AssignedRecords(RoundParticipant participant) => _assignedRecords(participant);

    /// <summary>Logs and counts a refused contribution.</summary>
    /// <param name="participant">Its sender.</param>
    /// <param name="reason">A short reason (a metric tag).</param>
    /// <param name="detail">The explanation.</param>
    public void Reject(RoundParticipant participant, string reason, string detail) => _reject(participant, reason, detail);
}
