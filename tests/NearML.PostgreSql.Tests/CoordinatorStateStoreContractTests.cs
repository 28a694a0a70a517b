using NearML.Hosting.State;

namespace NearML.PostgreSql.Tests;

/// <summary>The <see cref="ICoordinatorStateStore"/> contract, on SQLite and PostgreSQL.</summary>
[TestClass]
public sealed class CoordinatorStateStoreContractTests
{
    [TestMethod]
    [DataRow(Backends.Sqlite)]
    [DataRow(Backends.PostgreSql)]
    public void The_job_is_recorded_once_and_another_job_is_refused(string backend)
    {
        using var b = Backends.Create(backend);
        using (var s = b.OpenState())
        {
            Assert.IsNull(s.ReadJobId());
            Assert.IsNull(s.ReadJob());
            s.EnsureJob("job-a", "mlp", """{"hidden":16}""", "ab12", "rounds=3", 1000);
            s.EnsureJob("job-a", "mlp", """{"hidden":16}""", "ab12", "rounds=9 (ignored)", 2000);
        }

        using var again = b.OpenState();
        Assert.AreEqual(new JobRecord("job-a", "mlp", """{"hidden":16}""", "ab12", "rounds=3", 1000), again.ReadJob());
        foreach (var (job, model, config, root) in new[] { ("job-b", "mlp", """{"hidden":16}""", "ab12"), ("job-a", "cnn", """{"hidden":16}""", "ab12"), ("job-a", "mlp", "{}", "ab12"), ("job-a", "mlp", """{"hidden":16}""", "ff") })
        {
            var ex = Assert.ThrowsExactly<CoordinatorStateException>(() => again.EnsureJob(job, model, config, root, "", 3000));
            Assert.AreEqual(StateProblem.ForeignJob, ex.Problem);
            StringAssert.Contains(ex.Message, "belongs to job 'job-a'");
        }

        Assert.AreEqual("job-a", again.ReadJobId());
    }

