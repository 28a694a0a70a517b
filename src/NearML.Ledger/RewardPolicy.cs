using System.Numerics;

namespace NearML.Ledger;

/// <summary>Which receipt field measures a contribution's work.</summary>
public enum WorkMeasure
{
    /// <summary>Samples processed.</summary>
    Samples,

    /// <summary>Tokens processed.</summary>
    Tokens,

    /// <summary>Compute milliseconds.</summary>
    ComputeMilliseconds,
}

/// <summary>One worker's payout for an epoch.</summary>
/// <param name="WorkerId">The worker's NEAR account.</param>
/// <param name="Work">The verified work credited this epoch.</param>
/// <param name="Amount">The amount paid, in yoctoNEAR (or the token's smallest unit).</param>
public sealed record WorkerPayout(string WorkerId, UInt128 Work, UInt128 Amount);

/// <summary>
/// The result of distributing an epoch's pool. Conservation holds exactly:
/// <c>Paid + Σ CarriedCredits + CarriedRemainder == Pool + Σ incoming credits</c>.
/// </summary>
/// <param name="Epoch">The epoch.</param>
/// <param name="Pool">The pool distributed this epoch.</param>
/// <param name="Payouts">The payouts, ordered by worker id (ordinal).</param>
/// <param name="CarriedCredits">Per-worker amounts owed but below the minimum payout, carried to the next epoch.</param>
/// <param name="CarriedRemainder">The rounding remainder (or the whole pool when no work was verified), to add to the next epoch's pool.</param>
/// <param name="TotalWork">The total verified work.</param>
public sealed record RewardDistribution(
    long Epoch,
    UInt128 Pool,
    IReadOnlyList<WorkerPayout> Payouts,
    IReadOnlyDictionary<string, UInt128> CarriedCredits,
    UInt128 CarriedRemainder,
    UInt128 TotalWork)
{
    /// <summary>Gets the sum of all payouts.</summary>
    public UInt128 Paid
    {
        get
        {
            UInt128 sum = 0;
            foreach (WorkerPayout p in Payouts)
            {
                sum = checked(sum + p.Amount);
            }

            return sum;
        }
    }
}

/// <summary>
/// Turns an epoch's receipts and a reward pool into payouts, with integer arithmetic only. By default each worker
/// gets <c>floor(pool × work / totalWork)</c> of the verified work (attestation <see cref="AttestationVerdict.Verified"/>,
/// one receipt per job/round/worker, the smallest if duplicated); a worker owed less than <see cref="MinimumPayout"/> is not paid this epoch but
/// keeps the amount as a credit for the next; the rounding remainder is carried to the next epoch's pool. Nothing
/// leaks: every unit of the pool is either paid, credited or carried.
/// </summary>
public sealed class RewardPolicy
{
    /// <summary>Gets or sets the smallest amount worth a transfer.</summary>
    /// <value>The default value is 1 (pay any positive amount).</value>
    public UInt128 MinimumPayout { get; set; } = 1;

    /// <summary>Gets or sets the receipt field that measures work.</summary>
    /// <value>The default value is <see cref="WorkMeasure.Samples"/>.</value>
    public WorkMeasure Measure { get; set; } = WorkMeasure.Samples;

    /// <summary>Gets or sets a value indicating whether unattested work counts (rejected work never counts).</summary>
    /// <value>The default value is <see langword="false"/>.</value>
    public bool CountUnattested { get; set; }

    /// <summary>Distributes <paramref name="pool"/> over the verified work in <paramref name="receipts"/>.</summary>
    /// <param name="epoch">The epoch.</param>
    /// <param name="receipts">The epoch's receipts (for example from <see cref="ContributionLedger.ReadEpochReceipts"/>).</param>
    /// <param name="pool">The pool to distribute (this epoch's reward plus the previous <see cref="RewardDistribution.CarriedRemainder"/>).</param>
    /// <param name="incomingCredits">Credits carried from the previous epoch (<see cref="RewardDistribution.CarriedCredits"/>), or <see langword="null"/>.</param>
    /// <returns>The distribution.</returns>
    /// <exception cref="OverflowException">The pool plus incoming credits exceed <see cref="UInt128.MaxValue"/>.</exception>
    public RewardDistribution Distribute(long epoch, IEnumerable<ContributionReceipt> receipts, UInt128 pool, IReadOnlyDictionary<string, UInt128>? incomingCredits = null)
    {
        ArgumentNullException.ThrowIfNull(receipts);
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);

