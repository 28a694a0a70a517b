using NearML.Core;
using NearML.Training.Data;

namespace NearML.Training.Tests.Data;

[TestClass]
public sealed class LabeledDatasetIdxTests
{
    [TestMethod]
    public void Pixels_are_scaled_exactly_like_numpy_float32_division()
    {
        var pixels = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();
        var images = IdxReader.Parse(Build([256, 1], pixels), "img");
        var labels = IdxReader.Parse(Build([256], pixels.Select(p => (byte)(p % 10)).ToArray()), "lab");
        var set = LabeledDataset.FromIdx(images, labels, 10);
        for (var i = 0; i < 256; i++)
        {
            // float32(i) / float32(255), correctly rounded (computed in double then rounded once: exact for this case)
            Assert.AreEqual((float)(i / 255.0), set.Features[i], $"pixel {i}");
            Assert.AreEqual(i % 10, set.Labels[i]);
        }

        Assert.AreEqual(1f, set.Features[255]);
        var bad = IdxReader.Parse(Build([256], pixels), "lab2");
        var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => LabeledDataset.FromIdx(images, bad, 10));
        Assert.AreEqual(8 + 10, ex.Offset);
        var wrongCount = IdxReader.Parse(Build([255], pixels[..255]), "lab3");
        Assert.ThrowsExactly<InvalidDataFormatException>(() => LabeledDataset.FromIdx(images, wrongCount, 10));
    }

    private static byte[] Build(int[] dims, byte[] data)
    {
        using var ms = new MemoryStream();
        IdxReader.WriteUInt8(ms, dims, data);
        return ms.ToArray();
    }
}
