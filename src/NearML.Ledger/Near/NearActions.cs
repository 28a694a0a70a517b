namespace NearML.Ledger;

/// <summary>One action of a NEAR transaction. The Borsh enum tag order follows nearcore's <c>Action</c>.</summary>
public abstract record NearAction
{
    /// <summary>Gets the Borsh enum tag of this action.</summary>
    public abstract byte Tag { get; }

    /// <summary>Writes the action (tag, then body) in Borsh.</summary>
    /// <param name="writer">The writer.</param>
    public void WriteBorsh(BorshWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteU8(Tag);
        WriteBody(writer);
    }

    /// <summary>Writes the action body (without the tag).</summary>
    /// <param name="writer">The writer.</param>
    protected abstract void WriteBody(BorshWriter writer);

    /// <summary>Reads one action.</summary>
    /// <param name="reader">The reader.</param>
    /// <returns>The action.</returns>
    public static NearAction ReadBorsh(BorshReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        int at = reader.Position;
        byte tag = reader.ReadU8();
        return tag switch
        {
            0 => new CreateAccountAction(),
            1 => new DeployContractAction(reader.ReadBytes()),
            2 => new FunctionCallAction(reader.ReadString(), reader.ReadBytes(), reader.ReadU64(), reader.ReadU128()),
            3 => new TransferAction(reader.ReadU128()),
            4 => new StakeAction(reader.ReadU128(), NearPublicKey.ReadBorsh(reader)),
            5 => new AddKeyAction(NearPublicKey.ReadBorsh(reader), AccessKey.ReadBorsh(reader)),
            6 => new DeleteKeyAction(NearPublicKey.ReadBorsh(reader)),
            7 => new DeleteAccountAction(reader.ReadString()),
            8 => SignedDelegateAction.ReadBody(reader),
            _ => throw reader.FailAt(at, $"action tag {tag} is not supported (0..8)"),
        };
    }
}

/// <summary>Creates the receiver account.</summary>
public sealed record CreateAccountAction : NearAction
{
    /// <inheritdoc/>
    public override byte Tag => 0;

    /// <inheritdoc/>
    protected override void WriteBody(BorshWriter writer) { }
}

/// <summary>Deploys WebAssembly code to the receiver account.</summary>
/// <param name="Code">The contract code.</param>
public sealed record DeployContractAction(byte[] Code) : NearAction
{
    /// <inheritdoc/>
    public override byte Tag => 1;

    /// <inheritdoc/>
    protected override void WriteBody(BorshWriter writer) => writer.WriteBytes(Code);
}

/// <summary>Calls a contract method.</summary>
/// <param name="MethodName">The method.</param>
/// <param name="Args">The argument bytes (usually UTF-8 JSON).</param>
/// <param name="Gas">The gas attached.</param>
/// <param name="Deposit">The deposit attached, in yoctoNEAR.</param>
public sealed record FunctionCallAction(string MethodName, byte[] Args, ulong Gas, UInt128 Deposit) : NearAction
{
    /// <inheritdoc/>
    public override byte Tag => 2;

    /// <inheritdoc/>
    protected override void WriteBody(BorshWriter writer)
    {
        writer.WriteString(MethodName);
        writer.WriteBytes(Args);
        writer.WriteU64(Gas);
        writer.WriteU128(Deposit);
    }
}

/// <summary>Transfers NEAR to the receiver.</summary>
/// <param name="Deposit">The amount in yoctoNEAR.</param>
public sealed record TransferAction(UInt128 Deposit) : NearAction
{
    /// <inheritdoc/>
    public override byte Tag => 3;

    /// <inheritdoc/>
    protected override void WriteBody(BorshWriter writer) => writer.WriteU128(Deposit);
}

/// <summary>Stakes NEAR with a validator key.</summary>
/// <param name="Stake">The amount in yoctoNEAR.</param>
/// <param name="PublicKey">The validator key.</param>
public sealed record StakeAction(UInt128 Stake, NearPublicKey PublicKey) : NearAction
{
    /// <inheritdoc/>
    public override byte Tag => 4;

    /// <inheritdoc/>
    protected override void WriteBody(BorshWriter writer)
    {
        writer.WriteU128(Stake);
        PublicKey.WriteBorsh(writer);
    }
}

/// <summary>Adds an access key to the receiver account.</summary>
/// <param name="PublicKey">The key to add.</param>
/// <param name="AccessKey">Its nonce and permission.</param>
public sealed record AddKeyAction(NearPublicKey PublicKey, AccessKey AccessKey) : NearAction
{
    /// <inheritdoc/>
    public override byte Tag => 5;

