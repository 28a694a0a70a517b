using System.Security.Cryptography;

namespace NearML.Ledger;

/// <summary>
/// A meta-transaction body (NEP-366): actions a sender wants a relayer to submit on its behalf. The sender signs
/// SHA-256 of the <c>u32</c> prefix 2^30 + 366 followed by the Borsh of this structure.
/// </summary>
/// <param name="SenderId">The account whose actions these are.</param>
/// <param name="ReceiverId">The receiver of the inner actions.</param>
/// <param name="Actions">The inner actions (a delegate may not contain another delegate).</param>
/// <param name="Nonce">The sender's access-key nonce for this delegate.</param>
/// <param name="MaxBlockHeight">The last block height at which the delegate is valid.</param>
/// <param name="PublicKey">The sender's key that signs.</param>
public sealed record DelegateAction(string SenderId, string ReceiverId, IReadOnlyList<NearAction> Actions, ulong Nonce, ulong MaxBlockHeight, NearPublicKey PublicKey)
{
    /// <summary>The NEP-461 prefix of signed delegate actions: 2^30 + 366.</summary>
    public const uint SignaturePrefix = (1u << 30) + 366;

    /// <summary>Writes the delegate action (without prefix) in Borsh.</summary>
    /// <param name="writer">The writer.</param>
    public void WriteBorsh(BorshWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteString(SenderId);
        writer.WriteString(ReceiverId);
        writer.WriteU32((uint)Actions.Count);
        foreach (NearAction action in Actions)
        {
            if (action is SignedDelegateAction)
            {
                throw new InvalidOperationException("A delegate action may not contain another delegate action.");
            }

            action.WriteBorsh(writer);
        }

        writer.WriteU64(Nonce);
        writer.WriteU64(MaxBlockHeight);
        PublicKey.WriteBorsh(writer);
    }

    /// <summary>Returns the bytes the sender signs the hash of: the prefix, then the Borsh of this action.</summary>
    /// <returns>The encoded bytes.</returns>
    public byte[] ToSigningBytes()
    {
        var writer = new BorshWriter();
        writer.WriteU32(SignaturePrefix);
        WriteBorsh(writer);
        return writer.ToArray();
    }

    /// <summary>Returns SHA-256 of <see cref="ToSigningBytes"/>.</summary>
    /// <returns>The 32-byte hash.</returns>
    public byte[] ComputeHash() => SHA256.HashData(ToSigningBytes());

    /// <summary>Signs the delegate action.</summary>
    /// <param name="key">The sender's key; its public key must equal <see cref="PublicKey"/>.</param>
    /// <returns>The signed delegate action, ready to be put in a relayer's transaction.</returns>
    public SignedDelegateAction Sign(NearKeyPair key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (!key.PublicKey.Equals(PublicKey))
        {
            throw new ArgumentException($"The signing key {key.PublicKey} is not the delegate's public key {PublicKey}.", nameof(key));
        }

        return new SignedDelegateAction(this, key.Sign(ComputeHash()));
    }

    internal static DelegateAction ReadBorsh(BorshReader reader)
    {
        string sender = reader.ReadString();
        string receiver = reader.ReadString();
        int count = reader.ReadLength("delegate actions");
        var actions = new NearAction[count];
        for (int i = 0; i < count; i++)
        {
            int at = reader.Position;
            actions[i] = NearAction.ReadBorsh(reader);
            if (actions[i] is SignedDelegateAction)
            {
                throw reader.FailAt(at, "a delegate action may not contain another delegate action");
            }
        }

        return new DelegateAction(sender, receiver, actions, reader.ReadU64(), reader.ReadU64(), NearPublicKey.ReadBorsh(reader));
    }
}

/// <summary>A delegate action with the sender's signature (Borsh action tag 8).</summary>
/// <param name="Delegate">The delegate action.</param>
/// <param name="Signature">The sender's 64-byte ed25519 signature.</param>
public sealed record SignedDelegateAction(DelegateAction Delegate, byte[] Signature) : NearAction
{
    /// <inheritdoc/>
    public override byte Tag => 8;

    /// <summary>Verifies the sender's signature.</summary>
    /// <returns><see langword="true"/> when valid.</returns>
    public bool Verify() => Delegate.PublicKey.Verify(Delegate.ComputeHash(), Signature);

    /// <inheritdoc/>
    protected override void WriteBody(BorshWriter writer)
    {
        Delegate.WriteBorsh(writer);
        NearSignatureBorsh.Write(writer, Signature);
    }

    internal static SignedDelegateAction ReadBody(BorshReader reader)
    {
        DelegateAction d = DelegateAction.ReadBorsh(reader);
        return new SignedDelegateAction(d, NearSignatureBorsh.Read(reader));
    }
}

/// <summary>Borsh form of an ed25519 signature: key type 0, then 64 bytes.</summary>
internal static class NearSignatureBorsh
{
    public const int Size = 64;

    public static void Write(BorshWriter writer, byte[] signature)
    {
        if (signature is null || signature.Length != Size)
        {
            throw new ArgumentException($"An ed25519 signature has {Size} bytes, got {signature?.Length ?? 0}.", nameof(signature));
        }

        writer.WriteU8(0);
        writer.WriteFixed(signature);
    }

    public static byte[] Read(BorshReader reader)
    {
        int at = reader.Position;
        byte tag = reader.ReadU8();
        if (tag != 0)
        {
            throw reader.FailAt(at, $"signature type {tag} is not supported (only 0 = ed25519)");
        }

        return reader.ReadFixed(Size);
    }
}
