using System.Numerics;
using System.Security.Cryptography;
using FsCheck;
using FsCheck.Fluent;

namespace NearML.Ledger.Tests;

[TestClass]
public sealed class RewardPolicyTests
{
    private static ContributionReceipt R(string worker, ulong samples, long round = 0, AttestationVerdict verdict = AttestationVerdict.Verified) =>
        new("job", round, worker, samples, 0, 1, 1, verdict, new byte[32], 0);

    [TestMethod]
    public void Proportional_split_with_remainder_carried()
    {
        var d = new RewardPolicy().Distribute(3, [R("a.near", 1), R("b.near", 1), R("c.near", 1)], 100);
        CollectionAssert.AreEqual(new[] { "a.near", "b.near", "c.near" }, d.Payouts.Select(p => p.WorkerId).ToArray());
        Assert.IsTrue(d.Payouts.All(p => p.Amount == 33));
        Assert.AreEqual((UInt128)1, d.CarriedRemainder);
        Assert.AreEqual((UInt128)99, d.Paid);
    }

    [TestMethod]
    public void Rejected_unattested_and_duplicate_receipts_do_not_count()
    {
        var d = new RewardPolicy().Distribute(0,
            [R("a.near", 10), R("a.near", 10), R("b.near", 10, verdict: AttestationVerdict.Rejected), R("c.near", 10, verdict: AttestationVerdict.Unattested), R("d.near", 10, round: 1)],
            1000);
        CollectionAssert.AreEqual(new[] { "a.near", "d.near" }, d.Payouts.Select(p => p.WorkerId).ToArray());
        Assert.AreEqual((UInt128)500, d.Payouts[0].Amount);
        var withUnattested = new RewardPolicy { CountUnattested = true }.Distribute(0, [R("c.near", 10, verdict: AttestationVerdict.Unattested)], 7);
        Assert.AreEqual((UInt128)7, withUnattested.Paid);
    }

    [TestMethod]
    public void Below_minimum_becomes_a_credit_paid_once_it_reaches_the_minimum()
    {
        var policy = new RewardPolicy { MinimumPayout = 40 };
        var e0 = policy.Distribute(0, [R("big.near", 90), R("small.near", 10)], 300);
        Assert.AreEqual((UInt128)270, e0.Paid);
        Assert.AreEqual((UInt128)30, e0.CarriedCredits["small.near"]);
        var e1 = policy.Distribute(1, [R("big.near", 90), R("small.near", 10)], 300 + e0.CarriedRemainder, e0.CarriedCredits);
        Assert.AreEqual((UInt128)60, e1.Payouts.Single(p => p.WorkerId == "small.near").Amount);
        Assert.IsEmpty(e1.CarriedCredits);
    }

    [TestMethod]
    public void No_verified_work_carries_the_whole_pool()
    {
        var d = new RewardPolicy().Distribute(0, [R("a.near", 5, verdict: AttestationVerdict.Rejected)], 12345);
        Assert.IsEmpty(d.Payouts);
        Assert.AreEqual((UInt128)12345, d.CarriedRemainder);
    }

    [TestMethod]
    public void Maximum_pool_and_work_do_not_overflow()
    {
        var d = new RewardPolicy().Distribute(0, [R("a.near", ulong.MaxValue), R("b.near", ulong.MaxValue), R("c.near", 1)], UInt128.MaxValue);
        Assert.AreEqual(UInt128.MaxValue, d.Paid + d.CarriedRemainder);
        Assert.AreEqual(d.Payouts[0].Amount, d.Payouts[1].Amount);
    }

    [TestMethod]
    public void Credits_plus_pool_beyond_u128_throw()
    {
        Assert.ThrowsExactly<OverflowException>(() => new RewardPolicy().Distribute(0, [R("a.near", 1)], UInt128.MaxValue, new Dictionary<string, UInt128> { ["a.near"] = 1 }));
    }

    private static readonly string[] Workers = ["a.near", "b.near", "c.near", "d.near", "e.near", "f.near"];

    private static Gen<ContributionReceipt> ReceiptGen =>
        from w in Gen.Elements(Workers)
        from round in Gen.Choose(0, 5)
        from samples in Gen.Choose(0, int.MaxValue).Select(x => (ulong)x * (ulong)x) // up to ~2^62
        from verdict in Gen.Elements(AttestationVerdict.Verified, AttestationVerdict.Verified, AttestationVerdict.Rejected, AttestationVerdict.Unattested)
        select R(w, samples, round, verdict);

