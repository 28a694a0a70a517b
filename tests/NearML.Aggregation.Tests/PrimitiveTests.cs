using System.Security.Cryptography;
using NearML.Aggregation.Internal;

namespace NearML.Aggregation.Tests;

[TestClass]
public sealed class PrimitiveTests
{
    [TestMethod]
    public void MaskPrg_IntrinsicAndPortablePathsAgreeWithAesEcbOfCounterBlocks()
    {
        var key = RandomNumberGenerator.GetBytes(16);
        var prg = new MaskPrg(key);
        foreach (int len in new[] { 1, 3, 4, 15, 16, 31, 32, 33, 100, 1027, 5000 })
        {
            var fast = new uint[len];
            prg.Generate(fast, 0);
            var portable = new uint[len];
            try
            {
                MaskPrg.ForcePortable = true;
                prg.Generate(portable, 0);
            }
            finally
            {
                MaskPrg.ForcePortable = false;
            }

            // Reference: AES-128-ECB (OpenSSL via .NET) over little-endian counter blocks.
            int blocks = (len + 3) / 4;
            var counters = new byte[blocks * 16];
            for (int b = 0; b < blocks; b++)
            {
                BitConverter.TryWriteBytes(counters.AsSpan(b * 16), (ulong)b);
            }

            using var aes = Aes.Create();
            aes.Key = key;
            var stream = aes.EncryptEcb(counters, PaddingMode.None);
            var expected = new uint[len];
            Buffer.BlockCopy(stream, 0, expected, 0, len * 4);
            CollectionAssert.AreEqual(expected, fast, $"intrinsics, length {len}");
            CollectionAssert.AreEqual(expected, portable, $"portable, length {len}");
        }
    }

