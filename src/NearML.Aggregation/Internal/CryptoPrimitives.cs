using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using NearML.Core.Protocol;
using NearML.Core.Crypto;

namespace NearML.Aggregation.Internal;

/// <summary>X25519 key agreement (RFC 7748) in SecAgg's shapes, over NearML.Core's one implementation (<see cref="X25519"/>).</summary>
internal static class KeyAgreement
{
    public const int KeySize = X25519.KeySize;

    /// <summary>Creates a fresh (clamped) private key from the CSPRNG and its public key.</summary>
    public static (byte[] PrivateKey, byte[] PublicKey) Generate()
    {
        var sk = new byte[KeySize];
        X25519.GeneratePrivateKey(sk);
        return (sk, PublicKeyOf(sk));
    }

    public static byte[] PublicKeyOf(byte[] privateKey)
    {
        var pk = new byte[KeySize];
        X25519.GetPublicKey(privateKey, pk);
        return pk;
    }

    /// <summary>Computes the shared secret; false when the peer key is a low-order point (all-zero result).</summary>
    public static bool TryAgree(byte[] privateKey, byte[] peerPublicKey, byte[] secret) => X25519.TryAgree(privateKey, peerPublicKey, secret);

    /// <summary>
    /// Many agreements: secrets[32·i ..] = X25519(privateKeys[i], peerKeys[i]); ok[i] false for a low-order peer key.
    /// Eight at a time on AVX-512, one at a time otherwise (<see cref="X25519.AgreeMany"/>).
    /// </summary>
    public static void AgreeMany(IReadOnlyList<byte[]> privateKeys, IReadOnlyList<byte[]> peerKeys, Span<byte> secrets, Span<bool> ok)
    {
        int count = privateKeys.Count;
        var scalars = new byte[count * KeySize];
        var points = new byte[count * KeySize];
        try
        {
            for (int i = 0; i < count; i++)
            {
                privateKeys[i].CopyTo(scalars, i * KeySize);
                peerKeys[i].CopyTo(points, i * KeySize);
            }

            X25519.AgreeMany(scalars, points, secrets[..(count * KeySize)], ok[..count]);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(scalars);
        }
    }
}

/// <summary>
/// ed25519 signatures (RFC 8032) for the active-adversary variant: the worker identity of NearML.Core
/// (<see cref="Ed25519Identity"/>, the key a worker already proves in its handshake), not a second implementation.
/// Signing takes the key object the caller keeps for the session (imported once), never raw key bytes per call;
/// verification takes the raw public key (no key object is built).
/// </summary>
internal static class Signatures
{
    public const int PublicKeySize = Ed25519Identity.PublicKeySize;
    public const int SignatureSize = Ed25519Identity.SignatureSize;

    /// <summary>The public key of a seed (key creation only: imports the key once).</summary>
    public static byte[] PublicKeyOf(byte[] privateKey)
    {
        using var identity = Ed25519Identity.FromSeed(privateKey);
        return identity.PublicKey.ToArray();
    }

    /// <summary>Signs with a key imported once and kept by the caller (<see cref="Ed25519Identity.FromSeed"/>).</summary>
    public static byte[] Sign(IWorkerIdentity identity, ReadOnlySpan<byte> message)
    {
        ArgumentNullException.ThrowIfNull(identity);
        return identity.Sign(message);
    }

    public static bool Verify(ReadOnlySpan<byte> publicKey, byte[] message, ReadOnlySpan<byte> signature)
    {
        try
        {
            return Ed25519Identity.Verify(publicKey, message, signature);
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}

/// <summary>Domain-separated transcripts: everything signed, authenticated or derived binds the job and round.</summary>
internal static class Transcript
{
    private const string Prefix = "nearml/secagg/v1/";

    public static byte[] Build(string label, string jobId, ulong round, ReadOnlySpan<uint> ids, params byte[][] parts)
    {
        var job = Encoding.UTF8.GetBytes(jobId);
        var tag = Encoding.ASCII.GetBytes(Prefix + label);
        int len = 4 + tag.Length + 4 + job.Length + 8 + 4 + (ids.Length * 4);
        foreach (var p in parts)
        {
            len += 4 + p.Length;
        }

        var buf = new byte[len];
        var s = buf.AsSpan();
        int o = 0;
        void Chunk(ReadOnlySpan<byte> b, Span<byte> dst, ref int off)
        {
            BinaryPrimitives.WriteInt32LittleEndian(dst[off..], b.Length);
            b.CopyTo(dst[(off + 4)..]);
            off += 4 + b.Length;
        }

        Chunk(tag, s, ref o);
        Chunk(job, s, ref o);
        BinaryPrimitives.WriteUInt64LittleEndian(s[o..], round);
        o += 8;
        BinaryPrimitives.WriteInt32LittleEndian(s[o..], ids.Length);
        o += 4;
        foreach (var id in ids)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(s[o..], id);
            o += 4;
        }

        foreach (var p in parts)
        {
            Chunk(p, s, ref o);
        }

        return buf;
    }

    /// <summary>HKDF-SHA256 of a full 32-byte secret into a key of <paramref name="length"/> bytes bound to a context.</summary>
    public static byte[] DeriveKey(byte[] secret, int length, string label, Session session, ReadOnlySpan<uint> ids)
    {
        var info = Build(label, session.JobId, session.Round, ids, session.Id);
        return HKDF.DeriveKey(HashAlgorithmName.SHA256, secret, length, salt: null, info);
    }
}

/// <summary>AES-256-GCM encryption of Shamir share pairs, with AAD binding job, round, sender and receiver.</summary>
internal static class ShareCipher
{
    public const int NonceSize = 12;
    public const int TagSize = 16;

    public static int CiphertextSize(int plaintextSize) => NonceSize + plaintextSize + TagSize;

    public static byte[] Encrypt(byte[] key, byte[] aad, ReadOnlySpan<byte> plaintext)
    {
        var output = new byte[CiphertextSize(plaintext.Length)];
        var nonce = output.AsSpan(0, NonceSize);
        RandomNumberGenerator.Fill(nonce);
        using var gcm = new AesGcm(key, TagSize);
        gcm.Encrypt(nonce, plaintext, output.AsSpan(NonceSize, plaintext.Length), output.AsSpan(NonceSize + plaintext.Length), aad);
        return output;
    }

    public static bool TryDecrypt(byte[] key, byte[] aad, ReadOnlySpan<byte> ciphertext, Span<byte> plaintext)
    {
        if (ciphertext.Length != CiphertextSize(plaintext.Length))
        {
            return false;
        }

        using var gcm = new AesGcm(key, TagSize);
        try
        {
            gcm.Decrypt(ciphertext[..NonceSize], ciphertext.Slice(NonceSize, plaintext.Length), ciphertext[(NonceSize + plaintext.Length)..], plaintext, aad);
            return true;
        }
        catch (AuthenticationTagMismatchException)
        {
            return false;
        }
    }
}
