using Microsoft.Extensions.Logging;

namespace NearML.Hosting.Coordinator;

/// <summary>Log messages of the coordinator's guards against hostile workers and connection floods (event ids 7060–7079).</summary>
internal static partial class CoordinatorLog
{
    [LoggerMessage(EventId = 7060, EventName = "UpdateScreen", Level = LogLevel.Information, Message = "Update screen: absolute norm bound {Bound:G6} ({Source}); ratio to the median of this round's and the last {History} accepted norms {Ratio:G4}; all-zero updates rejected; weights capped at InnerSteps × BatchSize and the assigned shards' records")]
    public static partial void UpdateScreen(ILogger logger, double bound, string source, double ratio, int history);

    [LoggerMessage(EventId = 7061, EventName = "SamplesCapped", Level = LogLevel.Warning, Message = "Round {Round}: worker '{WorkerId}' claimed {Claimed} samples; credited {Credited} (InnerSteps {InnerSteps} × BatchSize {BatchSize}, {Assigned} records assigned)")]
    public static partial void SamplesCapped(ILogger logger, long round, string workerId, ulong claimed, ulong credited, int innerSteps, int batchSize, long assigned);

    [LoggerMessage(EventId = 7065, EventName = "RoundScreened", Level = LogLevel.Information, Message = "Round {Round}: update norms accepted [{Accepted}], rejected [{Rejected}]; reference median {Median}, absolute bound {Bound:G6}")]
    public static partial void RoundScreened(ILogger logger, long round, string accepted, string rejected, string median, double bound);

    [LoggerMessage(EventId = 7062, EventName = "KeyBound", Level = LogLevel.Information, Message = "Worker id '{WorkerId}' is now bound to key {KeyFingerprint}")]
    public static partial void KeyBound(ILogger logger, string workerId, string keyFingerprint);

    [LoggerMessage(EventId = 7063, EventName = "KeyRotated", Level = LogLevel.Warning, Message = "Worker id '{WorkerId}' rotated its key from {OldFingerprint} to {NewFingerprint} (signed by the old key)")]
    public static partial void KeyRotated(ILogger logger, string workerId, string oldFingerprint, string newFingerprint);

    [LoggerMessage(EventId = 7064, EventName = "ConnectionsRefusedSummary", Level = LogLevel.Warning, Message = "{Suppressed} more connection refusals and faults in the last {Seconds:0.#} s were not logged one by one ({Reasons}) from {Addresses} addresses")]
    public static partial void RefusalSummary(ILogger logger, long suppressed, double seconds, string reasons, int addresses);
}
