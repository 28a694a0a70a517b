using System.Text.Json;
using NearML.Core;

namespace NearML.Ledger;

/// <summary>
/// A NEAR JSON-RPC call failed. <see cref="ErrorName"/> is the error type (<c>HANDLER_ERROR</c>,
/// <c>REQUEST_VALIDATION_ERROR</c>, <c>INTERNAL_ERROR</c>, <c>TIMEOUT_ERROR</c>) and <see cref="CauseName"/> the cause
/// (<c>INVALID_TRANSACTION</c>, <c>UNKNOWN_ACCOUNT</c>, …). A transaction that executed and failed is not an RPC
/// error: see <see cref="NearTransactionOutcome.Failure"/>.
/// </summary>
public class NearRpcException : NearMLException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="method">The RPC method.</param>
    /// <param name="errorName">The error type.</param>
    /// <param name="causeName">The cause name.</param>
    /// <param name="message">A description.</param>
    /// <param name="errorJson">The raw <c>error</c> object, if any.</param>
    /// <param name="innerException">The underlying exception.</param>
    public NearRpcException(string method, string errorName, string? causeName, string message, string? errorJson = null, Exception? innerException = null)
        : base($"NEAR RPC {method}: {errorName}{(causeName is null ? "" : "/" + causeName)}: {message}", innerException)
    {
        Method = method;
        ErrorName = errorName;
        CauseName = causeName;
        ErrorJson = errorJson;
    }

    /// <summary>Gets the RPC method.</summary>
    public string Method { get; }

    /// <summary>Gets the error type (for example <c>HANDLER_ERROR</c>).</summary>
    public string ErrorName { get; }

    /// <summary>Gets the cause name (for example <c>INVALID_TRANSACTION</c>), if any.</summary>
    public string? CauseName { get; }

    /// <summary>Gets the raw JSON of the error object, if any.</summary>
    public string? ErrorJson { get; }

    /// <summary>Gets a value indicating whether this is a handler error (the request was valid; the node refused it).</summary>
    public bool IsHandlerError => ErrorName == "HANDLER_ERROR";

    /// <inheritdoc/>
    /// <remarks>
    /// Transient: <c>INTERNAL_ERROR</c>, a node that is behind or does not track the shard (<c>UNKNOWN_BLOCK</c>,
    /// <c>NO_SYNCED_BLOCKS</c>, <c>NOT_SYNCED_YET</c>, <c>UNAVAILABLE_SHARD</c>, <c>DOES_NOT_TRACK_SHARD</c>) and a transaction
    /// that was forwarded with its outcome not known yet (<c>REQUEST_ROUTED</c>).
    /// </remarks>
    public override bool IsTransient => ErrorName is "INTERNAL_ERROR"
        || CauseName is "UNKNOWN_BLOCK" or "NO_SYNCED_BLOCKS" or "NOT_SYNCED_YET" or "UNAVAILABLE_SHARD" or "DOES_NOT_TRACK_SHARD" or "REQUEST_ROUTED";
}

/// <summary>
/// <c>UNKNOWN_TRANSACTION</c>: the node has no block that includes the transaction. This does not prove that it cannot
/// land later (it may wait in a pool or on another node); only a consumed nonce in a final block does.
/// </summary>
public sealed class NearUnknownTransactionException : NearRpcException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="method">The RPC method.</param>
    /// <param name="transactionHash">The requested hash (from <c>cause.info.requested_transaction_hash</c>), if given.</param>
    /// <param name="message">A description.</param>
    /// <param name="errorJson">The raw error object.</param>
    public NearUnknownTransactionException(string method, string? transactionHash, string message, string? errorJson)
        : base(method, "HANDLER_ERROR", "UNKNOWN_TRANSACTION", message, errorJson) => TransactionHash = transactionHash;

    /// <summary>Gets the requested transaction hash, if the node named it.</summary>
    public string? TransactionHash { get; }
}

/// <summary>
/// The node answered with well-formed JSON-RPC whose <c>result</c> does not have the shape the method documents (for
/// example a plain string where an outcome object is expected, a missing field, an unknown execution status, or a
/// hash that is not the transaction's). The outcome of a send is therefore unknown: this is transient.
/// </summary>
public sealed class NearRpcInvalidResponseException : NearRpcException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="method">The RPC method.</param>
    /// <param name="message">What is wrong with the response.</param>
    /// <param name="resultJson">The raw result (truncated to 500 characters).</param>
    /// <param name="innerException">The parse failure.</param>
    public NearRpcInvalidResponseException(string method, string message, string? resultJson, Exception? innerException = null)
        : base(method, "INVALID_RESPONSE", null, message, resultJson is { Length: > 500 } ? resultJson[..500] : resultJson, innerException) { }

    /// <inheritdoc/>
    public override bool IsTransient => true;
}

