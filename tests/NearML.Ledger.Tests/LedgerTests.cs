using Microsoft.Data.Sqlite;
using NearML.Core;

namespace NearML.Ledger.Tests;

[TestClass]
public sealed class LedgerTests
{
    private static ContributionLedger NewLedger(out string path, int batches = 3, int batchSize = 10)
    {
        path = TestData.TempFile("ledger.db");
        var ledger = ContributionLedger.OpenSqlite(path);
        int n = 0;
        for (int b = 0; b < batches; b++)
        {
            ledger.AppendBatch(b < 2 ? 0 : 1, Enumerable.Range(n, batchSize).Select(i => TestData.Signed(i, countersign: i % 2 == 0)).ToList());
            n += batchSize;
        }

        return ledger;
    }

    private static void Tamper(string path, string sql, params (string Name, object Value)[] args)
    {
        using var conn = new SqliteConnection($"Data Source={path};Pooling=False");
        conn.Open();
        using SqliteCommand drop = conn.CreateCommand();
        drop.CommandText = "DROP TRIGGER IF EXISTS entries_no_update; DROP TRIGGER IF EXISTS entries_no_delete;";
        drop.ExecuteNonQuery();
        using SqliteCommand cmd = conn.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (name, value) in args)
        {
            cmd.Parameters.AddWithValue(name, value);
        }

