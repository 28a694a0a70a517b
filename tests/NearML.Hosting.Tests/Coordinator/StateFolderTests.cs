using System.Diagnostics;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using NearML.Core;
using NearML.Hosting.Coordinator;
using NearML.Hosting.State;
using NearML.Ledger;

namespace NearML.Hosting.Tests.Coordinator;

/// <summary>
/// The state folder cross-checks (issue 14 §5): every way of losing or damaging durable state is refused at start with
/// a <see cref="CoordinatorStateException"/> naming the file; a consistent folder, a crash between the ledger append and
/// the round record, and a moved folder open.
/// </summary>
[TestClass]
public sealed class StateFolderTests
{
    private const string Job = "state-job";

    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public void A_new_folder_starts_fresh_and_creates_a_private_signing_key()
    {
        var dir = NewDir();
        using (var folder = CoordinatorStateFolder.Open(dir, Job))
        {
            Assert.IsTrue(folder.IsNew);
            Assert.AreEqual(-1L, folder.LastRound);
            Assert.AreEqual(0L, folder.Ledger.Head.Count);
        }

        var key = Path.Combine(dir, CoordinatorStateFolder.SignerKeyFileName);
        Assert.IsTrue(File.Exists(key));
        if (!OperatingSystem.IsWindows())
        {
            Assert.AreEqual(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(key));
        }

        // A folder whose job never completed a round (no receipts) may also lose coordinator.db: nothing of value is lost.
        File.Delete(Path.Combine(dir, CoordinatorStateFolder.StateFileName));
        using var again = CoordinatorStateFolder.Open(dir, Job);
        Assert.IsTrue(again.IsNew);
    }

    [TestMethod]
    public void A_consistent_folder_opens_and_reports_its_last_round()
    {
        var dir = Simulate(rounds: 5);
        using var folder = CoordinatorStateFolder.Open(dir, Job);
        Assert.IsFalse(folder.IsNew);
        Assert.AreEqual(4L, folder.LastRound);
        Assert.AreEqual(10L, folder.Ledger.Head.Count);
        var anchor = folder.State.LatestLedgerAnchor()!;
        Assert.AreEqual(4L, anchor.Round);
        Assert.AreEqual(10L, anchor.Count);
    }

    [TestMethod]
    public void A_crash_between_the_ledger_append_and_the_round_record_is_accepted()
    {
        // Round 5's receipts reached the ledger, its round record did not: the restart redoes round 5 (already credited).
        var dir = Simulate(rounds: 5, unrecordedRounds: 1);
        using var folder = CoordinatorStateFolder.Open(dir, Job);
        Assert.AreEqual(4L, folder.LastRound);
        Assert.AreEqual(12L, folder.Ledger.Head.Count);
    }

    [TestMethod]
    public void Deleted_coordinator_db_next_to_a_ledger_is_refused_and_stays_refused()
    {
        var dir = Simulate(rounds: 3);
        DeleteSqlite(dir, CoordinatorStateFolder.StateFileName);
        var ex = Refused(dir, StateProblem.Missing, CoordinatorStateFolder.StateFileName);
        StringAssert.Contains(ex.Message, "is missing");
        StringAssert.Contains(ex.Message, "6 receipt(s)");

        // The refusal created an empty coordinator.db; the next start still refuses (now: "is empty"/"holds no job").
        Refused(dir, StateProblem.Truncated, CoordinatorStateFolder.StateFileName);
    }

    [TestMethod]
    public void Emptied_coordinator_db_is_refused()
    {
        var dir = Simulate(rounds: 3);
        Truncate(dir, CoordinatorStateFolder.StateFileName);
        var ex = Refused(dir, StateProblem.Truncated, CoordinatorStateFolder.StateFileName);
        StringAssert.Contains(ex.Message, "is empty");
    }

