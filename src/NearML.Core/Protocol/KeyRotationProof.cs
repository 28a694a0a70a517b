using System.Buffers.Binary;
using System.Text;
using Google.Protobuf;
using NearML.Core.Contracts;

namespace NearML.Core.Protocol;

/// <summary>
/// The signed hand-over of a worker id from one identity key to another (<see cref="KeyRotation"/> in <see cref="Hello"/>).
/// A coordinator binds a worker id to the first key admitted under it, durably; only a signature by that key over the
/// new key moves the id (docs/protocol.md, "Worker ids and keys").
/// </summary>
public static class KeyRotationProof
{
    private static ReadOnlySpan<byte> Domain => "NearML.KeyRotation.v1\0"u8;

    /// <summary>Builds the signed message: domain ‖ u32 BE length of the UTF-8 worker id ‖ the id ‖ the new 32-byte key.</summary>
    /// <param name="workerId">The worker id being moved.</param>
    /// <param name="newPublicKey">The key it moves to (32 bytes).</param>
    /// <returns>The bytes the previous key signs.</returns>
    /// <exception cref="ArgumentException">The key is not 32 bytes or the id is empty.</exception>
    public static byte[] Message(string workerId, ReadOnlySpan<byte> newPublicKey)
    {
        ArgumentException.ThrowIfNullOrEmpty(workerId);
        if (newPublicKey.Length != Ed25519Identity.PublicKeySize)
        {
            throw new ArgumentException($"the new public key must have {Ed25519Identity.PublicKeySize} bytes, got {newPublicKey.Length}", nameof(newPublicKey));
        }

        var id = Encoding.UTF8.GetBytes(workerId);
        var message = new byte[Domain.Length + 4 + id.Length + newPublicKey.Length];
        Domain.CopyTo(message);
        BinaryPrimitives.WriteUInt32BigEndian(message.AsSpan(Domain.Length), (uint)id.Length);
        id.CopyTo(message.AsSpan(Domain.Length + 4));
        newPublicKey.CopyTo(message.AsSpan(Domain.Length + 4 + id.Length));
        return message;
    }

    /// <summary>Creates the proof that <paramref name="previous"/> hands <paramref name="workerId"/> over to <paramref name="newPublicKey"/>.</summary>
    /// <param name="previous">The key the id is bound to now.</param>
    /// <param name="workerId">The worker id.</param>
    /// <param name="newPublicKey">The new key (32 bytes).</param>
    /// <returns>The <see cref="KeyRotation"/> to put in <see cref="WorkerHandshakeOptions.KeyRotation"/>.</returns>
    public static KeyRotation Create(Ed25519Identity previous, string workerId, ReadOnlySpan<byte> newPublicKey)
    {
        ArgumentNullException.ThrowIfNull(previous);
        return new KeyRotation
        {
            PreviousPublicKey = ByteString.CopyFrom(previous.PublicKey.Span),
            Signature = ByteString.CopyFrom(previous.Sign(Message(workerId, newPublicKey))),
        };
    }

    /// <summary>Checks a rotation: <paramref name="rotation"/> names <paramref name="boundPublicKey"/> and its signature verifies.</summary>
    /// <param name="rotation">The proof from the Hello.</param>
    /// <param name="boundPublicKey">The key the coordinator has bound <paramref name="workerId"/> to.</param>
    /// <param name="workerId">The worker id.</param>
    /// <param name="newPublicKey">The key the worker joins with.</param>
    /// <param name="problem">Why it does not verify, or <see langword="null"/>.</param>
    /// <returns><see langword="true"/> when the bound key signed the hand-over to the new key.</returns>
    public static bool Verify(KeyRotation rotation, ReadOnlySpan<byte> boundPublicKey, string workerId, ReadOnlySpan<byte> newPublicKey, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(rotation);
        if (!rotation.PreviousPublicKey.Span.SequenceEqual(boundPublicKey))
        {
            problem = "the rotation names a previous key that is not the key the id is bound to";
            return false;
        }

        if (rotation.Signature.Length != Ed25519Identity.SignatureSize || newPublicKey.Length != Ed25519Identity.PublicKeySize || string.IsNullOrEmpty(workerId))
        {
            problem = $"the rotation signature must have {Ed25519Identity.SignatureSize} bytes (got {rotation.Signature.Length})";
            return false;
        }

        if (!Ed25519Identity.Verify(boundPublicKey, Message(workerId, newPublicKey), rotation.Signature.Span))
        {
            problem = "the rotation signature by the bound key does not verify over this id and the new key";
            return false;
        }

        problem = null;
        return true;
    }
}
