using Microsoft.Extensions.Logging;

namespace NearML.Hosting.Coordinator;

/// <summary>The coordinator's log messages (event ids 7000–7099).</summary>
internal static partial class CoordinatorLog
{
    [LoggerMessage(EventId = 7000, EventName = "Listening", Level = LogLevel.Information, Message = "Coordinator for job '{JobId}' listening on {EndPoint}; TLS certificate SHA-256 fingerprint {Fingerprint}")]
    public static partial void Listening(ILogger logger, string jobId, string endPoint, string fingerprint);

    [LoggerMessage(EventId = 7001, EventName = "JobLoaded", Level = LogLevel.Information, Message = "Job '{JobId}': model {Model} ({Parameters} parameters), dataset {Dataset} with {Shards} shards (root {Root}), {Rounds} rounds of H={InnerSteps}")]
    public static partial void JobLoaded(ILogger logger, string jobId, string model, int parameters, string dataset, int shards, string root, int rounds, int innerSteps);

    [LoggerMessage(EventId = 7002, EventName = "Resumed", Level = LogLevel.Information, Message = "Resuming job '{JobId}' after round {Round} (parameter version {Version}) from checkpoint {Path} (SHA-256 verified)")]
    public static partial void Resumed(ILogger logger, string jobId, long round, long version, string path);

    [LoggerMessage(EventId = 7003, EventName = "WorkerAdmitted", Level = LogLevel.Information, Message = "Admitted worker '{WorkerId}' (key {KeyFingerprint}, evidence '{Evidence}') from {Remote}")]
    public static partial void Admitted(ILogger logger, string workerId, string keyFingerprint, string evidence, string remote);

    [LoggerMessage(EventId = 7004, EventName = "WorkerRefused", Level = LogLevel.Warning, Message = "Refused worker from {Remote}: {Reason}: {Message}")]
    public static partial void Refused(ILogger logger, string remote, string reason, string message);

    [LoggerMessage(EventId = 7005, EventName = "ConnectionFault", Level = LogLevel.Warning, Message = "Connection from {Remote} closed by a protocol fault ({Code}): {Message}")]
    public static partial void ConnectionFault(ILogger logger, string remote, string code, string message);

    [LoggerMessage(EventId = 7006, EventName = "WorkerLeft", Level = LogLevel.Information, Message = "Worker '{WorkerId}' left ({Kind}): {Reason}")]
    public static partial void WorkerLeft(ILogger logger, string workerId, string kind, string reason);

    [LoggerMessage(EventId = 7007, EventName = "RoundStarted", Level = LogLevel.Information, Message = "Round {Round} started: cohort of {Cohort} [{Workers}], parameter version {Version}, deadline in {Timeout}")]
    public static partial void RoundStarted(ILogger logger, long round, int cohort, string workers, long version, TimeSpan timeout);

    [LoggerMessage(EventId = 7008, EventName = "UpdateRejected", Level = LogLevel.Warning, Message = "Round {Round}: update of worker '{WorkerId}' rejected ({Reason}): {Detail}")]
    public static partial void UpdateRejected(ILogger logger, long round, string workerId, string reason, string detail);

    [LoggerMessage(EventId = 7009, EventName = "NoUpdate", Level = LogLevel.Information, Message = "Round {Round}: no update from worker '{WorkerId}': {Reason}")]
    public static partial void NoUpdate(ILogger logger, long round, string workerId, string reason);

    [LoggerMessage(EventId = 7010, EventName = "RoundCompleted", Level = LogLevel.Information, Message = "Round {Round} completed in {Duration}: {Accepted}/{Cohort} updates accepted, mean loss {Loss:F4}, parameter version {Version}{Accuracy}")]
    public static partial void RoundCompleted(ILogger logger, long round, TimeSpan duration, int accepted, int cohort, double loss, long version, string accuracy);