    [TestMethod]
    public void Deleted_coordinator_db_next_to_checkpoints_only_is_refused()
    {
        var dir = Simulate(rounds: 2, receipts: false);
        DeleteSqlite(dir, CoordinatorStateFolder.StateFileName);
        var ex = Refused(dir, StateProblem.Missing, CoordinatorStateFolder.StateFileName);
        StringAssert.Contains(ex.Message, "round-000001.safetensors");
    }

    [TestMethod]
    public void Deleted_job_row_with_rounds_left_is_refused()
    {
        var dir = Simulate(rounds: 2, receipts: false);
        foreach (var d in Directory.GetFiles(Path.Combine(dir, CheckpointStore.FolderName)))
        {
            File.Delete(d);
        }

        Sql(dir, CoordinatorStateFolder.StateFileName, "DELETE FROM job; DELETE FROM checkpoints;");
        Refused(dir, StateProblem.Truncated, CoordinatorStateFolder.StateFileName);
    }

    [TestMethod]
    public void Emptied_ledger_db_is_refused()
    {
        var dir = Simulate(rounds: 3);
        Truncate(dir, CoordinatorStateFolder.LedgerFileName);
        var ex = Refused(dir, StateProblem.Truncated, CoordinatorStateFolder.LedgerFileName);
        StringAssert.Contains(ex.Message, "holds no entries");
    }

    [TestMethod]
    public void Deleted_ledger_db_is_refused()
    {
        var dir = Simulate(rounds: 3);
        DeleteSqlite(dir, CoordinatorStateFolder.LedgerFileName);
        Refused(dir, StateProblem.Missing, CoordinatorStateFolder.LedgerFileName);
        Assert.IsFalse(File.Exists(Path.Combine(dir, CoordinatorStateFolder.LedgerFileName)), "the refusal must not create an empty ledger");
    }

    [TestMethod]
    public void Deleting_any_suffix_of_the_ledger_including_only_the_last_row_is_refused()
    {
        var baseline = Simulate(rounds: 3);
        for (var keep = 0; keep < 6; keep++)
        {
            var dir = Copy(baseline);
            Sql(dir, CoordinatorStateFolder.LedgerFileName, $"DROP TRIGGER entries_no_delete; DELETE FROM entries WHERE seq >= {keep};");
            var ex = Refused(dir, StateProblem.Truncated, CoordinatorStateFolder.LedgerFileName);
            StringAssert.Contains(ex.Message, "recorded 6 after round 2");
        }
    }

    [TestMethod]
    public void Every_single_byte_change_of_every_ledger_row_is_refused()
    {
        var baseline = Simulate(rounds: 3);
        var entries = ReadEntries(baseline);
        var columns = new[] { "payload", "entry_hash", "prev_hash" };
        var rng = new Random(14);
        foreach (var e in entries)
        {
            foreach (var column in columns)
            {
                var dir = Copy(baseline);
                var length = column == "payload" ? e.Payload.Length : LedgerEntry.HashSize;
                var offset = rng.Next(length);
                var changed = (byte[])e.Get(column).Clone();
                changed[offset] ^= (byte)(1 + rng.Next(255));
                using (var c = Connect(dir, CoordinatorStateFolder.LedgerFileName))
                {
                    Exec(c, "DROP TRIGGER entries_no_update;");
                    using var u = c.CreateCommand();
                    u.CommandText = $"UPDATE entries SET {column} = $v WHERE seq = $s";
                    u.Parameters.AddWithValue("$v", changed);
                    u.Parameters.AddWithValue("$s", e.Sequence);
                    Assert.AreEqual(1, u.ExecuteNonQuery());
                }

                var ex = Refused(dir, StateProblem.Altered, CoordinatorStateFolder.LedgerFileName);
                TestContext.WriteLine($"entry {e.Sequence} {column}[{offset}]: {ex.Message}");
            }
        }
    }