    [TestMethod]
    public void MaskPrg_RandomAccessAndSubtractAreConsistent()
    {
        var prg = new MaskPrg(RandomNumberGenerator.GetBytes(16));
        var whole = new uint[70_000];
        prg.Generate(whole, 0);
        var parts = new uint[whole.Length];
        prg.Apply(parts.AsSpan(0, 16_384), 0, subtract: false);
        prg.Apply(parts.AsSpan(16_384), 16_384, subtract: false);
        CollectionAssert.AreEqual(whole, parts);
        prg.Apply(parts, 0, subtract: true);
        Assert.IsTrue(parts.All(x => x == 0));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => prg.Apply(parts, 2, false));
        Assert.ThrowsExactly<ArgumentException>(() => new MaskPrg(new byte[15]));
        // Different keys give different streams.
        var other = new uint[64];
        new MaskPrg(RandomNumberGenerator.GetBytes(16)).Generate(other, 0);
        CollectionAssert.AreNotEqual(whole.Take(64).ToArray(), other);
    }

    [TestMethod]
    public void MaskApplier_ParallelTiledEqualsSequential()
    {
        var masks = Enumerable.Range(0, 5).Select(i => (new MaskPrg(RandomNumberGenerator.GetBytes(16)), i % 2 == 0)).ToList();
        var a = Enumerable.Range(0, 300_001).Select(i => (uint)i).ToArray();
        var b = (uint[])a.Clone();
        MaskApplier.ApplyAll(masks, a, parallel: true);
        foreach (var (prg, sub) in masks)
        {
            prg.Apply(b, 0, sub);
        }

        CollectionAssert.AreEqual(b, a);
    }

    [TestMethod]
    public void Shamir_AnyThresholdSubsetReconstructsAndFewerDoNot()
    {
        var secret = RandomNumberGenerator.GetBytes(32);
        ulong[] xs = Enumerable.Range(1, 12).Select(i => (ulong)i * 7).ToArray();
        var shares = Shamir.Split(secret, 6, xs);
        var rng = new Random(3);
        var output = new byte[32];
        for (int trial = 0; trial < 20; trial++)
        {
            var pick = Enumerable.Range(0, 12).OrderBy(_ => rng.Next()).Take(6).ToArray();
            var lambda = Shamir.LagrangeAtZero(pick.Select(i => xs[i]).ToArray());
            Assert.IsTrue(Shamir.TryReconstruct(pick.Select(i => shares[i]).ToList(), lambda, output));
            CollectionAssert.AreEqual(secret, output);
        }

        var five = new[] { 0, 1, 2, 3, 4 };
        var lambda5 = Shamir.LagrangeAtZero(five.Select(i => xs[i]).ToArray());
        bool ok = Shamir.TryReconstruct(five.Select(i => shares[i]).ToList(), lambda5, output);
        Assert.IsFalse(ok && output.AsSpan().SequenceEqual(secret), "t-1 shares must not give the secret");

        // A corrupted share is detected (range check) or gives a different secret.
        var corrupted = Enumerable.Range(0, 6).Select(i => (byte[])shares[i].Clone()).ToList();
        corrupted[2][3] ^= 0x40;
        var lambda6 = Shamir.LagrangeAtZero(xs.Take(6).ToArray());
        ok = Shamir.TryReconstruct(corrupted, lambda6, output);
        Assert.IsFalse(ok && output.AsSpan().SequenceEqual(secret));
    }

    [TestMethod]
    public void Field_MultiplicationAndInverse()
    {
        var rng = new Random(5);
        for (int i = 0; i < 1000; i++)
        {
            ulong a = (ulong)rng.NextInt64(1, (long)Shamir.P), b = (ulong)rng.NextInt64(0, (long)Shamir.P);
            Assert.AreEqual(1UL, Shamir.Mul(a, Shamir.Inverse(a)));
            Assert.AreEqual((ulong)((System.Numerics.BigInteger)a * b % Shamir.P), Shamir.Mul(a, b));
        }

        Assert.AreEqual(0UL, Shamir.Mul(Shamir.P - 1, 0));
        Assert.AreEqual(1UL, Shamir.Mul(Shamir.P - 1, Shamir.P - 1));
    }

    [TestMethod]
    public void KeyAgreement_IsSymmetricAndSignaturesVerify()
    {
        var (a, apk) = KeyAgreement.Generate();
        var (b, bpk) = KeyAgreement.Generate();
        var s1 = new byte[32];
        var s2 = new byte[32];
        Assert.IsTrue(KeyAgreement.TryAgree(a, bpk, s1));
        Assert.IsTrue(KeyAgreement.TryAgree(b, apk, s2));
        CollectionAssert.AreEqual(s1, s2);
        Assert.IsFalse(KeyAgreement.TryAgree(a, new byte[32], s1), "all-zero (low-order) peer key must be rejected");

        var (sk, pk) = AggregationRound.CreateIdentityKey();
        var msg = "hello"u8.ToArray();
        using var key = NearML.Core.Protocol.Ed25519Identity.FromSeed(sk);
        var sig = Signatures.Sign(key, msg);
        Assert.IsTrue(Signatures.Verify(pk, msg, sig));
        sig[5] ^= 1;
        Assert.IsFalse(Signatures.Verify(pk, msg, sig));
        Assert.IsFalse(Signatures.Verify(pk, msg, sig.AsSpan(0, 10)));
    }

    [TestMethod]
    public void ShareCipher_BindsAad()
    {
        var key = RandomNumberGenerator.GetBytes(32);
        var aad = "a"u8.ToArray();
        var ct = ShareCipher.Encrypt(key, aad, new byte[80]);
        var pt = new byte[80];
        Assert.IsTrue(ShareCipher.TryDecrypt(key, aad, ct, pt));
        Assert.IsFalse(ShareCipher.TryDecrypt(key, "b"u8.ToArray(), ct, pt));
        ct[20] ^= 1;
        Assert.IsFalse(ShareCipher.TryDecrypt(key, aad, ct, pt));
        Assert.IsFalse(ShareCipher.TryDecrypt(key, aad, ct.AsSpan(0, 50), pt));
    }

    [TestMethod]
    public void HararyGraph_IsRegularSymmetricConnectedAndSeeded()
    {
        var seed = RandomNumberGenerator.GetBytes(32);
        var g = new HararyGraph(101, 12, seed);
        var seen = new bool[101];
        var queue = new Queue<uint>([0u]);
        seen[0] = true;
        for (uint u = 0; u < 101; u++)
        {
            var nb = g.Neighbours(u);
            Assert.HasCount(12, nb);
            Assert.AreEqual(12, nb.Distinct().Count());
            foreach (var v in nb)
            {
                Assert.IsTrue(g.AreNeighbours(v, u));
                Assert.Contains(u, g.Neighbours(v));
            }
        }

        while (queue.Count > 0)
        {
            foreach (var v in g.Neighbours(queue.Dequeue()))
            {
                if (!seen[v])
                {
                    seen[v] = true;
                    queue.Enqueue(v);
                }
            }
        }

        Assert.IsTrue(seen.All(x => x));
        CollectionAssert.AreEqual(g.Neighbours(7), new HararyGraph(101, 12, seed).Neighbours(7));
        var other = new HararyGraph(101, 12, RandomNumberGenerator.GetBytes(32));
        Assert.IsTrue(Enumerable.Range(0, 101).Any(u => !g.Neighbours((uint)u).SequenceEqual(other.Neighbours((uint)u))));
        Assert.IsTrue(new HararyGraph(10, 9, seed).IsComplete);
    }
}
