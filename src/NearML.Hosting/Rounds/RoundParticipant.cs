using Google.Protobuf;
using NearML.Hosting.Coordinator;

namespace NearML.Hosting.Rounds;

/// <summary>An admitted worker as a round protocol sees it: identity, liveness, its submitted update, and a send channel.</summary>
/// <remarks>One instance per admitted connection (a reconnecting worker gets a new one), so a protocol may key per-round
/// state by reference.</remarks>
public sealed class RoundParticipant
{
    internal RoundParticipant(WorkerSession session)
    {
        Session = session;
    }

    /// <summary>Gets the worker id.</summary>
    public string Id => Session.Id;

    /// <summary>Gets the NEAR account its receipts credit.</summary>
    public string Account => Session.Account;

    /// <summary>Gets the ed25519 identity key the worker proved in its handshake.</summary>
    public ReadOnlyMemory<byte> IdentityKey => Session.Admitted.PublicKey;

    /// <summary>Gets a value indicating whether the connection has closed (left, dropped or replaced).</summary>
    public bool IsClosed => Session.IsClosed;

    /// <summary>Gets why the connection closed, or <see langword="null"/> while it is open.</summary>
    public string? CloseReason => Session.CloseReason;

    /// <summary>Gets how the connection closed (<c>left</c>, <c>dropped</c>, <c>replaced</c>).</summary>
    public string CloseKind => Session.CloseKind;

    /// <summary>Gets a task that completes when the worker's <c>Update</c> for its current assignment has arrived (or refused), or it left.</summary>
    public Task Submitted { get; private set; } = Task.CompletedTask;

    internal WorkerSession Session { get; }

    /// <summary>Takes the worker's update of <paramref name="round"/> (decoded, or refused with a reason), if one arrived.</summary>
    /// <param name="round">The round.</param>
    /// <returns>The update, or <see langword="null"/>.</returns>
    public SubmittedUpdate? TakeUpdate(long round) => Session.TakeUpdate(round);

    /// <summary>Sends a frame (bounded wait; a failed send closes the connection, it does not throw).</summary>
    /// <param name="message">The frame.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>A task that completes when the frame was sent or the connection was closed.</returns>
    public Task SendAsync(IMessage message, CancellationToken cancellationToken) => CoordinatorService.SendAsync(Session, message, cancellationToken);

    internal void BeginRound(long round, long version, long nowTimestamp) => Submitted = Session.BeginRound(round, version, nowTimestamp);
}
