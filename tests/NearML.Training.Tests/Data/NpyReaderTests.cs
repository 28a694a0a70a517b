using NearML.Core;
using NearML.Training.Data;

namespace NearML.Training.Tests.Data;

/// <summary>The NumPy reader against files written by Debian's python3-numpy (Fixtures/npy/make_fixtures.py).</summary>
[TestClass]
public sealed class NpyReaderTests
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "npy", name);

    [TestMethod]
    public void Reads_float32_uint8_int64_and_scalar_arrays_written_by_numpy()
    {
        var f = NpyReader.ReadFile(Fixture("f32_2x3.npy"));
        Assert.AreEqual(NpyDataType.Float32, f.DataType);
        CollectionAssert.AreEqual(new[] { 2, 3 }, f.Shape.ToArray());
        CollectionAssert.AreEqual(new[] { 0f, 0.25f, 0.5f, 0.75f, 1f, 1.25f }, f.ToSingle());

        var u = NpyReader.ReadFile(Fixture("u8_4x2x2.npy"));
        Assert.AreEqual(NpyDataType.UInt8, u.DataType);
        CollectionAssert.AreEqual(new[] { 4, 2, 2 }, u.Shape.ToArray());
        CollectionAssert.AreEqual(Enumerable.Range(0, 16).Select(i => (byte)(i * 17)).ToArray(), u.Payload.ToArray());

        var l = NpyReader.ReadFile(Fixture("i64_5.npy"));
        Assert.AreEqual(NpyDataType.Int64, l.DataType);
        CollectionAssert.AreEqual(new[] { 0f, 1f, 2f, -3f, 1099511627776f }, l.ToSingle());
        var tooBig = Assert.ThrowsExactly<InvalidDataFormatException>(() => l.ToInt32());
        StringAssert.Contains(tooBig.Message, "1099511627776");

        var s = NpyReader.ReadFile(Fixture("i32_scalar.npy"));
        Assert.AreEqual(0, s.Shape.Length);
        CollectionAssert.AreEqual(new[] { 7 }, s.ToInt32());
    }

    [TestMethod]
    [DataRow("f64_3.npy", "<f8")]
    [DataRow("f32_be_3.npy", ">f4")]
    [DataRow("f32_fortran_2x3.npy", "Fortran")]
    [DataRow("object_2.npy", "|O")]
    [DataRow("structured_2.npy", "structured")]
    public void Unsupported_arrays_are_refused_naming_the_file_and_the_reason(string file, string expected)
    {
        var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => NpyReader.ReadFile(Fixture(file)));
        StringAssert.Contains(ex.Message, expected);
        StringAssert.Contains(ex.Source, file);
    }

    [TestMethod]
    public void Every_truncation_and_every_header_byte_mutation_is_a_typed_error_or_a_valid_array()
    {
        var bytes = File.ReadAllBytes(Fixture("f32_2x3.npy"));
        for (var n = 0; n < bytes.Length; n++)
        {
            Assert.ThrowsExactly<InvalidDataFormatException>(() => NpyReader.Parse(bytes.AsSpan(0, n), "cut"), $"cut at {n}");
        }

        for (var i = 0; i < 128; i++)
        {
            foreach (var b in new byte[] { 0, (byte)'(', (byte)')', (byte)'\'', (byte)',', 0xFF, (byte)'9' })
            {
                var m = (byte[])bytes.Clone();
                m[i] = b;
                try
                {
                    var a = NpyReader.Parse(m, "mutated");
                    Assert.AreEqual(a.Length * NpyArray.ElementSize(a.DataType), a.Payload.Length);
                }
                catch (InvalidDataFormatException)
                {
                }
                catch (OverflowException)
                {
                    Assert.Fail($"byte {i} = {b}: overflow escaped as an untyped error");
                }
            }
        }
    }

    [TestMethod]
    public void Write_then_read_round_trips_and_numpy_style_header_is_64_byte_aligned()
    {
        var payload = new byte[3 * 2 * 4];
        BitConverter.GetBytes(1.5f).CopyTo(payload, 4);
        using var ms = new MemoryStream();
        NpyReader.Write(ms, NpyDataType.Float32, [3, 2], payload);
        var bytes = ms.ToArray();
        Assert.AreEqual(0, (bytes.Length - payload.Length) % 64);
        var a = NpyReader.Parse(bytes);
        CollectionAssert.AreEqual(new[] { 3, 2 }, a.Shape.ToArray());
        Assert.AreEqual(1.5f, a.ToSingle()[1]);

        // The same header numpy writes for the same array.
        var numpy = File.ReadAllBytes(Fixture("f32_2x3.npy"));
        using var ours = new MemoryStream();
        NpyReader.Write(ours, NpyDataType.Float32, [2, 3], numpy.AsSpan(numpy.Length - 24));
        CollectionAssert.AreEqual(numpy, ours.ToArray());
    }

    [TestMethod]
    [DataRow("dataset.npz")]
    [DataRow("dataset_compressed.npz")]
    public void An_npz_dataset_loads_as_a_classification_dataset(string file)
    {
        var d = ClassificationDataset.FromNpz("npz", Fixture(file));
        Assert.AreEqual(40, d.Train.Count);
        Assert.AreEqual(12, d.Test.Count);
        Assert.AreEqual(6, d.Train.FeaturesPerSample);
        Assert.AreEqual(3, d.Train.ClassCount);
        Assert.AreEqual(2 % 7 / 7f, d.Train.GetFeatures(0)[2]);
        Assert.AreEqual(2, d.Train.Labels[5]);

        // Shards encode as .npy features + .npy labels, readable back by the same reader.
        var shard = d.EncodeRecords([3, 1]);
        var (x, used) = NpyReader.ParsePrefix(shard, "shard");
        var y = NpyReader.Parse(shard.AsSpan(used), "shard labels");
        CollectionAssert.AreEqual(new[] { 2, 6 }, x.Shape.ToArray());
        CollectionAssert.AreEqual(d.Train.GetFeatures(3).ToArray(), x.ToSingle().AsSpan(0, 6).ToArray());
        CollectionAssert.AreEqual(new[] { 0, 1 }, y.ToInt32());
    }

    [TestMethod]
    public void An_npz_without_the_named_array_lists_what_it_has()
    {
        var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => ClassificationDataset.FromNpz("npz", Fixture("dataset.npz"), trainFeatures: "images"));
        StringAssert.Contains(ex.Message, "'images'");
        StringAssert.Contains(ex.Message, "x_train");
        Assert.ThrowsExactly<DatasetNotFoundException>(() => NpyReader.ReadArchive(Fixture("missing.npz")));
        Assert.ThrowsExactly<InvalidDataFormatException>(() => NpyReader.ReadArchive(Fixture("f32_2x3.npy")));
    }
}
