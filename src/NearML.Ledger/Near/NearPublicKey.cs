using System.Security.Cryptography;
using Curve = NearML.Core.Crypto.Ed25519;

namespace NearML.Ledger;

/// <summary>An ed25519 public key in NEAR's forms: <c>ed25519:&lt;base58 of 32 bytes&gt;</c> and Borsh (tag 0 + 32 bytes).</summary>
public sealed class NearPublicKey : IEquatable<NearPublicKey>
{
    /// <summary>The size of an ed25519 public key in bytes.</summary>
    public const int Size = 32;

    /// <summary>The textual prefix of ed25519 keys.</summary>
    public const string Prefix = "ed25519:";

    private readonly byte[] _bytes;

    private NearPublicKey(byte[] bytes) => _bytes = bytes;

    /// <summary>Gets the 32 key bytes.</summary>
    public ReadOnlySpan<byte> Bytes => _bytes;

    /// <summary>Gets the implicit account id of this key: 64 lowercase hex characters.</summary>
    public string ImplicitAccountId => Convert.ToHexStringLower(_bytes);

    /// <summary>Creates a key from its 32 bytes.</summary>
    /// <param name="bytes">The key bytes.</param>
    /// <returns>The key.</returns>
    /// <exception cref="InvalidNearKeyException">The length is not 32.</exception>
    public static NearPublicKey FromBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Size)
        {
            throw new InvalidNearKeyException("publicKey", $"an ed25519 public key has {Size} bytes, got {bytes.Length}");
        }

        return new NearPublicKey(bytes.ToArray());
    }

    /// <summary>Parses <c>ed25519:&lt;base58&gt;</c> (a missing prefix is accepted as ed25519, like NEAR's tools do).</summary>
    /// <param name="text">The key text.</param>
    /// <returns>The key.</returns>
    /// <exception cref="InvalidNearKeyException">The text is not a valid ed25519 public key.</exception>
    public static NearPublicKey Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        byte[] bytes = Internal.KeyText.DecodeBase58Body(text, "publicKey");
        return FromBytes(bytes);
    }

    /// <summary>Creates the key from an implicit account id (64 hex characters).</summary>
    /// <param name="implicitAccountId">The account id.</param>
    /// <returns>The key.</returns>
    /// <exception cref="InvalidAccountIdException">The id is not 64 lowercase hex characters.</exception>
    public static NearPublicKey FromImplicitAccountId(string implicitAccountId)
    {
        ArgumentNullException.ThrowIfNull(implicitAccountId);
        if (!NearAccountId.IsImplicit(implicitAccountId))
        {
            throw new InvalidAccountIdException(nameof(implicitAccountId), implicitAccountId, "an implicit account id is 64 lowercase hex characters");
        }

        return new NearPublicKey(Convert.FromHexString(implicitAccountId));
    }

    /// <summary>Verifies an ed25519 signature by this key.</summary>
    /// <param name="message">The signed message (for NEAR transactions: the 32-byte transaction hash).</param>
    /// <param name="signature">The 64-byte signature.</param>
    /// <returns><see langword="true"/> when the signature is valid.</returns>
    public bool Verify(ReadOnlySpan<byte> message, ReadOnlySpan<byte> signature) => Curve.Verify(_bytes, message, signature);

    /// <summary>Writes the Borsh form: key type 0 (ed25519), then the 32 bytes.</summary>
    /// <param name="writer">The writer.</param>
    public void WriteBorsh(BorshWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteU8(0);
        writer.WriteFixed(_bytes);
    }

    /// <summary>Reads the Borsh form.</summary>
    /// <param name="reader">The reader.</param>
    /// <returns>The key.</returns>
    public static NearPublicKey ReadBorsh(BorshReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        int at = reader.Position;
        byte tag = reader.ReadU8();
        if (tag != 0)
        {
            throw reader.FailAt(at, $"public key type {tag} is not supported (only 0 = ed25519)");
        }

        return new NearPublicKey(reader.ReadFixed(Size));
    }

    /// <summary>Returns <c>ed25519:&lt;base58&gt;</c>.</summary>
    /// <returns>The key text.</returns>
    public override string ToString() => Prefix + SimpleBase.Base58.Bitcoin.Encode(_bytes);

    /// <inheritdoc/>
    public bool Equals(NearPublicKey? other) => other is not null && CryptographicOperations.FixedTimeEquals(_bytes, other._bytes);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as NearPublicKey);

    /// <inheritdoc/>
    public override int GetHashCode() => BitConverter.ToInt32(_bytes, 0);
}
