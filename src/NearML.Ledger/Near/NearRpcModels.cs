using System.Text.Json;

namespace NearML.Ledger;

/// <summary>The execution level <c>send_tx</c> and <c>tx</c> wait for (<c>wait_until</c>).</summary>
public enum TxExecutionStatus
{
    /// <summary><c>NONE</c>: return once the transaction is accepted into the pool.</summary>
    None,

    /// <summary><c>INCLUDED</c>: included in a block.</summary>
    Included,

    /// <summary><c>EXECUTED_OPTIMISTIC</c>: executed on an optimistic block (the legacy broadcast_tx_commit level).</summary>
    ExecutedOptimistic,

    /// <summary><c>INCLUDED_FINAL</c>: included in a final block.</summary>
    IncludedFinal,

    /// <summary><c>EXECUTED</c>: all receipts executed, the transaction's block final.</summary>
    Executed,

    /// <summary><c>FINAL</c>: all receipts executed and in final blocks.</summary>
    Final,
}

/// <summary>An access key as returned by <c>query view_access_key</c>.</summary>
/// <param name="Nonce">The key's current nonce; the next transaction needs a larger one.</param>
/// <param name="BlockHeight">The block height the view was taken at.</param>
/// <param name="BlockHash">The block hash (base58) the view was taken at.</param>
/// <param name="IsFullAccess">Whether the key has full access.</param>
public sealed record AccessKeyView(ulong Nonce, ulong BlockHeight, string BlockHash, bool IsFullAccess);

/// <summary>An account as returned by <c>query view_account</c>.</summary>
/// <param name="Amount">The liquid balance in yoctoNEAR.</param>
/// <param name="Locked">The staked balance in yoctoNEAR.</param>
/// <param name="CodeHash">The contract code hash (base58; all ones for no contract).</param>
/// <param name="StorageUsage">Storage used in bytes.</param>
/// <param name="BlockHeight">The block height the view was taken at.</param>
public sealed record AccountView(UInt128 Amount, UInt128 Locked, string CodeHash, ulong StorageUsage, ulong BlockHeight);

/// <summary>The result of <c>query call_function</c>.</summary>
/// <param name="Result">The bytes the view method returned.</param>
/// <param name="Logs">The logs it wrote.</param>
/// <param name="BlockHeight">The block height the call ran at.</param>
public sealed record CallFunctionResult(byte[] Result, IReadOnlyList<string> Logs, ulong BlockHeight);

/// <summary>A block header summary from <c>block</c>.</summary>
/// <param name="Height">The block height.</param>
/// <param name="Hash">The block hash (base58).</param>
public sealed record BlockView(ulong Height, string Hash)
{
    /// <summary>Gets the 32 hash bytes.</summary>
    public byte[] HashBytes => SimpleBase.Base58.Bitcoin.Decode(Hash);
}

/// <summary>A transaction's outcome as returned by <c>send_tx</c>, <c>broadcast_tx_commit</c> and <c>tx</c>.</summary>
/// <param name="TransactionHash">The transaction hash (base58).</param>
/// <param name="FinalExecutionStatus">The execution level reached.</param>
/// <param name="Status">
/// <c>SuccessValue</c>/<c>SuccessReceiptId</c> for success, <c>Failure</c> for an execution error, <c>NotStarted</c>/<c>Started</c>
/// while pending, or <see langword="null"/> when the response carries no status (wait_until NONE).
/// </param>
/// <param name="Failure">The failure JSON (an <c>ActionError</c> or <c>InvalidTxError</c>) when <paramref name="Status"/> is <c>Failure</c>.</param>
/// <param name="RawJson">The whole <c>result</c> object.</param>
public sealed record NearTransactionOutcome(string? TransactionHash, TxExecutionStatus FinalExecutionStatus, string? Status, string? Failure, string RawJson)
{
    /// <summary>Gets a value indicating whether the transaction executed successfully.</summary>
    public bool IsSuccess => Status is "SuccessValue" or "SuccessReceiptId";

    /// <summary>Gets a value indicating whether the transaction executed and failed (an execution error, not an RPC error).</summary>
    public bool IsFailure => Status == "Failure";

    /// <summary>Gets a value indicating whether the outcome is final (success or failure at <see cref="TxExecutionStatus.Executed"/> or later).</summary>
    public bool IsFinal => (IsSuccess || IsFailure) && FinalExecutionStatus is TxExecutionStatus.Executed or TxExecutionStatus.Final;

    internal static NearTransactionOutcome Parse(JsonElement result)
    {
        if (result.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException($"expected an execution outcome object, got {result.ValueKind}");
        }

        TxExecutionStatus level = result.TryGetProperty("final_execution_status", out JsonElement f) && f.ValueKind == JsonValueKind.String
            ? NearRpcClient.ParseStatus(f.GetString()!)
            : TxExecutionStatus.Final; // legacy responses without the field are final
        string? hash = result.TryGetProperty("transaction", out JsonElement t) && t.TryGetProperty("hash", out JsonElement h) ? h.GetString()
            : result.TryGetProperty("transaction_outcome", out JsonElement to) && to.TryGetProperty("id", out JsonElement id) ? id.GetString() : null;
        string? status = null;
        string? failure = null;
        if (result.TryGetProperty("status", out JsonElement s))
        {
            if (s.ValueKind == JsonValueKind.String)
            {
                status = s.GetString();
            }
            else if (s.ValueKind == JsonValueKind.Object)
            {
                foreach (JsonProperty p in s.EnumerateObject())
                {
                    status = p.Name;
                    if (p.Name == "Failure")
                    {
                        failure = p.Value.GetRawText();
                    }

                    break;
                }
            }
        }

        return new NearTransactionOutcome(hash, level, status, failure, result.GetRawText());
    }
}
