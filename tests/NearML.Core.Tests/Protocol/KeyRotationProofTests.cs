using NearML.Core.Contracts;
using NearML.Core.Protocol;

namespace NearML.Core.Tests.Protocol;

[TestClass]
public sealed class KeyRotationProofTests
{
    [TestMethod]
    public void A_rotation_signed_by_the_bound_key_verifies()
    {
        using var previous = Ed25519Identity.Generate();
        using var next = Ed25519Identity.Generate();
        var rotation = KeyRotationProof.Create(previous, "w-1", next.PublicKey.Span);
        Assert.IsTrue(KeyRotationProof.Verify(rotation, previous.PublicKey.Span, "w-1", next.PublicKey.Span, out var problem), problem);
        Assert.IsNull(problem);
    }

    [TestMethod]
    public void Every_single_bit_flip_of_the_signature_and_every_other_id_key_or_bound_key_fails()
    {
        using var previous = Ed25519Identity.Generate();
        using var next = Ed25519Identity.Generate();
        using var other = Ed25519Identity.Generate();
        var rotation = KeyRotationProof.Create(previous, "w-1", next.PublicKey.Span);
        var signature = rotation.Signature.ToByteArray();
        for (var bit = 0; bit < signature.Length * 8; bit++)
        {
            var mutated = (byte[])signature.Clone();
            mutated[bit / 8] ^= (byte)(1 << (bit % 8));
            var bad = new KeyRotation { PreviousPublicKey = rotation.PreviousPublicKey, Signature = Google.Protobuf.ByteString.CopyFrom(mutated) };
            Assert.IsFalse(KeyRotationProof.Verify(bad, previous.PublicKey.Span, "w-1", next.PublicKey.Span, out _), $"bit {bit}");
        }

        Assert.IsFalse(KeyRotationProof.Verify(rotation, previous.PublicKey.Span, "w-2", next.PublicKey.Span, out _), "another worker id");
        Assert.IsFalse(KeyRotationProof.Verify(rotation, previous.PublicKey.Span, "w-1", other.PublicKey.Span, out _), "another new key (the signature is not transferable)");
        Assert.IsFalse(KeyRotationProof.Verify(rotation, other.PublicKey.Span, "w-1", next.PublicKey.Span, out var problem), "a bound key the rotation does not name");
        StringAssert.Contains(problem, "not the key the id is bound to");

        // An attacker signing the hand-over with its own key, naming the bound key as previous: the signature does not verify.
        var forged = KeyRotationProof.Create(other, "w-1", other.PublicKey.Span);
        forged.PreviousPublicKey = Google.Protobuf.ByteString.CopyFrom(previous.PublicKey.Span);
        Assert.IsFalse(KeyRotationProof.Verify(forged, previous.PublicKey.Span, "w-1", other.PublicKey.Span, out _));
        Assert.IsFalse(KeyRotationProof.Verify(new KeyRotation { PreviousPublicKey = rotation.PreviousPublicKey }, previous.PublicKey.Span, "w-1", next.PublicKey.Span, out _), "no signature");
    }

    [TestMethod]
    public void The_message_binds_the_id_length_so_ids_cannot_be_shifted_into_the_key()
    {
        var key = new byte[32];
        CollectionAssert.AreNotEqual(KeyRotationProof.Message("ab", key), KeyRotationProof.Message("a", [.. "b"u8, .. key[..31]]));
        Assert.ThrowsExactly<ArgumentException>(() => KeyRotationProof.Message("w", new byte[31]));
        Assert.ThrowsExactly<ArgumentException>(() => KeyRotationProof.Message(string.Empty, key));
    }
}
