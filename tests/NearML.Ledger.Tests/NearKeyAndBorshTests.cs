using System.Text;
using NearML.Core;

namespace NearML.Ledger.Tests;

[TestClass]
public sealed class NearKeyAndBorshTests
{
    [TestMethod]
    public void Secret_key_with_mismatched_public_half_is_rejected_without_echoing_it()
    {
        using NearKeyPair a = NearKeyPair.FromSeed(Enumerable.Repeat((byte)1, 32).ToArray());
        using NearKeyPair b = NearKeyPair.FromSeed(Enumerable.Repeat((byte)2, 32).ToArray());
        byte[] forged = new byte[64];
        Enumerable.Repeat((byte)1, 32).ToArray().CopyTo(forged, 0);
        b.PublicKey.Bytes.CopyTo(forged.AsSpan(32));
        string text = "ed25519:" + SimpleBase.Base58.Bitcoin.Encode(forged);
        var ex = Assert.ThrowsExactly<InvalidNearKeyException>(() => NearKeyPair.Parse(text));
        Assert.AreEqual("secretKey", ex.Field);
        StringAssert.Contains(ex.Message, "does not match");
        Assert.DoesNotContain(text[8..], ex.Message);
        Assert.DoesNotContain(a.ExportSecretKey()[8..], ex.ToString());
    }

    [TestMethod]
    public void Key_pair_to_string_shows_only_the_public_key()
    {
        using NearKeyPair k = NearKeyPair.Generate();
        string secret = k.ExportSecretKey();
        Assert.DoesNotContain(secret[8..], k.ToString());
        StringAssert.Contains(k.ToString(), k.PublicKey.ToString());
    }

    [TestMethod]
    [DataRow("ed25519:")]
    [DataRow("secp256k1:abc")]
    [DataRow("ed25519:0OIl")]
    [DataRow("ed25519:3yZe7d")]
    public void Malformed_keys_throw_typed_exceptions(string text)
    {
        Assert.ThrowsExactly<InvalidNearKeyException>(() => NearPublicKey.Parse(text));
        Assert.ThrowsExactly<InvalidNearKeyException>(() => NearKeyPair.Parse(text));
    }

    [TestMethod]
    public void Seed_only_secret_key_is_accepted_and_signatures_verify()
    {
        byte[] seed = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        using NearKeyPair k = NearKeyPair.Parse("ed25519:" + SimpleBase.Base58.Bitcoin.Encode(seed));
        byte[] sig = k.Sign("hello"u8);
        Assert.IsTrue(k.PublicKey.Verify("hello"u8, sig));
        sig[5] ^= 1;
        Assert.IsFalse(k.PublicKey.Verify("hello"u8, sig));
        Assert.IsFalse(k.PublicKey.Verify("hello"u8, sig.AsSpan(0, 10)));
    }

    [TestMethod]
    public void Implicit_account_round_trips()
    {
        using NearKeyPair k = NearKeyPair.Generate();
        string id = k.PublicKey.ImplicitAccountId;
        Assert.AreEqual(64, id.Length);
        Assert.IsTrue(NearAccountId.IsImplicit(id));
        Assert.IsTrue(NearAccountId.IsValid(id));
        Assert.AreEqual(k.PublicKey, NearPublicKey.FromImplicitAccountId(id));
        Assert.ThrowsExactly<InvalidAccountIdException>(() => NearPublicKey.FromImplicitAccountId(id.ToUpperInvariant()));
    }

    [TestMethod]
    [DataRow("a", false)]
    [DataRow("ab", true)]
    [DataRow("alice.near", true)]
    [DataRow("a-b_c.d", true)]
    [DataRow(".alice", false)]
    [DataRow("alice.", false)]
    [DataRow("al..ice", false)]
    [DataRow("Alice", false)]
    [DataRow("ali ce", false)]
    public void Account_id_rules(string id, bool valid)
    {
        Assert.AreEqual(valid, NearAccountId.IsValid(id), NearAccountId.Explain(id));
        if (!valid)
        {
            var ex = Assert.ThrowsExactly<InvalidAccountIdException>(() => NearAccountId.Validate(id, "receiverId"));
            Assert.AreEqual("receiverId", ex.Field);
        }
    }