    [TestMethod]
    public void A_row_changed_with_the_whole_chain_rehashed_is_refused()
    {
        // A deliberate forger who rewrites a payload and recomputes every later hash: the anchor and the signatures catch it.
        var dir = Simulate(rounds: 3);
        var entries = ReadEntries(dir);
        var forged = entries.Select(e => e.Payload).ToArray();
        var receipt = SignedReceipt.Parse(forged[2]);
        forged[2] = (receipt with { Receipt = receipt.Receipt with { SamplesProcessed = 1_000_000 } }).ToBorsh();
        var prev = new byte[LedgerEntry.HashSize];
        using (var c = Connect(dir, CoordinatorStateFolder.LedgerFileName))
        {
            Exec(c, "DROP TRIGGER entries_no_update;");
            foreach (var e in entries)
            {
                var hash = LedgerEntry.ComputeHash(e.Sequence, e.Epoch, prev, forged[e.Sequence]);
                using var u = c.CreateCommand();
                u.CommandText = "UPDATE entries SET payload = $p, prev_hash = $v, entry_hash = $h WHERE seq = $s";
                u.Parameters.AddWithValue("$p", forged[e.Sequence]);
                u.Parameters.AddWithValue("$v", prev);
                u.Parameters.AddWithValue("$h", hash);
                u.Parameters.AddWithValue("$s", e.Sequence);
                u.ExecuteNonQuery();
                prev = hash;
            }
        }

        Refused(dir, StateProblem.Altered, CoordinatorStateFolder.LedgerFileName);
    }

    [TestMethod]
    public void Missing_signing_key_with_receipts_is_refused_and_not_regenerated()
    {
        var dir = Simulate(rounds: 2);
        var key = Path.Combine(dir, CoordinatorStateFolder.SignerKeyFileName);
        File.Delete(key);
        var ex = Refused(dir, StateProblem.SigningKey, CoordinatorStateFolder.SignerKeyFileName);
        StringAssert.Contains(ex.Message, "is missing");
        Assert.IsFalse(File.Exists(key), "a new key must not be generated while the ledger holds receipts signed by the old one");
    }

    [TestMethod]
    public void Replaced_or_unreadable_signing_key_is_refused()
    {
        var dir = Simulate(rounds: 2);
        var key = Path.Combine(dir, CoordinatorStateFolder.SignerKeyFileName);
        using (var other = NearKeyPair.Generate())
        {
            File.WriteAllText(key, other.ExportSecretKey());
        }

        var ex = Refused(dir, StateProblem.SigningKey, CoordinatorStateFolder.SignerKeyFileName);
        StringAssert.Contains(ex.Message, "signed by");

        File.WriteAllText(key, "ed25519:not-a-key");
        Refused(dir, StateProblem.SigningKey, CoordinatorStateFolder.SignerKeyFileName);
    }

    [TestMethod]
    public void Coordinator_db_from_an_older_backup_is_refused()
    {
        var dir = Simulate(rounds: 2);
        var backup = Copy(dir);
        SimulateMore(dir, fromRound: 2, rounds: 2);
        foreach (var suffix in new[] { string.Empty, "-wal", "-shm" })
        {
            File.Delete(Path.Combine(dir, CoordinatorStateFolder.StateFileName + suffix));
        }

        File.Copy(Path.Combine(backup, CoordinatorStateFolder.StateFileName), Path.Combine(dir, CoordinatorStateFolder.StateFileName));
        var ex = Refused(dir, StateProblem.OutOfStep, CoordinatorStateFolder.StateFileName);
        StringAssert.Contains(ex.Message, "is behind");
    }

    [TestMethod]
    public void Rounds_deleted_from_coordinator_db_are_refused()
    {
        var dir = Simulate(rounds: 4);
        Sql(dir, CoordinatorStateFolder.StateFileName, "DELETE FROM rounds WHERE round >= 2;");
        var ex = Refused(dir, StateProblem.OutOfStep, CoordinatorStateFolder.StateFileName);
        StringAssert.Contains(ex.Message, "credits round 3");

        // Without receipts the checkpoint index gives it away.
        var quiet = Simulate(rounds: 4, receipts: false);
        Sql(quiet, CoordinatorStateFolder.StateFileName, "DELETE FROM rounds WHERE round >= 2;");
        Refused(quiet, StateProblem.Truncated, CoordinatorStateFolder.StateFileName);
    }

