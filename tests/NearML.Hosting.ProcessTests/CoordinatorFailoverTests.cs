using System.Diagnostics;
using System.Globalization;
using NearML.Hosting.State;
using NearML.Ledger;
using NearML.PostgreSql;
using NearML.PostgreSql.Tests;

namespace NearML.Hosting.ProcessTests;

/// <summary>
/// Coordinator failover on PostgreSQL (docs/failover.md): two coordinator processes on one database and one data folder,
/// two worker processes given both addresses; the serving coordinator is SIGKILLed after a round; the standby takes the
/// lease, loads the state like a restart and serves; the job completes with nothing lost or doubled in the database.
/// </summary>
[TestClass]
public sealed class CoordinatorFailoverTests
{
    private const string Schema = "failover";

    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    [TestCategory("Process")]
    [TestCategory("Slow")]
    [Timeout(180_000, CooperativeCancellation = true)]
    public async Task Serving_coordinator_killed_the_standby_takes_over_within_10_s_and_no_round_receipt_or_payout_is_lost_or_doubled()
    {
        var bin = PostgreSqlInstance.FindBin();
        if (bin is null)
        {
            Assert.Inconclusive("PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin or NEARML_PG_BIN: install Debian's 'postgresql' package (.ci/run does).");
        }

        var total = Stopwatch.StartNew();
        using var server = PostgreSqlInstance.Start(bin);
        await using var cluster = new TestCluster(TestContext, "failover");
        var timeout = TimeSpan.FromSeconds(60);
        var primaryPort = TestCluster.FreePort();
        var standbyPort = TestCluster.FreePort();
        string[] job =
        [
            "--rounds", "5", "--steps", "40", "--min-workers", "2", "--round-timeout", "00:00:30", "--settle-every", "2",
            "--postgres", server.ConnectionString, "--postgres-schema", Schema,
        ];

        // The primary takes the lease and listens; the standby (same database, same data folder) prints STANDBY and waits.
        var primary = await cluster.StartCoordinatorAsync(primaryPort, job);
        await using var standby = SampleProcess.Start(
            "Coordinator", "standby", cluster.Root,
            ["--port", standbyPort.ToString(CultureInfo.InvariantCulture), "--data", cluster.CoordinatorData, "--allow-simulated-attestation", "--heartbeat", "00:00:02", .. job]);
        await standby.WaitForStdoutAsync("^STANDBY ", timeout, 0, cluster.Token);

        string[] both = ["--coordinator", $"127.0.0.1:{primaryPort}", "--coordinator", $"127.0.0.1:{standbyPort}"];
        var w0 = cluster.StartWorker("w0", both);
        var w1 = cluster.StartWorker("w1", both);

        // After round 1, SIGKILL the serving coordinator: PostgreSQL ends its sessions, which releases the lease.
        await primary.WaitForStdoutAsync("^ROUND 1 COMPLETE", timeout, 0, cluster.Token);
        var killed = Stopwatch.StartNew();
        primary.Kill();
        await primary.WaitForExitAsync(TimeSpan.FromSeconds(10), cluster.Token);
        var lastBeforeKill = TestCluster.CompletedRounds(primary).Max(r => r.Round);
        await standby.WaitForStdoutAsync($"^LISTENING port={standbyPort} ", TimeSpan.FromSeconds(30), 0, cluster.Token);
        var takeover = killed.Elapsed;
        TestContext.WriteLine($"takeover: the standby listened {takeover.TotalSeconds:0.00} s after the SIGKILL (primary's last round {lastBeforeKill})");
        Console.WriteLine($"FAILOVER takeover_s={takeover.TotalSeconds.ToString("0.00", CultureInfo.InvariantCulture)}");
        Assert.IsLessThan(TimeSpan.FromSeconds(10), takeover, $"the standby took {takeover.TotalSeconds:0.0} s to serve\n{cluster.Transcripts()}\n{standby.Transcript()}");
        Assert.AreEqual(
            cluster.Fingerprint,
            (await standby.WaitForStdoutAsync(@"^LISTENING port=\d+ fingerprint=(\S+)", timeout, 0, cluster.Token)).Groups[1].Value,
            "both coordinators present the same certificate (the development certificate in the shared data folder)");

        // The workers (never restarted) reconnect to the standby by themselves, and the job completes there.
        Assert.AreEqual(0, await standby.WaitForExitAsync(TimeSpan.FromSeconds(90), cluster.Token), standby.Transcript() + cluster.Transcripts());
        var resumed = TestCluster.CompletedRounds(standby);
        Assert.IsNotEmpty(resumed, standby.Transcript());
        Assert.AreEqual(4, resumed[^1].Round);
        Assert.IsTrue(resumed[0].Round <= lastBeforeKill + 1, "the standby skipped a round");
        Assert.AreEqual(0, await w0.WaitForExitAsync(timeout, cluster.Token), w0.Transcript());
        Assert.AreEqual(0, await w1.WaitForExitAsync(timeout, cluster.Token), w1.Transcript());
        Assert.IsTrue(w0.StdoutLines.Any(l => l.StartsWith("RECEIPT id=w0 round=4", StringComparison.Ordinal)), "w0 got no receipt from the standby");
        Assert.IsTrue(w1.StdoutLines.Any(l => l.StartsWith("RECEIPT id=w1 round=4", StringComparison.Ordinal)), "w1 got no receipt from the standby");

        // The database: opening the state verifies the ledger chain, its anchor and every receipt signature.
        using var backend = new PostgreSqlStateBackend(new PostgreSqlStateOptions { ConnectionString = server.ConnectionString, Schema = Schema });
        using var folder = CoordinatorStateFolder.Open(cluster.CoordinatorData, backend, folderJob(backend, cluster.CoordinatorData));
        CollectionAssert.AreEqual(new long[] { 0, 1, 2, 3, 4 }, folder.State.ReadRounds().Select(r => r.Round).ToList(), "rounds not contiguous, or one recorded twice");
        Assert.IsTrue(folder.Ledger.Verify(cancellationToken: cluster.Token).IsValid);
        Assert.IsTrue(folder.Ledger.VerifySignatures(folder.Signer.PublicKey, cancellationToken: cluster.Token).IsValid);
        var receipts = folder.Ledger.Store.ListEpochs().SelectMany(e => folder.Ledger.ReadEpochReceipts(e)).Select(r => r.Receipt).ToList();
        var keys = receipts.Select(r => (r.Round, r.WorkerId)).ToList();
        Assert.HasCount(keys.Distinct().Count(), keys, "a (round, worker) was credited twice");
        CollectionAssert.AreEqual(new long[] { 0, 1, 2, 3, 4 }, receipts.Select(r => r.Round).Distinct().Order().ToList(), "a round has no receipt");
        foreach (var r in receipts.GroupBy(r => r.Round))
        {
            CollectionAssert.AreEquivalent(new[] { "w0", "w1" }, r.Select(x => x.WorkerId).ToList(), $"round {r.Key}: both workers contributed and are credited once");
        }

        // Settlement (dry run): epochs 0, 1, 2 (rounds 0–1, 2–3, 4) each settled once; no receiver paid twice in an epoch.
        var settlements = folder.State.ReadSettlements();
        CollectionAssert.AreEqual(new long[] { 0, 1, 2 }, settlements.Select(s => s.Epoch).Distinct().Order().ToList());
        var payouts = settlements.Select(s => (s.Epoch, s.Receiver)).ToList();
        Assert.HasCount(payouts.Distinct().Count(), payouts, "a payout was made twice");
        Assert.HasCount(settlements.Select(s => s.Nonce).Distinct().Count(), settlements, "a transaction nonce was used twice");
        Assert.IsTrue(settlements.All(s => s.DryRun));
        TestContext.WriteLine($"total {total.Elapsed.TotalSeconds:0.0} s; {receipts.Count} receipts, {settlements.Count} dry-run payouts");
        cluster.Passed();

        static string folderJob(PostgreSqlStateBackend backend, string data)
        {
            using var state = backend.OpenState(data);
            return state.ReadJobId() ?? throw new AssertFailedException("no job recorded in PostgreSQL");
        }
    }
}
