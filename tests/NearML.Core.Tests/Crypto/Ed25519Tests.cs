using NearML.Core.Crypto;
using NearML.Core.Crypto.Internal;
using NearML.Core.Protocol;

namespace NearML.Core.Tests.Crypto;

/// <summary>The one ed25519 implementation: RFC 8032 vectors, every path equal, malformed input refused.</summary>
[TestClass]
public sealed class Ed25519Tests
{
    // RFC 8032 §7.1, TEST 1 (empty message), TEST 2 (one byte), TEST 3 (two bytes): seed, public key, message, signature.
    internal static readonly (string Seed, string Public, string Message, string Signature)[] Rfc8032 =
    [
        ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
        ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb", "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
        ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7", "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
            "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
    ];

    // The group order L, little-endian: S + L is the non-canonical twin of a valid S.
    private static readonly byte[] GroupOrder = Convert.FromHexString("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");

    [TestMethod]
    public void Rfc8032_vectors_hold_on_every_path()
    {
        foreach (var (seedHex, publicHex, messageHex, signatureHex) in Rfc8032)
        {
            byte[] seed = Convert.FromHexString(seedHex), message = Convert.FromHexString(messageHex);
            Assert.AreEqual(publicHex, Convert.ToHexStringLower(Ed25519.GetPublicKey(seed)));
            Assert.AreEqual(signatureHex, Convert.ToHexStringLower(Ed25519.Sign(seed, message)));
            Assert.IsTrue(Ed25519.Verify(Convert.FromHexString(publicHex), message, Convert.FromHexString(signatureHex)));

            var pk = new byte[32];
            var sig = new byte[64];
            Ed25519.Managed.GetPublicKey(seed, pk);
            Ed25519.Managed.Sign(seed, message, sig);
            Assert.AreEqual(publicHex, Convert.ToHexStringLower(pk), "managed public key");
            Assert.AreEqual(signatureHex, Convert.ToHexStringLower(sig), "managed signature");
            Assert.IsTrue(Ed25519.Managed.Verify(pk, message, sig));
            if (Sodium.IsAvailable)
            {
                var sk = new byte[64];
                Sodium.SeedKeypair(seed, pk, sk);
                Sodium.Sign(sk, message, sig);
                Assert.AreEqual(publicHex, Convert.ToHexStringLower(pk), "libsodium public key");
                Assert.AreEqual(signatureHex, Convert.ToHexStringLower(sig), "libsodium signature");
                Assert.IsTrue(Sodium.Verify(pk, message, sig));
            }

            // The held key and the identity wrapper are the same implementation.
            using var key = Ed25519PrivateKey.FromSeed(seed);
            Assert.AreEqual(publicHex, Convert.ToHexStringLower(key.PublicKey));
            Assert.AreEqual(signatureHex, Convert.ToHexStringLower(key.Sign(message)));
            var exported = new byte[32];
            key.ExportSeed(exported);
            CollectionAssert.AreEqual(seed, exported);
            using var identity = Ed25519Identity.FromSeed(seed);
            Assert.AreEqual(publicHex, Convert.ToHexStringLower(identity.PublicKey.Span));
            Assert.AreEqual(signatureHex, Convert.ToHexStringLower(identity.Sign(message)));
        }
    }

    [TestMethod]
    public void Native_and_managed_paths_give_identical_keys_signatures_and_verdicts()
    {
        if (!Sodium.IsAvailable)
        {
            Assert.Inconclusive("libsodium is not available (or NEARML_ED25519_MANAGED=1); only the managed path runs here.");
        }

        Assert.AreEqual("libsodium", Ed25519.Implementation);

        var rng = new Random(7);
        for (int i = 0; i < 64; i++)
        {
            byte[] seed = new byte[32];
            rng.NextBytes(seed);
            byte[] msg = new byte[i % 4 == 0 ? 1024 : rng.Next(0, 300)];
            rng.NextBytes(msg);
            byte[] pubManaged = new byte[32], pubNative = new byte[32], sk = new byte[64];
            Ed25519.Managed.GetPublicKey(seed, pubManaged);
            Sodium.SeedKeypair(seed, pubNative, sk);
            CollectionAssert.AreEqual(pubManaged, pubNative);
            CollectionAssert.AreEqual(pubManaged, Ed25519.GetPublicKey(seed));
            byte[] managed = new byte[64], native = new byte[64];
            Ed25519.Managed.Sign(seed, msg, managed);
            Sodium.Sign(sk, msg, native);
            CollectionAssert.AreEqual(managed, native);
            CollectionAssert.AreEqual(managed, Ed25519.Sign(seed, msg));
            using (var key = Ed25519PrivateKey.FromSeed(seed))
            {
                CollectionAssert.AreEqual(managed, key.Sign(msg));
            }

            Assert.IsTrue(Sodium.Verify(pubManaged, msg, native));
            native[rng.Next(64)] ^= (byte)(1 << rng.Next(8));
            bool managedVerdict = Ed25519.Managed.Verify(pubManaged, msg, native);
            Assert.AreEqual(managedVerdict, Sodium.Verify(pubManaged, msg, native));
            Assert.IsFalse(managedVerdict);
        }
    }

