using NearML.Ledger;

namespace NearML.PostgreSql.Tests;

/// <summary>The <see cref="ISettlementStore"/> contract (what makes <see cref="NearSettler"/> exactly-once), on SQLite and PostgreSQL.</summary>
[TestClass]
public sealed class SettlementStoreContractTests
{
    [TestMethod]
    [DataRow(Backends.Sqlite)]
    [DataRow(Backends.PostgreSql)]
    public void Intents_round_trip_and_an_existing_intent_is_never_overwritten(string backend)
    {
        using var b = Backends.Create(backend);
        var root = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        var payouts = new List<WorkerPayout> { new("alice.testnet", 3, UInt128.MaxValue), new("bob.testnet", 1, 12345) };
        using (var store = b.OpenSettlement())
        {
            Assert.IsNull(store.GetIntent(7));
            store.CreateIntent(new SettlementIntent(7, root, payouts, DryRun: false, Settled: true)); // Settled is ignored: a new intent is open
            store.CreateIntent(new SettlementIntent(3, new byte[32], [], DryRun: true, Settled: false));
            var ex = Assert.ThrowsExactly<LedgerStorageException>(() => store.CreateIntent(new SettlementIntent(7, new byte[32], [], DryRun: true, Settled: false)));
            StringAssert.Contains(ex.Message, store.Location);
        }

        using var again = b.OpenSettlement();
        CollectionAssert.AreEqual(new long[] { 3, 7 }, again.ListEpochs().ToList());
        var intent = again.GetIntent(7)!;
        CollectionAssert.AreEqual(root, intent.Root);
        CollectionAssert.AreEqual(payouts, intent.Payouts.ToList());
        Assert.IsFalse(intent.DryRun);
        Assert.IsFalse(intent.Settled);
        Assert.IsTrue(again.GetIntent(3)!.DryRun);
        again.MarkSettled(7);
        Assert.IsTrue(again.GetIntent(7)!.Settled);
        Assert.IsFalse(again.GetIntent(3)!.Settled);
    }

    [TestMethod]
    [DataRow(Backends.Sqlite)]
    [DataRow(Backends.PostgreSql)]
    public void Signed_transactions_keep_their_bytes_and_nonce_and_a_duplicate_slot_attempt_is_refused(string backend)
    {
        using var b = Backends.Create(backend);
        var rng = new Random(9);
        var txs = new List<SettlementTransaction>();
        foreach (var (slot, attempt, nonce) in new[] { (1, 0, ulong.MaxValue), (0, 1, 42UL), (0, 0, 41UL), (2, 0, 0UL) })
        {
            var bytes = new byte[rng.Next(50, 400)];
            rng.NextBytes(bytes);
            txs.Add(new SettlementTransaction(5, slot, attempt, nonce, $"hash-{slot}-{attempt}", bytes, SettlementTxState.Signed, null));
        }

        using (var store = b.OpenSettlement())
        {
            store.CreateIntent(new SettlementIntent(5, new byte[32], [], false, false));
            foreach (var t in txs)
            {
                store.AddTransaction(t);
            }

            // A retry must re-send the stored bytes, never sign a second transaction for the same slot and attempt.
            Assert.ThrowsExactly<LedgerStorageException>(() => store.AddTransaction(txs[0] with { Hash = "other", SignedBytes = [1, 2, 3] }));
            store.SetState(5, 0, 0, SettlementTxState.Replaced, null);
            store.SetState(5, 0, 1, SettlementTxState.Succeeded, """{"status":"ok"}""");
        }

        using var again = b.OpenSettlement();
        var read = again.GetTransactions(5);
        Assert.AreEqual(4, read.Count);
        CollectionAssert.AreEqual(new[] { (0, 0), (0, 1), (1, 0), (2, 0) }, read.Select(t => (t.Slot, t.Attempt)).ToList());
        foreach (var t in read)
        {
            var original = txs.Single(x => x.Slot == t.Slot && x.Attempt == t.Attempt);
            Assert.AreEqual(original.Nonce, t.Nonce);
            Assert.AreEqual(original.Hash, t.Hash);
            CollectionAssert.AreEqual(original.SignedBytes, t.SignedBytes);
        }

        Assert.AreEqual(SettlementTxState.Replaced, read[0].State);
        Assert.IsNull(read[0].Outcome);
        Assert.AreEqual(SettlementTxState.Succeeded, read[1].State);
        Assert.AreEqual("""{"status":"ok"}""", read[1].Outcome);
        Assert.AreEqual(SettlementTxState.Signed, read[2].State);
        Assert.AreEqual(0, again.GetTransactions(6).Count);
    }

    [TestMethod]
    [DataRow(Backends.Sqlite)]
    [DataRow(Backends.PostgreSql)]
    public void Two_processes_creating_the_same_intent_at_once_one_wins_the_other_is_refused(string backend)
    {
        using var b = Backends.Create(backend);
        using var s1 = b.OpenSettlement();
        using var s2 = b.OpenSettlement();
        for (var epoch = 0; epoch < 10; epoch++)
        {
            using var go = new Barrier(2);
            var e = epoch;
            var results = new[] { s1, s2 }.Select((s, i) => Task.Run(() =>
            {
                go.SignalAndWait();
                try
                {
                    s.CreateIntent(new SettlementIntent(e, [(byte)i, .. new byte[31]], [new WorkerPayout("w" + i, 1, 1)], false, false));
                    return true;
                }
                catch (LedgerStorageException)
                {
                    return false;
                }
            })).ToArray();
            Task.WaitAll(results);
            Assert.AreEqual(1, results.Count(r => r.Result), $"epoch {epoch}");
            var winner = Array.FindIndex(results, r => r.Result);
            Assert.AreEqual((byte)winner, s1.GetIntent(e)!.Root[0]);
            Assert.AreEqual("w" + winner, s2.GetIntent(e)!.Payouts.Single().WorkerId);
        }
    }
}
