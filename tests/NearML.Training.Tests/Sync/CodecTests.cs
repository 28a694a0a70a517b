using NearML.Core;
using NearML.Training.Sync;

namespace NearML.Training.Tests.Sync;

[TestClass]
public sealed class CodecTests
{
    private static float[] Random(int n, int seed, float scale)
    {
        var rng = new Random(seed);
        return [.. Enumerable.Range(0, n).Select(_ => (float)((rng.NextDouble() * 2) - 1) * scale)];
    }

    [TestMethod]
    [DataRow(8, 127)]
    [DataRow(4, 7)]
    public void BlockQuantized_ErrorIsAtMostHalfAStepOfItsBlock(int bits, int q)
    {
        var codec = new BlockQuantizedCodec(bits, 64);
        var x = Random(1000, bits, 3f);
        x[5] = 0;
        var bytes = new byte[codec.GetEncodedLength(x.Length)];
        codec.Encode(x, bytes);
        var y = new float[x.Length];
        codec.Decode(bytes, y);
        for (var b = 0; b < (x.Length + 63) / 64; b++)
        {
            var block = x.AsSpan(b * 64, Math.Min(64, x.Length - (b * 64)));
            var absmax = block.ToArray().Max(MathF.Abs);
            for (var i = 0; i < block.Length; i++)
            {
                var err = MathF.Abs(block[i] - y[(b * 64) + i]);
                Assert.IsLessThanOrEqualTo((absmax / (2 * q)) * 1.0001f, err, $"block {b} value {i}");
            }
        }

        // The absmax element of each block is exact up to float rounding.
        Assert.AreEqual(x.Max(MathF.Abs), y.Max(MathF.Abs), 1e-5f);
    }

    [TestMethod]
    public void EncodedLengths_AreExact()
    {
        Assert.AreEqual((16 * 4) + 1000, new BlockQuantizedCodec(8, 64).GetEncodedLength(1000));
        Assert.AreEqual((16 * 4) + 500, new BlockQuantizedCodec(4, 64).GetEncodedLength(1000));
        Assert.AreEqual((1 * 4) + 2, new BlockQuantizedCodec(4, 64).GetEncodedLength(3));
        Assert.AreEqual(2000, Float16Codec.Instance.GetEncodedLength(1000));
    }

    [TestMethod]
    public void Float16_RelativeErrorIsBounded_AndOverflowBecomesInfinite()
    {
        var x = Random(500, 3, 100f);
        var bytes = new byte[Float16Codec.Instance.GetEncodedLength(x.Length)];
        Float16Codec.Instance.Encode(x, bytes);
        var y = new float[x.Length];
        Float16Codec.Instance.Decode(bytes, y);
        for (var i = 0; i < x.Length; i++)
        {
            Assert.IsLessThanOrEqualTo(MathF.Abs(x[i]) * (1f / 2048) + 1e-7f, MathF.Abs(x[i] - y[i]));
        }

        Float16Codec.Instance.Encode([1e6f], bytes);
        var z = new float[1];
        Float16Codec.Instance.Decode(bytes.AsSpan(0, 2), z);
        Assert.IsTrue(float.IsPositiveInfinity(z[0]));
    }

    [TestMethod]
    public void MalformedPayloads_AreInvalidDataFormat()
    {
        var int8 = new BlockQuantizedCodec(8, 4);
        var bytes = new byte[int8.GetEncodedLength(4)];
        int8.Encode([1, 2, 3, 4], bytes);
        bytes[4] = 0x80; // code -128 is never produced
        var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => int8.Decode(bytes, new float[4]));
        StringAssert.Contains(ex.Message, "code -128");
        Assert.ThrowsExactly<InvalidDataFormatException>(() => int8.Decode(bytes.AsSpan(1), new float[4]));
        var int4 = new BlockQuantizedCodec(4, 4);
        var b4 = new byte[int4.GetEncodedLength(4)];
        int4.Encode([1, 2, 3, 4], b4);
        b4[4] = 0x00; // nibble 0 = code -8, outside [-7, 7]
        Assert.ThrowsExactly<InvalidDataFormatException>(() => int4.Decode(b4, new float[4]));
        BitConverter.GetBytes(-1f).CopyTo(b4, 0);
        Assert.ThrowsExactly<InvalidDataFormatException>(() => int4.Decode(b4, new float[4]));
    }

    [TestMethod]
    public void Guards()
    {
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new BlockQuantizedCodec(6));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new BlockQuantizedCodec(4, 3));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => PayloadCodecs.Create((PseudoGradientEncoding)99));
    }
}