    [TestMethod]
    public void Account_id_of_65_chars_is_invalid()
    {
        Assert.IsTrue(NearAccountId.IsValid(new string('a', 64)));
        Assert.IsFalse(NearAccountId.IsValid(new string('a', 65)));
    }

    [TestMethod]
    public void Borsh_primitives_round_trip_and_strings_are_utf8()
    {
        var w = new BorshWriter(1);
        w.WriteU8(7);
        w.WriteBool(true);
        w.WriteU32(uint.MaxValue);
        w.WriteU64(ulong.MaxValue);
        w.WriteU128(UInt128.MaxValue);
        w.WriteI64(-5);
        w.WriteF64(1.5);
        w.WriteString("Grüße 🚀");
        w.WriteBytes([1, 2, 3]);
        byte[] bytes = w.ToArray();
        var r = new BorshReader(bytes);
        Assert.AreEqual((byte)7, r.ReadU8());
        Assert.IsTrue(r.ReadBool());
        Assert.AreEqual(uint.MaxValue, r.ReadU32());
        Assert.AreEqual(ulong.MaxValue, r.ReadU64());
        Assert.AreEqual(UInt128.MaxValue, r.ReadU128());
        Assert.AreEqual(-5L, r.ReadI64());
        Assert.AreEqual(1.5, r.ReadF64());
        int at = r.Position;
        Assert.AreEqual("Grüße 🚀", r.ReadString());
        Assert.AreEqual((uint)Encoding.UTF8.GetByteCount("Grüße 🚀"), BitConverter.ToUInt32(bytes, at));
        CollectionAssert.AreEqual(new byte[] { 1, 2, 3 }, r.ReadBytes());
        r.EnsureEnd();
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => w.WriteF64(double.NaN));
    }

    [TestMethod]
    public void Borsh_reader_names_the_offset_of_bad_input()
    {
        var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => new BorshReader(new byte[] { 0xff, 0xff, 0xff, 0x0f, 1 }).ReadBytes());
        Assert.AreEqual(0, ex.Offset);
        ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => new BorshReader(new byte[] { 2 }).ReadBool());
        Assert.AreEqual(0, ex.Offset);
        ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => new BorshReader(new byte[] { 2, 0, 0, 0, 0xc3, 0x28 }).ReadString());
        Assert.AreEqual(4, ex.Offset);
        ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => new BorshReader(new byte[] { 1, 2 }).ReadU32());
        Assert.AreEqual(0, ex.Offset);
    }

    [TestMethod]
    public void Truncated_or_trailing_transaction_bytes_are_rejected()
    {
        using NearKeyPair k = NearKeyPair.Generate();
        var tx = new NearTransaction("a.near", k.PublicKey, 1, "b.near", new byte[32], [new TransferAction(5)]);
        byte[] signed = tx.Sign(k).ToBorsh();
        Assert.ThrowsExactly<InvalidDataFormatException>(() => SignedNearTransaction.Parse(signed.AsMemory(0, signed.Length - 1)));
        Assert.ThrowsExactly<InvalidDataFormatException>(() => SignedNearTransaction.Parse(signed.Concat(new byte[] { 0 }).ToArray()));
        byte[] badTag = (byte[])signed.Clone();
        badTag[tx.ToBorsh().Length - 17] = 99; // the action tag sits before the 16-byte deposit
        var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => SignedNearTransaction.Parse(badTag));
        StringAssert.Contains(ex.Message, "action tag 99");
    }

    [TestMethod]
    public void Signing_with_a_different_key_is_refused()
    {
        using NearKeyPair k = NearKeyPair.Generate();
        using NearKeyPair other = NearKeyPair.Generate();
        var tx = new NearTransaction("a.near", k.PublicKey, 1, "b.near", new byte[32], [new TransferAction(5)]);
        Assert.ThrowsExactly<ArgumentException>(() => tx.Sign(other));
    }

    [TestMethod]
    public void Delegate_cannot_nest_a_delegate()
    {
        using NearKeyPair k = NearKeyPair.Generate();
        SignedDelegateAction inner = new DelegateAction("a.near", "b.near", [new TransferAction(1)], 1, 10, k.PublicKey).Sign(k);
        var outer = new DelegateAction("a.near", "b.near", [inner], 2, 10, k.PublicKey);
        Assert.ThrowsExactly<InvalidOperationException>(() => outer.ToSigningBytes());
    }
}