    [TestMethod]
    public void A_ledger_of_another_job_is_refused()
    {
        var dir = Simulate(rounds: 2);
        var other = Simulate(rounds: 2, job: "other-job");
        foreach (var f in new[] { CoordinatorStateFolder.LedgerFileName, CoordinatorStateFolder.SignerKeyFileName })
        {
            File.Copy(Path.Combine(other, f), Path.Combine(dir, f), overwrite: true);
        }

        // The other ledger's chain differs from the anchor recorded in this coordinator.db.
        Refused(dir, StateProblem.Altered, CoordinatorStateFolder.LedgerFileName);
    }

    [TestMethod]
    public void Settlement_state_that_no_longer_matches_is_refused()
    {
        var dir = Simulate(rounds: 2);
        using (var ledger = ContributionLedger.OpenSqlite(Path.Combine(dir, CoordinatorStateFolder.LedgerFileName)))
        using (var store = new SettlementStore(Path.Combine(dir, CoordinatorStateFolder.SettlementFileName)))
        {
            store.CreateIntent(new SettlementIntent(0, ledger.ComputeEpochRoot(0), [new WorkerPayout("w0", 1u, 1u)], DryRun: false, Settled: true));
        }

        using (var state = new CoordinatorStateStore(Path.Combine(dir, CoordinatorStateFolder.StateFileName)))
        {
            state.RecordSettlement([new SettlementRecord(0, 0, 7, "tx", "w0", string.Empty, DryRun: false)]);
        }

        using (CoordinatorStateFolder.Open(dir, Job))
        {
        }

        // The settlement record of a sent epoch without settlement.db: a retry could pay twice.
        var missing = Copy(dir);
        DeleteSqlite(missing, CoordinatorStateFolder.SettlementFileName);
        Refused(missing, StateProblem.Missing, CoordinatorStateFolder.SettlementFileName);

        // An intent whose root the ledger no longer gives.
        var changed = Copy(dir);
        Sql(changed, CoordinatorStateFolder.SettlementFileName, "UPDATE intents SET root = zeroblob(32) WHERE epoch = 0;");
        Refused(changed, StateProblem.Altered, CoordinatorStateFolder.LedgerFileName);
    }

    [TestMethod]
    public void Garbage_in_a_database_file_is_a_typed_error_naming_the_file()
    {
        foreach (var file in new[] { CoordinatorStateFolder.StateFileName, CoordinatorStateFolder.LedgerFileName })
        {
            var dir = Simulate(rounds: 1);
            DeleteSqlite(dir, file);
            var bytes = new byte[8192];
            new Random(5).NextBytes(bytes);
            File.WriteAllBytes(Path.Combine(dir, file), bytes);
            var ex = Refused(dir, StateProblem.Storage, file);
            Assert.IsInstanceOfType<SqliteException>(ex.InnerException is LedgerStorageException l ? l.InnerException : ex.InnerException);
        }
    }

