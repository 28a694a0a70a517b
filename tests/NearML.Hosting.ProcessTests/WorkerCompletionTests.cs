namespace NearML.Hosting.ProcessTests;

/// <summary>When the coordinator completes the job, the worker sample exits by itself with code 0 (issue 14 §6).</summary>
[TestClass]
public sealed class WorkerCompletionTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    [TestCategory("Process")]
    [Timeout(150_000, CooperativeCancellation = true)]
    public async Task Worker_exits_0_after_the_job_completes()
    {
        await using var cluster = new TestCluster(TestContext, "worker-done");
        var coordinator = await cluster.StartCoordinatorAsync(0, "--rounds", "2", "--steps", "5", "--batch-size", "32", "--min-workers", "2", "--round-timeout", "00:00:40");
        var w0 = cluster.StartWorker("w0");
        var w1 = cluster.StartWorker("w1");
        var timeout = TimeSpan.FromSeconds(90);

        await coordinator.WaitForStdoutAsync("^TRAINING COMPLETE rounds=2 ", timeout, 0, cluster.Token);
        Assert.AreEqual(0, await w0.WaitForExitAsync(timeout, cluster.Token), cluster.Transcripts());
        Assert.AreEqual(0, await w1.WaitForExitAsync(timeout, cluster.Token), cluster.Transcripts());
        await w0.WaitForStdoutAsync("^STATE id=w0 state=Completed$", TimeSpan.FromSeconds(5), 0, cluster.Token);
        Assert.IsTrue(w0.StdoutLines.Any(l => l == "STOPPED id=w0"), "the status lines end with STOPPED\n" + w0.Transcript());
        Assert.IsTrue(w0.StdoutLines.Any(l => l.StartsWith("RECEIPT id=w0 round=1 ", StringComparison.Ordinal)), "w0 earned the last round's receipt before exiting\n" + w0.Transcript());
        Assert.AreEqual(0, await coordinator.WaitForExitAsync(timeout, cluster.Token), cluster.Transcripts());
        cluster.Passed();
    }
}
