using System.Text;
using System.Text.Json.Nodes;
using NearML.Core;

namespace NearML.Sharding.Tests;

[TestClass]
public sealed class ShardManifestTests
{
    public TestContext TestContext { get; set; } = null!;

    private const int Records = 103;
    private const int RecordBytes = 12;

    private (string Images, string Labels, byte[] Pixels, byte[] LabelBytes) MakeIdx()
    {
        var dir = TestPaths.NewDirectory(TestContext, "idx");
        var pixels = Enumerable.Range(0, Records * RecordBytes).Select(i => (byte)(i * 13)).ToArray();
        var labels = Enumerable.Range(0, Records).Select(i => (byte)((i * 3) % 10)).ToArray();
        var images = Path.Combine(dir, "images-idx3-ubyte");
        var labelPath = Path.Combine(dir, "labels-idx1-ubyte");
        TestPaths.WriteIdx(images, [Records, 3, 4], pixels);
        TestPaths.WriteIdx(labelPath, [Records], labels);
        return (images, labelPath, pixels, labels);
    }

    [TestMethod]
    public void Idx_shards_are_self_describing_and_verified()
    {
        var (images, labels, pixels, labelBytes) = MakeIdx();
        var outDir = TestPaths.NewDirectory(TestContext, "shards");
        var m = ShardBuilder.BuildIdx("synthetic", images, labels, 10, outDir);
        Assert.HasCount(11, m.Shards);
        Assert.AreEqual(3, m.Shards[^1].Count);
        Assert.AreEqual(Records, m.Total);
        CollectionAssert.AreEqual(new[] { 3, 4 }, m.RecordShape.ToArray());
        var loaded = ShardManifest.Load(Path.Combine(outDir, DirectoryShardStore.ManifestFileName));
        Assert.AreEqual(m.MerkleRootHex, loaded.MerkleRootHex);

        var reader = new ShardReader(loaded, new DirectoryShardStore(outDir));
        var all = new List<byte>();
        var allLabels = new List<byte>();
        for (var i = 0; i < m.Shards.Length; i++)
        {
            var shard = reader.ReadIdx(i);
            Assert.AreEqual(m.Shards[i].Count, shard.Count);
            all.AddRange(shard.Records);
            allLabels.AddRange(shard.Labels!);

            // each shard file is itself a valid IDX file of its records (then its labels)
            var raw = File.ReadAllBytes(Path.Combine(outDir, DirectoryShardStore.FileName(i)));
            Assert.AreEqual(0x08, raw[2]);
            Assert.AreEqual(3, raw[3]);
        }

        CollectionAssert.AreEqual(pixels, all.ToArray());
        CollectionAssert.AreEqual(labelBytes, allLabels.ToArray());

        // every shard is provably in the root
        for (var i = 0; i < m.Shards.Length; i++)
        {
            Assert.IsTrue(MerkleTree.VerifyProof(m.MerkleRoot.AsSpan(), m.Shards[i].ToLeafData(), i, m.Shards.Length, m.GetProof(i)));
        }
    }

    [TestMethod]
    public void Corrupt_truncated_or_missing_shards_are_named()
    {
        var (images, labels, _, _) = MakeIdx();
        var outDir = TestPaths.NewDirectory(TestContext, "shards");
        var m = ShardBuilder.BuildIdx("synthetic", images, labels, 10, outDir);
        var store = new DirectoryShardStore(outDir);
        var reader = new ShardReader(m, store);

        var path4 = store.PathOf(4);
        var bytes = File.ReadAllBytes(path4);
        bytes[40] ^= 0x01;
        File.WriteAllBytes(path4, bytes);
        var ex = Assert.ThrowsExactly<ShardIntegrityException>(() => reader.ReadIdx(4));
        Assert.AreEqual(4, ex.ShardIndex);
        StringAssert.Contains(ex.Message, "shard-000004.bin");
        StringAssert.Contains(ex.Message, "SHA-256");
        Assert.IsInstanceOfType<NearMLException>(ex);

        File.WriteAllBytes(store.PathOf(5), File.ReadAllBytes(store.PathOf(5))[..^1]);
        ex = Assert.ThrowsExactly<ShardIntegrityException>(() => reader.ReadVerified(5));
        Assert.AreEqual(5, ex.ShardIndex);
        StringAssert.Contains(ex.Message, "bytes");

        File.Delete(store.PathOf(6));
        ex = Assert.ThrowsExactly<ShardIntegrityException>(() => reader.ReadVerified(6));
        Assert.AreEqual(6, ex.ShardIndex);

        // untouched shards still read
        Assert.AreEqual(10, reader.ReadIdx(3).Count);
    }

    [TestMethod]
    public void Bad_idx_inputs_are_format_errors()
    {
        var (images, labels, _, _) = MakeIdx();
        var outDir = TestPaths.NewDirectory(TestContext, "bad");
        var shortLabels = Path.Combine(outDir, "short-labels");
        TestPaths.WriteIdx(shortLabels, [Records - 1], new byte[Records - 1]);
        var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => ShardBuilder.BuildIdx("x", images, shortLabels, 10, outDir));
        StringAssert.Contains(ex.Message, "short-labels");

