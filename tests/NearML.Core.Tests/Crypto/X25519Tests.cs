using System.Security.Cryptography;
using NearML.Core.Crypto;
using NearML.Core.Crypto.Internal;

namespace NearML.Core.Tests.Crypto;

/// <summary>The one X25519 implementation: RFC 7748 vectors on every path (libsodium, BouncyCastle, AVX-512 batch), equality, low-order refusal.</summary>
[TestClass]
[DoNotParallelize] // X25519Batch.ForceScalar is process-wide
public sealed class X25519Tests
{
    // RFC 7748 §5.2 and §6.1 (Alice's and Bob's public keys and their shared secret).
    private static readonly (string Scalar, string U, string Output)[] Vectors =
    [
        ("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4", "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c", "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"),
        ("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d", "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493", "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"),
        ("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", "0900000000000000000000000000000000000000000000000000000000000000", "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"),
        ("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb", "0900000000000000000000000000000000000000000000000000000000000000", "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"),
        ("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"),
    ];

    // Points of order 1, 2, 4 and 8 and their non-canonical encodings: X25519 with any clamped scalar gives zero.
    private static readonly string[] LowOrder =
    [
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    ];

    private delegate bool Agreement(ReadOnlySpan<byte> k, ReadOnlySpan<byte> u, Span<byte> secret);

    private static IEnumerable<(string Name, Agreement Agree)> Paths()
    {
        yield return ("public", X25519.TryAgree);
        yield return ("managed", X25519.Managed.TryAgree);
        if (Sodium.IsAvailable)
        {
            yield return ("libsodium", Sodium.ScalarMult);
        }

        if (X25519Batch.IsSupported)
        {
            yield return ("avx512", (k, u, s) =>
            {
                var ok = new bool[1];
                X25519Batch.ScalarMult(k, u, s, ok);
                return ok[0];
            });
        }
    }

    [TestMethod]
    public void Rfc7748_vectors_hold_on_every_path()
    {
        foreach (var (name, agree) in Paths())
        {
            foreach (var (k, u, expected) in Vectors)
            {
                var secret = new byte[32];
                Assert.IsTrue(agree(Convert.FromHexString(k), Convert.FromHexString(u), secret), name);
                Assert.AreEqual(expected, Convert.ToHexStringLower(secret), name);
            }
        }

        var pk = new byte[32];
        X25519.GetPublicKey(Convert.FromHexString(Vectors[2].Scalar), pk);
        Assert.AreEqual("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", Convert.ToHexStringLower(pk));
        X25519.Managed.GetPublicKey(Convert.FromHexString(Vectors[3].Scalar), pk);
        Assert.AreEqual("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", Convert.ToHexStringLower(pk));
    }

    [TestMethod]
    public void Rfc7748_thousand_iterations_on_every_path()
    {
        foreach (var (name, agree) in Paths())
        {
            var k = new byte[32];
            var u = new byte[32];
            k[0] = 9;
            u[0] = 9;
            var output = new byte[32];
            for (int i = 0; i < 1000; i++)
            {
                Assert.IsTrue(agree(k, u, output));
                (u, k) = (k, (byte[])output.Clone());
                if (i == 0)
                {
                    Assert.AreEqual("422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079", Convert.ToHexStringLower(k), name);
                }
            }

            Assert.AreEqual("684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51", Convert.ToHexStringLower(k), name);
        }
    }

    [TestMethod]
    public void Every_path_gives_the_same_secret_on_random_and_edge_inputs()
    {
        var paths = Paths().ToList();
        var rng = new Random(11);
        for (int round = 0; round < 60; round++)
        {
            var k = new byte[32];
            var u = new byte[32];
            rng.NextBytes(k);
            rng.NextBytes(u);
            if (round % 6 == 0)
            {
                u.AsSpan().Fill(0xFF); // non-canonical u in [p, 2^255) with the top bit set
                u[0] = 0xEE;
            }

            var expected = new byte[32];
            bool expectedOk = X25519.Managed.TryAgree(k, u, expected);
            foreach (var (name, agree) in paths)
            {
                var secret = new byte[32];
                Assert.AreEqual(expectedOk, agree(k, u, secret), $"{name}, round {round}");
                if (expectedOk)
                {
                    CollectionAssert.AreEqual(expected, secret, $"{name}, round {round}");
                }
            }

            // Both sides of a real exchange agree.
            var (a, apk, b, bpk) = (new byte[32], new byte[32], new byte[32], new byte[32]);
            X25519.GeneratePrivateKey(a);
            X25519.GeneratePrivateKey(b);
            X25519.GetPublicKey(a, apk);
            X25519.Managed.GetPublicKey(b, bpk);
            var ab = new byte[32];
            var ba = new byte[32];
            X25519.Agree(a, bpk, ab);
            Assert.IsTrue(X25519.Managed.TryAgree(b, apk, ba));
            CollectionAssert.AreEqual(ab, ba);
        }
    }

