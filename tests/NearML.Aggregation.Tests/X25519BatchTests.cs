using NearML.Aggregation.Internal;

namespace NearML.Aggregation.Tests;

[TestClass]
public sealed class X25519BatchTests
{
    // RFC 7748 §5.2 and §6.1.
    private static readonly (string Scalar, string U, string Output)[] Vectors =
    [
        ("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4", "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c", "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"),
        ("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d", "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493", "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"),
        ("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", "0900000000000000000000000000000000000000000000000000000000000000", "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"),
        ("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb", "0900000000000000000000000000000000000000000000000000000000000000", "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"),
        ("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"),
    ];

    [TestMethod]
    public void Batch_MatchesRfc7748Vectors()
    {
        if (!X25519Batch.IsSupported)
        {
            Assert.Inconclusive("AVX-512 not available; the scalar fallback is BouncyCastle");
        }

        var scalars = Vectors.SelectMany(v => Convert.FromHexString(v.Scalar)).ToArray();
        var points = Vectors.SelectMany(v => Convert.FromHexString(v.U)).ToArray();
        var outputs = new byte[scalars.Length];
        var ok = new bool[Vectors.Length];
        X25519Batch.ScalarMult(scalars, points, outputs, ok);
        for (int i = 0; i < Vectors.Length; i++)
        {
            Assert.IsTrue(ok[i]);
            Assert.AreEqual(Vectors[i].Output, Convert.ToHexStringLower(outputs.AsSpan(i * 32, 32)), $"vector {i}");
        }
    }

    [TestMethod]
    public void Batch_Rfc7748ThousandIterations()
    {
        if (!X25519Batch.IsSupported)
        {
            Assert.Inconclusive("AVX-512 not available");
        }

        var k = new byte[32];
        var u = new byte[32];
        k[0] = 9;
        u[0] = 9;
        var output = new byte[32];
        var ok = new bool[1];
        for (int i = 0; i < 1000; i++)
        {
            X25519Batch.ScalarMult(k, u, output, ok);
            (u, k) = (k, (byte[])output.Clone());
            if (i == 0)
            {
                Assert.AreEqual("422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079", Convert.ToHexStringLower(k));
            }
        }

        Assert.AreEqual("684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51", Convert.ToHexStringLower(k));
    }

    [TestMethod]
    public void Batch_AgreesWithBouncyCastle_OnRandomAndEdgeInputs()
    {
        if (!X25519Batch.IsSupported)
        {
            Assert.Inconclusive("AVX-512 not available");
        }

        var rng = new Random(11);
        for (int round = 0; round < 40; round++)
        {
            int count = 1 + (round % 8);
            var scalars = new byte[count * 32];
            var points = new byte[count * 32];
            rng.NextBytes(scalars);
            rng.NextBytes(points);
            if (round % 5 == 0)
            {
                // Non-canonical u in [p, 2^255) and with the top bit set, and u = 0 / u = 1 (low order: zero output).
                points.AsSpan(0, 32).Fill(0xFF);
                points[0] = 0xEE;
                if (count > 1)
                {
                    points.AsSpan(32, 32).Clear();
                }

                if (count > 2)
                {
                    points.AsSpan(64, 32).Clear();
                    points[64] = 1;
                }
            }

            var outputs = new byte[count * 32];
            var ok = new bool[count];
            X25519Batch.ScalarMult(scalars, points, outputs, ok);
            for (int i = 0; i < count; i++)
            {
                var expected = new byte[32];
                bool bcOk = Org.BouncyCastle.Math.EC.Rfc7748.X25519.CalculateAgreement(scalars, i * 32, points, i * 32, expected, 0);
                Assert.AreEqual(bcOk, ok[i], $"round {round}, item {i}");
                CollectionAssert.AreEqual(expected, outputs.AsSpan(i * 32, 32).ToArray(), $"round {round}, item {i}");
            }
        }
    }

    [TestMethod]
    public void AgreeMany_BatchAndOneAtATimeAgree()
    {
        var sks = Enumerable.Range(0, 19).Select(_ => KeyAgreement.Generate().PrivateKey).ToList();
        var pks = Enumerable.Range(0, 19).Select(_ => KeyAgreement.Generate().PublicKey).ToList();
        pks[5] = new byte[32]; // low-order point
        var batch = new byte[19 * 32];
        var batchOk = new bool[19];
        KeyAgreement.AgreeMany(sks, pks, batch, batchOk);
        var single = new byte[19 * 32];
        var singleOk = new bool[19];
        X25519Batch.ForceScalar = true;
        try
        {
            KeyAgreement.AgreeMany(sks, pks, single, singleOk);
        }
        finally
        {
            X25519Batch.ForceScalar = false;
        }

        CollectionAssert.AreEqual(singleOk, batchOk);
        CollectionAssert.AreEqual(single, batch);
        Assert.IsFalse(batchOk[5]);
        Assert.AreEqual(18, batchOk.Count(o => o));
    }
}
