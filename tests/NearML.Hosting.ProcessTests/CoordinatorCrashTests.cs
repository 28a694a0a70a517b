using System.Globalization;

namespace NearML.Hosting.ProcessTests;

[TestClass]
public sealed class CoordinatorCrashTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    [TestCategory("Process")]
    [TestCategory("Slow")]
    [Timeout(150_000, CooperativeCancellation = true)]
    public async Task Coordinator_killed_mid_round_resumes_from_the_last_completed_round_without_ledger_gap_or_duplicate()
    {
        await using var cluster = new TestCluster(TestContext, "coordinator-kill");
        var port = TestCluster.FreePort();
        string[] coordinatorArgs = ["--rounds", "6", "--steps", "120", "--min-workers", "2", "--round-timeout", "00:00:40"];
        var first = await cluster.StartCoordinatorAsync(port, coordinatorArgs);
        var w0 = cluster.StartWorker("w0");
        var w1 = cluster.StartWorker("w1");
        var timeout = TimeSpan.FromSeconds(60);

        // Two rounds complete, the workers start the third, then the coordinator dies.
        var firstDone = await first.WaitForStdoutAsync(@"^ROUND (\d+) COMPLETE", timeout, 0, cluster.Token);
        var r1 = long.Parse(firstDone.Groups[1].Value, CultureInfo.InvariantCulture);
        await first.WaitForStdoutAsync($@"^ROUND {r1 + 1} COMPLETE", timeout, 0, cluster.Token);
        var lastCompleted = r1 + 1;
        await w0.WaitForTrainingAsync("w0", lastCompleted + 1, timeout, cluster.Token);
        first.Kill();
        await first.WaitForExitAsync(TimeSpan.FromSeconds(10), cluster.Token);
        Assert.IsFalse(TestCluster.CompletedRounds(first).Any(r => r.Round > lastCompleted), "a round completed after the kill point");
        TestContext.WriteLine($"SIGKILLed the coordinator during round {lastCompleted + 1}");

        // Same data folder, same port: it resumes; the workers (never restarted) reconnect by themselves.
        var second = await cluster.StartCoordinatorAsync(port, coordinatorArgs);
        Assert.AreEqual(0, await second.WaitForExitAsync(TimeSpan.FromSeconds(100), cluster.Token), cluster.Transcripts());
        var resumed = TestCluster.CompletedRounds(second);
        Assert.IsNotEmpty(resumed, cluster.Transcripts());
        Assert.AreEqual(lastCompleted + 1, resumed[0].Round, "the restarted coordinator should first complete the round that was interrupted");
        Assert.IsTrue(w0.StdoutLines.Any(l => l.StartsWith($"RECEIPT id=w0 round={resumed[^1].Round}", StringComparison.Ordinal)), "w0 got no receipt after the restart");
        Assert.IsTrue(w1.StdoutLines.Any(l => l.StartsWith($"RECEIPT id=w1 round={resumed[^1].Round}", StringComparison.Ordinal)), "w1 got no receipt after the restart");

        // Ledger: the chain verifies; one receipt per (round, worker); every round from the first to the last is there.
        var receipts = cluster.ReadLedger();
        var keys = receipts.Select(r => (r.Round, r.WorkerId)).ToList();
        Assert.HasCount(keys.Distinct().Count(), keys, "duplicate receipt for a (round, worker)");
        var rounds = receipts.Select(r => r.Round).Distinct().Order().ToList();
        CollectionAssert.AreEqual(Enumerable.Range((int)rounds[0], rounds.Count).Select(i => (long)i).ToList(), rounds, "gap in the ledger's rounds");
        Assert.AreEqual(resumed[^1].Round, rounds[^1]);
        Assert.AreEqual(r1, rounds[0]);
        cluster.Passed();
    }
}
