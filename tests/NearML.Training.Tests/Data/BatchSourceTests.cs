using NearML.Core;
using NearML.Training.Data;

namespace NearML.Training.Tests.Data;

[TestClass]
public sealed class BatchSourceTests
{
    private static LabeledDataset Synthetic(int n, int features = 6)
    {
        var f = new float[n * features];
        for (var i = 0; i < f.Length; i++)
        {
            f[i] = i;
        }

        return new LabeledDataset(f, Enumerable.Range(0, n).Select(i => i % 10).ToArray(), [features], 10);
    }

    private static List<int> Epoch(ClassificationBatchSource src, Batch b, int epoch, List<int>? counts = null)
    {
        src.StartEpoch(epoch);
        var seen = new List<int>();
        while (src.TryFill(b))
        {
            counts?.Add(b.Count);
            for (var i = 0; i < b.Count; i++)
            {
                var sample = (int)(b.Features[i * 6] / 6);
                Assert.AreEqual(sample % 10, b.Targets[i], "label travels with its features");
                for (var j = 0; j < 6; j++)
                {
                    Assert.AreEqual((sample * 6) + j, b.Features[(i * 6) + j]);
                }

                seen.Add(sample);
            }
        }

        return seen;
    }

    [TestMethod]
    public void Each_epoch_is_a_seeded_permutation_with_a_partial_last_batch()
    {
        var data = Synthetic(103);
        var src = new ClassificationBatchSource(data, 10, seed: 42);
        var b = src.CreateBatch();
        var counts = new List<int>();
        var e0 = Epoch(src, b, 0, counts);
        CollectionAssert.AreEquivalent(Enumerable.Range(0, 103).ToList(), e0);
        CollectionAssert.AreEqual(Enumerable.Repeat(10, 10).Append(3).ToList(), counts);
        Assert.AreEqual(11, src.BatchesPerEpoch);
        var e1 = Epoch(src, b, 1);
        CollectionAssert.AreNotEqual(e0, e1, "epochs differ");
        CollectionAssert.AreEqual(e0, Epoch(src, b, 0), "epoch order depends only on (seed, epoch)");
        var other = new ClassificationBatchSource(data, 10, seed: 43);
        CollectionAssert.AreNotEqual(e0, Epoch(other, other.CreateBatch(), 0));
        Assert.IsFalse(src.TryFill(b));
        Assert.AreEqual(0, b.Count);
    }

    [TestMethod]
    public void Unshuffled_source_keeps_order_and_subsets_work()
    {
        var data = Synthetic(20);
        var src = new ClassificationBatchSource(data, 4, 1, shuffle: false);
        CollectionAssert.AreEqual(Enumerable.Range(0, 20).ToList(), Epoch(src, src.CreateBatch(), 5));
        var sub = new ClassificationBatchSource(data, [3, 17, 5], 2, 9);
        CollectionAssert.AreEquivalent(new[] { 3, 17, 5 }, Epoch(sub, sub.CreateBatch(), 0));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new ClassificationBatchSource(data, [20], 2, 9));
        Assert.ThrowsExactly<ArgumentException>(() => src.TryFill(new Batch(4, 5, 0, 1)));
    }

    [TestMethod]
    public void Public_entries_guard_their_arguments()
    {
        var data = Synthetic(5);
        Assert.AreEqual("data", Assert.ThrowsExactly<ArgumentNullException>(() => new ClassificationBatchSource(null!, 2, 1)).ParamName);
        Assert.AreEqual("batchSize", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new ClassificationBatchSource(data, 0, 1)).ParamName);
        Assert.AreEqual("batch", Assert.ThrowsExactly<ArgumentNullException>(() => new ClassificationBatchSource(data, 2, 1).TryFill(null!)).ParamName);
        Assert.AreEqual("epoch", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new ClassificationBatchSource(data, 2, 1).StartEpoch(-1)).ParamName);
        Assert.AreEqual("path", Assert.ThrowsExactly<ArgumentNullException>(() => IdxReader.ReadFile(null!)).ParamName);
        Assert.AreEqual("text", Assert.ThrowsExactly<ArgumentNullException>(() => new TextDataset(null!)).ParamName);
        Assert.AreEqual("bound", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new SeededRandom(1).NextInt(0)).ParamName);
        Assert.AreEqual("labels", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new LabeledDataset(new float[2], [10], [2], 10)).ParamName);
        Assert.AreEqual("features", Assert.ThrowsExactly<ArgumentException>(() => new LabeledDataset(new float[3], [1], [2], 10)).ParamName);
    }

    [TestMethod]
    public void Filling_batches_does_not_allocate()
    {
        var src = new ClassificationBatchSource(Synthetic(1000), 32, 7);
        var b = src.CreateBatch();
        src.StartEpoch(0);
        src.TryFill(b);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var n = 0;
        while (src.TryFill(b))
        {
            n++;
        }

        Assert.AreEqual(0L, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.AreEqual(31, n);
    }

    [TestMethod]
    public void Seeded_random_sequences_are_pinned()
    {
        // xoshiro256** seeded by SplitMix64(42): the same values as an independent Python transcription of the
        // reference C code. Changing these breaks every recorded shuffle, so this test pins them.
        var r = new SeededRandom(42);
        CollectionAssert.AreEqual(
            new[] { 0x15780B2E0C2EC716UL, 0x6104D9866D113A7EUL, 0xAE17533239E499A1UL, 0xECB8AD4703B360A1UL },
            Enumerable.Range(0, 4).Select(_ => r.NextUInt64()).ToArray());
        var r2 = new SeededRandom(7, 3);
        CollectionAssert.AreEqual(new[] { 489, 915, 705, 797, 167, 481, 182, 228 }, Enumerable.Range(0, 8).Select(_ => r2.NextInt(1000)).ToArray());
    }

    [TestMethod]
    public void Seeded_random_is_deterministic_and_unbiased()
    {
        var a = new SeededRandom(123);
        var b = new SeededRandom(123);
        for (var i = 0; i < 100; i++)
        {
            Assert.AreEqual(a.NextUInt64(), b.NextUInt64());
        }

        Assert.AreNotEqual(new SeededRandom(1, 0).NextUInt64(), new SeededRandom(1, 1).NextUInt64());

        // chi-square over 7 buckets, 70 000 draws: 6 degrees of freedom, 99.9th percentile ≈ 22.5
        var r = new SeededRandom(5);
        var counts = new int[7];
        for (var i = 0; i < 70_000; i++)
        {
            counts[r.NextInt(7)]++;
        }

        var chi = counts.Sum(c => (c - 10_000.0) * (c - 10_000.0) / 10_000.0);
        Assert.IsLessThan(22.5, chi, $"chi-square {chi}");
        for (var i = 0; i < 1000; i++)
        {
            var d = r.NextDouble();
            Assert.IsTrue(d is >= 0 and < 1);
        }
    }
}
