using System.Security.Cryptography;
using NearML.Core.Crypto.Internal;
using Bc = Org.BouncyCastle.Math.EC.Rfc8032.Ed25519;

namespace NearML.Core.Crypto;

/// <summary>
/// An ed25519 private key held in memory for repeated signing: the seed and its public key are derived together once,
/// so each <see cref="Sign(ReadOnlySpan{byte}, Span{byte})"/> is one signature and no allocation (the static
/// <see cref="Ed25519.Sign(ReadOnlySpan{byte}, ReadOnlySpan{byte}, Span{byte})"/> re-derives the public key every
/// call). <see cref="Dispose"/> wipes the secret. Same implementation and fallback as <see cref="Ed25519"/>.
/// </summary>
public sealed class Ed25519PrivateKey : IDisposable
{
    // seed ‖ public key: libsodium's secret-key layout; BouncyCastle reads the seed half.
    private readonly byte[] _secretKey = new byte[Ed25519.SeedSize + Ed25519.PublicKeySize];
    private bool _disposed;

    private Ed25519PrivateKey(ReadOnlySpan<byte> seed)
    {
        if (Sodium.IsAvailable)
        {
            Sodium.SeedKeypair(seed, _secretKey.AsSpan(Ed25519.SeedSize), _secretKey);
        }
        else
        {
            seed.CopyTo(_secretKey);
            Bc.GeneratePublicKey(seed, _secretKey.AsSpan(Ed25519.SeedSize));
        }
    }

    /// <summary>Gets the 32-byte public key.</summary>
    public ReadOnlySpan<byte> PublicKey => _secretKey.AsSpan(Ed25519.SeedSize);

    /// <summary>Creates a key from a 32-byte seed.</summary>
    /// <param name="seed">The RFC 8032 private key.</param>
    /// <returns>The key.</returns>
    /// <exception cref="ArgumentException">The seed is not 32 bytes.</exception>
    public static Ed25519PrivateKey FromSeed(ReadOnlySpan<byte> seed)
    {
        if (seed.Length != Ed25519.SeedSize)
        {
            throw new ArgumentException($"an ed25519 seed has {Ed25519.SeedSize} bytes, got {seed.Length}", nameof(seed));
        }

        return new Ed25519PrivateKey(seed);
    }

    /// <summary>Creates a key from a fresh CSPRNG seed.</summary>
    /// <returns>The key.</returns>
    public static Ed25519PrivateKey Generate()
    {
        Span<byte> seed = stackalloc byte[Ed25519.SeedSize];
        RandomNumberGenerator.Fill(seed);
        try
        {
            return new Ed25519PrivateKey(seed);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(seed);
        }
    }

    /// <summary>Signs <paramref name="message"/> (deterministic, pure ed25519).</summary>
    /// <param name="message">The bytes to sign.</param>
    /// <param name="signature">Receives the 64-byte signature.</param>
    /// <exception cref="ArgumentException">The signature buffer is not 64 bytes.</exception>
    /// <exception cref="ObjectDisposedException">The key was disposed.</exception>
    public void Sign(ReadOnlySpan<byte> message, Span<byte> signature)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (signature.Length != Ed25519.SignatureSize)
        {
            throw new ArgumentException($"an ed25519 signature has {Ed25519.SignatureSize} bytes, got {signature.Length}", nameof(signature));
        }

        if (Sodium.IsAvailable)
        {
            Sodium.Sign(_secretKey, message, signature);
        }
        else
        {
            Bc.Sign(_secretKey.AsSpan(0, Ed25519.SeedSize), message, signature);
        }
    }

    /// <summary>Signs <paramref name="message"/> (deterministic, pure ed25519).</summary>
    /// <param name="message">The bytes to sign.</param>
    /// <returns>The 64-byte signature.</returns>
    /// <exception cref="ObjectDisposedException">The key was disposed.</exception>
    public byte[] Sign(ReadOnlySpan<byte> message)
    {
        var signature = new byte[Ed25519.SignatureSize];
        Sign(message, signature);
        return signature;
    }

    /// <summary>Copies the 32-byte seed out (to persist the key). Handle with care.</summary>
    /// <param name="destination">Receives the seed.</param>
    /// <exception cref="ArgumentException">The destination is not 32 bytes.</exception>
    /// <exception cref="ObjectDisposedException">The key was disposed.</exception>
    public void ExportSeed(Span<byte> destination)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (destination.Length != Ed25519.SeedSize)
        {
            throw new ArgumentException($"an ed25519 seed has {Ed25519.SeedSize} bytes, got {destination.Length}", nameof(destination));
        }

        _secretKey.AsSpan(0, Ed25519.SeedSize).CopyTo(destination);
    }

    /// <summary>Wipes the secret from memory.</summary>
    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(_secretKey);
        _disposed = true;
    }
}