    /// <inheritdoc/>
    protected override void WriteBody(BorshWriter writer)
    {
        PublicKey.WriteBorsh(writer);
        AccessKey.WriteBorsh(writer);
    }
}

/// <summary>Deletes an access key of the receiver account.</summary>
/// <param name="PublicKey">The key to delete.</param>
public sealed record DeleteKeyAction(NearPublicKey PublicKey) : NearAction
{
    /// <inheritdoc/>
    public override byte Tag => 6;

    /// <inheritdoc/>
    protected override void WriteBody(BorshWriter writer) => PublicKey.WriteBorsh(writer);
}

/// <summary>Deletes the receiver account, sending its balance to a beneficiary.</summary>
/// <param name="BeneficiaryId">The account that receives the balance.</param>
public sealed record DeleteAccountAction(string BeneficiaryId) : NearAction
{
    /// <inheritdoc/>
    public override byte Tag => 7;

    /// <inheritdoc/>
    protected override void WriteBody(BorshWriter writer) => writer.WriteString(BeneficiaryId);
}

/// <summary>An access key: its nonce and its permission.</summary>
/// <param name="Nonce">The starting nonce (usually 0).</param>
/// <param name="Permission">Full access or a function-call permission.</param>
public sealed record AccessKey(ulong Nonce, AccessKeyPermission Permission)
{
    /// <summary>Writes the access key in Borsh.</summary>
    /// <param name="writer">The writer.</param>
    public void WriteBorsh(BorshWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteU64(Nonce);
        Permission.WriteBorsh(writer);
    }

    /// <summary>Reads an access key.</summary>
    /// <param name="reader">The reader.</param>
    /// <returns>The access key.</returns>
    public static AccessKey ReadBorsh(BorshReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ulong nonce = reader.ReadU64();
        return new AccessKey(nonce, AccessKeyPermission.ReadBorsh(reader));
    }
}

/// <summary>An access-key permission (Borsh tag 0 = function call, 1 = full access).</summary>
public abstract record AccessKeyPermission
{
    /// <summary>Writes the permission in Borsh.</summary>
    /// <param name="writer">The writer.</param>
    public abstract void WriteBorsh(BorshWriter writer);

    /// <summary>Reads a permission.</summary>
    /// <param name="reader">The reader.</param>
    /// <returns>The permission.</returns>
    public static AccessKeyPermission ReadBorsh(BorshReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        int at = reader.Position;
        byte tag = reader.ReadU8();
        switch (tag)
        {
            case 0:
                {
                    int optAt = reader.Position;
                    byte hasAllowance = reader.ReadU8();
                    UInt128? allowance = hasAllowance switch
                    {
                        0 => null,
                        1 => reader.ReadU128(),
                        _ => throw reader.FailAt(optAt, $"option tag {hasAllowance} is not 0 or 1"),
                    };
                    string receiver = reader.ReadString();
                    int count = reader.ReadLength("method names", 4);
                    var names = new string[count];
                    for (int i = 0; i < count; i++)
                    {
                        names[i] = reader.ReadString();
                    }

                    return new FunctionCallPermission(allowance, receiver, names);
                }

            case 1:
                return FullAccessPermission.Instance;
            default:
                throw reader.FailAt(at, $"access key permission tag {tag} is not 0 or 1");
        }
    }
}

/// <summary>A key that may call only some methods of one contract, with an optional allowance for fees.</summary>
/// <param name="Allowance">The fee allowance in yoctoNEAR, or <see langword="null"/> for unlimited.</param>
/// <param name="ReceiverId">The contract the key may call.</param>
/// <param name="MethodNames">The methods it may call (empty = any).</param>
public sealed record FunctionCallPermission(UInt128? Allowance, string ReceiverId, IReadOnlyList<string> MethodNames) : AccessKeyPermission
{
    /// <inheritdoc/>
    public override void WriteBorsh(BorshWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteU8(0);
        if (Allowance is { } a)
        {
            writer.WriteU8(1);
            writer.WriteU128(a);
        }
        else
        {
            writer.WriteU8(0);
        }

        writer.WriteString(ReceiverId);
        writer.WriteU32((uint)MethodNames.Count);
        foreach (string name in MethodNames)
        {
            writer.WriteString(name);
        }
    }
}

/// <summary>A key with full access to the account.</summary>
public sealed record FullAccessPermission : AccessKeyPermission
{
    /// <summary>Gets the single instance.</summary>
    public static FullAccessPermission Instance { get; } = new();

    /// <inheritdoc/>
    public override void WriteBorsh(BorshWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteU8(1);
    }
}
