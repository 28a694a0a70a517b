using System.Globalization;
using Microsoft.Data.Sqlite;

namespace NearML.Hosting.ProcessTests;

/// <summary>
/// Issue 14 §5 with a real coordinator process: one job runs to completion with two workers; each test copies its state
/// folder, damages it the way an operator (or a disk) could, and starts the coordinator sample on it. Every damage is a
/// refusal — exit code 1 and one <c>FAILED</c> line naming the file — and a moved folder resumes.
/// </summary>
[TestClass]
public sealed class StateFolderProcessTests
{
    private static readonly string[] JobArgs = ["--steps", "20", "--batch-size", "32", "--settle-every", "2", "--round-timeout", "00:00:30"];
    private static TestCluster? s_baseline;
    private static bool s_allPassed = true;
    private static int s_entries;

    public TestContext TestContext { get; set; } = null!;

    [ClassInitialize]
    public static async Task RunBaselineJobAsync(TestContext context)
    {
        s_baseline = new TestCluster(context, "state-baseline");
        var coordinator = await s_baseline.StartCoordinatorAsync(0, [.. JobArgs, "--rounds", "3", "--min-workers", "2"]);
        s_baseline.StartWorker("w0");
        s_baseline.StartWorker("w1");
        var code = await coordinator.WaitForExitAsync(TimeSpan.FromSeconds(150), context.CancellationToken);
        Assert.AreEqual(0, code, s_baseline.Transcripts());
        var complete = await coordinator.WaitForStdoutAsync(@"^TRAINING COMPLETE rounds=3 .*ledger_entries=(\d+) ", TimeSpan.FromSeconds(5), 0, context.CancellationToken);
        s_entries = int.Parse(complete.Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.IsGreaterThanOrEqualTo(3, s_entries, s_baseline.Transcripts());
    }

    [ClassCleanup]
    public static async Task CleanupAsync()
    {
        if (s_baseline is not null)
        {
            if (s_allPassed)
            {
                s_baseline.Passed();
            }

            await s_baseline.DisposeAsync();
        }
    }

    [TestCleanup]
    public void RecordOutcome() => s_allPassed &= TestContext.CurrentTestOutcome == UnitTestOutcome.Passed;

    [TestMethod]
    [TestCategory("Process")]
    [Timeout(60_000, CooperativeCancellation = true)]
    public Task Deleted_coordinator_db_is_refused() =>
        RefusedAsync("deleted-state", "coordinator.db", dir => DeleteSqlite(dir, "coordinator.db"), "is missing");

    [TestMethod]
    [TestCategory("Process")]
    [Timeout(60_000, CooperativeCancellation = true)]
    public Task Emptied_coordinator_db_is_refused() =>
        RefusedAsync("emptied-state", "coordinator.db", dir => Truncate(dir, "coordinator.db"), "is empty");

    [TestMethod]
    [TestCategory("Process")]
    [Timeout(60_000, CooperativeCancellation = true)]
    public Task Emptied_ledger_db_is_refused() =>
        RefusedAsync("emptied-ledger", "ledger.db", dir => Truncate(dir, "ledger.db"), "holds no entries");

    [TestMethod]
    [TestCategory("Process")]
    [Timeout(60_000, CooperativeCancellation = true)]
    public Task Tampered_ledger_row_is_refused() =>
        RefusedAsync("tampered-ledger", "ledger.db", dir =>
        {
            using var c = Connect(Path.Combine(dir, "ledger.db"));
            Exec(c, "DROP TRIGGER entries_no_update;");
            byte[] payload;
            using (var read = c.CreateCommand())
            {
                read.CommandText = "SELECT payload FROM entries WHERE seq = 2";
                payload = (byte[])read.ExecuteScalar()!;
            }

            payload[^70] ^= 0x01; // one bit of the receipt (inside its signed body)
            using var update = c.CreateCommand();
            update.CommandText = "UPDATE entries SET payload = $p WHERE seq = 2";
            update.Parameters.AddWithValue("$p", payload);
            Assert.AreEqual(1, update.ExecuteNonQuery());
        }, "entry 2 was altered");

    [TestMethod]
    [TestCategory("Process")]
    [Timeout(60_000, CooperativeCancellation = true)]
    public Task Deleted_last_ledger_row_is_refused() =>
        RefusedAsync("last-row", "ledger.db", dir =>
        {
            using var c = Connect(Path.Combine(dir, "ledger.db"));
            Exec(c, "DROP TRIGGER entries_no_delete; DELETE FROM entries WHERE seq = (SELECT MAX(seq) FROM entries);");
        }, $"entries {s_entries - 1}..{s_entries - 1} were deleted");

    [TestMethod]
    [TestCategory("Process")]
    [Timeout(60_000, CooperativeCancellation = true)]
    public async Task Deleted_signing_key_is_refused_and_not_regenerated()
    {
        var dir = await RefusedAsync("deleted-key", "ledger-signer.key", dir => File.Delete(Path.Combine(dir, "ledger-signer.key")), "is missing");
        Assert.IsFalse(File.Exists(Path.Combine(dir, "ledger-signer.key")), "the coordinator generated a new signing key");
    }

    [TestMethod]
    [TestCategory("Process")]
    [TestCategory("Slow")]
    [Timeout(150_000, CooperativeCancellation = true)]
    public async Task Moved_state_folder_resumes_from_its_own_checkpoint()
    {
        await using var cluster = new TestCluster(TestContext, "state-moved");
        var original = Path.Combine(cluster.Root, "original");
        CopyFolder(s_baseline!.CoordinatorData, original);
        Directory.Move(original, cluster.CoordinatorData);

        var coordinator = await cluster.StartCoordinatorAsync(0, [.. JobArgs, "--rounds", "4", "--min-workers", "1"]);
        var resumed = await coordinator.WaitForStderrAsync(@"Resuming job '[^']+' after round (\d+) .*from checkpoint (\S+) ", TimeSpan.FromSeconds(30), 0, cluster.Token);
        Assert.AreEqual("2", resumed.Groups[1].Value);
        StringAssert.StartsWith(resumed.Groups[2].Value, Path.Combine(cluster.CoordinatorData, "checkpoints") + Path.DirectorySeparatorChar);
        cluster.StartWorker("w2");
        Assert.AreEqual(0, await coordinator.WaitForExitAsync(TimeSpan.FromSeconds(100), cluster.Token), cluster.Transcripts());
        var rounds = TestCluster.CompletedRounds(coordinator);
        CollectionAssert.AreEqual(new long[] { 3 }, rounds.Select(r => r.Round).ToArray(), cluster.Transcripts());
        var receipts = cluster.ReadLedger();
        Assert.HasCount(s_entries + 1, receipts);
        Assert.AreEqual("w2", receipts[^1].WorkerId);
        Assert.AreEqual(3L, receipts[^1].Round);
        cluster.Passed();
    }

    [TestMethod]
    [TestCategory("Process")]
    [TestCategory("Slow")]
    [Timeout(150_000, CooperativeCancellation = true)]
    public async Task Full_disk_under_the_checkpoints_leaves_no_temporary_file_and_training_goes_on()
    {
        await using var cluster = new TestCluster(TestContext, "state-disk-full");
        var checkpoints = Path.Combine(cluster.CoordinatorData, "checkpoints");
        Directory.CreateDirectory(checkpoints);
        if (!OperatingSystem.IsLinux() || Environment.UserName != "root" || Run("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", checkpoints) != 0)
        {
            Assert.Inconclusive("cannot mount a tmpfs here (not root, or no mount rights)");
        }

        SampleProcess? coordinator = null;
        SampleProcess? worker = null;
        try
        {
            // A checkpoint of the sample's model is far larger than 64 KiB: every write hits ENOSPC part-way.
            coordinator = await cluster.StartCoordinatorAsync(0, [.. JobArgs, "--rounds", "2", "--min-workers", "1"]);
            worker = cluster.StartWorker("w0");
            Assert.AreEqual(0, await coordinator.WaitForExitAsync(TimeSpan.FromSeconds(120), cluster.Token), cluster.Transcripts());
            await coordinator.WaitForStderrAsync(@"Checkpoint write failed", TimeSpan.FromSeconds(5), 0, cluster.Token);
            await coordinator.WaitForStderrAsync(@"(?i)no space left on device", TimeSpan.FromSeconds(5), 0, cluster.Token);
            CollectionAssert.AreEqual(new long[] { 0, 1 }, TestCluster.CompletedRounds(coordinator).Select(r => r.Round).ToArray(), cluster.Transcripts());
            Assert.IsEmpty(Directory.GetFiles(checkpoints), "a failed checkpoint write left its temporary file on the full disk");
        }
        finally
        {
            foreach (var p in new[] { coordinator, worker })
            {
                if (p is not null)
                {
                    p.Kill();
                    await p.WaitForExitAsync(TimeSpan.FromSeconds(10), CancellationToken.None);
                }
            }

            Run("umount", "-l", checkpoints);
        }

        cluster.Passed();
    }

    private async Task<string> RefusedAsync(string name, string file, Action<string> damage, string expected)
    {
        await using var cluster = new TestCluster(TestContext, name);
        var dir = cluster.CoordinatorData;
        CopyFolder(s_baseline!.CoordinatorData, dir);
        damage(dir);
        string[] args = ["--port", "0", "--data", dir, "--allow-simulated-attestation", .. JobArgs, "--rounds", "3", "--min-workers", "2"];
        await using var coordinator = SampleProcess.Start("Coordinator", name, cluster.Root, args);
        var code = await coordinator.WaitForExitAsync(TimeSpan.FromSeconds(45), cluster.Token);
        var path = Path.Combine(dir, file);
        Assert.AreEqual(1, code, coordinator.Transcript());
        var failed = coordinator.StdoutLines.Where(l => l.StartsWith("FAILED ", StringComparison.Ordinal)).ToList();
        Assert.HasCount(1, failed, coordinator.Transcript());
        StringAssert.Contains(failed[0], path, coordinator.Transcript());
        StringAssert.Contains(failed[0], expected, coordinator.Transcript());
        Assert.IsFalse(coordinator.StdoutLines.Any(l => l.StartsWith("LISTENING", StringComparison.Ordinal)), "the coordinator listened on a damaged folder");
        TestContext.WriteLine(failed[0]);
        cluster.Passed();
        return dir;
    }

    private static int Run(string file, params string[] args)
    {
        var info = new System.Diagnostics.ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        try
        {
            using var p = System.Diagnostics.Process.Start(info)!;
            p.WaitForExit(10_000);
            return p.HasExited ? p.ExitCode : -1;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return -1;
        }
    }

    private static void CopyFolder(string from, string to)
    {
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }

    private static void DeleteSqlite(string dir, string file)
    {
        foreach (var suffix in new[] { string.Empty, "-wal", "-shm" })
        {
            File.Delete(Path.Combine(dir, file + suffix));
        }
    }

    private static void Truncate(string dir, string file)
    {
        DeleteSqlite(dir, file);
        File.WriteAllBytes(Path.Combine(dir, file), []);
    }

    private static SqliteConnection Connect(string path)
    {
        var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        c.Open();
        return c;
    }

    private static void Exec(SqliteConnection c, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

}
