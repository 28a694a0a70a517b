using System.Security.Cryptography;
using NearML.Core.Crypto.Internal;
using Bc = Org.BouncyCastle.Math.EC.Rfc8032.Ed25519;

namespace NearML.Core.Crypto;

/// <summary>
/// ed25519 signatures (RFC 8032), the one implementation every NearML package uses (worker identities, the
/// handshake, key rotation, SecAgg's active variant, NEAR keys). Runs through libsodium (shipped by the
/// <c>NSec.Cryptography</c> package) when it loads and passes a self-test, otherwise through managed BouncyCastle;
/// <c>NEARML_ED25519_MANAGED=1</c> forces BouncyCastle. Both give identical keys and signatures (ed25519 is
/// deterministic). libsodium is 2–4.5× faster and allocation-free; OpenSSL's EVP path was measured and lost
/// (docs/performance.md, "Crypto paths"). To sign many messages with one key, hold an <see cref="Ed25519PrivateKey"/>.
/// </summary>
public static class Ed25519
{
    /// <summary>Size of a private key (the RFC 8032 seed), in bytes.</summary>
    public const int SeedSize = 32;

    /// <summary>Size of a public key, in bytes.</summary>
    public const int PublicKeySize = 32;

    /// <summary>Size of a signature, in bytes.</summary>
    public const int SignatureSize = 64;

    /// <summary>Gets a value indicating whether ed25519 and X25519 run through native libsodium rather than managed BouncyCastle.</summary>
    public static bool IsNativeAccelerated => Sodium.IsAvailable;

    /// <summary>Gets the name of the implementation in use: <c>libsodium</c> or <c>bouncycastle</c>.</summary>
    public static string Implementation => IsNativeAccelerated ? "libsodium" : "bouncycastle";

    /// <summary>Computes the public key of a seed.</summary>
    /// <param name="seed">The 32-byte private key.</param>
    /// <param name="publicKey">Receives the 32-byte public key.</param>
    /// <exception cref="ArgumentException">A length is wrong.</exception>
    public static void GetPublicKey(ReadOnlySpan<byte> seed, Span<byte> publicKey)
    {
        CheckLength(seed, SeedSize, nameof(seed));
        CheckLength(publicKey, PublicKeySize, nameof(publicKey));
        if (Sodium.IsAvailable)
        {
            Span<byte> secretKey = stackalloc byte[64];
            Sodium.SeedKeypair(seed, publicKey, secretKey);
            CryptographicOperations.ZeroMemory(secretKey);
        }
        else
        {
            Bc.GeneratePublicKey(seed, publicKey);
        }
    }

    /// <summary>Computes the public key of a seed.</summary>
    /// <param name="seed">The 32-byte private key.</param>
    /// <returns>The 32-byte public key.</returns>
    /// <exception cref="ArgumentException">The seed is not 32 bytes.</exception>
    public static byte[] GetPublicKey(ReadOnlySpan<byte> seed)
    {
        var publicKey = new byte[PublicKeySize];
        GetPublicKey(seed, publicKey);
        return publicKey;
    }

    /// <summary>Signs <paramref name="message"/> (deterministic, pure ed25519).</summary>
    /// <param name="seed">The 32-byte private key.</param>
    /// <param name="message">The bytes to sign.</param>
    /// <param name="signature">Receives the 64-byte signature.</param>
    /// <exception cref="ArgumentException">A length is wrong.</exception>
    public static void Sign(ReadOnlySpan<byte> seed, ReadOnlySpan<byte> message, Span<byte> signature)
    {
        CheckLength(seed, SeedSize, nameof(seed));
        CheckLength(signature, SignatureSize, nameof(signature));
        if (Sodium.IsAvailable)
        {
            Span<byte> secretKey = stackalloc byte[64];
            Span<byte> publicKey = stackalloc byte[PublicKeySize];
            Sodium.SeedKeypair(seed, publicKey, secretKey);
            Sodium.Sign(secretKey, message, signature);
            CryptographicOperations.ZeroMemory(secretKey);
        }
        else
        {
            Bc.Sign(seed, message, signature);
        }
    }

    /// <summary>Signs <paramref name="message"/> (deterministic, pure ed25519).</summary>
    /// <param name="seed">The 32-byte private key.</param>
    /// <param name="message">The bytes to sign.</param>
    /// <returns>The 64-byte signature.</returns>
    /// <exception cref="ArgumentException">The seed is not 32 bytes.</exception>
    public static byte[] Sign(ReadOnlySpan<byte> seed, ReadOnlySpan<byte> message)
    {
        var signature = new byte[SignatureSize];
        Sign(seed, message, signature);
        return signature;
    }

    /// <summary>
    /// Verifies a signature. Malformed input — a wrong length, a public key that is not a point, a non-canonical
    /// scalar S ≥ L — is an invalid signature, never an exception. (libsodium is also strict about small-order and
    /// non-canonical public keys and R, which honest signers never produce.)
    /// </summary>
    /// <param name="publicKey">The 32-byte public key.</param>
    /// <param name="message">The signed bytes.</param>
    /// <param name="signature">The 64-byte signature.</param>
    /// <returns><see langword="true"/> if the signature is valid.</returns>
    public static bool Verify(ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> message, ReadOnlySpan<byte> signature)
    {
        if (publicKey.Length != PublicKeySize || signature.Length != SignatureSize)
        {
            return false;
        }

        return Sodium.IsAvailable ? Sodium.Verify(publicKey, message, signature) : Bc.Verify(signature, publicKey, message);
    }

    /// <summary>The managed path alone, for the cross-path tests and the benchmark.</summary>
    internal static class Managed
    {
        public static void GetPublicKey(ReadOnlySpan<byte> seed, Span<byte> publicKey) => Bc.GeneratePublicKey(seed, publicKey);

        public static void Sign(ReadOnlySpan<byte> seed, ReadOnlySpan<byte> message, Span<byte> signature) => Bc.Sign(seed, message, signature);

        public static bool Verify(ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> message, ReadOnlySpan<byte> signature) => Bc.Verify(signature, publicKey, message);
    }

    private static void CheckLength(ReadOnlySpan<byte> value, int expected, string name)
    {
        if (value.Length != expected)
        {
            throw new ArgumentException($"an ed25519 {name} has {expected} bytes, got {value.Length}", name);
        }
    }

}