    [TestMethod]
    [DataRow(Backends.Sqlite)]
    [DataRow(Backends.PostgreSql)]
    public void Rounds_replace_by_number_keep_NaN_and_missing_accuracy_and_the_anchor_is_the_largest_ledger_head(string backend)
    {
        using var b = Backends.Create(backend);
        using var s = b.OpenState();
        Assert.AreEqual(-1, s.LastRound());
        Assert.IsNull(s.LatestLedgerAnchor());
        var h1 = Enumerable.Repeat((byte)1, 32).ToArray();
        var h2 = Enumerable.Repeat((byte)2, 32).ToArray();
        s.RecordRound(new RoundRecord(0, 1, 3, 3, 0, 0.5, null, 100, 10, 20), 3, h1);
        s.RecordRound(new RoundRecord(1, 2, 3, 2, 1, double.NaN, 0.75, 200, 30, 40));
        s.RecordRound(new RoundRecord(2, 3, 3, 3, 0, 0.25, 0.8, 300, 50, 60), 6, h2);
        s.RecordRound(new RoundRecord(2, 3, 4, 4, 0, 0.20, 0.9, 400, 70, 80), 7, h1); // a re-run of round 2 replaces it

        var rounds = s.ReadRounds();
        Assert.AreEqual(3, rounds.Count);
        Assert.IsNull(rounds[0].Accuracy);
        Assert.IsTrue(double.IsNaN(rounds[1].MeanLoss));
        Assert.AreEqual(new RoundRecord(2, 3, 4, 4, 0, 0.20, 0.9, 400, 70, 80), rounds[2]);
        Assert.AreEqual(2, s.LastRound());
        var anchor = s.LatestLedgerAnchor()!;
        Assert.AreEqual((2L, 7L), (anchor.Round, anchor.Count));
        CollectionAssert.AreEqual(h1, anchor.LastHash);
        Assert.ThrowsExactly<ArgumentNullException>(() => s.RecordRound(rounds[0], 1, null));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => s.RecordRound(rounds[0], -1, h1));
    }

    [TestMethod]
    [DataRow(Backends.Sqlite)]
    [DataRow(Backends.PostgreSql)]
    public void Membership_events_come_back_in_order(string backend)
    {
        using var b = Backends.Create(backend);
        using var s = b.OpenState();
        var events = Enumerable.Range(0, 40).Select(i => ($"w{i % 7}", i % 3 == 0 ? "join" : "drop", (long)(i / 5), $"detail {i} ✓")).ToList();
        foreach (var (w, e, r, d) in events)
        {
            s.RecordMembership(1000 + r, w, "abcd", e, r, d);
        }

        CollectionAssert.AreEqual(events, s.ReadMembership().ToList());
    }

    [TestMethod]
    [DataRow(Backends.Sqlite)]
    [DataRow(Backends.PostgreSql)]
    public void The_checkpoint_index_stores_paths_relative_to_the_folder_so_a_moved_folder_finds_its_files(string backend)
    {
        using var b = Backends.Create(backend);
        var outside = Path.Combine(Path.GetTempPath(), "elsewhere", "round-000009.safetensors");
        using (var s = b.OpenState())
        {
            Assert.IsNull(s.LatestCheckpoint());
            s.RecordCheckpoint(new CheckpointRecord(1, 1, Path.Combine(b.Folder, "checkpoints", "round-000001.safetensors"), "aa", 10), 1);
            s.RecordCheckpoint(new CheckpointRecord(3, 3, Path.Combine("checkpoints", "round-000003.safetensors"), "bb", 30), 2);
            s.RecordCheckpoint(new CheckpointRecord(2, 2, outside, "cc", 20), 3);
            s.RecordCheckpoint(new CheckpointRecord(3, 3, Path.Combine(b.Folder, "checkpoints", "round-000003.safetensors"), "dd", 31), 4); // rewritten
            Assert.AreEqual(new CheckpointRecord(3, 3, Path.Combine(b.Folder, "checkpoints", "round-000003.safetensors"), "dd", 31), s.LatestCheckpoint());
        }

        // The same index opened for a folder restored elsewhere.
        var moved = Path.Combine(Path.GetTempPath(), $"nearml-moved-{Guid.NewGuid():N}");
        Directory.CreateDirectory(moved);
        using (var s = b.StateBackend is SqliteStateBackend ? MoveSqlite(b, moved) : b.OpenState(moved))
        {
            var list = s.ListCheckpoints();
            CollectionAssert.AreEqual(new long[] { 1, 2, 3 }, list.Select(c => c.Round).ToList());
            Assert.AreEqual(Path.Combine(moved, "checkpoints", "round-000001.safetensors"), list[0].Path);
            Assert.AreEqual(outside, list[1].Path, "a file outside the folder keeps its full path");
            Assert.AreEqual(Path.Combine(moved, "checkpoints", "round-000003.safetensors"), list[2].Path);
            s.ForgetCheckpoint(3);
            s.ForgetCheckpoint(42);
            Assert.AreEqual(2, s.LatestCheckpoint()!.Round);
        }

        Directory.Delete(moved, recursive: true);
    }

    [TestMethod]
    [DataRow(Backends.Sqlite)]
    [DataRow(Backends.PostgreSql)]
    public void A_settlement_batch_is_all_or_nothing(string backend)
    {
        using var b = Backends.Create(backend);
        using var s = b.OpenState();
        s.RecordSettlement([new SettlementRecord(0, 0, ulong.MaxValue, "h0", "a.testnet", "5", true), new SettlementRecord(0, 1, 7, "h1", "b.testnet", "6", true)]);

        // Epoch 1's batch repeats slot 0 of epoch 0 in its middle: none of it is stored.
        var ex = Assert.ThrowsExactly<CoordinatorStateException>(() => s.RecordSettlement(
            [new SettlementRecord(1, 0, 8, "h2", "a.testnet", "1", false), new SettlementRecord(0, 0, 9, "hx", "x.testnet", "1", false), new SettlementRecord(1, 1, 10, "h3", "b.testnet", "1", false)]));
        Assert.AreEqual(StateProblem.Storage, ex.Problem);
        StringAssert.Contains(ex.Message, s.Location);

        var read = s.ReadSettlements();
        Assert.AreEqual(2, read.Count);
        Assert.AreEqual(new SettlementRecord(0, 0, ulong.MaxValue, "h0", "a.testnet", "5", true), read[0]);
        Assert.AreEqual(new SettlementRecord(0, 1, 7, "h1", "b.testnet", "6", true), read[1]);
    }

    [TestMethod]
    [DataRow(Backends.Sqlite)]
    [DataRow(Backends.PostgreSql)]
    public void A_worker_id_binds_to_the_first_key_even_when_two_processes_race_and_rotation_is_compare_and_set(string backend)
    {
        using var b = Backends.Create(backend);
        using var s1 = b.OpenState();
        using var s2 = b.OpenState();
        for (var i = 0; i < 20; i++)
        {
            var id = "worker-" + i;
            using var go = new Barrier(2);
            var t1 = Task.Run(() => { go.SignalAndWait(); return s1.BindWorkerKey(id, "k1-" + i, 1); });
            var t2 = Task.Run(() => { go.SignalAndWait(); return s2.BindWorkerKey(id, "k2-" + i, 2); });
            Task.WaitAll(t1, t2);
            Assert.AreEqual(t1.Result.PublicKeyHex, t2.Result.PublicKeyHex, "both see the one key that won");
            Assert.AreEqual(t1.Result, s1.ReadWorkerKey(id));
        }

        Assert.IsNull(s1.ReadWorkerKey("nobody"));
        var bound = s1.ReadWorkerKey("worker-0")!.PublicKeyHex;
        Assert.IsFalse(s2.RotateWorkerKey("worker-0", "not-the-key", "k3", 5));
        Assert.IsTrue(s2.RotateWorkerKey("worker-0", bound, "k3", 5));
        Assert.IsFalse(s1.RotateWorkerKey("worker-0", bound, "k4", 6), "a second rotation from the old key loses");
        Assert.AreEqual(new WorkerKeyBinding("worker-0", "k3", 5, 1), s1.ReadWorkerKey("worker-0"));
        Assert.AreEqual("k3", s1.BindWorkerKey("worker-0", "k9", 7).PublicKeyHex);
    }

    private static CoordinatorStateStore MoveSqlite(TestBackend b, string moved)
    {
        Directory.CreateDirectory(moved);
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        foreach (var f in Directory.EnumerateFiles(b.Folder))
        {
            File.Copy(f, Path.Combine(moved, Path.GetFileName(f)));
        }

        return new CoordinatorStateStore(Path.Combine(moved, CoordinatorStateFolder.StateFileName));
    }
}