    [TestMethod]
    public void Every_single_bit_flip_of_signature_key_or_message_is_refused_on_every_path()
    {
        byte[] seed = Convert.FromHexString(Rfc8032[2].Seed), msg = Convert.FromHexString("00112233445566778899");
        byte[] pub = Ed25519.GetPublicKey(seed), sig = Ed25519.Sign(seed, msg);
        void Refused(byte[] p, byte[] m, byte[] s, string what)
        {
            Assert.IsFalse(Ed25519.Verify(p, m, s), what);
            Assert.IsFalse(Ed25519.Managed.Verify(p, m, s), what + " (managed)");
        }

        foreach (var target in new[] { sig, pub, msg })
        {
            for (int bit = 0; bit < target.Length * 8; bit++)
            {
                target[bit / 8] ^= (byte)(1 << (bit % 8));
                Refused(pub, msg, sig, $"bit {bit} of a {target.Length}-byte field");
                target[bit / 8] ^= (byte)(1 << (bit % 8));
            }
        }

        Assert.IsTrue(Ed25519.Verify(pub, msg, sig));
    }

    [TestMethod]
    public void Non_canonical_scalar_and_non_point_keys_are_invalid_signatures()
    {
        byte[] seed = Convert.FromHexString(Rfc8032[0].Seed), pub = Convert.FromHexString(Rfc8032[0].Public), sig = Convert.FromHexString(Rfc8032[0].Signature);

        // S + L: the same signature with a non-canonical scalar (RFC 8032 §5.1.7 requires S < L).
        var malleable = (byte[])sig.Clone();
        int carry = 0;
        for (int i = 0; i < 32; i++)
        {
            int v = malleable[32 + i] + GroupOrder[i] + carry;
            malleable[32 + i] = (byte)v;
            carry = v >> 8;
        }

        Assert.IsFalse(Ed25519.Verify(pub, [], malleable));
        Assert.IsFalse(Ed25519.Managed.Verify(pub, [], malleable));

        // A y coordinate with no curve point (y = 2) and a non-canonical y ≥ p (y = p + 1 with the sign bit clear).
        var notAPoint = new byte[32];
        notAPoint[0] = 2;
        var nonCanonical = Convert.FromHexString("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
        foreach (var key in new[] { notAPoint, nonCanonical })
        {
            Assert.IsFalse(Ed25519.Verify(key, [], sig));
            Assert.IsFalse(Ed25519.Managed.Verify(key, [], sig));
        }

        Assert.IsTrue(Ed25519.Verify(Ed25519.GetPublicKey(seed), [], sig));
    }

    [TestMethod]
    public void Wrong_lengths_are_refused_with_the_parameter_named()
    {
        var seed = new byte[32];
        foreach (int n in new[] { 0, 31, 33, 64 })
        {
            Assert.AreEqual("seed", Assert.ThrowsExactly<ArgumentException>(() => Ed25519.Sign(new byte[n], [1, 2])).ParamName);
            Assert.AreEqual("seed", Assert.ThrowsExactly<ArgumentException>(() => Ed25519.GetPublicKey(new byte[n])).ParamName);
            Assert.AreEqual("seed", Assert.ThrowsExactly<ArgumentException>(() => Ed25519Identity.FromSeed(new byte[n])).ParamName);
            Assert.IsFalse(Ed25519.Verify(new byte[n], [], new byte[64]));
        }

        Assert.AreEqual("signature", Assert.ThrowsExactly<ArgumentException>(() => Ed25519.Sign(seed, [], new byte[63])).ParamName);
        Assert.AreEqual("seed", Assert.ThrowsExactly<ArgumentException>(() => Ed25519PrivateKey.FromSeed(new byte[31])).ParamName);
        var held = Ed25519PrivateKey.Generate();
        Assert.AreEqual("signature", Assert.ThrowsExactly<ArgumentException>(() => held.Sign([], new byte[65])).ParamName);
        Assert.AreEqual("destination", Assert.ThrowsExactly<ArgumentException>(() => held.ExportSeed(new byte[16])).ParamName);
        held.Dispose();
        Assert.ThrowsExactly<ObjectDisposedException>(() => held.Sign([1]));
        Assert.AreEqual("publicKey", Assert.ThrowsExactly<ArgumentException>(() => Ed25519.GetPublicKey(seed, new byte[31])).ParamName);
        var pub = Ed25519.GetPublicKey(seed);
        var sig = Ed25519.Sign(seed, []);
        Assert.IsFalse(Ed25519.Verify(pub, [], sig.AsSpan(0, 63)));
        Assert.IsFalse(Ed25519.Verify(pub, [], [.. sig, 0]));
        Assert.IsTrue(Ed25519.Verify(pub, [], sig));
    }
}
