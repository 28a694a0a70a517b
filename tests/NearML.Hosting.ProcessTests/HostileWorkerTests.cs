using System.Globalization;
using NearML.Core.Contracts;
using NearML.Core.Protocol;
using NearML.Hosting.State;
using NearML.Ledger;

namespace NearML.Hosting.ProcessTests;

/// <summary>
/// A coordinator process, a real honest worker process and a hostile worker (this test process, speaking the public
/// protocol): the hostile worker claims 2^62 samples on every update, sends all-zero and huge-norm updates, and tries to
/// take an offline worker's id with a new key. The honest worker keeps its fair payout, the model keeps learning, the
/// impersonation is refused, and the real owner of the id gets back in.
/// </summary>
[TestClass]
public sealed class HostileWorkerTests
{
    private const int Rounds = 9;
    private const int Steps = 20;
    private const int Batch = 32;

    public TestContext TestContext { get; set; } = null!;

    private static TimeSpan Wait => TimeSpan.FromSeconds(90);

    /// <summary>Round r: noise (accepted, credited only H × batch), then zeros, then a huge norm (both rejected, unpaid).</summary>
    private static HostileUpdate PlanOf(ulong round) => (round % 3) switch
    {
        0 => HostileUpdate.NoiseWithHugeClaim,
        1 => HostileUpdate.ZeroWithHugeClaim,
        _ => HostileUpdate.HugeNorm,
    };

