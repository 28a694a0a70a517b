namespace NearML.Sharding.Tests;

[TestClass]
public sealed class LabelSkewTests
{
    [TestMethod]
    public void Order_by_label_is_stable()
    {
        int[] labels = [2, 0, 1, 0, 2, 1, 0];
        CollectionAssert.AreEqual(new[] { 1, 3, 6, 2, 5, 0, 4 }, LabelSkew.OrderByLabel(labels));
    }

    [TestMethod]
    public void Partition_is_a_disjoint_cover_with_few_labels_per_worker()
    {
        var labels = Enumerable.Range(0, 6000).Select(i => (i * 7) % 10).ToArray();
        var parts = LabelSkew.Partition(labels, 10, 2, seed: 5);
        CollectionAssert.AreEquivalent(Enumerable.Range(0, 6000).ToArray(), parts.SelectMany(p => p).ToArray());
        foreach (var p in parts)
        {
            Assert.HasCount(600, p);
            Assert.IsLessThanOrEqualTo(2, p.Select(i => labels[i]).Distinct().Count(), "each worker sees at most two labels");
        }

        var again = LabelSkew.Partition(labels, 10, 2, seed: 5);
        for (var w = 0; w < 10; w++)
        {
            CollectionAssert.AreEqual(parts[w], again[w]);
        }

        var other = LabelSkew.Partition(labels, 10, 2, seed: 6);
        Assert.IsTrue(Enumerable.Range(0, 10).Any(w => !parts[w].SequenceEqual(other[w])), "the seed matters");
        Assert.ThrowsExactly<ArgumentException>(() => LabelSkew.Partition(labels.AsSpan(0, 5), 10, 2, 1));
    }
}
