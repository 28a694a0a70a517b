using NearML.Core.Contracts;

namespace NearML.Core.Protocol;

/// <summary>
/// A peer broke the wire protocol (oversized, malformed or truncated frame, unexpected message, failed authentication,
/// bad hash) or the connection ended. Only the connection it was raised on is affected.
/// </summary>
public sealed class ProtocolException : NearMLException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="code">The category of the fault, sent to the peer in an <see cref="Error"/> frame.</param>
    /// <param name="message">What went wrong, naming the offending field, size or offset.</param>
    /// <param name="innerException">The underlying cause, if any.</param>
    public ProtocolException(ErrorCode code, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Code = code;
    }

    /// <summary>Gets the category of the fault.</summary>
    public ErrorCode Code { get; }

    /// <summary>Gets a value indicating whether the peer reported this fault in an <see cref="Error"/> frame (rather than it being detected locally).</summary>
    public bool IsRemote { get; init; }

    /// <inheritdoc/>
    /// <remarks>Connection loss and timeouts are transient: reconnecting may succeed. Protocol violations are not.</remarks>
    public override bool IsTransient => Code is ErrorCode.ConnectionClosed or ErrorCode.Timeout;
}

/// <summary>The coordinator refused to admit this worker; <see cref="Reason"/> says why.</summary>
public sealed class AdmissionRefusedException : NearMLException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="reason">The coordinator's reason code.</param>
    /// <param name="message">The coordinator's explanation.</param>
    public AdmissionRefusedException(RefusalReason reason, string message)
        : base($"coordinator refused admission ({reason}): {message}")
    {
        Reason = reason;
        CoordinatorMessage = message;
    }

    /// <summary>Gets the coordinator's reason code.</summary>
    public RefusalReason Reason { get; }

    /// <summary>Gets the coordinator's explanation, verbatim.</summary>
    public string CoordinatorMessage { get; }

    /// <inheritdoc/>
    /// <remarks>A full cohort or a coordinator shutting down may admit the worker later.</remarks>
    public override bool IsTransient => Reason is RefusalReason.CohortFull or RefusalReason.ShuttingDown;
}
