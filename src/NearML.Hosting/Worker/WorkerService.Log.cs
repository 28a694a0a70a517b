using Microsoft.Extensions.Logging;

namespace NearML.Hosting.Worker;

/// <content>Log messages of the worker (event ids 7300–7399).</content>
public sealed partial class WorkerService
{
    [LoggerMessage(EventId = 7300, EventName = "WorkerStarting", Level = LogLevel.Information,
        Message = "NearML worker '{WorkerId}' (identity {Fingerprint}) starting: coordinator {Addresses} ({Trust}), attestation '{Attestation}'")]
    private static partial void LogStarting(ILogger logger, string workerId, string fingerprint, string addresses, string trust, string attestation);

    [LoggerMessage(EventId = 7342, EventName = "WorkerNextCoordinator", Level = LogLevel.Information,
        Message = "Next attempt: coordinator {Address} ({Index} of {Count})")]
    private static partial void LogNextCoordinator(ILogger logger, string address, int index, int count);

    [LoggerMessage(EventId = 7301, EventName = "WorkerAdmitted", Level = LogLevel.Information,
        Message = "Worker '{WorkerId}' admitted (session {SessionId}, heartbeat every {HeartbeatSeconds} s)")]
    private static partial void LogAdmitted(ILogger logger, string workerId, string sessionId, double heartbeatSeconds);

    [LoggerMessage(EventId = 7302, EventName = "WorkerStopped", Level = LogLevel.Information, Message = "Worker '{WorkerId}' stopped")]
    private static partial void LogStopped(ILogger logger, string workerId);

    [LoggerMessage(EventId = 7303, EventName = "WorkerFatal", Level = LogLevel.Critical,
        Message = "Worker stopped by a permanent failure (it will not reconnect): {Reason}")]
    private static partial void LogFatal(ILogger logger, string reason, Exception exception);

    [LoggerMessage(EventId = 7304, EventName = "WorkerConnectionFault", Level = LogLevel.Warning, Message = "Connection to the coordinator failed: {Reason}")]
    private static partial void LogConnectionFault(ILogger logger, string reason);

    [LoggerMessage(EventId = 7305, EventName = "WorkerUnexpectedFault", Level = LogLevel.Error, Message = "Worker session failed unexpectedly: {Reason}")]
    private static partial void LogUnexpectedFault(ILogger logger, string reason, Exception exception);

    [LoggerMessage(EventId = 7306, EventName = "WorkerReconnecting", Level = LogLevel.Information,
        Message = "Reconnecting in {DelaySeconds:0.00} s (attempt {Attempt})")]
    private static partial void LogReconnecting(ILogger logger, double delaySeconds, int attempt);

    [LoggerMessage(EventId = 7307, EventName = "SimulatedAttestation", Level = LogLevel.Warning,
        Message = "AttestationProvider 'simulated': this worker sends INSECURE simulated attestation evidence that proves nothing. DEVELOPMENT ONLY: never use it in production")]
    private static partial void LogSimulatedAttestation(ILogger logger);

    [LoggerMessage(EventId = 7308, EventName = "CoordinatorFinished", Level = LogLevel.Information,
        Message = "The coordinator ended the job ('{Reason}'); the worker stops and does not reconnect")]
    private static partial void LogCoordinatorFinished(ILogger logger, string reason);

    [LoggerMessage(EventId = 7310, EventName = "RoundAssigned", Level = LogLevel.Information,
        Message = "Job '{JobId}' round {Round}: parameters v{Version}, {Steps} inner steps on {Shards} shards")]
    private static partial void LogAssignment(ILogger logger, string jobId, ulong round, ulong version, int steps, int shards);

    [LoggerMessage(EventId = 7311, EventName = "JobModelBuilt", Level = LogLevel.Information,
        Message = "Job '{JobId}': built model '{Architecture}' with {Parameters} parameters")]
    private static partial void LogJobBuilt(ILogger logger, string jobId, string architecture, int parameters);

    [LoggerMessage(EventId = 7312, EventName = "ParametersCached", Level = LogLevel.Debug,
        Message = "Parameters v{Version} already held with the same root: no download")]
    private static partial void LogParametersCached(ILogger logger, ulong version);

    [LoggerMessage(EventId = 7313, EventName = "ParametersDownloaded", Level = LogLevel.Information,
        Message = "Downloaded and verified parameters v{Version}: {Bytes} bytes in {Milliseconds:0} ms")]
    private static partial void LogParametersDownloaded(ILogger logger, ulong version, long bytes, double milliseconds);

    [LoggerMessage(EventId = 7314, EventName = "RoundSkipped", Level = LogLevel.Warning,
        Message = "Round {Round} skipped: {SecondsLeft:0.0} s left before the deadline is not enough for one inner step and the upload; no update sent")]
    private static partial void LogRoundSkipped(ILogger logger, ulong round, double secondsLeft);

