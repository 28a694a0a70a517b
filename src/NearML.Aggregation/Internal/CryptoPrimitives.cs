using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using NearML.Core.Protocol;
using Org.BouncyCastle.Math.EC.Rfc7748;

namespace NearML.Aggregation.Internal;

/// <summary>X25519 key agreement (RFC 7748) through BouncyCastle's allocation-free low-level API.</summary>
internal static class KeyAgreement
{
    public const int KeySize = 32;

    /// <summary>Creates a fresh private key from the CSPRNG and its public key.</summary>
    public static (byte[] PrivateKey, byte[] PublicKey) Generate()
    {
        var sk = new byte[KeySize];
        RandomNumberGenerator.Fill(sk);
        // RFC 7748 clamping is applied inside the scalar multiplication; clamp here too so the stored key is canonical.
        sk[0] &= 248;
        sk[31] &= 127;
        sk[31] |= 64;
        return (sk, PublicKeyOf(sk));
    }

    public static byte[] PublicKeyOf(byte[] privateKey)
    {
        var pk = new byte[KeySize];
        X25519.ScalarMultBase(privateKey, 0, pk, 0);
        return pk;
    }

    /// <summary>Computes the shared secret; false when the peer key is a low-order point (all-zero result).</summary>
    public static bool TryAgree(byte[] privateKey, byte[] peerPublicKey, byte[] secret)
        => X25519.CalculateAgreement(privateKey, 0, peerPublicKey, 0, secret, 0);

    /// <summary>
    /// Many agreements: secrets[32·i ..] = X25519(privateKeys[i], peerKeys[i]); ok[i] false for a low-order peer key.
    /// Eight at a time on AVX-512 (<see cref="X25519Batch"/>), one at a time otherwise.
    /// </summary>
    public static void AgreeMany(IReadOnlyList<byte[]> privateKeys, IReadOnlyList<byte[]> peerKeys, Span<byte> secrets, Span<bool> ok)
    {
        int count = privateKeys.Count;
        if (!X25519Batch.IsSupported)
        {
            var one = new byte[KeySize];
            for (int i = 0; i < count; i++)
            {
                ok[i] = TryAgree(privateKeys[i], peerKeys[i], one);
                one.CopyTo(secrets[(i * KeySize)..]);
            }

            CryptographicOperations.ZeroMemory(one);
            return;
        }

        Span<byte> scalars = stackalloc byte[X25519Batch.Lanes * KeySize];
        Span<byte> points = stackalloc byte[X25519Batch.Lanes * KeySize];
        for (int start = 0; start < count; start += X25519Batch.Lanes)
        {
            int m = Math.Min(X25519Batch.Lanes, count - start);
            for (int j = 0; j < m; j++)
            {
                privateKeys[start + j].CopyTo(scalars[(j * KeySize)..]);
                peerKeys[start + j].CopyTo(points[(j * KeySize)..]);
            }

            X25519Batch.ScalarMult(scalars[..(m * KeySize)], points[..(m * KeySize)], secrets.Slice(start * KeySize, m * KeySize), ok.Slice(start, m));
        }

        CryptographicOperations.ZeroMemory(scalars);
    }
}

/// <summary>
/// ed25519 signatures (RFC 8032) for the active-adversary variant: the worker identity of NearML.Core
/// (<see cref="Ed25519Identity"/>, the key a worker already proves in its handshake), not a second implementation.
/// </summary>
internal static class Signatures
{
    public const int PublicKeySize = Ed25519Identity.PublicKeySize;
    public const int SignatureSize = Ed25519Identity.SignatureSize;

    public static byte[] PublicKeyOf(byte[] privateKey)
    {
        using var identity = Ed25519Identity.FromSeed(privateKey);
        return identity.PublicKey.ToArray();
    }

    public static byte[] Sign(byte[] privateKey, byte[] message)
    {
        using var identity = Ed25519Identity.FromSeed(privateKey);
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
