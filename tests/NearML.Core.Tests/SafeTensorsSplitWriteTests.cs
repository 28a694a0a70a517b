using NearML.Core;

namespace NearML.Core.Tests;

/// <summary>SafeTensors.Write over several buffers (a checkpoint's parameters and momentum written without a combined copy).</summary>
[TestClass]
public sealed class SafeTensorsSplitWriteTests
{
    [TestMethod]
    public void Writing_from_split_buffers_equals_writing_the_concatenation_for_random_layouts_and_splits()
    {
        var rng = new Random(15);
        for (var trial = 0; trial < 50; trial++)
        {
            var tensors = new List<(string, int[])>();
            var count = rng.Next(1, 6);
            for (var t = 0; t < count; t++)
            {
                tensors.Add(($"t{t}.w", Enumerable.Range(0, rng.Next(1, 4)).Select(_ => rng.Next(1, 7)).ToArray()));
            }

            var set = ParameterSet.Create([.. tensors]);
            for (var i = 0; i < set.Length; i++)
            {
                set.Data[i] = (float)(rng.NextDouble() - 0.5);
            }

            // Cut the values at random points into 1..4 buffers (copies, so the writer must read each of them).
            var cuts = Enumerable.Range(0, rng.Next(0, 4)).Select(_ => rng.Next(0, set.Length + 1)).Append(0).Append(set.Length).Distinct().Order().ToList();
            var parts = new List<ReadOnlyMemory<float>>();
            for (var c = 0; c + 1 < cuts.Count; c++)
            {
                parts.Add(set.Buffer.AsSpan(cuts[c], cuts[c + 1] - cuts[c]).ToArray());
            }

            var meta = new Dictionary<string, string>(StringComparer.Ordinal) { ["trial"] = trial.ToString(System.Globalization.CultureInfo.InvariantCulture) };
            using var whole = new MemoryStream();
            SafeTensors.Write(whole, set, meta);
            using var split = new MemoryStream();
            SafeTensors.Write(split, set.Layout, parts, meta);
            CollectionAssert.AreEqual(whole.ToArray(), split.ToArray(), $"trial {trial}: {parts.Count} buffers");
        }
    }

    [TestMethod]
    public void Buffers_that_do_not_hold_exactly_the_layout_are_refused_before_anything_is_written()
    {
        var set = ParameterSet.Create(("a", [2, 3]), ("b", [4]));
        foreach (var lengths in new[] { new[] { 9 }, new[] { 6, 5 }, new[] { 6, 4, 1 }, Array.Empty<int>() })
        {
            using var ms = new MemoryStream();
            var parts = lengths.Select(n => (ReadOnlyMemory<float>)new float[n]).ToList();
            var ex = Assert.ThrowsExactly<ArgumentException>(() => SafeTensors.Write(ms, set.Layout, parts));
            StringAssert.Contains(ex.Message, "10", StringComparison.Ordinal);
            Assert.AreEqual(0, ms.Length, "nothing written");
        }
    }
}
