using System.Security.Cryptography;

namespace NearML.Ledger;

/// <summary>
/// A NEAR transaction (V0): signer, signer's public key, nonce, receiver, a recent block hash and actions.
/// Its hash is SHA-256 of its Borsh bytes; the signer signs that hash with ed25519.
/// </summary>
/// <param name="SignerId">The account that signs and pays.</param>
/// <param name="PublicKey">The signer's access key.</param>
/// <param name="Nonce">The access-key nonce (must exceed the key's current nonce).</param>
/// <param name="ReceiverId">The account the actions apply to.</param>
/// <param name="BlockHash">A recent block hash (32 bytes); the transaction expires after about a day of blocks.</param>
/// <param name="Actions">The actions.</param>
public sealed record NearTransaction(string SignerId, NearPublicKey PublicKey, ulong Nonce, string ReceiverId, byte[] BlockHash, IReadOnlyList<NearAction> Actions)
{
    /// <summary>Writes the transaction in Borsh.</summary>
    /// <param name="writer">The writer.</param>
    public void WriteBorsh(BorshWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        if (BlockHash is null || BlockHash.Length != 32)
        {
            throw new InvalidOperationException($"BlockHash must be 32 bytes, got {BlockHash?.Length ?? 0}.");
        }

        writer.WriteString(SignerId);
        PublicKey.WriteBorsh(writer);
        writer.WriteU64(Nonce);
        writer.WriteString(ReceiverId);
        writer.WriteFixed(BlockHash);
        writer.WriteU32((uint)Actions.Count);
        foreach (NearAction action in Actions)
        {
            action.WriteBorsh(writer);
        }
    }

    /// <summary>Returns the Borsh bytes.</summary>
    /// <returns>The bytes.</returns>
    public byte[] ToBorsh()
    {
        var writer = new BorshWriter();
        WriteBorsh(writer);
        return writer.ToArray();
    }

    /// <summary>Returns the transaction hash: SHA-256 of the Borsh bytes.</summary>
    /// <returns>The 32-byte hash.</returns>
    public byte[] ComputeHash() => SHA256.HashData(ToBorsh());

    /// <summary>Signs the transaction.</summary>
    /// <param name="key">The signer's key; its public key must equal <see cref="PublicKey"/>.</param>
    /// <returns>The signed transaction.</returns>
    public SignedNearTransaction Sign(NearKeyPair key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (!key.PublicKey.Equals(PublicKey))
        {
            throw new ArgumentException($"The signing key {key.PublicKey} is not the transaction's public key {PublicKey}.", nameof(key));
        }

        return new SignedNearTransaction(this, key.Sign(ComputeHash()));
    }

    /// <summary>Reads a transaction from Borsh.</summary>
    /// <param name="reader">The reader.</param>
    /// <returns>The transaction.</returns>
    public static NearTransaction ReadBorsh(BorshReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        string signer = reader.ReadString();
        NearPublicKey key = NearPublicKey.ReadBorsh(reader);
        ulong nonce = reader.ReadU64();
        string receiver = reader.ReadString();
        byte[] blockHash = reader.ReadFixed(32);
        int count = reader.ReadLength("actions");
        var actions = new NearAction[count];
        for (int i = 0; i < count; i++)
        {
            actions[i] = NearAction.ReadBorsh(reader);
        }

        return new NearTransaction(signer, key, nonce, receiver, blockHash, actions);
    }

    /// <summary>Parses a transaction from its Borsh bytes.</summary>
    /// <param name="bytes">The bytes.</param>
    /// <returns>The transaction.</returns>
    public static NearTransaction Parse(ReadOnlyMemory<byte> bytes)
    {
        var reader = new BorshReader(bytes, "transaction");
        NearTransaction tx = ReadBorsh(reader);
        reader.EnsureEnd();
        return tx;
    }
}

/// <summary>A transaction with its signer's ed25519 signature, as sent to <c>send_tx</c> (Base64 of the Borsh bytes).</summary>
/// <param name="Transaction">The transaction.</param>
/// <param name="Signature">The 64-byte signature of the transaction hash.</param>
public sealed record SignedNearTransaction(NearTransaction Transaction, byte[] Signature)
{
    /// <summary>Returns the Borsh bytes: the transaction, then the signature (type 0 + 64 bytes).</summary>
    /// <returns>The bytes.</returns>
    public byte[] ToBorsh()
    {
        var writer = new BorshWriter();
        Transaction.WriteBorsh(writer);
        NearSignatureBorsh.Write(writer, Signature);
        return writer.ToArray();
    }

    /// <summary>Returns Base64 of the Borsh bytes (the form RPC methods take).</summary>
    /// <returns>The Base64 text.</returns>
    public string ToBase64() => Convert.ToBase64String(ToBorsh());

    /// <summary>Returns the transaction hash (SHA-256 of the unsigned transaction's Borsh bytes).</summary>
    /// <returns>The 32-byte hash.</returns>
    public byte[] ComputeHash() => Transaction.ComputeHash();

    /// <summary>Returns the transaction hash in base58, as NEAR explorers and RPC show it.</summary>
    /// <returns>The hash text.</returns>
    public string HashBase58 => SimpleBase.Base58.Bitcoin.Encode(ComputeHash());

    /// <summary>Verifies the signature against the transaction's public key.</summary>
    /// <returns><see langword="true"/> when valid.</returns>
    public bool Verify() => Transaction.PublicKey.Verify(ComputeHash(), Signature);

    /// <summary>Parses a signed transaction from its Borsh bytes.</summary>
    /// <param name="bytes">The bytes.</param>
    /// <returns>The signed transaction.</returns>
    public static SignedNearTransaction Parse(ReadOnlyMemory<byte> bytes)
    {
        var reader = new BorshReader(bytes, "signed transaction");
        NearTransaction tx = NearTransaction.ReadBorsh(reader);
        byte[] sig = NearSignatureBorsh.Read(reader);
        reader.EnsureEnd();
        return new SignedNearTransaction(tx, sig);
    }
}