    [TestMethod]
    [TestCategory("Process")]
    [TestCategory("Slow")]
    [Timeout(480_000, CooperativeCancellation = true)]
    public async Task Hostile_worker_gets_no_outsized_pay_cannot_poison_the_model_and_cannot_take_an_offline_workers_id()
    {
        await using var cluster = new TestCluster(TestContext, "hostile");
        var coordinator = await cluster.StartCoordinatorAsync(
            0,
            "--rounds", Rounds.ToString(CultureInfo.InvariantCulture), "--steps", Steps.ToString(CultureInfo.InvariantCulture), "--batch-size", Batch.ToString(CultureInfo.InvariantCulture),
            "--min-workers", "2", "--round-timeout", "00:00:40", "--settle-every", Rounds.ToString(CultureInfo.InvariantCulture),
            "--NearML:Coordinator:EvaluationSamples=2000");

        // 1. The honest worker "h1" joins once (its id is bound to its key), then goes offline.
        var h1 = cluster.StartWorker("h1");
        await coordinator.WaitForStderrAsync(@"Worker id 'h1' is now bound to key", Wait, 0, cluster.Token);
        h1.Kill();
        await coordinator.WaitForStderrAsync(@"Worker 'h1' left", Wait, 0, cluster.Token);

        // 2. The hostile worker tries to take "h1" with a new key: refused, with the reason.
        using var mallory = Ed25519Identity.Generate();
        var refused = await Assert.ThrowsExactlyAsync<AdmissionRefusedException>(
            () => HostileWorker.JoinAsync(cluster.Port, cluster.Fingerprint, "h1", mallory, PlanOf, cluster.Token));
        Assert.AreEqual(RefusalReason.DuplicateIdentity, refused.Reason, refused.CoordinatorMessage);
        StringAssert.Contains(refused.CoordinatorMessage, "bound to another identity key");

        // ... and a rotation it signs itself (naming h1's key as the previous one) does not verify.
        var forged = KeyRotationProof.Create(mallory, "h1", mallory.PublicKey.Span);
        var forgedRefusal = await Assert.ThrowsExactlyAsync<AdmissionRefusedException>(
            () => HostileWorker.JoinAsync(cluster.Port, cluster.Fingerprint, "h1", mallory, PlanOf, cluster.Token, forged));
        Assert.AreEqual(RefusalReason.BadSignature, forgedRefusal.Reason, forgedRefusal.CoordinatorMessage);

        // 3. The real h1 comes back (same data folder, same key) and is admitted; then it leaves for good.
        var mark = coordinator.StderrCount;
        var h1Again = cluster.StartWorker("h1");
        await coordinator.WaitForStderrAsync(@"Admitted worker 'h1'", Wait, mark, cluster.Token);
        h1Again.Kill();
        await coordinator.WaitForStderrAsync(@"Worker 'h1' left", Wait, mark, cluster.Token);

        // 4. Training: honest h0 and the hostile "mallory" form every cohort.
        var h0 = cluster.StartWorker("h0");
        await coordinator.WaitForStderrAsync(@"Admitted worker 'h0'", Wait, 0, cluster.Token);
        await using var hostile = await HostileWorker.JoinAsync(cluster.Port, cluster.Fingerprint, "mallory", mallory, PlanOf, cluster.Token);
        Assert.AreEqual(0, await coordinator.WaitForExitAsync(TimeSpan.FromSeconds(300), cluster.Token), cluster.Transcripts());

        var rounds = TestCluster.CompletedRounds(coordinator);
        Assert.HasCount(Rounds, rounds, cluster.Transcripts());
        foreach (var r in rounds)
        {
            TestContext.WriteLine($"round {r.Round}: accuracy {r.Accuracy:0.0000}, accepted {r.Accepted}/{r.Cohort}, rejected {r.Rejected}; hostile sent {(hostile.Sent.TryGetValue((ulong)r.Round, out var k) ? k.ToString() : "nothing")}");
        }

        // Every round had both; the zero and huge-norm rounds rejected exactly the hostile update.
        Assert.IsTrue(rounds.All(r => r.Cohort == 2), cluster.Transcripts());
        foreach (var r in rounds)
        {
            var expectRejected = PlanOf((ulong)r.Round) == HostileUpdate.NoiseWithHugeClaim ? 0 : 1;
            Assert.AreEqual(expectRejected, r.Rejected, $"round {r.Round}\n{cluster.Transcripts()}");
        }

        // The model is not poisoned: it learns, and no round collapses it to chance (0.1).
        Assert.IsTrue(rounds.Skip(1).All(r => r.Accuracy > 0.3), "a round collapsed the model:\n" + cluster.Transcripts());
        Assert.IsGreaterThan(0.6, rounds[^1].Accuracy, cluster.Transcripts());
        var log = string.Join("\n", coordinator.StderrLines);
        StringAssert.Contains(log, "update of worker 'mallory' rejected (ZeroNorm)");
        StringAssert.Matches(log, new System.Text.RegularExpressions.Regex(@"update of worker 'mallory' rejected \(Norm(AboveLimit|FarAboveMedian)\)"));
        StringAssert.Contains(log, $"worker 'mallory' claimed {HostileUpdate_HugeClaimText} samples; credited {Steps * Batch}");

        // Receipts: the hostile worker is paid only for its accepted (noise) rounds, each at H × batch, never 2^62.
        var receipts = cluster.ReadLedger();
        var malloryReceipts = receipts.Where(r => r.WorkerId == "mallory").ToList();
        var honestReceipts = receipts.Where(r => r.WorkerId == "h0").ToList();
        CollectionAssert.AreEquivalent(
            Enumerable.Range(0, Rounds).Where(r => PlanOf((ulong)r) == HostileUpdate.NoiseWithHugeClaim).Select(r => (long)r).ToList(),
            malloryReceipts.Select(r => r.Round).ToList(),
            "a rejected update earns no receipt");
        Assert.IsTrue(malloryReceipts.All(r => r.SamplesProcessed == (ulong)(Steps * Batch)), "credited work is capped at what the assignment allows");
        Assert.HasCount(Rounds, honestReceipts);
        Assert.IsTrue(honestReceipts.All(r => r.SamplesProcessed is > 0 and <= (ulong)(Steps * Batch)));

        // Payout: the settled transfers (and the reward policy over the ledger) give h0 at least its fair share: its
        // credited work over all credited work (9 rounds of 640 samples against the hostile worker's 3 noise rounds).
        using var state = new CoordinatorStateStore(Path.Combine(cluster.CoordinatorData, "coordinator.db"));
        var settlements = state.ReadSettlements();
        var paid = settlements.GroupBy(s => s.Receiver).ToDictionary(g => g.Key, g => g.Sum(s => (double)UInt128.Parse(s.Amount, CultureInfo.InvariantCulture)));
        var pool = 1e24;
        TestContext.WriteLine($"payouts: {string.Join(", ", paid.Select(p => $"{p.Key}={p.Value / pool:P2}"))}");
        var honestWork = honestReceipts.Sum(r => (double)r.SamplesProcessed);
        var fair = honestWork / (honestWork + malloryReceipts.Sum(r => (double)r.SamplesProcessed));
        Assert.IsGreaterThanOrEqualTo(fair - 1e-6, paid["h0"] / pool, $"h0 was paid {paid["h0"] / pool:P2}, its fair share is {fair:P2}");
        Assert.IsGreaterThanOrEqualTo(0.7, paid["h0"] / pool, "the honest worker did 9 of the 12 credited rounds of work");
        Assert.IsLessThanOrEqualTo(0.3, paid.GetValueOrDefault("mallory") / pool);
        Assert.IsNull(hostile.Fault, hostile.Fault?.ToString());
        Assert.IsFalse(h0.HasExited && h0.ExitCode != 0, cluster.Transcripts());
        cluster.Passed();
    }

    private static string HostileUpdate_HugeClaimText => HostileWorker.HugeClaim.ToString(CultureInfo.InvariantCulture);
}
