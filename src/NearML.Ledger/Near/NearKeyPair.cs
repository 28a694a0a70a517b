using System.Security.Cryptography;
using NearML.Core.Crypto;
using Curve = NearML.Core.Crypto.Ed25519;

namespace NearML.Ledger;

/// <summary>
/// An ed25519 signing key in NEAR's form. The secret is held privately: <see cref="ToString"/> shows only the
/// public key, exceptions never include it, and <see cref="ExportSecretKey"/> is the only way to read it back.
/// </summary>
public sealed class NearKeyPair : IDisposable
{
    /// <summary>The size of an ed25519 seed (private scalar source) in bytes.</summary>
    public const int SeedSize = 32;

    private readonly Ed25519PrivateKey _key;
    private bool _disposed;

    private NearKeyPair(ReadOnlySpan<byte> seed)
    {
        _key = Ed25519PrivateKey.FromSeed(seed);
        PublicKey = NearPublicKey.FromBytes(_key.PublicKey);
    }

    /// <summary>Gets the public key.</summary>
    public NearPublicKey PublicKey { get; }

    /// <summary>
    /// Gets a value indicating whether ed25519 runs through native libsodium (2–4.5× faster, allocation-free) rather
    /// than the managed BouncyCastle fallback (see <see cref="Curve.IsNativeAccelerated"/>). Set
    /// <c>NEARML_ED25519_MANAGED=1</c> to force the fallback.
    /// </summary>
    public static bool IsNativeAccelerated => Curve.IsNativeAccelerated;

    /// <summary>Generates a fresh key pair from the operating system's CSPRNG.</summary>
    /// <returns>The key pair.</returns>
    public static NearKeyPair Generate()
    {
        Span<byte> seed = stackalloc byte[SeedSize];
        RandomNumberGenerator.Fill(seed);
        var pair = new NearKeyPair(seed);
        CryptographicOperations.ZeroMemory(seed);
        return pair;
    }

    /// <summary>Creates a key pair from a 32-byte seed.</summary>
    /// <param name="seed">The seed.</param>
    /// <returns>The key pair.</returns>
    /// <exception cref="InvalidNearKeyException">The seed is not 32 bytes.</exception>
    public static NearKeyPair FromSeed(ReadOnlySpan<byte> seed)
    {
        if (seed.Length != SeedSize)
        {
            throw new InvalidNearKeyException("seed", $"an ed25519 seed has {SeedSize} bytes, got {seed.Length}");
        }

        return new NearKeyPair(seed);
    }

    /// <summary>
    /// Parses a NEAR secret key <c>ed25519:&lt;base58 of seed ‖ public key&gt;</c> (64 bytes). A 32-byte body
    /// (seed only) is accepted too. A 64-byte body whose public half does not match its seed is rejected.
    /// </summary>
    /// <param name="secretKey">The secret key text.</param>
    /// <returns>The key pair.</returns>
    /// <exception cref="InvalidNearKeyException">The text is malformed or inconsistent (the message never contains it).</exception>
    public static NearKeyPair Parse(string secretKey)
    {
        ArgumentNullException.ThrowIfNull(secretKey);
        byte[] body = Internal.KeyText.DecodeBase58Body(secretKey.Trim(), "secretKey");
        try
        {
            if (body.Length == SeedSize)
            {
                return new NearKeyPair(body.AsSpan(0, SeedSize));
            }

            if (body.Length != SeedSize + NearPublicKey.Size)
            {
                throw new InvalidNearKeyException("secretKey", $"an ed25519 secret key has 64 bytes (seed and public key), got {body.Length}");
            }

            var pair = new NearKeyPair(body.AsSpan(0, SeedSize));
            if (!pair.PublicKey.Bytes.SequenceEqual(body.AsSpan(SeedSize)))
            {
                pair.Dispose();
                throw new InvalidNearKeyException("secretKey", "the public half of the secret key does not match its seed");
            }

            return pair;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(body);
        }
    }

    /// <summary>Signs a message with ed25519 (deterministic, RFC 8032).</summary>
    /// <param name="message">The message (for NEAR transactions: the 32-byte transaction hash).</param>
    /// <returns>The 64-byte signature.</returns>
    public byte[] Sign(ReadOnlySpan<byte> message)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _key.Sign(message);
    }

    /// <summary>Returns the secret key in NEAR's text form <c>ed25519:&lt;base58 of seed ‖ public key&gt;</c>. Handle with care.</summary>
    /// <returns>The secret key text.</returns>
    public string ExportSecretKey()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var full = new byte[SeedSize + NearPublicKey.Size];
        try
        {
            _key.ExportSeed(full.AsSpan(0, SeedSize));
            PublicKey.Bytes.CopyTo(full.AsSpan(SeedSize));
            return NearPublicKey.Prefix + SimpleBase.Base58.Bitcoin.Encode(full);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(full);
        }
    }

    /// <summary>Returns a description naming only the public key.</summary>
    /// <returns>The description.</returns>
    public override string ToString() => $"NearKeyPair({PublicKey})";

    /// <summary>Zeroes the secret.</summary>
    public void Dispose()
    {
        _key.Dispose();
        _disposed = true;
    }
}
