using NearML.Core;
using NearML.Hosting.State;
using NearML.Ledger;

namespace NearML.PostgreSql.Tests;

/// <summary>
/// <see cref="CoordinatorStateFolder"/>'s start-up cross-checks over each backend: a folder whose stores agree opens and
/// resumes (checkpoint loaded, anchors verified, signatures checked); stores that disagree are refused with the
/// store named.
/// </summary>
[TestClass]
public sealed class StateFolderBackendTests
{
    private const string Job = "backend-job";

    [TestMethod]
    [DataRow(Backends.Sqlite)]
    [DataRow(Backends.PostgreSql)]
    public void A_consistent_folder_reopens_resumes_from_its_checkpoint_and_verifies_its_ledger(string backend)
    {
        using var b = Backends.Create(backend);
        Simulate(b, 0, 4);
        using var folder = CoordinatorStateFolder.Open(b.Folder, b.StateBackend, Job);
        Assert.IsFalse(folder.IsNew);
        Assert.AreEqual(3, folder.LastRound);
        Assert.AreEqual(8, folder.Ledger.Head.Count);
        var latest = CheckpointStore.LoadLatest(folder.State, Layout())!;
        Assert.AreEqual(3, latest.Round);
        Assert.AreEqual(3.5f, latest.Parameters.Buffer[0]);
        Assert.IsTrue(folder.Ledger.Verify().IsValid);
    }

    [TestMethod]
    [DataRow(Backends.Sqlite)]
    [DataRow(Backends.PostgreSql)]
    public void A_crash_between_receipts_and_round_record_is_accepted_once(string backend)
    {
        using var b = Backends.Create(backend);
        Simulate(b, 0, 2, unrecordedRounds: 1);
        using (var folder = CoordinatorStateFolder.Open(b.Folder, b.StateBackend, Job))
        {
            Assert.AreEqual(1, folder.LastRound);
            Assert.AreEqual(6, folder.Ledger.Head.Count);
        }

        // A second unrecorded round on top is no longer one crash: the state is behind the ledger.
        Simulate(b, 3, 0, unrecordedRounds: 1);
        var ex = Assert.ThrowsExactly<CoordinatorStateException>(() => CoordinatorStateFolder.Open(b.Folder, b.StateBackend, Job).Dispose());
        Assert.AreEqual(StateProblem.OutOfStep, ex.Problem);
        Assert.AreEqual(b.StateBackend.Describe(b.Folder, StateStoreKind.State), ex.FilePath);
    }

    [TestMethod]
    [DataRow(Backends.Sqlite)]
    [DataRow(Backends.PostgreSql)]
    public void An_emptied_coordinator_state_next_to_receipts_is_refused(string backend)
    {
        using var b = Backends.Create(backend);
        Simulate(b, 0, 2);
        b.Tamper(StateStoreKind.State, "DELETE FROM checkpoints; DELETE FROM rounds; DELETE FROM job;");
        var ex = Assert.ThrowsExactly<CoordinatorStateException>(() => CoordinatorStateFolder.Open(b.Folder, b.StateBackend, Job).Dispose());
        Assert.AreEqual(StateProblem.Truncated, ex.Problem);
        StringAssert.Contains(ex.Message, "holds 4 receipt(s)");
        StringAssert.Contains(ex.Message, b.StateBackend.Describe(b.Folder, StateStoreKind.Ledger));
    }

    [TestMethod]
    [DataRow(Backends.Sqlite)]
    [DataRow(Backends.PostgreSql)]
    public void A_deleted_round_row_that_a_checkpoint_proves_is_refused(string backend)
    {
        using var b = Backends.Create(backend);
        Simulate(b, 0, 3);
        b.Tamper(StateStoreKind.State, "DELETE FROM rounds WHERE round = 2;");
        var ex = Assert.ThrowsExactly<CoordinatorStateException>(() => CoordinatorStateFolder.Open(b.Folder, b.StateBackend, Job).Dispose());
        Assert.IsTrue(ex.Problem is StateProblem.Truncated or StateProblem.OutOfStep, ex.Message);
    }

    [TestMethod]
    [DataRow(Backends.Sqlite)]
    [DataRow(Backends.PostgreSql)]
    public void A_replaced_signing_key_is_refused(string backend)
    {
        using var b = Backends.Create(backend);
        Simulate(b, 0, 1);
        using (var other = NearKeyPair.Generate())
        {
            File.WriteAllText(Path.Combine(b.Folder, CoordinatorStateFolder.SignerKeyFileName), other.ExportSecretKey());
        }

        var ex = Assert.ThrowsExactly<CoordinatorStateException>(() => CoordinatorStateFolder.Open(b.Folder, b.StateBackend, Job).Dispose());
        Assert.AreEqual(StateProblem.SigningKey, ex.Problem);
    }

    [TestMethod]
    [DataRow(Backends.Sqlite)]
    [DataRow(Backends.PostgreSql)]
    public void A_settlement_intent_whose_root_the_ledger_no_longer_gives_is_refused(string backend)
    {
        using var b = Backends.Create(backend);
        Simulate(b, 0, 2);
        using (var folder = CoordinatorStateFolder.Open(b.Folder, b.StateBackend, Job))
        using (var settlement = b.OpenSettlement())
        {
            settlement.CreateIntent(new SettlementIntent(0, folder.Ledger.ComputeEpochRoot(0), [], false, false));
        }

        using (CoordinatorStateFolder.Open(b.Folder, b.StateBackend, Job))
        {
        }

        var zero = b.StateBackend is SqliteStateBackend ? "zeroblob(32)" : "'\\x" + new string('0', 64) + "'::bytea";
        b.Tamper(StateStoreKind.Settlement, $"UPDATE intents SET root = {zero} WHERE epoch = 0;");
        var ex = Assert.ThrowsExactly<CoordinatorStateException>(() => CoordinatorStateFolder.Open(b.Folder, b.StateBackend, Job).Dispose());
        Assert.AreEqual(StateProblem.Altered, ex.Problem);
        StringAssert.Contains(ex.Message, "no longer matches");
    }

    private static void Simulate(TestBackend b, int fromRound, int rounds, int unrecordedRounds = 0)
    {
        using var folder = CoordinatorStateFolder.Open(b.Folder, b.StateBackend, Job);
        folder.State.EnsureJob(Job, "mlp", "{}", "root", "settings", 0);
        var checkpoints = new CheckpointStore(Path.Combine(b.Folder, CheckpointStore.FolderName), folder.State, Job, 10, TimeProvider.System);
        try
        {
            for (var round = fromRound; round < fromRound + rounds + unrecordedRounds; round++)
            {
                var batch = new[] { "w0", "w1" }
                    .Select(w => SignedReceipt.Sign(new ContributionReceipt(Job, round, w, 64, 0, 5, 100, AttestationVerdict.Verified, new byte[32], 1000 + round), folder.Signer))
                    .ToList();
                folder.Ledger.AppendBatch(round / 2, batch);
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

    private static ParameterLayout Layout() => new([("w", [8])]);

    private static CoordinatorCheckpoint Checkpoint(long round)
    {
        var p = new ParameterSet(Layout());
        p.Buffer.AsSpan().Fill(round + 0.5f);
        return new CoordinatorCheckpoint(round, round + 1, p, p.CreateZeros());
    }
}