        cmd.ExecuteNonQuery();
    }

    private static byte[] Payload(string path, long seq)
    {
        using var conn = new SqliteConnection($"Data Source={path};Pooling=False");
        conn.Open();
        using SqliteCommand cmd = conn.CreateCommand();
        cmd.CommandText = "SELECT payload FROM entries WHERE seq = $s";
        cmd.Parameters.AddWithValue("$s", seq);
        return (byte[])cmd.ExecuteScalar()!;
    }

    [TestMethod]
    public void Sqlite_opens_a_file_in_wal_mode_with_sqlitepclraw_3()
    {
        string path = TestData.TempFile("probe.db");
        using (var store = new SqliteLedgerStore(path))
        {
            Assert.AreEqual(0, store.ReadHead().Count);
        }

        using var conn = new SqliteConnection($"Data Source={path};Pooling=False");
        conn.Open();
        using SqliteCommand cmd = conn.CreateCommand();
        cmd.CommandText = "PRAGMA journal_mode";
        Assert.AreEqual("wal", cmd.ExecuteScalar());
    }

    [TestMethod]
    public void Appended_ledger_verifies_and_survives_reopening()
    {
        using (ContributionLedger ledger = NewLedger(out string path))
        {
            Assert.AreEqual(30, ledger.Head.Count);
            Assert.IsTrue(ledger.Verify().IsValid);
            Assert.IsTrue(ledger.VerifySignatures(TestData.Coordinator.PublicKey).IsValid);
            LedgerHead head = ledger.Head;
            ledger.Dispose();
            using ContributionLedger reopened = ContributionLedger.OpenSqlite(path);
            Assert.IsTrue(reopened.Head.SameAs(head));
            LedgerVerificationResult r = reopened.Verify(head);
            Assert.IsTrue(r.IsValid, r.Message);
            Assert.AreEqual(30, r.EntriesChecked);
            CollectionAssert.AreEqual(new long[] { 0, 1 }, reopened.Store.ListEpochs().ToArray());
            Assert.AreEqual(20, reopened.ReadEpochReceipts(0).Count);
            CollectionAssert.AreEqual(TestData.Receipt(25).ToBorsh(), reopened.ReadEpochReceipts(1)[5].Receipt.ToBorsh());
        }
    }

    [TestMethod]
    public void Store_refuses_updates_and_deletes()
    {
        using ContributionLedger ledger = NewLedger(out string path);
        using var conn = new SqliteConnection($"Data Source={path};Pooling=False");
        conn.Open();
        using SqliteCommand cmd = conn.CreateCommand();
        cmd.CommandText = "UPDATE entries SET epoch = 5 WHERE seq = 3";
        Assert.ThrowsExactly<SqliteException>(() => cmd.ExecuteNonQuery());
        cmd.CommandText = "DELETE FROM entries WHERE seq = 3";
        Assert.ThrowsExactly<SqliteException>(() => cmd.ExecuteNonQuery());
    }

    [TestMethod]
    public void Altered_payload_is_named()
    {
        using ContributionLedger ledger = NewLedger(out string path);
        byte[] p = Payload(path, 13);
        p[40] ^= 1;
        Tamper(path, "UPDATE entries SET payload = $p WHERE seq = 13", ("$p", p));
        LedgerVerificationResult r = ledger.Verify();
        Assert.AreEqual(LedgerProblem.Altered, r.Problem);
        Assert.AreEqual(13, r.FirstBadSequence);
        StringAssert.Contains(r.Message, "entry 13");
    }

    [TestMethod]
    public void Altered_and_rehashed_entry_is_named_through_the_broken_link()
    {
        using ContributionLedger ledger = NewLedger(out string path);
        LedgerEntry e = ledger.Store.Read(7, 1).Single();
        byte[] forged = SignedReceipt.Sign(TestData.Receipt(999), TestData.Coordinator).ToBorsh();
        byte[] hash = LedgerEntry.ComputeHash(7, e.Epoch, e.PreviousHash, forged);
        Tamper(path, "UPDATE entries SET payload = $p, entry_hash = $h WHERE seq = 7", ("$p", forged), ("$h", hash));
        LedgerVerificationResult r = ledger.Verify();
        Assert.AreEqual(LedgerProblem.Altered, r.Problem);
        Assert.AreEqual(7, r.FirstBadSequence);
    }

    [TestMethod]
    public void Removed_entry_is_named()
    {
        using ContributionLedger ledger = NewLedger(out string path);
        Tamper(path, "DELETE FROM entries WHERE seq = 21");
        LedgerVerificationResult r = ledger.Verify();
        Assert.AreEqual(LedgerProblem.Removed, r.Problem);
        Assert.AreEqual(21, r.FirstBadSequence);
    }

    [TestMethod]
    public void Removed_entry_with_renumbered_successors_is_named()
    {
        using ContributionLedger ledger = NewLedger(out string path);
        Tamper(path, "DELETE FROM entries WHERE seq = 21; UPDATE entries SET seq = seq - 1 WHERE seq > 21;");
        LedgerVerificationResult r = ledger.Verify();
        Assert.AreEqual(LedgerProblem.Removed, r.Problem, r.Message);
        Assert.AreEqual(21, r.FirstBadSequence);
    }

    [TestMethod]
    public void Truncated_tail_is_found_against_a_trusted_head()
    {
        using ContributionLedger ledger = NewLedger(out string path);
        LedgerHead trusted = ledger.Head;
        Tamper(path, "DELETE FROM entries WHERE seq >= 28");
        Assert.IsTrue(ledger.Verify().IsValid); // without an anchor a clean truncation is indistinguishable
        LedgerVerificationResult r = ledger.Verify(trusted);
        Assert.AreEqual(LedgerProblem.Removed, r.Problem);
        Assert.AreEqual(28, r.FirstBadSequence);
    }

    [TestMethod]
    public void Swapped_entries_are_named_as_reordered()
    {
        using ContributionLedger ledger = NewLedger(out string path);
        Tamper(path, "UPDATE entries SET seq = -1 WHERE seq = 4; UPDATE entries SET seq = 4 WHERE seq = 9; UPDATE entries SET seq = 9 WHERE seq = -1;");
        LedgerVerificationResult r = ledger.Verify();
        Assert.AreEqual(LedgerProblem.Reordered, r.Problem, r.Message);
        Assert.AreEqual(4, r.FirstBadSequence);
    }

    [TestMethod]
    public void Bad_signature_is_named_by_signature_verification()
    {
        using ContributionLedger ledger = NewLedger(out string path);
        // Re-chain a forged receipt whose signature is garbage: hash chain stays valid, signatures do not.
        string path2 = TestData.TempFile("forged.db");
        using ContributionLedger forged = ContributionLedger.OpenSqlite(path2);
        var good = Enumerable.Range(0, 5).Select(i => TestData.Signed(i)).ToList();
        SignedReceipt bad = good[3] with { CoordinatorSignature = new byte[64] };
        forged.AppendPayloads(0, good.Select((g, i) => i == 3 ? bad.ToBorsh() : g.ToBorsh()).ToList());
        Assert.IsTrue(forged.Verify().IsValid);
        LedgerVerificationResult r = forged.VerifySignatures();
        Assert.AreEqual(LedgerProblem.BadSignature, r.Problem);
        Assert.AreEqual(3, r.FirstBadSequence);
        using NearKeyPair other = NearKeyPair.Generate();
        Assert.AreEqual(0, ledger.VerifySignatures(other.PublicKey).FirstBadSequence);
    }

    [TestMethod]
    public void Append_refuses_a_bad_signature_and_leaves_the_ledger_unchanged()
    {
        using ContributionLedger ledger = NewLedger(out _);
        LedgerHead before = ledger.Head;
        var batch = new[] { TestData.Signed(100), TestData.Signed(101) with { CoordinatorSignature = new byte[64] } };
        Assert.ThrowsExactly<LedgerIntegrityException>(() => ledger.AppendBatch(1, batch));
        Assert.IsTrue(ledger.Head.SameAs(before));
    }

    [TestMethod]
    public void Epochs_never_go_backwards()
    {
        using ContributionLedger ledger = NewLedger(out _);
        var ex = Assert.ThrowsExactly<LedgerIntegrityException>(() => ledger.AppendBatch(0, [TestData.Signed(5)]));
        StringAssert.Contains(ex.Message, "epoch 0");
    }

    [TestMethod]
    public void Concurrent_writer_is_detected()
    {
        using ContributionLedger a = NewLedger(out string path);
        using var storeB = new SqliteLedgerStore(path);
        LedgerHead stale = storeB.ReadHead();
        a.AppendBatch(1, [TestData.Signed(500)]);
        var entry = new LedgerEntry(stale.Count, 1, stale.LastHash, LedgerEntry.ComputeHash(stale.Count, 1, stale.LastHash, [1]), [1]);
        Assert.ThrowsExactly<LedgerIntegrityException>(() => storeB.Append(stale, [entry]));
        Assert.IsTrue(a.Verify().IsValid);
    }

    [TestMethod]
    public void Inclusion_proofs_verify_for_every_entry_and_fail_when_tampered()
    {
        using ContributionLedger ledger = NewLedger(out _, batches: 3, batchSize: 7);
        byte[] root0 = ledger.ComputeEpochRoot(0);
        byte[] root1 = ledger.ComputeEpochRoot(1);
        for (long s = 0; s < 21; s++)
        {
            ReceiptInclusionProof proof = ledger.CreateInclusionProof(s);
            byte[] root = proof.Epoch == 0 ? root0 : root1;
            Assert.IsTrue(proof.Verify(root, TestData.Coordinator.PublicKey), $"entry {s}");
            Assert.IsFalse(proof.Verify(proof.Epoch == 0 ? root1 : root0), $"entry {s} against the other root");
            byte[] payload = (byte[])proof.Payload.Clone();
            payload[50] ^= 1;
            Assert.IsFalse((proof with { Payload = payload }).Verify(root));
            Assert.IsFalse((proof with { LeafIndex = (proof.LeafIndex + 1) % proof.TreeSize }).Verify(root));
        }

        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ledger.CreateInclusionProof(21));
    }

    [TestMethod]
    public void Merkle_root_matches_the_recursive_rfc6962_definition()
    {
        for (int n = 1; n <= 33; n++)
        {
            var leaves = Enumerable.Range(0, n).Select(i => System.Security.Cryptography.SHA256.HashData(BitConverter.GetBytes(i))).ToList();
            CollectionAssert.AreEqual(Recursive(leaves), MerkleTree.ComputeRoot(leaves), $"n={n}");
            for (int i = 0; i < n; i++)
            {
                Assert.IsTrue(MerkleTree.VerifyProof(MerkleTree.ComputeRoot(leaves), leaves[i], i, n, MerkleTree.GetProof(leaves, i)));
            }
        }

        static byte[] Recursive(List<byte[]> d)
        {
            if (d.Count == 1)
            {
                return MerkleTree.HashLeaf(d[0]);
            }

            int k = 1;
            while (k * 2 < d.Count)
            {
                k *= 2;
            }

            return MerkleTree.HashNode(Recursive(d[..k]), Recursive(d[k..]));
        }
    }

    [TestMethod]
    public void Signed_receipt_round_trips_and_rejects_garbage()
    {
        SignedReceipt r = TestData.Signed(3, countersign: true);
        SignedReceipt back = SignedReceipt.Parse(r.ToBorsh());
        Assert.IsTrue(back.Verify());
        CollectionAssert.AreEqual(r.ToBorsh(), back.ToBorsh());
        Assert.ThrowsExactly<InvalidDataFormatException>(() => SignedReceipt.Parse(r.ToBorsh().AsMemory()[..^1]));
        Assert.IsFalse((r with { WorkerSignature = new byte[64] }).Verify());
        Assert.ThrowsExactly<ArgumentException>(() => TestData.Signed(4).WithCountersignature(TestData.Worker.PublicKey, new byte[64]));
        Assert.ThrowsExactly<ArgumentException>(() => SignedReceipt.Sign(TestData.Receipt(1) with { UpdateHash = new byte[3] }, TestData.Coordinator));
        Assert.ThrowsExactly<InvalidAccountIdException>(() => SignedReceipt.Sign(TestData.Receipt(1, worker: "Bad Worker"), TestData.Coordinator));
    }
}