    [LoggerMessage(EventId = 7315, EventName = "RoundCutShort", Level = LogLevel.Warning,
        Message = "Round {Round}: the deadline allowed {Done} of {Planned} inner steps; sending the update of the steps done")]
    private static partial void LogRoundCutShort(ILogger logger, ulong round, int done, int planned);

    [LoggerMessage(EventId = 7316, EventName = "UpdateSent", Level = LogLevel.Information,
        Message = "Round {Round}: sent {Encoding} update of {PayloadBytes} bytes in {Parts} part(s) ({WireBytes} bytes on the wire), {Samples} samples, mean loss {Loss:0.####}")]
    private static partial void LogUpdateSent(ILogger logger, ulong round, string encoding, int payloadBytes, int parts, long wireBytes, long samples, float loss);

    [LoggerMessage(EventId = 7317, EventName = "NonFiniteTraining", Level = LogLevel.Error,
        Message = "Round {Round}: training produced a non-finite value ({Detail}); no update sent for this round")]
    private static partial void LogNonFinite(ILogger logger, ulong round, string detail);

    [LoggerMessage(EventId = 7318, EventName = "NanUpdateInjected", Level = LogLevel.Warning,
        Message = "Round {Round}: TEST fault injection: the update is replaced by NaN (InjectNanUpdate)")]
    private static partial void LogNanInjected(ILogger logger, ulong round);

    [LoggerMessage(EventId = 7319, EventName = "ProgressSendFailed", Level = LogLevel.Debug, Message = "Progress frame not sent: {Reason}")]
    private static partial void LogProgressFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 7320, EventName = "ReceiptAppended", Level = LogLevel.Information,
        Message = "Round {Round}: receipt #{Sequence} verified and logged ({Samples} samples credited)")]
    private static partial void LogReceipt(ILogger logger, ulong round, ulong sequence, ulong samples);

    [LoggerMessage(EventId = 7321, EventName = "ReceiptRejected", Level = LogLevel.Error,
        Message = "Round {Round}: receipt REJECTED and not logged: {Reason}")]
    private static partial void LogReceiptRejected(ILogger logger, ulong round, string reason);

    [LoggerMessage(EventId = 7322, EventName = "ReceiptUnexpected", Level = LogLevel.Warning,
        Message = "Receipt for job '{JobId}' round {Round} does not match an update this session sent; ignored")]
    private static partial void LogReceiptUnexpected(ILogger logger, string jobId, ulong round);

    [LoggerMessage(EventId = 7323, EventName = "NoReceipt", Level = LogLevel.Information,
        Message = "Round {Round} ended without a receipt for this worker (its update was not accepted or arrived late)")]
    private static partial void LogNoReceipt(ILogger logger, ulong round);

    [LoggerMessage(EventId = 7324, EventName = "SecureRoundSkipped", Level = LogLevel.Warning,
        Message = "Secure round {Round}: this worker does not contribute: {Reason}")]
    private static partial void LogSecureSkipped(ILogger logger, ulong round, string reason);

    [LoggerMessage(EventId = 7325, EventName = "SecureRoundLeft", Level = LogLevel.Information,
        Message = "Secure round {Round}: the coordinator moved on while this worker was in phase {Phase}")]
    private static partial void LogSecureLeft(ILogger logger, ulong round, NearML.Aggregation.AggregationPhase phase);

    [LoggerMessage(EventId = 7326, EventName = "SecureRoundDone", Level = LogLevel.Information,
        Message = "Secure round {Round}: aggregation client ended in {Phase} (weight {Weight}, {Bytes} bytes sent)")]
    private static partial void LogSecureDone(ILogger logger, ulong round, NearML.Aggregation.AggregationPhase phase, int weight, long bytes);

    [LoggerMessage(EventId = 7327, EventName = "StaleAggregationEnvelope", Level = LogLevel.Debug,
        Message = "Ignored an aggregation message for round {Round}: this worker is not taking part in it")]
    private static partial void LogStaleEnvelope(ILogger logger, ulong round);

    [LoggerMessage(EventId = 7330, EventName = "GoodbyeSent", Level = LogLevel.Information, Message = "Sent Goodbye to the coordinator (mid-round: {MidRound})")]
    private static partial void LogGoodbyeSent(ILogger logger, bool midRound);

    [LoggerMessage(EventId = 7331, EventName = "GoodbyeFailed", Level = LogLevel.Debug, Message = "Goodbye not delivered: {Reason}")]
    private static partial void LogGoodbyeFailed(ILogger logger, string reason);
}
