using NearML.Core;

namespace NearML.Aggregation;

/// <summary>
/// A protocol message was rejected: malformed, wrong lengths, sent in the wrong phase, from a client that may not
/// send it, or otherwise breaking the protocol. The receiver's state is unchanged (or, for equivocation, the offending
/// client is excluded) and the round continues when it still can.
/// </summary>
public class AggregationProtocolException : NearMLException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="clientId">The client the message came from or was addressed to, if known.</param>
    /// <param name="message">What is wrong, naming the offending field.</param>
    public AggregationProtocolException(uint? clientId, string message)
        : base(clientId is { } id ? $"client {id}: {message}" : message) => ClientId = clientId;

    /// <summary>Gets the client the rejected message came from or was addressed to, if known.</summary>
    public uint? ClientId { get; }
}

/// <summary>A message belongs to another job or another aggregation round (a replay) and was rejected.</summary>
public sealed class AggregationReplayException : AggregationProtocolException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="clientId">The sender or recipient of the message, if known.</param>
    /// <param name="message">Which job or round was expected and which was found.</param>
    public AggregationReplayException(uint? clientId, string message) : base(clientId, message) { }
}

/// <summary>A signature (advertised keys or survivor view) did not verify under the client's identity key.</summary>
public sealed class AggregationSignatureException : AggregationProtocolException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="clientId">The client whose signature failed.</param>
    /// <param name="message">Which signature failed.</param>
    public AggregationSignatureException(uint? clientId, string message) : base(clientId, message) { }
}

/// <summary>
/// A client sent two different messages for the same phase (for example two different masked inputs). Both are
/// discarded and the client is treated as having dropped out.
/// </summary>
public sealed class AggregationEquivocationException : AggregationProtocolException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="clientId">The equivocating client.</param>
    /// <param name="message">What was sent twice.</param>
    public AggregationEquivocationException(uint clientId, string message) : base(clientId, message) { }
}

/// <summary>
/// The round cannot complete (too many dropouts, refusals or corrupted shares). No partial sum is released.
/// </summary>
public sealed class AggregationFailedException : NearMLException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="phase">The phase in which the round failed.</param>
    /// <param name="reason">Why the round failed.</param>
    public AggregationFailedException(AggregationPhase phase, string reason)
        : base($"secure aggregation failed in {phase}: {reason}")
    {
        Phase = phase;
        Reason = reason;
    }

    /// <summary>Gets the phase in which the round failed.</summary>
    public AggregationPhase Phase { get; }

    /// <summary>Gets why the round failed.</summary>
    public string Reason { get; }

    /// <inheritdoc/>
    public override bool IsTransient => true;
}
