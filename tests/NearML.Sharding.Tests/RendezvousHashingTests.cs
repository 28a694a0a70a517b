using System.Security.Cryptography;

namespace NearML.Sharding.Tests;

[TestClass]
public sealed class RendezvousHashingTests
{
    private static byte[] Root(int seed) => SHA256.HashData(BitConverter.GetBytes(seed));

    private static List<WorkerCapacity> Workers(int n, double capacity = 1) =>
        Enumerable.Range(0, n).Select(i => new WorkerCapacity($"worker-{i}", capacity)).ToList();

    [TestMethod]
    public void Assignment_is_deterministic_and_order_independent()
    {
        var w = Workers(5);
        var a = RendezvousHashing.Assign(Root(1), 300, w);
        var b = RendezvousHashing.Assign(Root(1), 300, Enumerable.Reverse(w).ToList());
        CollectionAssert.AreEqual(a.Owners.ToArray(), b.Owners.ToArray());
        var c = RendezvousHashing.Assign(Root(2), 300, w);
        Assert.IsGreaterThan(100, a.CountMoved(c), "a different dataset root gives a different assignment");
        Assert.AreEqual(300, w.Sum(x => a.ShardsOf(x.WorkerId).Length));
    }

    [TestMethod]
    [DataRow(4)]
    [DataRow(8)]
    public void Joining_moves_about_one_in_n_plus_one_shards_and_only_to_the_joiner(int n)
    {
        const int Shards = 2000;
        foreach (var seed in Enumerable.Range(0, 6))
        {
            var before = RendezvousHashing.Assign(Root(seed), Shards, Workers(n));
            var joined = Workers(n);
            joined.Add(new WorkerCapacity("joiner", 1));
            var after = RendezvousHashing.Assign(Root(seed), Shards, joined);
            var moved = 0;
            for (var s = 0; s < Shards; s++)
            {
                if (before.Owners[s] != after.Owners[s])
                {
                    moved++;
                    Assert.AreEqual("joiner", after.Owners[s], $"seed {seed} shard {s} moved between existing workers");
                }
            }

            // Binomial(Shards, 1/(n+1)): stay within 4 standard deviations.
            var p = 1.0 / (n + 1);
            var sigma = Math.Sqrt(Shards * p * (1 - p));
            Assert.IsLessThan(4 * sigma, Math.Abs(moved - (Shards * p)), $"n={n} seed {seed}: {moved} moved, expected ≈ {Shards * p:F0}");
        }
    }

    [TestMethod]
    [DataRow(4)]
    [DataRow(8)]
    public void Leaving_moves_only_the_leavers_shards(int n)
    {
        const int Shards = 2000;
        foreach (var seed in Enumerable.Range(10, 6))
        {
            var all = Workers(n);
            var before = RendezvousHashing.Assign(Root(seed), Shards, all);
            var leaver = all[seed % n].WorkerId;
            var after = RendezvousHashing.Assign(Root(seed), Shards, all.Where(w => w.WorkerId != leaver).ToList());
            var moved = before.CountMoved(after);
            Assert.AreEqual(before.ShardsOf(leaver).Length, moved, "exactly the leaver's shards move");
            Assert.IsEmpty(after.ShardsOf(leaver));
            var p = 1.0 / n;
            var sigma = Math.Sqrt(Shards * p * (1 - p));
            Assert.IsLessThan(4 * sigma, Math.Abs(moved - (Shards * p)), $"n={n} seed {seed}: {moved} moved");
        }
    }

    [TestMethod]
    public void Capacities_are_respected_proportionally()
    {
        const int Shards = 6000;
        var workers = new[] { new WorkerCapacity("a", 1), new WorkerCapacity("b", 2), new WorkerCapacity("c", 3), new WorkerCapacity("d", 4) };
        foreach (var seed in Enumerable.Range(0, 3))
        {
            var a = RendezvousHashing.Assign(Root(seed), Shards, workers);
            foreach (var w in workers)
            {
                var p = w.Capacity / 10.0;
                var sigma = Math.Sqrt(Shards * p * (1 - p));
                var got = a.ShardsOf(w.WorkerId).Length;
                Assert.IsLessThan(4 * sigma, Math.Abs(got - (Shards * p)), $"seed {seed} {w.WorkerId}: {got} shards, expected ≈ {Shards * p:F0}");
            }
        }
    }

    [TestMethod]
    public void Raising_one_capacity_only_moves_shards_to_that_worker()
    {
        var workers = Workers(5);
        var before = RendezvousHashing.Assign(Root(3), 1000, workers);
        workers[2] = workers[2] with { Capacity = 3 };
        var after = RendezvousHashing.Assign(Root(3), 1000, workers);
        for (var s = 0; s < 1000; s++)
        {
            if (before.Owners[s] != after.Owners[s])
            {
                Assert.AreEqual("worker-2", after.Owners[s]);
            }
        }

        Assert.IsGreaterThan(before.ShardsOf("worker-2").Length + 200, after.ShardsOf("worker-2").Length);
    }

    [TestMethod]
    public void Assignment_is_pinned_across_versions()
    {
        // Workers on different machines and NearML versions must compute the same owners: pin a small case.
        var root = SHA256.HashData("nearml"u8);
        var a = RendezvousHashing.Assign(root, 12, [new("alice", 1), new("bob", 2), new("carol", 1)]);
        CollectionAssert.AreEqual(
            new[] { "alice", "bob", "bob", "alice", "alice", "alice", "alice", "bob", "alice", "alice", "bob", "bob" },
            a.Owners.ToArray());
        Assert.AreEqual(1.001643879772163, RendezvousHashing.Score(root, 5, "bob", 2));
        Assert.IsEmpty(a.ShardsOf("carol"));
    }

    [TestMethod]
    public void Bad_workers_are_rejected()
    {
        var root = Root(0);
        Assert.ThrowsExactly<ArgumentException>(() => RendezvousHashing.Assign(root, 5, []));
        Assert.ThrowsExactly<ArgumentException>(() => RendezvousHashing.Assign(root, 5, [new("a", 1), new("a", 2)]));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => RendezvousHashing.Assign(root, 5, [new("a", 0)]));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => RendezvousHashing.Assign(root, 5, [new("a", double.NaN)]));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => RendezvousHashing.Assign(root, 5, [new("a", double.PositiveInfinity)]));
        Assert.ThrowsExactly<ArgumentException>(() => RendezvousHashing.Assign(root, 5, [new(string.Empty, 1)]));
    }
}