    [TestMethod]
    public void A_moved_folder_reads_its_own_checkpoints_and_legacy_absolute_paths_are_migrated()
    {
        var original = Simulate(rounds: 3);

        // Rows written by the previous version held absolute paths into the original folder.
        Sql(original, CoordinatorStateFolder.StateFileName,
            $"UPDATE checkpoints SET path = '{Path.Combine(original, CheckpointStore.FolderName)}' || '/' || printf('round-%06d.safetensors', round);");
        var moved = Copy(original);

        // The original folder stays, with different content: the moved one must not read it.
        var originalLatest = Path.Combine(original, CheckpointStore.FolderName, CheckpointStore.FileName(2));
        File.WriteAllBytes(originalLatest, [1, 2, 3]);
        using (var folder = CoordinatorStateFolder.Open(moved, Job))
        {
            var latest = folder.State.LatestCheckpoint()!;
            Assert.AreEqual(Path.Combine(moved, CheckpointStore.FolderName, CheckpointStore.FileName(2)), latest.Path);
            var checkpoint = CheckpointStore.LoadLatest(folder.State, Layout())!;
            Assert.AreEqual(2L, checkpoint.Round);
        }

        using var c = Connect(moved, CoordinatorStateFolder.StateFileName);
        using var q = c.CreateCommand();
        q.CommandText = "SELECT path FROM checkpoints ORDER BY round";
        using var r = q.ExecuteReader();
        while (r.Read())
        {
            Assert.IsFalse(Path.IsPathRooted(r.GetString(0)), $"stored path '{r.GetString(0)}' is still absolute");
            StringAssert.StartsWith(r.GetString(0), CheckpointStore.FolderName + Path.DirectorySeparatorChar);
        }
    }

    [TestMethod]
    public void Stale_temporary_files_are_removed_at_start()
    {
        var dir = Simulate(rounds: 1);
        var tmp = Path.Combine(dir, CheckpointStore.FolderName, CheckpointStore.FileName(7) + CheckpointStore.TemporarySuffix);
        var keyTmp = Path.Combine(dir, CoordinatorStateFolder.SignerKeyFileName + CheckpointStore.TemporarySuffix);
        File.WriteAllBytes(tmp, new byte[1000]);
        File.WriteAllText(keyTmp, "partial");
        using var folder = CoordinatorStateFolder.Open(dir, Job);
        Assert.IsFalse(File.Exists(tmp));
        Assert.IsFalse(File.Exists(keyTmp));
        Assert.HasCount(2, folder.RemovedTemporaryFiles);
    }

