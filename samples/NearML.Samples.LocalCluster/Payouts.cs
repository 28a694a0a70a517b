using System.Globalization;
using NearML.Ledger;

namespace NearML.Samples.LocalCluster;

/// <summary>
/// Payouts per worker, recomputed from the coordinator's ledger exactly as its settlement does: per epoch,
/// <see cref="RewardPolicy"/> over the epoch's receipts with the epoch's pool (simulated attestation counts here, because
/// the local cluster's development policy admits it).
/// </summary>
internal static class Payouts
{
    public static IReadOnlyDictionary<string, UInt128> Read(string coordinatorDirectory, UInt128 poolPerEpoch, out int epochs)
    {
        var result = new SortedDictionary<string, UInt128>(StringComparer.Ordinal);
        epochs = 0;
        var path = Path.Combine(coordinatorDirectory, "ledger.db");
        if (!File.Exists(path))
        {
            return result;
        }

        using var ledger = ContributionLedger.OpenSqlite(path);
        var policy = new RewardPolicy { CountUnattested = true };
        foreach (var epoch in ledger.Store.ListEpochs())
        {
            epochs++;
            var receipts = ledger.ReadEpochReceipts(epoch).Select(r => r.Receipt).ToList();
            foreach (var payout in policy.Distribute(epoch, receipts, poolPerEpoch).Payouts)
            {
                result[payout.WorkerId] = result.GetValueOrDefault(payout.WorkerId) + payout.Amount;
            }
        }

        return result;
    }

    /// <summary>Formats yoctoNEAR as NEAR with up to 6 decimals.</summary>
    public static string FormatNear(UInt128 yocto)
    {
        var one = UInt128.Parse("1000000000000000000000000", CultureInfo.InvariantCulture);
        var whole = yocto / one;
        var micro = yocto % one / UInt128.Parse("1000000000000000000", CultureInfo.InvariantCulture);
        return string.Create(CultureInfo.InvariantCulture, $"{whole}.{(ulong)micro:D6} NEAR");
    }
}
