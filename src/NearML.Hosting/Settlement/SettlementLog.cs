using Microsoft.Extensions.Logging;

namespace NearML.Hosting.Settlement;

/// <summary>The settlement component's log messages (event ids 7013–7014, kept from the coordinator, and 7080–7089).</summary>
internal static partial class SettlementLog
{
    [LoggerMessage(EventId = 7013, EventName = "Settled", Level = LogLevel.Information, Message = "Settlement of epoch {Epoch} ({DryRun}): root {Root}, {Count} transaction(s): {Hashes}")]
    public static partial void Settled(ILogger logger, long epoch, string dryRun, string root, int count, string hashes);

    [LoggerMessage(EventId = 7014, EventName = "SettlementFailed", Level = LogLevel.Error, Message = "Settlement of epoch {Epoch} failed; the epoch stays unsettled until the coordinator's next start settles it (or `nearml settle DATA --epoch N --send`; exactly once either way)")]
    public static partial void SettlementFailed(ILogger logger, Exception error, long epoch);

    [LoggerMessage(EventId = 7080, EventName = "SettlementPayer", Level = LogLevel.Information, Message = "Settlement ({Mode}): payer {Account}, key {PublicKey} from {Source}")]
    public static partial void Payer(ILogger logger, string mode, string account, string publicKey, string source);

    [LoggerMessage(EventId = 7081, EventName = "SettlementPayerKeyCreated", Level = LogLevel.Information, Message = "Created the dry-run settlement payer key {File} ({PublicKey}); it signs offline transactions only")]
    public static partial void PayerKeyCreated(ILogger logger, string file, string publicKey);
}
