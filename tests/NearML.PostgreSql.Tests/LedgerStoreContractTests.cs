using System.Security.Cryptography;
using NearML.Hosting.State;
using NearML.Ledger;

namespace NearML.PostgreSql.Tests;

/// <summary>The <see cref="ILedgerStore"/> contract, run against SQLite and a real PostgreSQL server alike.</summary>
[TestClass]
public sealed class LedgerStoreContractTests
{
    [TestMethod]
    [DataRow(Backends.Sqlite)]
    [DataRow(Backends.PostgreSql)]
    public void Random_batches_read_back_exactly_with_head_and_epoch_index_matching_a_model(string backend)
    {
        using var b = Backends.Create(backend);
        var rng = new Random(1234);
        var model = new List<LedgerEntry>();
        using (var store = b.OpenLedger())
        {
            Assert.AreEqual(0, store.ReadHead().Count);
            long epoch = 0;
            for (var batch = 0; batch < 25; batch++)
            {
                var entries = new List<LedgerEntry>();
                var n = rng.Next(1, 12);
                for (var i = 0; i < n; i++)
                {
                    if (rng.Next(5) == 0)
                    {
                        epoch += rng.Next(1, 3); // epochs grow, sometimes inside a batch, sometimes with gaps
                    }

                    entries.Add(Entry(model.Count + entries.Count, epoch, model.Count + entries.Count == 0 ? new byte[32] : (entries.Count > 0 ? entries[^1] : model[^1]).Hash, rng));
                }

                store.Append(store.ReadHead(), entries);
                model.AddRange(entries);
            }
        }

        // Read back through a second instance: durable across close and reopen.
        using var again = b.OpenLedger();
        var head = again.ReadHead();
        Assert.AreEqual(model.Count, head.Count);
        CollectionAssert.AreEqual(model[^1].Hash, head.LastHash);
        Assert.AreEqual(model[^1].Epoch, head.LastEpoch);
        AssertSame(model, again.Read(0).ToList());
        AssertSame(model.Skip(7).Take(5).ToList(), again.Read(7, 5).ToList());
        Assert.AreEqual(0, again.Read(model.Count).Count());
        var epochs = model.Select(e => e.Epoch).Distinct().ToList();
        CollectionAssert.AreEqual(epochs, again.ListEpochs().ToList());
        foreach (var e in epochs)
        {
            var inEpoch = model.Where(x => x.Epoch == e).ToList();
            Assert.AreEqual((inEpoch[0].Sequence, (long)inEpoch.Count), again.GetEpochRange(e));
        }

        Assert.IsNull(again.GetEpochRange(epochs[^1] + 1));
    }

    [TestMethod]
    [DataRow(Backends.Sqlite)]
    [DataRow(Backends.PostgreSql)]
    public void A_stale_expected_head_is_refused_and_writes_nothing(string backend)
    {
        using var b = Backends.Create(backend);
        using var store = b.OpenLedger();
        var rng = new Random(2);
        var first = Entry(0, 0, new byte[32], rng);
        store.Append(LedgerHead.Empty, [first]);

        var ex = Assert.ThrowsExactly<LedgerIntegrityException>(() => store.Append(LedgerHead.Empty, [Entry(0, 0, new byte[32], rng)]));
        StringAssert.Contains(ex.Message, "head moved");
        Assert.AreEqual(1, ex.Sequence);

        // Right count, wrong hash: also stale.
        var forged = new LedgerHead(1, new byte[32], 0);
        Assert.ThrowsExactly<LedgerIntegrityException>(() => store.Append(forged, [Entry(1, 0, first.Hash, rng)]));
        Assert.AreEqual(1, store.ReadHead().Count);
        AssertSame([first], store.Read(0).ToList());
    }

    [TestMethod]
    [DataRow(Backends.Sqlite)]
    [DataRow(Backends.PostgreSql)]
    public void A_batch_that_fails_half_way_leaves_no_entry_and_no_epoch_count(string backend)
    {
        using var b = Backends.Create(backend);
        using var store = b.OpenLedger();
        var rng = new Random(3);
        var e0 = Entry(0, 4, new byte[32], rng);
        store.Append(LedgerHead.Empty, [e0]);
        var e1 = Entry(1, 4, e0.Hash, rng);
        var e2 = Entry(2, 5, e1.Hash, rng);

        // The third row repeats sequence 2: the database refuses it after two rows were inserted in the transaction.
        var dup = Entry(2, 5, e2.Hash, rng);
        Assert.ThrowsExactly<LedgerStorageException>(() => store.Append(store.ReadHead(), [e1, e2, dup]));
        Assert.AreEqual(1, store.ReadHead().Count);
        Assert.AreEqual((0L, 1L), store.GetEpochRange(4));
        Assert.IsNull(store.GetEpochRange(5));

        store.Append(store.ReadHead(), [e1, e2]);
        Assert.AreEqual((0L, 2L), store.GetEpochRange(4));
        Assert.AreEqual((2L, 1L), store.GetEpochRange(5));
    }

