using System.Text;
using NearML.Core;
using NearML.Training.Data;

namespace NearML.Training.Tests.Data;

[TestClass]
public sealed class TextDatasetTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public void Vocabulary_is_sorted_distinct_code_points_and_round_trips()
    {
        var text = "hello world! zebra é 𝄞 hello";
        var ds = new TextDataset(text);
        var vocab = ds.Vocabulary.Select(r => r.Value).ToArray();
        CollectionAssert.AreEqual(text.EnumerateRunes().Select(r => r.Value).Distinct().Order().ToArray(), vocab);
        Assert.AreEqual(' ', (char)ds.Vocabulary[0].Value);
        Assert.AreEqual(text, ds.Decode(ds.Tokens));
        CollectionAssert.AreEqual(ds.Encode("hello"), ds.Tokens[..5]);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => ds.Encode("hq"));
        StringAssert.Contains(ex.Message, "position 1");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ds.Decode([ds.VocabularySize]));
    }

    [TestMethod]
    public void Splits_are_first_90_and_last_10_percent()
    {
        var text = string.Concat(Enumerable.Range(0, 1001).Select(i => (char)('a' + (i % 26))));
        var ds = new TextDataset(text);
        Assert.AreEqual(900, ds.TrainLength);
        Assert.AreEqual(900, ds.Train.Length);
        Assert.AreEqual(101, ds.Validation.Length);
        Assert.AreEqual(ds.Tokens[900], ds.Validation.Span[0]);
    }

    [TestMethod]
    public void Windows_are_seeded_and_targets_shift_by_one()
    {
        var text = string.Concat(Enumerable.Range(0, 5000).Select(i => (char)('a' + ((i * 7) % 26))));
        var ds = new TextDataset(text);
        var src = new TextWindowBatchSource(ds.Train, 8, 16, 3, seed: 11);
        var b = src.CreateBatch();
        var epoch0 = Collect(src, b, 0);
        Assert.AreEqual(3, epoch0.Count);
        foreach (var (tokens, targets) in epoch0)
        {
            for (var i = 0; i < 8; i++)
            {
                for (var t = 0; t < 15; t++)
                {
                    Assert.AreEqual(tokens[(i * 16) + t + 1], targets[(i * 16) + t]);
                }

                // the window is a real slice of the corpus
                var start = FindStart(ds.Tokens, tokens.AsSpan(i * 16, 16));
                Assert.IsGreaterThanOrEqualTo(0, start);
                Assert.AreEqual(ds.Tokens[start + 16], targets[(i * 16) + 15]);
            }
        }

        var again = Collect(src, b, 0);
        var epoch1 = Collect(src, b, 1);
        CollectionAssert.AreEqual(epoch0[0].Tokens, again[0].Tokens);
        CollectionAssert.AreNotEqual(epoch0[0].Tokens, epoch1[0].Tokens);

        var val = TextWindowBatchSource.ForValidation(ds.Validation, 4, 16, 2, seed: 3);
        var vb = val.CreateBatch();
        var v0 = Collect(val, vb, 0);
        var v7 = Collect(val, vb, 7);
        for (var i = 0; i < 2; i++)
        {
            CollectionAssert.AreEqual(v0[i].Tokens, v7[i].Tokens, "validation windows are fixed");
        }
    }

    [TestMethod]
    public void Window_fill_does_not_allocate_and_windows_reach_the_end()
    {
        var tokens = Enumerable.Range(0, 40).ToArray();
        var src = new TextWindowBatchSource(tokens, 4, 8, 500, seed: 1);
        var b = src.CreateBatch();
        src.StartEpoch(0);
        src.TryFill(b);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var maxStart = 0;
        var minStart = int.MaxValue;
        while (src.TryFill(b))
        {
            for (var i = 0; i < 4; i++)
            {
                maxStart = Math.Max(maxStart, b.Tokens[i * 8]);
                minStart = Math.Min(minStart, b.Tokens[i * 8]);
            }
        }

        Assert.AreEqual(0L, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.AreEqual(40 - 8 - 1, maxStart, "the last window's target is the last token");
        Assert.AreEqual(0, minStart);
        Assert.ThrowsExactly<ArgumentException>(() => new TextWindowBatchSource(tokens, 4, 40, 1, 1));
    }

    [TestMethod]
    public void Invalid_utf8_file_is_a_format_error()
    {
        var path = Path.Combine(TestContext.TestRunDirectory ?? Path.GetTempPath(), Guid.NewGuid().ToString("N") + ".txt");
        File.WriteAllBytes(path, [.. Encoding.UTF8.GetBytes("abc"), 0xC3, 0x28, .. Encoding.UTF8.GetBytes("def")]);
        var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => TextDataset.FromFile(path));
        StringAssert.Contains(ex.Message, "UTF-8");
        Assert.ThrowsExactly<DatasetNotFoundException>(() => TextDataset.FromFile(path + ".missing"));
    }

    [TestMethod]
    [TestCategory("Conformance")]
    public void Tiny_shakespeare_has_65_characters()
    {
        var ds = TextDataset.FromFile(SharedFolder.RequireFile(Path.Combine("data", "tinyshakespeare.txt")));
        Assert.AreEqual(65, ds.VocabularySize);
        Assert.AreEqual(1115394, ds.Tokens.Length);
        Assert.AreEqual((int)(0.9 * 1115394), ds.TrainLength);
        Assert.AreEqual("First Citizen", ds.Decode(ds.Tokens.AsSpan(0, 13)));
    }

    private static List<(int[] Tokens, int[] Targets)> Collect(TextWindowBatchSource src, Batch b, int epoch)
    {
        src.StartEpoch(epoch);
        var list = new List<(int[], int[])>();
        while (src.TryFill(b))
        {
            list.Add(((int[])b.Tokens.Clone(), (int[])b.Targets.Clone()));
        }

        return list;
    }

    private static int FindStart(int[] corpus, ReadOnlySpan<int> window)
    {
        for (var s = 0; s + window.Length < corpus.Length; s++)
        {
            if (corpus.AsSpan(s, window.Length).SequenceEqual(window))
            {
                return s;
            }
        }

        return -1;
    }
}