    [LoggerMessage(EventId = 7011, EventName = "EmptyRound", Level = LogLevel.Warning, Message = "Round {Round} ended with no accepted update: no outer step (parameter version stays {Version})")]
    public static partial void EmptyRound(ILogger logger, long round, long version);

    [LoggerMessage(EventId = 7012, EventName = "ReceiptsAppended", Level = LogLevel.Information, Message = "Ledger: {Count} receipt(s) for round {Round} appended in epoch {Epoch} (entries {Entries}, head {Head})")]
    public static partial void ReceiptsAppended(ILogger logger, int count, long round, long epoch, long entries, string head);

    [LoggerMessage(EventId = 7015, EventName = "CheckpointFailed", Level = LogLevel.Error, Message = "Checkpoint write failed (the next one tries again)")]
    public static partial void CheckpointFailed(ILogger logger, Exception error);

    [LoggerMessage(EventId = 7016, EventName = "JobComplete", Level = LogLevel.Information, Message = "Job '{JobId}' complete after {Rounds} rounds; final accuracy {Accuracy}")]
    public static partial void JobComplete(ILogger logger, string jobId, long rounds, string accuracy);

    [LoggerMessage(EventId = 7017, EventName = "Stopping", Level = LogLevel.Information, Message = "Coordinator stopping: saying goodbye to {Workers} worker(s) and writing the final checkpoint")]
    public static partial void Stopping(ILogger logger, int workers);

    [LoggerMessage(EventId = 7018, EventName = "CoordinatorFailed", Level = LogLevel.Critical, Message = "Coordinator failed")]
    public static partial void Failed(ILogger logger, Exception error);

    [LoggerMessage(EventId = 7019, EventName = "FrameIgnored", Level = LogLevel.Warning, Message = "Worker '{WorkerId}': ignored {What}")]
    public static partial void Ignored(ILogger logger, string workerId, string what);

    [LoggerMessage(EventId = 7020, EventName = "WaitingForWorkers", Level = LogLevel.Information, Message = "Waiting for workers: {Connected} connected, {Needed} needed to start round {Round}")]
    public static partial void WaitingForWorkers(ILogger logger, int connected, int needed, long round);

    [LoggerMessage(EventId = 7021, EventName = "InsecureAdmission", Level = LogLevel.Warning, Message = "INSECURE development settings: simulated evidence accepted={Simulated} (AllowSimulatedAttestation or Attestation:AllowSimulated), AllowUnattestedWorkers={Unattested}; admitted workers prove nothing about their machines")]
    public static partial void InsecureAdmission(ILogger logger, bool simulated, bool unattested);

    [LoggerMessage(EventId = 7022, EventName = "AlreadyCredited", Level = LogLevel.Information, Message = "Round {Round}: worker '{WorkerId}' was already credited by ledger entry {Sequence} (round redone after a restart); no second receipt")]
    public static partial void AlreadyCredited(ILogger logger, long round, string workerId, long sequence);

    [LoggerMessage(EventId = 7023, EventName = "SecureRoundFailed", Level = LogLevel.Warning, Message = "Round {Round}: secure aggregation failed ({Reason}); no outer step")]
    public static partial void SecureRoundFailed(ILogger logger, long round, string reason);

    [LoggerMessage(EventId = 7024, EventName = "SecureRoundCompleted", Level = LogLevel.Information, Message = "Round {Round}: secure aggregation summed {Contributors}/{Cohort} masked inputs (total weight {TotalWeight}); individual updates stay hidden")]
    public static partial void SecureRoundCompleted(ILogger logger, long round, int contributors, int cohort, long totalWeight);

    [LoggerMessage(EventId = 7085, EventName = "DeprecatedOption", Level = LogLevel.Warning, Message = "Coordinator option '{Deprecated}' is deprecated: use '{Replacement}' (configuration key NearML:Coordinator:{Replacement}, samples' flag {Flag}); value '{Value}' applied")]
    public static partial void DeprecatedOption(ILogger logger, string deprecated, string replacement, string flag, string value);
}