    [TestMethod]
    [DataRow(Backends.Sqlite)]
    [DataRow(Backends.PostgreSql)]
    public void Entries_cannot_be_updated_or_deleted_even_with_direct_access(string backend)
    {
        using var b = Backends.Create(backend);
        using (var store = b.OpenLedger())
        {
            store.Append(LedgerHead.Empty, [Entry(0, 0, new byte[32], new Random(4))]);
        }

        foreach (var sql in new[] { "UPDATE entries SET epoch = 9", "DELETE FROM entries" })
        {
            var ex = Assert.Throws<Exception>(() => b.Tamper(StateStoreKind.Ledger, sql));
            StringAssert.Contains(ex.Message, "append-only", sql);
        }

        using var again = b.OpenLedger();
        Assert.AreEqual(1, again.ReadHead().Count);
        Assert.AreEqual(0, again.ReadHead().LastEpoch);
    }

    [TestMethod]
    [DataRow(Backends.Sqlite)]
    [DataRow(Backends.PostgreSql)]
    public void Two_writers_racing_on_the_same_head_exactly_one_batch_lands(string backend)
    {
        using var b = Backends.Create(backend);
        using var s1 = b.OpenLedger();
        using var s2 = b.OpenLedger(); // a second process's view of the same ledger
        var rng = new Random(5);
        for (var trial = 0; trial < 10; trial++)
        {
            var head = s1.ReadHead();
            var prev = head.Count == 0 ? new byte[32] : head.LastHash;
            var a = Enumerable.Range(0, 3).Select(i => Entry(head.Count + i, trial, prev, rng)).ToList();
            var c = Enumerable.Range(0, 3).Select(i => Entry(head.Count + i, trial, prev, rng)).ToList();
            using var go = new Barrier(2);
            var results = new Exception?[2];
            var t1 = Task.Run(() => results[0] = Try(() => { go.SignalAndWait(); s1.Append(head, a); }));
            var t2 = Task.Run(() => results[1] = Try(() => { go.SignalAndWait(); s2.Append(head, c); }));
            Task.WaitAll(t1, t2);
            Assert.AreEqual(1, results.Count(r => r is null), $"trial {trial}: {results[0]?.Message} / {results[1]?.Message}");
            var loser = results.Single(r => r is not null)!;
            Assert.IsTrue(loser is LedgerIntegrityException or LedgerStorageException, loser.ToString());
            var landed = results[0] is null ? a : c;
            Assert.AreEqual(head.Count + 3, s2.ReadHead().Count);
            AssertSame(landed, s1.Read(head.Count).ToList());
        }

        Assert.AreEqual((27L, 3L), s1.GetEpochRange(9));
    }

    private static Exception? Try(Action a)
    {
        try
        {
            a();
            return null;
        }
        catch (Exception ex) when (ex is LedgerIntegrityException or LedgerStorageException)
        {
            return ex;
        }
    }

    private static LedgerEntry Entry(long seq, long epoch, byte[] prev, Random rng)
    {
        var payload = new byte[rng.Next(0, 300)];
        rng.NextBytes(payload);
        var hash = SHA256.HashData([.. prev, .. payload, (byte)seq]);
        return new LedgerEntry(seq, epoch, prev, hash, payload);
    }

    private static void AssertSame(List<LedgerEntry> expected, List<LedgerEntry> actual)
    {
        Assert.AreEqual(expected.Count, actual.Count);
        for (var i = 0; i < expected.Count; i++)
        {
            Assert.AreEqual(expected[i].Sequence, actual[i].Sequence);
            Assert.AreEqual(expected[i].Epoch, actual[i].Epoch);
            CollectionAssert.AreEqual(expected[i].PreviousHash, actual[i].PreviousHash);
            CollectionAssert.AreEqual(expected[i].Hash, actual[i].Hash);
            CollectionAssert.AreEqual(expected[i].Payload, actual[i].Payload);
        }
    }
}
