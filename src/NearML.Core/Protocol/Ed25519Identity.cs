using System.Security.Cryptography;
using System.Text;
using NearML.Core.Protocol.Internal;
using Curve = NearML.Core.Crypto.Ed25519;

namespace NearML.Core.Protocol;

/// <summary>A signing identity: an ed25519 key pair whose public half identifies a worker.</summary>
public interface IWorkerIdentity
{
    /// <summary>Gets the raw 32-byte ed25519 public key (RFC 8032).</summary>
    ReadOnlyMemory<byte> PublicKey { get; }

    /// <summary>Signs <paramref name="message"/> with the private key.</summary>
    /// <param name="message">The bytes to sign.</param>
    /// <returns>The 64-byte ed25519 signature.</returns>
    byte[] Sign(ReadOnlySpan<byte> message);
}

/// <summary>
/// An ed25519 identity kept in a PKCS#8 PEM file (<c>-----BEGIN PRIVATE KEY-----</c>, RFC 8410), created on first use with
/// owner-only permissions (0600) on Unix. Signing and verification go through <see cref="Crypto.Ed25519"/>.
/// </summary>
public sealed class Ed25519Identity : IWorkerIdentity, IDisposable
{
    /// <summary>Size of a public key, in bytes.</summary>
    public const int PublicKeySize = Curve.PublicKeySize;

    /// <summary>Size of a signature, in bytes.</summary>
    public const int SignatureSize = Curve.SignatureSize;

    // RFC 8410 PKCS#8 prefix for an ed25519 private key: SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } }
    private static readonly byte[] Pkcs8Prefix = Convert.FromHexString("302E020100300506032B657004220420");
    private readonly Crypto.Ed25519PrivateKey _key;
    private readonly byte[] _publicKey;
    private bool _disposed;

    private Ed25519Identity(ReadOnlySpan<byte> seed)
    {
        _key = Crypto.Ed25519PrivateKey.FromSeed(seed);
        _publicKey = _key.PublicKey.ToArray();
    }

    /// <inheritdoc/>
    public ReadOnlyMemory<byte> PublicKey => _publicKey;

    /// <summary>Gets a short printable fingerprint: the first 16 hex digits of SHA-256 of the public key.</summary>
    public string Fingerprint => Convert.ToHexStringLower(SHA256.HashData(_publicKey))[..16];

    /// <summary>Creates a new identity from a CSPRNG seed.</summary>
    /// <returns>The identity (kept in memory only).</returns>
    public static Ed25519Identity Generate()
    {
        Span<byte> seed = stackalloc byte[32];
        RandomNumberGenerator.Fill(seed);
        var identity = new Ed25519Identity(seed);
        CryptographicOperations.ZeroMemory(seed);
        return identity;
    }

    /// <summary>Creates an identity from a 32-byte private seed.</summary>
    /// <param name="seed">The RFC 8032 private key (seed).</param>
    /// <returns>The identity.</returns>
    public static Ed25519Identity FromSeed(ReadOnlySpan<byte> seed)
    {
        if (seed.Length != 32)
        {
            throw new ArgumentException($"An ed25519 seed has 32 bytes, not {seed.Length}.", nameof(seed));
        }

        return new Ed25519Identity(seed);
    }

    /// <summary>Loads the identity stored at <paramref name="path"/>, or creates and stores a new one if the file does not exist.</summary>
    /// <param name="path">The key file.</param>
    /// <returns>The identity.</returns>
    /// <exception cref="InvalidDataFormatException">The file exists but is not an ed25519 PKCS#8 PEM key.</exception>
    public static Ed25519Identity LoadOrCreate(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (File.Exists(path))
        {
            return Load(path);
        }

        var identity = Generate();
        try
        {
            identity.Save(path);
        }
        catch (IOException) when (File.Exists(path))
        {
            // Another process created it first: use theirs so both agree.
            identity.Dispose();
            return Load(path);
        }

        return identity;
    }

    /// <summary>Loads an identity from a PKCS#8 PEM file.</summary>
    /// <param name="path">The key file.</param>
    /// <returns>The identity.</returns>
    /// <exception cref="InvalidDataFormatException">The file is not an ed25519 PKCS#8 PEM key.</exception>
    public static Ed25519Identity Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var text = File.ReadAllText(path, Encoding.ASCII);
        if (!PemEncoding.TryFind(text, out var fields) || text[fields.Label] != "PRIVATE KEY")
        {
            throw new InvalidDataFormatException(path, -1, "expected a PEM block labelled PRIVATE KEY");
        }

        var der = new byte[fields.DecodedDataLength];
        if (!Convert.TryFromBase64Chars(text.AsSpan()[fields.Base64Data], der, out var written) || written != Pkcs8Prefix.Length + 32
            || !der.AsSpan(0, Pkcs8Prefix.Length).SequenceEqual(Pkcs8Prefix))
        {
            CryptographicOperations.ZeroMemory(der);
            throw new InvalidDataFormatException(path, -1, "the PRIVATE KEY is not an RFC 8410 ed25519 key");
        }

        var identity = FromSeed(der.AsSpan(Pkcs8Prefix.Length, 32));
        CryptographicOperations.ZeroMemory(der);
        return identity;
    }

    /// <summary>Writes the private key as PKCS#8 PEM, atomically, readable by the owner only (0600 on Unix). Fails if the file exists.</summary>
    /// <param name="path">The key file to create.</param>
    /// <exception cref="IOException">The file already exists or cannot be written.</exception>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var der = new byte[Pkcs8Prefix.Length + 32];
        Pkcs8Prefix.CopyTo(der, 0);
        _key.ExportSeed(der.AsSpan(Pkcs8Prefix.Length, 32));
        var pem = PemEncoding.Write("PRIVATE KEY", der);
        CryptographicOperations.ZeroMemory(der);
        SecureFile.WriteNew(full, Encoding.ASCII.GetBytes(pem));
    }

    /// <inheritdoc/>
    public byte[] Sign(ReadOnlySpan<byte> message)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _key.Sign(message);
    }

    /// <summary>Verifies an ed25519 signature.</summary>
    /// <param name="publicKey">The 32-byte public key.</param>
    /// <param name="message">The signed bytes.</param>
    /// <param name="signature">The 64-byte signature.</param>
    /// <returns><see langword="true"/> if the signature is valid; <see langword="false"/> for any malformed input.</returns>
    public static bool Verify(ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> message, ReadOnlySpan<byte> signature)
        => Curve.Verify(publicKey, message, signature);

    /// <summary>Wipes the private key from memory.</summary>
    public void Dispose()
    {
        if (!_disposed)
        {
            _key.Dispose();
            _disposed = true;
        }
    }
}