    [TestMethod]
    public void Low_order_public_keys_are_refused_on_every_path()
    {
        var k = new byte[32];
        X25519.GeneratePrivateKey(k);
        foreach (var hex in LowOrder)
        {
            var u = Convert.FromHexString(hex);
            foreach (var (name, agree) in Paths())
            {
                var secret = new byte[32];
                Assert.IsFalse(agree(k, u, secret), $"{name}: {hex}");
            }

            var cleared = Enumerable.Repeat((byte)0xAA, 32).ToArray();
            Assert.IsFalse(X25519.TryAgree(k, u, cleared));
            Assert.IsTrue(cleared.All(b => b == 0), "a refused secret is cleared");
            var ex = Assert.ThrowsExactly<CryptographicException>(() => X25519.Agree(k, u, new byte[32]));
            StringAssert.Contains(ex.Message, "low-order");
        }
    }

    [TestMethod]
    public void AgreeMany_batch_and_one_at_a_time_agree_and_flag_low_order_keys()
    {
        const int n = 19;
        var sks = new byte[n * 32];
        var pks = new byte[n * 32];
        for (int i = 0; i < n; i++)
        {
            X25519.GeneratePrivateKey(sks.AsSpan(i * 32, 32));
            var other = new byte[32];
            X25519.GeneratePrivateKey(other);
            X25519.GetPublicKey(other, pks.AsSpan(i * 32, 32));
        }

        pks.AsSpan(5 * 32, 32).Clear(); // low-order point
        Convert.FromHexString(LowOrder[3]).CopyTo(pks, 17 * 32);
        var batch = new byte[n * 32];
        var batchOk = new bool[n];
        X25519.AgreeMany(sks, pks, batch, batchOk);
        var single = new byte[n * 32];
        var singleOk = new bool[n];
        X25519Batch.ForceScalar = true;
        try
        {
            X25519.AgreeMany(sks, pks, single, singleOk);
        }
        finally
        {
            X25519Batch.ForceScalar = false;
        }

        CollectionAssert.AreEqual(singleOk, batchOk);
        CollectionAssert.AreEqual(single, batch);
        Assert.IsFalse(batchOk[5]);
        Assert.IsFalse(batchOk[17]);
        Assert.AreEqual(n - 2, batchOk.Count(o => o));
        Assert.IsTrue(batch.AsSpan(5 * 32, 32).IndexOfAnyExcept((byte)0) < 0);
    }

    [TestMethod]
    public void Wrong_lengths_are_refused_with_the_parameter_named()
    {
        var k = new byte[32];
        foreach (int n in new[] { 0, 31, 33 })
        {
            Assert.AreEqual("privateKey", Assert.ThrowsExactly<ArgumentException>(() => X25519.TryAgree(new byte[n], k, new byte[32])).ParamName);
            Assert.AreEqual("peerPublicKey", Assert.ThrowsExactly<ArgumentException>(() => X25519.TryAgree(k, new byte[n], new byte[32])).ParamName);
            Assert.AreEqual("secret", Assert.ThrowsExactly<ArgumentException>(() => X25519.Agree(k, k, new byte[n])).ParamName);
            Assert.AreEqual("privateKey", Assert.ThrowsExactly<ArgumentException>(() => X25519.GetPublicKey(new byte[n], new byte[32])).ParamName);
            Assert.AreEqual("privateKey", Assert.ThrowsExactly<ArgumentException>(() => X25519.GeneratePrivateKey(new byte[n])).ParamName);
        }

        Assert.AreEqual("ok", Assert.ThrowsExactly<ArgumentException>(() => X25519.AgreeMany(new byte[64], new byte[64], new byte[32], new bool[2])).ParamName);
    }
}
