namespace NearML.Aggregation.Tests;

[TestClass]
public sealed class EncodingTests
{
    [TestMethod]
    public void RingBits_FollowTheFormula_AndTheSumCannotOverflow()
    {
        var enc = new FixedPointEncoder(1f, 8, maxClients: 1000);
        Assert.AreEqual(18, enc.RingBits);
        Assert.AreEqual(127, enc.MaxLevel);
        Assert.AreEqual(8 + 7 + 7, new FixedPointEncoder(1f, 8, 100, maxWeight: 100).RingBits);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new FixedPointEncoder(1f, 24, 1 << 10, 1 << 10));

        // n clients all at +clip (and all at −clip) with the maximum weight decode exactly.
        int n = 1000;
        var sum = new uint[3];
        var one = new uint[3];
        foreach (var v in new[] { 5f, -5f })
        {
            Array.Clear(sum);
            for (int i = 0; i < n; i++)
            {
                enc.Encode([v, -v], 1, one);
                for (int j = 0; j < 3; j++)
                {
                    sum[j] += one[j];
                }
            }

            var mean = new float[2];
            Assert.AreEqual(n, enc.DecodeMean(sum, mean));
            Assert.AreEqual(Math.Sign(v) * 1f, mean[0], 1e-6f);
            Assert.AreEqual(-Math.Sign(v) * 1f, mean[1], 1e-6f);
        }
    }

    [TestMethod]
    [DataRow(RoundingMode.Deterministic)]
    [DataRow(RoundingMode.Stochastic)]
    public void DecodedMean_IsWithinTheErrorBound(RoundingMode mode)
    {
        int n = 50, len = 2000;
        var enc = new FixedPointEncoder(0.5f, 6, n, maxWeight: 10, mode);
        var rng = new Random(4);
        var sum = new uint[len + 1];
        var buf = new uint[len + 1];
        var exact = new double[len];
        long totalWeight = 0;
        for (int i = 0; i < n; i++)
        {
            var x = Enumerable.Range(0, len).Select(_ => (float)(rng.NextDouble() - 0.5) * 1.4f).ToArray();
            int w = rng.Next(1, 11);
            totalWeight += w;
            enc.Encode(x, w, buf, new Random(i));
            for (int j = 0; j < len; j++)
            {
                exact[j] += w * Math.Clamp(x[j], -0.5, 0.5);
            }

            for (int j = 0; j <= len; j++)
            {
                sum[j] += buf[j];
            }
        }

        var mean = new float[len];
        Assert.AreEqual(totalWeight, enc.DecodeMean(sum, mean));
        double maxErr = 0, meanErr = 0;
        for (int j = 0; j < len; j++)
        {
            double e = mean[j] - (exact[j] / totalWeight);
            maxErr = Math.Max(maxErr, Math.Abs(e));
            meanErr += e / len;
        }

        Assert.IsLessThanOrEqualTo(enc.ErrorBound + 1e-6, maxErr);
        if (mode == RoundingMode.Stochastic)
        {
            Assert.IsLessThan(0.05 / enc.Scale, Math.Abs(meanErr), "stochastic rounding is unbiased");
        }
    }

    [TestMethod]
    public void Encode_RejectsNonFiniteAndBadWeights()
    {
        var enc = new FixedPointEncoder(1f, 8, 10, maxWeight: 5);
        var dst = new uint[3];
        Assert.AreEqual("values", Assert.ThrowsExactly<ArgumentException>(() => enc.Encode([1f, float.NaN], 1, dst)).ParamName);
        Assert.AreEqual("weight", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => enc.Encode([1f, 2f], 6, dst)).ParamName);
        Assert.AreEqual("destination", Assert.ThrowsExactly<ArgumentException>(() => enc.Encode([1f], 1, dst)).ParamName);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new FixedPointEncoder(0f, 8, 10));
    }

    [TestMethod]
    public void Packing_RoundTripsEveryWidth_AndAddsInPlace()
    {
        var rng = new Random(8);
        for (int bits = 1; bits <= 32; bits++)
        {
            uint mask = bits == 32 ? uint.MaxValue : (1u << bits) - 1;
            foreach (int len in new[] { 0, 1, 7, 8, 9, 100, 1001 })
            {
                var v = Enumerable.Range(0, len).Select(_ => (uint)rng.NextInt64() & mask).ToArray();
                var packed = new byte[RingPacking.PackedLength(len, bits)];
                Assert.AreEqual(((len * bits) + 7) / 8, packed.Length);
                RingPacking.Pack(v, bits, packed);
                var back = new uint[len];
                RingPacking.Unpack(packed, bits, back);
                CollectionAssert.AreEqual(v, back, $"bits {bits}, length {len}");
                var acc = Enumerable.Repeat(1u, len).ToArray();
                RingPacking.UnpackAdd(packed, bits, acc);
                CollectionAssert.AreEqual(v.Select(x => x + 1).ToArray(), acc);
            }
        }

        Assert.ThrowsExactly<ArgumentException>(() => RingPacking.Unpack(new byte[3], 8, new uint[4]));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => RingPacking.PackedLength(4, 33));
    }

    [TestMethod]
    public void UnpackAdd_VectorAndScalarPathsAgree()
    {
        var rng = new Random(7);
        foreach (var bits in Enumerable.Range(1, 32))
        {
            foreach (var len in new[] { 1, 7, 8, 9, 31, 64, 65, 1000, 4099 })
            {
                var v = Enumerable.Range(0, len).Select(_ => (uint)rng.NextInt64(0, 1L << bits)).ToArray();
                var packed = new byte[RingPacking.PackedLength(len, bits)];
                RingPacking.Pack(v, bits, packed);
                var start = Enumerable.Range(0, len).Select(_ => (uint)rng.Next()).ToArray();
                var vector = (uint[])start.Clone();
                RingPacking.UnpackAdd(packed, bits, vector);
                var scalar = (uint[])start.Clone();
                RingPacking.ForceScalar = true;
                try
                {
                    RingPacking.UnpackAdd(packed, bits, scalar);
                }
                finally
                {
                    RingPacking.ForceScalar = false;
                }

                CollectionAssert.AreEqual(scalar, vector, $"bits {bits}, length {len}");
                CollectionAssert.AreEqual(start.Zip(v, (a, b) => a + b).ToArray(), vector, $"bits {bits}, length {len}");
            }
        }
    }

    [TestMethod]
    public void HypergeometricTail_MatchesDirectSum()
    {
        // P[X ≥ 2], X ~ Hyp(N=10, K=4, n=3) = 1 − P[0] − P[1] = 1 − (20 + 60)/120 = 1/3.
        Assert.AreEqual(Math.Log2(1.0 / 3), SecAggParameters.Log2HypergeometricTail(10, 4, 3, 2), 1e-9);
        Assert.AreEqual(double.NegativeInfinity, SecAggParameters.Log2HypergeometricTail(10, 4, 3, 4));
        Assert.AreEqual(0, SecAggParameters.Log2HypergeometricTail(10, 4, 3, 0));
    }
}
