using System.Globalization;

namespace NearML.Hosting.ProcessTests;

[TestClass]
public sealed class WorkerCrashTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    [TestCategory("Process")]
    [TestCategory("Slow")]
    [Timeout(150_000, CooperativeCancellation = true)]
    public async Task Worker_killed_mid_round_gets_no_receipt_for_it_and_rejoins_later()
    {
        await using var cluster = new TestCluster(TestContext, "worker-kill");
        var coordinator = await cluster.StartCoordinatorAsync(0, "--rounds", "6", "--steps", "120", "--min-workers", "3", "--round-timeout", "00:00:40");
        var w0 = cluster.StartWorker("w0");
        var w1 = cluster.StartWorker("w1");
        var victim = cluster.StartWorker("w2");
        var timeout = TimeSpan.FromSeconds(60);

        // A round in which the victim is training (part of the cohort), after everyone took part in one full round.
        var first = await coordinator.WaitForStdoutAsync(@"^ROUND (\d+) COMPLETE", timeout, 0, cluster.Token);
        var firstRound = long.Parse(first.Groups[1].Value, CultureInfo.InvariantCulture);
        var killedRound = firstRound + 1;
        await victim.WaitForTrainingAsync("w2", killedRound, timeout, cluster.Token);
        victim.Kill();
        TestContext.WriteLine($"SIGKILLed w2 while it trained round {killedRound}");

        // The round completes without it (dropout: the deadline is not needed, the connection reset says it left).
        var done = await coordinator.WaitForStdoutAsync($@"^ROUND {killedRound} COMPLETE acc=\S+ accepted=(\d+) cohort=(\d+)", timeout, 0, cluster.Token);
        Assert.AreEqual("3", done.Groups[2].Value, "the killed worker should have been in the round's cohort");
        Assert.AreEqual("2", done.Groups[1].Value, $"round {killedRound} should credit exactly the two survivors");

        // Restarted with the same identity, it rejoins and earns a receipt for a later round.
        var again = cluster.StartWorker("w2");
        var receipt = await again.WaitForStdoutAsync(@"^RECEIPT id=w2 round=(\d+)", TimeSpan.FromSeconds(90), 0, cluster.Token);
        Assert.IsGreaterThan(killedRound, long.Parse(receipt.Groups[1].Value, CultureInfo.InvariantCulture));

        Assert.AreEqual(0, await coordinator.WaitForExitAsync(TimeSpan.FromSeconds(90), cluster.Token), cluster.Transcripts());
        var receipts = cluster.ReadLedger();
        Assert.IsFalse(receipts.Any(r => r.Round == killedRound && r.WorkerId == "w2"), "the ledger credits w2 for the round it was killed in");
        Assert.IsTrue(receipts.Any(r => r.Round > killedRound && r.WorkerId == "w2"), "the ledger has no later receipt for w2");
        Assert.IsTrue(receipts.Any(r => r.Round == killedRound && r.WorkerId == "w0"));
        _ = w0;
        _ = w1;
        cluster.Passed();
    }
}
