using Microsoft.Extensions.Logging;
using NearML.Hosting.Coordinator;

namespace NearML.Hosting.Rounds;

/// <summary>Picks the built-in round protocol a job's options ask for.</summary>
internal static class RoundProtocols
{
    /// <summary>
    /// Secure DiLoCo when <see cref="NearMLCoordinatorOptions.SecureAggregation"/> is set, the relay for DDP and DeMo
    /// (<see cref="NearMLCoordinatorOptions.SyncStrategy"/>), plain DiLoCo otherwise.
    /// </summary>
    public static IRoundProtocol ForOptions(NearMLCoordinatorOptions options, ILogger logger, NearMLMetrics metrics)
    {
        if (options.SecureAggregation)
        {
            return new SecureDiLoCoRoundProtocol(options, logger);
        }

        return options.SyncStrategyKind != NearML.Core.Contracts.SyncStrategy.Diloco
            ? new RelayRoundProtocol(options, logger, metrics)
            : new DiLoCoRoundProtocol(options);
    }
}