    private static Gen<UInt128> AmountGen =>
        from hi in Gen.Choose(0, int.MaxValue)
        from mid in Gen.Choose(0, int.MaxValue)
        from lo in Gen.Choose(0, int.MaxValue)
        from shift in Gen.Choose(0, 66)
        select ((UInt128)(ulong)hi << 62 | (UInt128)(ulong)mid << 31 | (ulong)lo) >> shift;

    private sealed record Case(List<ContributionReceipt> Receipts, UInt128 Pool, UInt128 Minimum, Dictionary<string, UInt128> Credits);

    private static Arbitrary<Case> Cases =>
        (from receipts in Gen.ListOf(ReceiptGen)
         from pool in AmountGen
         from min in Gen.Choose(0, 1_000_000).Select(x => (UInt128)x)
         from creditWorkers in Gen.SubListOf(Workers)
         from creditAmounts in Gen.ArrayOf(Gen.Choose(0, 999_999).Select(x => (UInt128)x), creditWorkers.Count)
         select new Case(receipts.ToList(), pool, min, creditWorkers.Zip(creditAmounts).ToDictionary(p => p.First, p => p.Second))).ToArbitrary();

    [TestMethod]
    public void Property_every_unit_is_paid_credited_or_carried()
    {
        Prop.ForAll(Cases, c =>
        {
            var d = new RewardPolicy { MinimumPayout = c.Minimum }.Distribute(0, c.Receipts, c.Pool, c.Credits);
            BigInteger inflow = (BigInteger)c.Pool + c.Credits.Values.Aggregate(BigInteger.Zero, (s, v) => s + (BigInteger)v);
            BigInteger outflow = (BigInteger)d.Paid + d.CarriedCredits.Values.Aggregate(BigInteger.Zero, (s, v) => s + (BigInteger)v) + (BigInteger)d.CarriedRemainder;
            return inflow == outflow;
        }).QuickCheckThrowOnFailure();
    }

    [TestMethod]
    public void Property_payouts_respect_minimum_and_proportionality()
    {
        Prop.ForAll(Cases, c =>
        {
            var policy = new RewardPolicy { MinimumPayout = c.Minimum };
            var d = policy.Distribute(0, c.Receipts, c.Pool); // no credits: pure proportional shares
            bool minimumOk = d.Payouts.All(p => p.Amount >= c.Minimum && p.Amount > 0);
            // Remainder is below the number of workers with work (floor loses < 1 per worker), unless nothing was verified.
            int workers = c.Receipts.Where(r => r.Verdict == AttestationVerdict.Verified).Select(r => r.WorkerId).Distinct().Count();
            bool remainderOk = d.TotalWork == 0 ? d.CarriedRemainder == c.Pool : d.CarriedRemainder < (UInt128)Math.Max(1, workers);
            // More work never means less pay: amounts are monotone in work.
            var ordered = d.Payouts.OrderBy(p => p.Work).ToList();
            bool monotone = ordered.Zip(ordered.Skip(1)).All(p => p.First.Amount <= p.Second.Amount);
            // Each payout equals floor(pool * work / total).
            bool exact = d.Payouts.All(p => (BigInteger)p.Amount == (BigInteger)c.Pool * (BigInteger)p.Work / (BigInteger)d.TotalWork);
            return minimumOk && remainderOk && monotone && exact;
        }).QuickCheckThrowOnFailure();
    }

    [TestMethod]
    public void Property_distribution_is_independent_of_receipt_order()
    {
        Prop.ForAll(Cases, c =>
        {
            var policy = new RewardPolicy { MinimumPayout = c.Minimum };
            var a = policy.Distribute(0, c.Receipts, c.Pool, c.Credits);
            var shuffled = c.Receipts.OrderBy(r => Convert.ToHexString(SHA256.HashData(BitConverter.GetBytes(r.SamplesProcessed)))).ToList();
            var b = policy.Distribute(0, shuffled, c.Pool, c.Credits);
            return a.Payouts.SequenceEqual(b.Payouts) && a.CarriedRemainder == b.CarriedRemainder;
        }).QuickCheckThrowOnFailure();
    }
}
