using NearML.Core;
using NearML.Core.Contracts;
using NearML.Hosting.Jobs;
using NearML.Sharding;
using NearML.Training.Data;
using NearML.Training.Modules;

namespace NearML.Hosting.Tests.Jobs;

[TestClass]
public sealed class ModelCatalogTests
{
    [TestMethod]
    [DataRow("mlp")]
    [DataRow("cnn")]
    [DataRow("gpt")]
    public void Same_seed_gives_identical_parameters_and_another_seed_differs(string arch)
    {
        var a = ModelCatalog.Create(arch, null, 5);
        var b = ModelCatalog.Create(arch, ModelCatalog.DefaultConfigJson(arch), 5);
        var c = ModelCatalog.Create(arch, null, 6);
        CollectionAssert.AreEqual(a.Parameters.ComputeHash(), b.Parameters.ComputeHash());
        CollectionAssert.AreNotEqual(a.Parameters.ComputeHash(), c.Parameters.ComputeHash());
    }

    [TestMethod]
    public void Mlp_config_is_honoured()
    {
        var m = (Mlp)ModelCatalog.Create("MLP", """{"inputs":784,"hidden":32,"classes":10}""", 1);
        Assert.AreEqual((784 * 32) + 32 + (32 * 32) + 32 + (32 * 10) + 10, m.Parameters.Length);
    }

    [TestMethod]
    public void Unknown_architecture_key_or_bad_value_is_a_typed_error()
    {
        var e1 = Assert.ThrowsExactly<JobConfigurationException>(() => ModelCatalog.Create("resnet", null, 1));
        StringAssert.Contains(e1.Message, "resnet");
        var e2 = Assert.ThrowsExactly<JobConfigurationException>(() => ModelCatalog.Create("mlp", """{"hiden":32}""", 1));
        StringAssert.Contains(e2.Message, "hiden");
        var e3 = Assert.ThrowsExactly<JobConfigurationException>(() => ModelCatalog.Create("mlp", """{"hidden":-3}""", 1));
        StringAssert.Contains(e3.Message, "hidden");
        Assert.ThrowsExactly<JobConfigurationException>(() => ModelCatalog.Create("mlp", "{not json", 1));
    }

    [TestMethod]
    public void Describe_and_CreateFrom_round_trip_and_detect_a_layout_mismatch()
    {
        var json = """{"hidden":16}""";
        var m = ModelCatalog.Create("mlp", json, 3);
        var config = ModelCatalog.Describe("mlp", json, m);
        Assert.AreEqual(6, config.Tensors.Count);
        var again = ModelCatalog.CreateFrom(config, 3);
        CollectionAssert.AreEqual(m.Parameters.ComputeHash(), again.Parameters.ComputeHash());

        config.Tensors[0].Shape[0] = 17;
        var ex = Assert.ThrowsExactly<JobConfigurationException>(() => ModelCatalog.CreateFrom(config, 3));
        StringAssert.Contains(ex.Message, "tensor #0");
    }
}

[TestClass]
public sealed class UpdateEncodingTests
{
    [TestMethod]
    [DataRow("fp32", 0.0)]
    [DataRow("fp16", 1e-3)]
    [DataRow("int8", 1.0 / 254)]
    [DataRow("int4", 1.0 / 14)]
    public void Round_trip_error_is_within_the_codec_bound(string encoding, double relativeToAbsmax)
    {
        var rng = new Random(1);
        var delta = new float[1000];
        for (var i = 0; i < delta.Length; i++)
        {
            delta[i] = (float)((rng.NextDouble() * 2) - 1);
        }

        var e = UpdateEncodings.Parse(encoding);
        var payload = UpdateEncodings.Encode(e, delta);
        Assert.AreEqual(UpdateEncodings.GetEncodedLength(e, delta.Length), payload.Length);
        var back = new float[delta.Length];
        UpdateEncodings.Decode(e, payload, back);
        for (var i = 0; i < delta.Length; i++)
        {
            Assert.IsTrue(Math.Abs(back[i] - delta[i]) <= (relativeToAbsmax * 1.0001) + 1e-7, $"value {i}: {delta[i]} -> {back[i]}");
        }

        if (encoding != "fp32")
        {
            Assert.IsTrue(payload.Length < delta.Length * 4);
        }
    }

    [TestMethod]
    public void Wrong_length_and_unknown_name_are_typed_errors()
    {
        var payload = UpdateEncodings.Encode(UpdateEncoding.Int8, new float[100]);
        Assert.ThrowsExactly<InvalidDataFormatException>(() => UpdateEncodings.Decode(UpdateEncoding.Int8, payload.AsSpan(1), new float[100]));
        Assert.ThrowsExactly<InvalidDataFormatException>(() => UpdateEncodings.Decode(UpdateEncoding.Fp32, new byte[7], new float[2]));
        Assert.ThrowsExactly<JobConfigurationException>(() => UpdateEncodings.GetEncodedLength(UpdateEncoding.Unspecified, 10));
        Assert.ThrowsExactly<JobConfigurationException>(() => UpdateEncodings.GetEncodedLength((UpdateEncoding)99, 10));
        Assert.ThrowsExactly<JobConfigurationException>(() => UpdateEncodings.Parse("int3"));
        Assert.IsFalse(UpdateEncodings.IsKnown("int8-block64"));
    }

