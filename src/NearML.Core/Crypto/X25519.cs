using System.Security.Cryptography;
using NearML.Core.Crypto.Internal;
using Bc = Org.BouncyCastle.Math.EC.Rfc7748.X25519;

namespace NearML.Core.Crypto;

/// <summary>
/// X25519 key agreement (RFC 7748), the one implementation NearML uses (SecAgg pairwise keys). One agreement runs
/// through libsodium (shipped by <c>NSec.Cryptography</c>; BouncyCastle when it cannot load, or with
/// <c>NEARML_ED25519_MANAGED=1</c>); <see cref="AgreeMany"/> runs eight at a time on AVX-512, which is 2× libsodium
/// per agreement (docs/performance.md, "Crypto paths"). An agreement whose result is all zero — the peer key is a
/// low-order point — is refused on every path.
/// </summary>
public static class X25519
{
    /// <summary>Size of private keys, public keys and shared secrets, in bytes.</summary>
    public const int KeySize = 32;

    /// <summary>Gets the number of agreements <see cref="AgreeMany"/> computes at once on this machine (8 with AVX-512, else 1).</summary>
    public static int BatchWidth => X25519Batch.IsSupported ? X25519Batch.Lanes : 1;

    /// <summary>Fills <paramref name="privateKey"/> from the CSPRNG, clamped as RFC 7748 §5 does (so the stored key is canonical).</summary>
    /// <param name="privateKey">Receives the 32-byte private key.</param>
    /// <exception cref="ArgumentException">The length is wrong.</exception>
    public static void GeneratePrivateKey(Span<byte> privateKey)
    {
        CheckLength(privateKey, nameof(privateKey));
        RandomNumberGenerator.Fill(privateKey);
        privateKey[0] &= 248;
        privateKey[31] &= 127;
        privateKey[31] |= 64;
    }

    /// <summary>Computes the public key X25519(k, 9).</summary>
    /// <param name="privateKey">The 32-byte private key.</param>
    /// <param name="publicKey">Receives the 32-byte public key.</param>
    /// <exception cref="ArgumentException">A length is wrong.</exception>
    public static void GetPublicKey(ReadOnlySpan<byte> privateKey, Span<byte> publicKey)
    {
        CheckLength(privateKey, nameof(privateKey));
        CheckLength(publicKey, nameof(publicKey));
        if (Sodium.IsAvailable)
        {
            Sodium.ScalarMultBase(privateKey, publicKey);
        }
        else
        {
            Bc.ScalarMultBase(privateKey, publicKey);
        }
    }

    /// <summary>Computes the shared secret X25519(k, u).</summary>
    /// <param name="privateKey">The 32-byte private key.</param>
    /// <param name="peerPublicKey">The peer's 32-byte public key.</param>
    /// <param name="secret">Receives the 32-byte shared secret; cleared when the agreement is refused.</param>
    /// <returns><see langword="false"/> when the peer key is a low-order point (the secret would be all zero).</returns>
    /// <exception cref="ArgumentException">A length is wrong.</exception>
    public static bool TryAgree(ReadOnlySpan<byte> privateKey, ReadOnlySpan<byte> peerPublicKey, Span<byte> secret)
    {
        CheckLength(privateKey, nameof(privateKey));
        CheckLength(peerPublicKey, nameof(peerPublicKey));
        CheckLength(secret, nameof(secret));
        bool ok = Sodium.IsAvailable ? Sodium.ScalarMult(privateKey, peerPublicKey, secret) : Managed.TryAgree(privateKey, peerPublicKey, secret);
        if (!ok)
        {
            secret.Clear();
        }

        return ok;
    }

    /// <summary>Computes the shared secret X25519(k, u), refusing a low-order peer key.</summary>
    /// <param name="privateKey">The 32-byte private key.</param>
    /// <param name="peerPublicKey">The peer's 32-byte public key.</param>
    /// <param name="secret">Receives the 32-byte shared secret.</param>
    /// <exception cref="ArgumentException">A length is wrong.</exception>
    /// <exception cref="CryptographicException">The peer key is a low-order point: the shared secret would be all zero.</exception>
    public static void Agree(ReadOnlySpan<byte> privateKey, ReadOnlySpan<byte> peerPublicKey, Span<byte> secret)
    {
        if (!TryAgree(privateKey, peerPublicKey, secret))
        {
            throw new CryptographicException("X25519: the peer public key is a low-order point (the shared secret would be all zero); refused");
        }
    }

    /// <summary>
    /// Many agreements: <c>secrets[32·i ..] = X25519(privateKeys[32·i ..], peerKeys[32·i ..])</c>, eight at a time on
    /// AVX-512 and one at a time (libsodium) otherwise. <c>ok[i]</c> is <see langword="false"/> (and that secret cleared) for a
    /// low-order peer key.
    /// </summary>
    /// <param name="privateKeys">Concatenated 32-byte private keys.</param>
    /// <param name="peerKeys">Concatenated 32-byte peer public keys, as many as private keys.</param>
    /// <param name="secrets">Receives the concatenated 32-byte secrets.</param>
    /// <param name="ok">Receives one verdict per agreement; its length is the number of agreements.</param>
    /// <exception cref="ArgumentException">The lengths do not match <c>32 · ok.Length</c>.</exception>
    public static void AgreeMany(ReadOnlySpan<byte> privateKeys, ReadOnlySpan<byte> peerKeys, Span<byte> secrets, Span<bool> ok)
    {
        int count = ok.Length;
        int bytes = count * KeySize;
        if (privateKeys.Length != bytes || peerKeys.Length != bytes || secrets.Length != bytes)
        {
            throw new ArgumentException($"AgreeMany: {count} agreements need {bytes} bytes of private keys, peer keys and secrets; got {privateKeys.Length}, {peerKeys.Length} and {secrets.Length}", nameof(ok));
        }

        if (!X25519Batch.IsSupported)
        {
            for (int i = 0; i < count; i++)
            {
                ok[i] = TryAgree(privateKeys.Slice(i * KeySize, KeySize), peerKeys.Slice(i * KeySize, KeySize), secrets.Slice(i * KeySize, KeySize));
            }

            return;
        }

        for (int start = 0; start < count; start += X25519Batch.Lanes)
        {
            int m = Math.Min(X25519Batch.Lanes, count - start);
            X25519Batch.ScalarMult(privateKeys.Slice(start * KeySize, m * KeySize), peerKeys.Slice(start * KeySize, m * KeySize), secrets.Slice(start * KeySize, m * KeySize), ok.Slice(start, m));
        }

        for (int i = 0; i < count; i++)
        {
            if (!ok[i])
            {
                secrets.Slice(i * KeySize, KeySize).Clear();
            }
        }
    }

    /// <summary>The managed path alone, for the cross-path tests and the benchmark.</summary>
    internal static class Managed
    {
        public static void GetPublicKey(ReadOnlySpan<byte> privateKey, Span<byte> publicKey) => Bc.ScalarMultBase(privateKey, publicKey);

        public static bool TryAgree(ReadOnlySpan<byte> privateKey, ReadOnlySpan<byte> peerPublicKey, Span<byte> secret)
            => Bc.CalculateAgreement(privateKey, peerPublicKey, secret);
    }

    private static void CheckLength(ReadOnlySpan<byte> value, string name)
    {
        if (value.Length != KeySize)
        {
            throw new ArgumentException($"an X25519 {name} has {KeySize} bytes, got {value.Length}", name);
        }
    }
}
