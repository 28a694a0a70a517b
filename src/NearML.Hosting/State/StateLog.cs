using Microsoft.Extensions.Logging;

namespace NearML.Hosting.State;

/// <summary>Log messages of the coordinator's state folder checks (event ids 7200–7209).</summary>
internal static partial class StateLog
{
    [LoggerMessage(EventId = 7200, EventName = "StateFolderNew", Level = LogLevel.Information, Message = "State folder {Folder} holds no job: starting job '{JobId}' from round 0")]
    public static partial void NewFolder(ILogger logger, string folder, string jobId);

    [LoggerMessage(EventId = 7201, EventName = "StateFolderVerified", Level = LogLevel.Information, Message = "State folder {Folder} verified: {Entries} ledger entries (chain, anchor and signatures), last round {Round}, ledger head anchored with round {AnchorRound}")]
    public static partial void Verified(ILogger logger, string folder, long entries, long round, long anchorRound);

    [LoggerMessage(EventId = 7202, EventName = "TemporaryFileRemoved", Level = LogLevel.Warning, Message = "Removed {File}: left by a write that failed or was interrupted")]
    public static partial void TemporaryFileRemoved(ILogger logger, string file);

    [LoggerMessage(EventId = 7203, EventName = "SignerKeyCreated", Level = LogLevel.Information, Message = "Created the receipt-signing key {File} ({PublicKey}); back it up together with ledger.db")]
    public static partial void SignerCreated(ILogger logger, string file, string publicKey);
}
