using System.Security.Cryptography;
using Org.BouncyCastle.Math.EC.Rfc8032;

namespace NearML.Ledger;

/// <summary>
/// An ed25519 signing key in NEAR's form. The secret is held privately: <see cref="ToString"/> shows only the
/// public key, exceptions never include it, and <see cref="ExportSecretKey"/> is the only way to read it back.
/// </summary>
public sealed class NearKeyPair : IDisposable
{
    /// <summary>The size of an ed25519 seed (private scalar source) in bytes.</summary>
    public const int SeedSize = 32;

    private readonly byte[] _seed;
    private readonly byte[] _public;
    private bool _disposed;

    private NearKeyPair(byte[] seed)
    {
        _seed = seed;
        _public = new byte[NearPublicKey.Size];
        Ed25519.GeneratePublicKey(_seed, 0, _public, 0);
        PublicKey = NearPublicKey.FromBytes(_public);
    }

    /// <summary>Gets the public key.</summary>
    public NearPublicKey PublicKey { get; }

    /// <summary>
    /// Gets a value indicating whether ed25519 runs through the platform's OpenSSL 3 libcrypto (several times faster)
    /// rather than the managed BouncyCastle fallback. Set <c>NEARML_ED25519_MANAGED=1</c> to force the fallback.
    /// </summary>
    public static bool IsNativeAccelerated => Internal.Ed25519Native.IsAvailable;

    /// <summary>Generates a fresh key pair from the operating system's CSPRNG.</summary>
    /// <returns>The key pair.</returns>
    public static NearKeyPair Generate() => new(RandomNumberGenerator.GetBytes(SeedSize));

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

        return new NearKeyPair(seed.ToArray());
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
                return new NearKeyPair(body[..SeedSize]);
            }

            if (body.Length != SeedSize + NearPublicKey.Size)
            {
                throw new InvalidNearKeyException("secretKey", $"an ed25519 secret key has 64 bytes (seed and public key), got {body.Length}");
            }

            var pair = new NearKeyPair(body[..SeedSize]);
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
        var signature = new byte[Ed25519.SignatureSize];
        if (Internal.Ed25519Native.TrySign(_seed, message, signature))
        {
            return signature;
        }

        byte[] msg = message.ToArray();
        Ed25519.Sign(_seed, 0, _public, 0, msg, 0, msg.Length, signature, 0);
        return signature;
    }

    /// <summary>Returns the secret key in NEAR's text form <c>ed25519:&lt;base58 of seed ‖ public key&gt;</c>. Handle with care.</summary>
    /// <returns>The secret key text.</returns>
    public string ExportSecretKey()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var full = new byte[SeedSize + NearPublicKey.Size];
        try
        {
            _seed.CopyTo(full, 0);
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
        CryptographicOperations.ZeroMemory(_seed);
        _disposed = true;
    }
}