    [TestMethod]
    public void A_failed_checkpoint_write_leaves_no_temporary_file()
    {
        // The final name is taken by a folder: the rename fails after the whole temporary file was written.
        var dir = NewDir();
        using var state = new CoordinatorStateStore(Path.Combine(dir, CoordinatorStateFolder.StateFileName));
        var checkpoints = Path.Combine(dir, CheckpointStore.FolderName);
        Directory.CreateDirectory(Path.Combine(checkpoints, CheckpointStore.FileName(0)));
        var store = new CheckpointStore(checkpoints, state, Job, 3, TimeProvider.System);
        try
        {
            var ex = Assert.ThrowsExactly<IOException>(() => store.Write(Checkpoint(0)));
            StringAssert.Contains(ex.Message, CheckpointStore.FileName(0));
            Assert.IsEmpty(Directory.GetFiles(checkpoints, "*" + CheckpointStore.TemporarySuffix));
            Assert.IsNull(state.LatestCheckpoint());
        }
        finally
        {
            store.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    [TestMethod]
    public void A_checkpoint_write_on_a_full_disk_leaves_no_temporary_file()
    {
        // A real full disk: a 64 KiB tmpfs mounted over the checkpoint folder (needs root and mount rights).
        var dir = NewDir();
        var checkpoints = Path.Combine(dir, CheckpointStore.FolderName);
        Directory.CreateDirectory(checkpoints);
        if (!Mount(checkpoints, "64k"))
        {
            Assert.Inconclusive("cannot mount a tmpfs here (not root, or no mount rights): the full-disk case is covered only by the rename-failure test");
        }

        try
        {
            using var state = new CoordinatorStateStore(Path.Combine(dir, CoordinatorStateFolder.StateFileName));
            var errors = new List<Exception>();
            var store = new CheckpointStore(checkpoints, state, Job, 3, TimeProvider.System, errors.Add);
            try
            {
                // 2 × 40 000 floats = 320 KB: does not fit in 64 KiB.
                var ex = Assert.ThrowsExactly<IOException>(() => store.Write(Checkpoint(0, 40_000)));
                TestContext.WriteLine(ex.Message);
                Assert.IsEmpty(Directory.GetFiles(checkpoints), "the partial temporary file must be removed");
                Assert.IsNull(state.LatestCheckpoint());

                // The disk is not left full: a checkpoint that fits is written next.
                var record = store.Write(Checkpoint(1, 2_000));
                Assert.AreEqual(1L, state.LatestCheckpoint()!.Round);
                Assert.IsTrue(File.Exists(record.Path));
            }
            finally
            {
                store.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
        }
        finally
        {
            Run("umount", checkpoints);
        }
    }

    [TestMethod]
    public void SQLite_errors_at_run_time_name_the_database_file()
    {
        var dir = NewDir();
        var state = new CoordinatorStateStore(Path.Combine(dir, CoordinatorStateFolder.StateFileName));
        state.EnsureJob(Job, "mlp", "{}", "root", "s", 0);
        Sql(dir, CoordinatorStateFolder.StateFileName, "DROP TABLE rounds;");
        var ex = Assert.ThrowsExactly<CoordinatorStateException>(() => state.RecordRound(new RoundRecord(0, 1, 1, 1, 0, 0.5, null, 10, 0, 1), 0, new byte[32]));
        Assert.AreEqual(StateProblem.Storage, ex.Problem);
        StringAssert.Contains(ex.Message, Path.Combine(dir, CoordinatorStateFolder.StateFileName));
        StringAssert.Contains(ex.Message, "recording round 0");
        state.Dispose();
    }

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task The_coordinator_anchors_every_round_and_refuses_a_deleted_coordinator_db()
    {
        var data = TestAssembly.NewTempDirectory("anchor");
        await using (var c = await CoordinatorHarness.StartAsync(o => o.Rounds = 2, data))
        {
            await using var w = await FakeWorker.StartAsync(c, "w1");
            await c.Status.CompletedTask.WaitAsync(CoordinatorHarness.Timeout, TestContext.CancellationToken);
        }

        using (var ledger = ContributionLedger.OpenSqlite(Path.Combine(data, CoordinatorStateFolder.LedgerFileName)))
        using (var state = new CoordinatorStateStore(Path.Combine(data, CoordinatorStateFolder.StateFileName)))
        {
            var anchor = state.LatestLedgerAnchor()!;
            var head = ledger.Head;
            Assert.AreEqual(1L, anchor.Round);
            Assert.AreEqual(head.Count, anchor.Count);
            CollectionAssert.AreEqual(head.LastHash, anchor.LastHash);
        }

        DeleteSqlite(data, CoordinatorStateFolder.StateFileName);
        var logs = new CapturingLoggerProvider();
        using var host = CoordinatorHarness.Build(o => CoordinatorHarness.Defaults(o, data), logs);
        await host.StartAsync(TestContext.CancellationToken);
        var status = host.Services.GetRequiredService<CoordinatorStatus>();
        var ex = await Assert.ThrowsExactlyAsync<CoordinatorStateException>(() => status.Listening.WaitAsync(CoordinatorHarness.Timeout, TestContext.CancellationToken));
        Assert.AreEqual(Path.Combine(data, CoordinatorStateFolder.StateFileName), ex.FilePath);
        await host.StopAsync(TestContext.CancellationToken);
    }

    private static CoordinatorStateException Refused(string dir, StateProblem problem, string file)
    {
        var ex = Assert.ThrowsExactly<CoordinatorStateException>(() => CoordinatorStateFolder.Open(dir, Job).Dispose());
        var path = Path.Combine(dir, file);
        Assert.AreEqual(problem, ex.Problem, ex.Message);
        Assert.AreEqual(path, ex.FilePath, ex.Message);
        StringAssert.Contains(ex.Message, path);
        Assert.DoesNotContain("\n", ex.Message);
        return ex;
    }

    /// <summary>Builds a folder as the coordinator does: per round two receipts, the anchored round record, a checkpoint.</summary>
    private string Simulate(int rounds, int unrecordedRounds = 0, bool receipts = true, string job = Job)
    {
        var dir = NewDir();
        using (var folder = CoordinatorStateFolder.Open(dir, job))
        {
            folder.State.EnsureJob(job, "mlp", "{}", "root", "settings", 0);
        }

        SimulateMore(dir, 0, rounds, unrecordedRounds, receipts, job);
        return dir;
    }

    private static void SimulateMore(string dir, int fromRound, int rounds, int unrecordedRounds = 0, bool receipts = true, string job = Job)
    {
        using var folder = CoordinatorStateFolder.Open(dir, job);
        var checkpoints = new CheckpointStore(Path.Combine(dir, CheckpointStore.FolderName), folder.State, job, 10, TimeProvider.System);
        try
        {
            for (var round = fromRound; round < fromRound + rounds + unrecordedRounds; round++)
            {
                if (receipts)
                {
                    var batch = new[] { "w0", "w1" }
                        .Select(w => SignedReceipt.Sign(new ContributionReceipt(job, round, w, 64, 0, 5, 100, AttestationVerdict.Verified, new byte[32], 1000 + round), folder.Signer))
                        .ToList();
                    folder.Ledger.AppendBatch(round / 2, batch);
                }

                if (round >= fromRound + rounds)
                {
                    break; // the crash: receipts appended, round not recorded
                }

                var head = folder.Ledger.Head;
                folder.State.RecordRound(new RoundRecord(round, round + 1, 2, 2, 0, 0.5, null, 100, 0, 1), head.Count, head.LastHash);
                checkpoints.Write(Checkpoint(round));
            }
        }
        finally
        {
            checkpoints.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    private static ParameterLayout Layout(int size = 8) => new([("w", [size])]);

    private static CoordinatorCheckpoint Checkpoint(long round, int size = 8)
    {
        var p = new ParameterSet(Layout(size));
        p.Buffer.AsSpan().Fill(round + 0.5f);
        return new CoordinatorCheckpoint(round, round + 1, p, p.CreateZeros());
    }

    private string NewDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), "nearml-state-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    private static string Copy(string dir)
    {
        var target = Path.Combine(Path.GetTempPath(), "nearml-state-tests", Guid.NewGuid().ToString("N"));
        foreach (var file in Directory.GetFiles(dir, "*", SearchOption.AllDirectories))
        {
            var to = Path.Combine(target, Path.GetRelativePath(dir, file));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(file, to);
        }

        return target;
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

    private static SqliteConnection Connect(string dir, string file)
    {
        var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path.Combine(dir, file), Pooling = false }.ToString());
        c.Open();
        return c;
    }

    private static void Exec(SqliteConnection c, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private static void Sql(string dir, string file, string sql)
    {
        using var c = Connect(dir, file);
        Exec(c, sql);
    }

    private static List<RawEntry> ReadEntries(string dir)
    {
        using var ledger = ContributionLedger.OpenSqlite(Path.Combine(dir, CoordinatorStateFolder.LedgerFileName));
        return [.. ledger.Store.Read(0).Select(e => new RawEntry(e.Sequence, e.Epoch, e.PreviousHash, e.Hash, e.Payload))];
    }

    private static bool Mount(string target, string size)
    {
        if (!OperatingSystem.IsLinux() || Environment.UserName != "root")
        {
            return false;
        }

        return Run("mount", "-t", "tmpfs", "-o", $"size={size}", "tmpfs", target) == 0;
    }

    private static int Run(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        try
        {
            using var p = Process.Start(info)!;
            p.WaitForExit(10_000);
            return p.HasExited ? p.ExitCode : -1;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return -1;
        }
    }

    private sealed record RawEntry(long Sequence, long Epoch, byte[] PreviousHash, byte[] Hash, byte[] Payload)
    {
        public byte[] Get(string column) => column switch
        {
            "payload" => Payload,
            "entry_hash" => Hash,
            _ => PreviousHash,
        };
    }
}