        var truncated = Path.Combine(outDir, "truncated");
        File.WriteAllBytes(truncated, File.ReadAllBytes(images)[..^5]);
        ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => ShardBuilder.BuildIdx("x", truncated, labels, 10, outDir));
        StringAssert.Contains(ex.Message, "truncated");

        var gz = Path.Combine(outDir, "corrupt.gz");
        File.WriteAllBytes(gz, [0x1F, 0x8B, 0x08, 0, 0, 0, 0, 0, 0, 0x03, 0xFF, 0xFF, 0xFF]);
        ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => ShardBuilder.BuildIdx("x", gz, null, 10, outDir));
        StringAssert.Contains(ex.Message, "corrupt.gz");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ShardBuilder.BuildIdx("x", images, labels, 0, outDir));
    }

    [TestMethod]
    public async Task Async_reads_verify_too()
    {
        var (images, labels, _, _) = MakeIdx();
        var outDir = TestPaths.NewDirectory(TestContext, "async");
        var m = ShardBuilder.BuildIdx("synthetic", images, labels, 10, outDir);
        var store = new DirectoryShardStore(outDir);
        var reader = new ShardReader(m, store);
        var ok = await reader.ReadVerifiedAsync(2, TestContext.CancellationToken);
        CollectionAssert.AreEqual(reader.ReadVerified(2), ok);
        reader.Verify(2, ok);
        ok[^1] ^= 0x80;
        Assert.ThrowsExactly<ShardIntegrityException>(() => reader.Verify(2, ok));
        File.Delete(store.PathOf(9));
        var ex = await Assert.ThrowsExactlyAsync<ShardIntegrityException>(async () => await reader.ReadVerifiedAsync(9, TestContext.CancellationToken));
        Assert.AreEqual(9, ex.ShardIndex);

        var textPath = Path.Combine(outDir, "t.txt");
        File.WriteAllText(textPath, string.Concat(Enumerable.Repeat("to be or not to be ", 20)));
        var tm = ShardBuilder.BuildText("t", textPath, 32);
        var tr = new ShardReader(tm, new FileRangeShardStore(textPath));
        for (var i = 0; i < tm.Shards.Length; i++)
        {
            CollectionAssert.AreEqual(tr.ReadVerified(i), await tr.ReadVerifiedAsync(i, TestContext.CancellationToken));
        }
    }

    [TestMethod]
    public void Label_sorted_order_gives_label_skewed_shards()
    {
        var (images, labels, pixels, labelBytes) = MakeIdx();
        var order = LabelSkew.OrderByLabel(labelBytes.Select(b => (int)b).ToArray());
        var outDir = TestPaths.NewDirectory(TestContext, "skew");
        var m = ShardBuilder.BuildIdx("skewed", images, labels, 10, outDir, order, "sorted-by-label");
        Assert.AreEqual("sorted-by-label", m.Ordering);
        var reader = new ShardReader(m, new DirectoryShardStore(outDir));
        var natural = ShardBuilder.BuildIdx("skewed", images, labels, 10, TestPaths.NewDirectory(TestContext, "nat"));
        Assert.AreNotEqual(natural.MerkleRootHex, m.MerkleRootHex);
        var previous = -1;
        var position = 0;
        for (var i = 0; i < m.Shards.Length; i++)
        {
            var shard = reader.ReadIdx(i);
            Assert.IsLessThanOrEqualTo(2, shard.Labels!.Distinct().Count(), "a shard of 10 sorted records spans at most two labels");
            for (var r = 0; r < shard.Count; r++)
            {
                Assert.IsGreaterThanOrEqualTo(previous, shard.Labels![r]);
                previous = shard.Labels[r];
                CollectionAssert.AreEqual(pixels.AsSpan(order[position] * RecordBytes, RecordBytes).ToArray(), shard.Records.AsSpan(r * RecordBytes, RecordBytes).ToArray());
                position++;
            }
        }

        Assert.ThrowsExactly<ArgumentException>(() => ShardBuilder.BuildIdx("x", images, labels, 10, outDir, [.. Enumerable.Repeat(0, Records)]));
    }

    [TestMethod]
    public void Json_round_trips_and_tampering_is_named()
    {
        var (images, labels, _, _) = MakeIdx();
        var m = ShardBuilder.BuildIdx("synthetic", images, labels, 10, TestPaths.NewDirectory(TestContext, "j"));
        var json = m.ToJson();
        var back = ShardManifest.Parse(json, "m.json");
        Assert.AreEqual(m.MerkleRootHex, back.MerkleRootHex);
        CollectionAssert.AreEqual(json, back.ToJson());

        AssertBad(json, n => n["shards"]![3]!["sha256"] = new string('0', 64), "merkleRoot");
        AssertBad(json, n => n["shards"]![3]!["start"] = 31, "shards[3].start");
        AssertBad(json, n => n["shards"]![3]!["index"] = 7, "shards[3].index");
        AssertBad(json, n => n["shards"]![2]!["sha256"] = "xyz", "shards[2].sha256");
        AssertBad(json, n => n["total"] = 104, "total");
        AssertBad(json, n => n["format"] = "other", "format");
        AssertBad(json, n => n["kind"] = "video", "kind");
        AssertBad(json, n => n.AsObject().Remove("shards"), "shards");
        AssertBad(json, n => n["shardSize"] = "ten", "shardSize");
        AssertBad(json, n => n["shards"]![0]!["count"] = 11, "shards[0].count");
        var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => ShardManifest.Parse("{ not json"u8, "broken.json"));
        Assert.AreEqual("broken.json", ex.Source);
    }

    private static void AssertBad(byte[] json, Action<JsonNode> mutate, string field)
    {
        var node = JsonNode.Parse(json)!;
        mutate(node);
        var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => ShardManifest.Parse(Encoding.UTF8.GetBytes(node.ToJsonString()), "m.json"));
        StringAssert.Contains(ex.Message, field);
        StringAssert.Contains(ex.Message, "m.json");
    }

    [TestMethod]
    public void Text_shards_respect_utf8_boundaries_and_verify()
    {
        var dir = TestPaths.NewDirectory(TestContext, "text");
        var path = Path.Combine(dir, "corpus.txt");
        var text = string.Concat(Enumerable.Range(0, 200).Select(i => i % 5 == 0 ? "é€𝄞" : "ab"));
        File.WriteAllText(path, text, new UTF8Encoding(false));
        var m = ShardBuilder.BuildText("corpus", path, 16);
        Assert.AreEqual(ShardKind.TextBytes, m.Kind);
        var reader = new ShardReader(m, new FileRangeShardStore(path));
        var sb = new StringBuilder();
        for (var i = 0; i < m.Shards.Length; i++)
        {
            Assert.IsTrue(m.Shards[i].Count is >= 16 and <= 19 || i == m.Shards.Length - 1);
            sb.Append(reader.ReadText(i));
        }

        Assert.AreEqual(text, sb.ToString());
        Assert.AreEqual(m.MerkleRootHex, ShardManifest.Parse(m.ToJson()).MerkleRootHex);

        var bytes = File.ReadAllBytes(path);
        bytes[m.Shards[2].Start + 1] ^= 0x20;
        File.WriteAllBytes(path, bytes);
        var ex = Assert.ThrowsExactly<ShardIntegrityException>(() => reader.ReadText(2));
        Assert.AreEqual(2, ex.ShardIndex);
        StringAssert.Contains(ex.Message, "corpus.txt");
        Assert.AreEqual(text[..10], reader.ReadText(0)[..10]);
    }

    [TestMethod]
    [TestCategory("Conformance")]
    public void Tiny_shakespeare_shards_cover_the_corpus()
    {
        var path = TestPaths.RequireShared(Path.Combine("data", "tinyshakespeare.txt"));
        var m = ShardBuilder.BuildText("tinyshakespeare", path, 64 * 1024);
        Assert.HasCount((1115394 + 65535) / 65536, m.Shards);
        var reader = new ShardReader(m, new FileRangeShardStore(path));
        var text = string.Concat(Enumerable.Range(0, m.Shards.Length).Select(reader.ReadText));
        Assert.AreEqual(File.ReadAllText(path), text);
        var a = RendezvousHashing.Assign(m, [new("w0", 1), new("w1", 1), new("w2", 2)]);
        Assert.AreEqual(m.Shards.Length, a.Owners.Length);
    }

    [TestMethod]
    [TestCategory("Conformance")]
    public void Fashion_mnist_shards_verify_and_keep_labels()
    {
        const string Dir = "/usr/share/datasets/fashion-mnist";
        if (!Directory.Exists(Dir))
        {
            Assert.Inconclusive($"{Dir} is absent (apt-get install dataset-fashion-mnist).");
        }

        var outDir = TestPaths.NewDirectory(TestContext, "fm");
        var m = ShardBuilder.BuildIdx("fashion-mnist-train", Path.Combine(Dir, "train-images-idx3-ubyte.gz"), Path.Combine(Dir, "train-labels-idx1-ubyte.gz"), 1000, outDir);
        Assert.HasCount(60, m.Shards);
        CollectionAssert.AreEqual(new[] { 28, 28 }, m.RecordShape.ToArray());
        var reader = new ShardReader(ShardManifest.Load(Path.Combine(outDir, "manifest.json")), new DirectoryShardStore(outDir));
        var first = reader.ReadIdx(0);
        CollectionAssert.AreEqual(new byte[] { 9, 0, 0, 3, 0, 2, 7, 2, 5, 5 }, first.Labels![..10]);
        long total = 0;
        for (var i = 0; i < m.Shards.Length; i++)
        {
            total += reader.ReadIdx(i).Records.Sum(b => (long)b);
        }

        Assert.AreEqual(3431114169L, total, "numpy's sum of all training pixels");
        var assignment = RendezvousHashing.Assign(m, [new("a", 1), new("b", 1), new("c", 1), new("d", 1)]);
        Assert.AreEqual(60, assignment.Workers.Sum(w => assignment.ShardsOf(w).Length));
        Directory.Delete(outDir, recursive: true);
    }
}