/// <summary>The transaction was refused before execution (<c>INVALID_TRANSACTION</c>); <see cref="InvalidTxErrorJson"/> names why.</summary>
public class NearInvalidTransactionException : NearRpcException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="method">The RPC method.</param>
    /// <param name="kind">The <c>InvalidTxError</c> variant (for example <c>InvalidNonce</c>).</param>
    /// <param name="invalidTxErrorJson">The variant's JSON.</param>
    /// <param name="errorJson">The raw error object.</param>
    public NearInvalidTransactionException(string method, string kind, string invalidTxErrorJson, string? errorJson)
        : base(method, "HANDLER_ERROR", "INVALID_TRANSACTION", $"{kind}: {invalidTxErrorJson}", errorJson)
    {
        Kind = kind;
        InvalidTxErrorJson = invalidTxErrorJson;
    }

    /// <summary>Gets the <c>InvalidTxError</c> variant name.</summary>
    public string Kind { get; }

    /// <summary>Gets the variant's JSON.</summary>
    public string InvalidTxErrorJson { get; }
}

/// <summary>The transaction nonce is not above the access key's nonce.</summary>
public sealed class NearInvalidNonceException : NearInvalidTransactionException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="method">The RPC method.</param>
    /// <param name="transactionNonce">The transaction's nonce.</param>
    /// <param name="accessKeyNonce">The access key's current nonce.</param>
    /// <param name="json">The variant JSON.</param>
    /// <param name="errorJson">The raw error object.</param>
    public NearInvalidNonceException(string method, ulong transactionNonce, ulong accessKeyNonce, string json, string? errorJson)
        : base(method, "InvalidNonce", json, errorJson)
    {
        TransactionNonce = transactionNonce;
        AccessKeyNonce = accessKeyNonce;
    }

    /// <summary>Gets the transaction's nonce.</summary>
    public ulong TransactionNonce { get; }

    /// <summary>Gets the access key's current nonce (the next valid nonce is above it).</summary>
    public ulong AccessKeyNonce { get; }
}

/// <summary>The transaction's block hash is too old (or unknown): it can never be included.</summary>
public sealed class NearTransactionExpiredException : NearInvalidTransactionException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="method">The RPC method.</param>
    /// <param name="errorJson">The raw error object.</param>
    public NearTransactionExpiredException(string method, string? errorJson) : base(method, "Expired", "\"Expired\"", errorJson) { }
}

/// <summary>The signer cannot pay for the transaction.</summary>
public sealed class NearNotEnoughBalanceException : NearInvalidTransactionException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="method">The RPC method.</param>
    /// <param name="balance">The signer's balance in yoctoNEAR.</param>
    /// <param name="cost">The transaction's cost in yoctoNEAR.</param>
    /// <param name="json">The variant JSON.</param>
    /// <param name="errorJson">The raw error object.</param>
    public NearNotEnoughBalanceException(string method, UInt128 balance, UInt128 cost, string json, string? errorJson)
        : base(method, "NotEnoughBalance", json, errorJson)
    {
        Balance = balance;
        Cost = cost;
    }

    /// <summary>Gets the signer's balance.</summary>
    public UInt128 Balance { get; }

    /// <summary>Gets the transaction's cost.</summary>
    public UInt128 Cost { get; }
}

/// <summary>
/// <c>TIMEOUT_ERROR</c>: the transaction was routed but its outcome was not known in time. It may still land;
/// re-send the identical signed bytes (NEAR applies a transaction once) or poll its status.
/// </summary>
public sealed class NearRpcTimeoutException : NearRpcException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="method">The RPC method.</param>
    /// <param name="errorJson">The raw error object.</param>
    public NearRpcTimeoutException(string method, string? errorJson) : base(method, "TIMEOUT_ERROR", null, "the outcome is not known yet; re-send the same bytes or query the status", errorJson) { }

    /// <inheritdoc/>
    public override bool IsTransient => true;
}

/// <summary>The HTTP exchange failed (connection refused or reset, no response, a non-JSON or 5xx response).</summary>
public sealed class NearRpcHttpException : NearRpcException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="method">The RPC method.</param>
    /// <param name="statusCode">The HTTP status, or 0 when no response arrived.</param>
    /// <param name="message">A description.</param>
    /// <param name="innerException">The underlying exception.</param>
    public NearRpcHttpException(string method, int statusCode, string message, Exception? innerException = null)
        : base(method, "HTTP_ERROR", statusCode == 0 ? null : statusCode.ToString(System.Globalization.CultureInfo.InvariantCulture), message, null, innerException)
        => StatusCode = statusCode;

    /// <summary>Gets the HTTP status, or 0 when no response arrived.</summary>
    public int StatusCode { get; }

    /// <summary>Gets a value indicating whether the request may have reached the node (the response was lost).</summary>
    public bool OutcomeUnknown => StatusCode == 0 || StatusCode >= 500;

    /// <inheritdoc/>
    public override bool IsTransient => StatusCode is 0 or 408 or 429 or >= 500;
}

