using NearML.Core;
using NearML.Training.Data;

namespace NearML.Training.Tests.Data;

[TestClass]
public sealed class FashionMnistTests
{
    public TestContext TestContext { get; set; } = null!;

    private string MakeDir(int train, int test, bool gzip)
    {
        var dir = Path.Combine(TestContext.TestRunDirectory ?? Path.GetTempPath(), "fm-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        var ext = gzip ? ".gz" : string.Empty;
        foreach (var (prefix, n) in new[] { ("train", train), ("t10k", test) })
        {
            var px = new byte[n * 784];
            for (var i = 0; i < px.Length; i++)
            {
                px[i] = (byte)((i * 31) + n);
            }

            IdxReader.WriteUInt8(Path.Combine(dir, $"{prefix}-images-idx3-ubyte{ext}"), [n, 28, 28], px);
            IdxReader.WriteUInt8(Path.Combine(dir, $"{prefix}-labels-idx1-ubyte{ext}"), [n], Enumerable.Range(0, n).Select(i => (byte)(i % 10)).ToArray());
        }

        return dir;
    }

    [TestMethod]
    [DataRow(true)]
    [DataRow(false)]
    public void Loads_a_synthetic_folder(bool gzip)
    {
        var d = FashionMnist.Load(MakeDir(12, 7, gzip));
        Assert.AreEqual(12, d.Train.Count);
        Assert.AreEqual(7, d.Test.Count);
        CollectionAssert.AreEqual(new[] { 1, 28, 28 }, d.Train.SampleShape.ToArray());
        Assert.AreEqual(784, d.Train.FeaturesPerSample);
        Assert.AreEqual(3, d.Train.Labels[3]);
        Assert.AreEqual((byte)((5 * 31) + 12) / 255f, d.Train.Features[5]);
    }

    [TestMethod]
    public void Missing_folder_names_the_path_and_the_install_command()
    {
        var missing = Path.Combine(Path.GetTempPath(), "no-such-" + Guid.NewGuid().ToString("N"));
        var ex = Assert.ThrowsExactly<DatasetNotFoundException>(() => FashionMnist.Load(missing));
        StringAssert.Contains(ex.Message, missing);
        StringAssert.Contains(ex.Message, "apt-get install dataset-fashion-mnist");
        Assert.AreEqual(missing, ex.Path);
    }

    [TestMethod]
    public void Missing_file_is_named()
    {
        var dir = MakeDir(3, 3, true);
        File.Delete(Path.Combine(dir, "t10k-labels-idx1-ubyte.gz"));
        var ex = Assert.ThrowsExactly<DatasetNotFoundException>(() => FashionMnist.Load(dir));
        StringAssert.Contains(ex.Message, "t10k-labels-idx1-ubyte");
    }

    [TestMethod]
    public void Wrong_image_size_is_a_format_error()
    {
        var dir = MakeDir(3, 3, true);
        IdxReader.WriteUInt8(Path.Combine(dir, "train-images-idx3-ubyte.gz"), [3, 27, 29], new byte[3 * 27 * 29]);
        var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => FashionMnist.Load(dir));
        StringAssert.Contains(ex.Message, "28, 28");
    }

    [TestMethod]
    [TestCategory("Conformance")]
    public void Real_dataset_has_official_counts_and_labels()
    {
        if (!Directory.Exists(FashionMnist.DefaultDirectory))
        {
            Assert.Inconclusive($"{FashionMnist.DefaultDirectory} is absent (apt-get install dataset-fashion-mnist).");
        }

        var d = FashionMnist.Load(FashionMnist.DefaultDirectory);
        Assert.AreEqual(60000, d.Train.Count);
        Assert.AreEqual(10000, d.Test.Count);
        CollectionAssert.AreEqual(new[] { 9, 0, 0, 3, 0, 2, 7, 2, 5, 5 }, d.Train.Labels[..10]);
        CollectionAssert.AreEqual(new[] { 9, 2, 1, 1, 6, 1, 4, 6, 5, 7 }, d.Test.Labels[..10]);

        // numpy: (a.astype(float32) / float32(255))[:784].sum(float64) = 299.0078472062014
        double first = 0;
        for (var i = 0; i < 784; i++)
        {
            first += d.Train.Features[i];
        }

        Assert.AreEqual(299.0078472062014, first, 1e-9);

        // Every pixel is an exact k/255: recover the bytes and compare numpy's exact integer sums.
        Assert.AreEqual(3431114169L, d.Train.Features.Sum(x => (long)MathF.Round(x * 255f)));
        Assert.AreEqual(573469082L, d.Test.Features.Sum(x => (long)MathF.Round(x * 255f)));
        for (var i = 0; i < 784; i++)
        {
            var b = MathF.Round(d.Train.Features[i] * 255f);
            Assert.AreEqual(b / 255f, d.Train.Features[i], "pixel is the correctly rounded float32 of byte / 255");
        }
    }
}