        // One contribution per (job, round, worker). Duplicates count once, with the smallest work claimed, so the
        // result does not depend on receipt order and work is never over-counted.
        var perRound = new Dictionary<(string Job, long Round, string Worker), ulong>();
        foreach (ContributionReceipt r in receipts)
        {
            ArgumentNullException.ThrowIfNull(r, nameof(receipts));
            bool counts = r.Verdict == AttestationVerdict.Verified || (CountUnattested && r.Verdict == AttestationVerdict.Unattested);
            if (!counts)
            {
                continue;
            }

            ulong w = Measure switch
            {
                WorkMeasure.Samples => r.SamplesProcessed,
                WorkMeasure.Tokens => r.TokensProcessed,
                WorkMeasure.ComputeMilliseconds => r.ComputeMilliseconds,
                _ => throw new InvalidOperationException($"Unknown work measure {Measure}."),
            };
            var key = (r.JobId, r.Round, r.WorkerId);
            perRound[key] = perRound.TryGetValue(key, out ulong existing) ? Math.Min(existing, w) : w;
        }

        var work = new SortedDictionary<string, UInt128>(StringComparer.Ordinal);
        foreach (KeyValuePair<(string Job, long Round, string Worker), ulong> kv in perRound)
        {
            string worker = kv.Key.Worker;
            work[worker] = (work.TryGetValue(worker, out UInt128 prev) ? prev : 0) + kv.Value; // ≤ 2^64 rounds × 2^64: fits in u128
        }

        UInt128 totalWork = 0;
        foreach (UInt128 w in work.Values)
        {
            totalWork = checked(totalWork + w);
        }

        // Shares: floor(pool * w / W) with a 256-bit intermediate (BigInteger: exact integer arithmetic).
        var owed = new SortedDictionary<string, (UInt128 Work, UInt128 Amount)>(StringComparer.Ordinal);
        UInt128 distributed = 0;
        if (totalWork > 0)
        {
            var bigPool = (BigInteger)pool;
            var bigTotal = (BigInteger)totalWork;
            foreach (KeyValuePair<string, UInt128> kv in work)
            {
                var share = (UInt128)(bigPool * (BigInteger)kv.Value / bigTotal);
                owed[kv.Key] = (kv.Value, share);
                distributed += share; // Σ floor(pool·w/W) ≤ pool
            }
        }

        UInt128 remainder = pool - distributed;
        if (incomingCredits is not null)
        {
            foreach (KeyValuePair<string, UInt128> kv in incomingCredits)
            {
                ArgumentNullException.ThrowIfNull(kv.Key, nameof(incomingCredits));
                (UInt128 w, UInt128 a) = owed.TryGetValue(kv.Key, out var cur) ? cur : (UInt128.Zero, UInt128.Zero);
                owed[kv.Key] = (w, checked(a + kv.Value));
            }
        }

        var payouts = new List<WorkerPayout>();
        var credits = new SortedDictionary<string, UInt128>(StringComparer.Ordinal);
        foreach (KeyValuePair<string, (UInt128 Work, UInt128 Amount)> kv in owed)
        {
            if (kv.Value.Amount == 0)
            {
                continue;
            }

            if (kv.Value.Amount >= MinimumPayout)
            {
                payouts.Add(new WorkerPayout(kv.Key, kv.Value.Work, kv.Value.Amount));
            }
            else
            {
                credits[kv.Key] = kv.Value.Amount;
            }
        }

        return new RewardDistribution(epoch, pool, payouts, credits, remainder, totalWork);
    }
}