/// <summary>Parses NEAR's verror-style error objects into typed exceptions.</summary>
internal static class NearRpcErrorParser
{
    public static NearRpcException Parse(string method, JsonElement error)
    {
        string raw = error.GetRawText();
        string name = error.TryGetProperty("name", out JsonElement n) && n.ValueKind == JsonValueKind.String ? n.GetString()! : "UNKNOWN_ERROR";
        string? cause = error.TryGetProperty("cause", out JsonElement c) && c.ValueKind == JsonValueKind.Object
            && c.TryGetProperty("name", out JsonElement cn) && cn.ValueKind == JsonValueKind.String ? cn.GetString() : null;
        if (name == "TIMEOUT_ERROR" || cause == "TIMEOUT_ERROR")
        {
            return new NearRpcTimeoutException(method, raw);
        }

        if (cause == "UNKNOWN_TRANSACTION")
        {
            string? hash = c.ValueKind == JsonValueKind.Object && c.TryGetProperty("info", out JsonElement info) && info.ValueKind == JsonValueKind.Object
                && info.TryGetProperty("requested_transaction_hash", out JsonElement rh) && rh.ValueKind == JsonValueKind.String ? rh.GetString() : null;
            return new NearUnknownTransactionException(method, hash, $"transaction {hash ?? "?"} is not known to the node", raw);
        }

        if (cause == "INVALID_TRANSACTION")
        {
            // nearcore puts the InvalidTxError in cause.info and/or the legacy data field.
            JsonElement? invalid = FindProperty(error, "InvalidTxError", 6);
            if (invalid is { } inv)
            {
                if (inv.ValueKind == JsonValueKind.String)
                {
                    string kind = inv.GetString()!;
                    return kind == "Expired" ? new NearTransactionExpiredException(method, raw) : new NearInvalidTransactionException(method, kind, inv.GetRawText(), raw);
                }

                if (inv.ValueKind == JsonValueKind.Object)
                {
                    foreach (JsonProperty p in inv.EnumerateObject())
                    {
                        switch (p.Name)
                        {
                            case "InvalidNonce":
                                return new NearInvalidNonceException(method, ReadU64(p.Value, "tx_nonce"), ReadU64(p.Value, "ak_nonce"), p.Value.GetRawText(), raw);
                            case "NotEnoughBalance":
                                return new NearNotEnoughBalanceException(method, ReadU128(p.Value, "balance"), ReadU128(p.Value, "cost"), p.Value.GetRawText(), raw);
                            default:
                                return new NearInvalidTransactionException(method, p.Name, p.Value.GetRawText(), raw);
                        }
                    }
                }
            }

            return new NearInvalidTransactionException(method, "Unknown", "{}", raw);
        }

        string message = error.TryGetProperty("data", out JsonElement d) ? (d.ValueKind == JsonValueKind.String ? d.GetString()! : d.GetRawText())
            : error.TryGetProperty("message", out JsonElement m) && m.ValueKind == JsonValueKind.String ? m.GetString()! : raw;
        return new NearRpcException(method, name, cause, message, raw);
    }

    public static JsonElement? FindProperty(JsonElement e, string name, int depth)
    {
        if (depth < 0 || e.ValueKind != JsonValueKind.Object)
        {
            return null;
        }

        foreach (JsonProperty p in e.EnumerateObject())
        {
            if (p.Name == name)
            {
                return p.Value;
            }

            if (FindProperty(p.Value, name, depth - 1) is { } found)
            {
                return found;
            }
        }

        return null;
    }

    private static ulong ReadU64(JsonElement e, string name) =>
        e.TryGetProperty(name, out JsonElement v) ? (v.ValueKind == JsonValueKind.Number ? v.GetUInt64() : ulong.Parse(v.GetString()!, System.Globalization.CultureInfo.InvariantCulture)) : 0;

    private static UInt128 ReadU128(JsonElement e, string name) =>
        e.TryGetProperty(name, out JsonElement v) ? UInt128.Parse(v.ValueKind == JsonValueKind.String ? v.GetString()! : v.GetRawText(), System.Globalization.CultureInfo.InvariantCulture) : 0;
}