    [TestMethod]
    [DataRow("fp32")]
    [DataRow("fp16")]
    [DataRow("int8")]
    [DataRow("int4")]
    public void A_non_finite_value_stays_detectable_after_decoding(string encoding)
    {
        var delta = new float[130];
        delta[70] = float.NaN;
        var back = new float[130];
        var e = UpdateEncodings.Parse(encoding);
        UpdateEncodings.Decode(e, UpdateEncodings.Encode(e, delta), back);
        Assert.IsTrue(back.Any(v => !float.IsFinite(v)));
    }
}

[TestClass]
public sealed class JobDatasetTests
{
    private static string _dir = null!;

    [ClassInitialize]
    public static void Init(TestContext context) => _dir = SyntheticFashionMnist.CreateTemp(1000, 200);

    [ClassCleanup]
    public static void Cleanup() => Directory.Delete(_dir, true);

    [TestMethod]
    public void Both_ends_compute_the_same_root_and_the_seed_changes_it()
    {
        var a = JobDataset.LoadFashionMnist(_dir, 20, 1);
        var b = JobDataset.LoadFashionMnist(_dir, 20, 1);
        var c = JobDataset.LoadFashionMnist(_dir, 20, 2);
        Assert.AreEqual(20, a.ShardCount);
        Assert.AreEqual(32, a.ManifestRoot.Length);
        CollectionAssert.AreEqual(a.ManifestRoot.ToArray(), b.ManifestRoot.ToArray());
        CollectionAssert.AreNotEqual(a.ManifestRoot.ToArray(), c.ManifestRoot.ToArray());
        Assert.AreEqual(200, a.Test.Count);
    }

    [TestMethod]
    public void The_manifest_equals_what_ShardBuilder_writes_for_the_same_order()
    {
        var ds = JobDataset.LoadFashionMnist(_dir, 7, 9);
        var outDir = Path.Combine(Path.GetTempPath(), "nearml-shards-" + Guid.NewGuid().ToString("N"));
        try
        {
            var built = ShardBuilder.BuildIdx(
                JobDataset.FashionMnistName,
                Path.Combine(_dir, "train-images-idx3-ubyte"),
                Path.Combine(_dir, "train-labels-idx1-ubyte"),
                (int)ds.Manifest.ShardSize,
                outDir,
                JobDataset.RecordOrder(1000, 9),
                JobDataset.OrderingName(9));
            Assert.AreEqual(built.MerkleRootHex, ds.ManifestRootHex);
            Assert.AreEqual(7, built.Shards.Length);
        }
        finally
        {
            Directory.Delete(outDir, true);
        }
    }

    [TestMethod]
    public void A_batch_source_yields_exactly_the_records_of_its_shards()
    {
        var ds = JobDataset.LoadFashionMnist(_dir, 10, 3);
        int[] shards = [2, 7];
        var expected = ds.RecordsOf(shards).Select(r => ds.Train.Labels[r]).Order().ToArray();
        var source = ds.CreateBatchSource(shards, 32, 5);
        var batch = source.CreateBatch();
        var seen = new List<int>();
        source.StartEpoch(0);
        while (source.TryFill(batch))
        {
            seen.AddRange(batch.Targets.AsSpan(0, batch.Count).ToArray());
        }

        Assert.AreEqual(200, seen.Count);
        CollectionAssert.AreEqual(expected, seen.Order().ToArray());
    }

    [TestMethod]
    public void Bad_shard_ids_and_counts_are_typed_errors()
    {
        var ds = JobDataset.LoadFashionMnist(_dir, 10, 3);
        Assert.ThrowsExactly<JobConfigurationException>(() => ds.CreateBatchSource([10], 8, 1));
        Assert.ThrowsExactly<JobConfigurationException>(() => ds.CreateBatchSource([], 8, 1));
        Assert.ThrowsExactly<JobConfigurationException>(() => JobDataset.LoadFashionMnist(_dir, 0, 1));
        Assert.ThrowsExactly<DatasetNotFoundException>(() => JobDataset.LoadFashionMnist(Path.Combine(_dir, "missing"), 10, 1));
    }

    [TestMethod]
    public void Rendezvous_assignment_covers_every_shard_once()
    {
        var ds = JobDataset.LoadFashionMnist(_dir, 30, 3);
        var assignment = ds.Assign(["w1", "w2", "w3"]);
        var all = new[] { "w1", "w2", "w3" }.SelectMany(w => assignment.ShardsOf(w)).Order().ToArray();
        CollectionAssert.AreEqual(Enumerable.Range(0, 30).ToArray(), all);
        var again = ds.Assign(["w3", "w1", "w2"]);
        CollectionAssert.AreEqual(assignment.ShardsOf("w2").ToArray(), again.ShardsOf("w2").ToArray());
    }
}
