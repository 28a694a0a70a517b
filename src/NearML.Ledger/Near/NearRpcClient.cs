using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Polly;
using Polly.Retry;

namespace NearML.Ledger;

/// <summary>Options of <see cref="NearRpcClient"/>.</summary>
public sealed class NearRpcClientOptions
{
    /// <summary>Gets or sets the RPC endpoint.</summary>
    /// <value>The default value is <c>https://rpc.testnet.near.org</c>.</value>
    public Uri Endpoint { get; set; } = new("https://rpc.testnet.near.org");

    /// <summary>Gets or sets how many times a transient failure is retried (reads, and re-sending the same signed bytes).</summary>
    /// <value>The default value is 3.</value>
    public int MaxRetries { get; set; } = 3;

    /// <summary>Gets or sets the first retry delay (doubled each attempt, with jitter).</summary>
    /// <value>The default value is 500 ms.</value>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromMilliseconds(500);
}

/// <summary>
/// A NEAR JSON-RPC client over <see cref="HttpClient"/>. Reads retry on transient faults; sending retries only by
/// re-sending the identical signed bytes (NEAR applies a transaction at most once), never by re-signing.
/// </summary>
public sealed partial class NearRpcClient
{
    private readonly HttpClient _http;
    private readonly NearRpcClientOptions _options;
    private readonly ILogger _logger;
    private readonly ResiliencePipeline _retry;
    private long _nextId;

    /// <summary>Initializes a new client.</summary>
    /// <param name="http">The HTTP client (its lifetime belongs to the caller).</param>
    /// <param name="options">The options.</param>
    /// <param name="logger">A logger, or <see langword="null"/>.</param>
    /// <param name="timeProvider">The time provider for retry delays, or <see langword="null"/> for the system clock.</param>
    public NearRpcClient(HttpClient http, NearRpcClientOptions options, ILogger<NearRpcClient>? logger = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(options.Endpoint, nameof(options));
        ArgumentOutOfRangeException.ThrowIfNegative(options.MaxRetries, nameof(options));
        _http = http;
        _options = options;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        var builder = new ResiliencePipelineBuilder { TimeProvider = timeProvider ?? TimeProvider.System };
        if (options.MaxRetries > 0)
        {
            builder.AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = options.MaxRetries,
                Delay = options.RetryDelay,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                ShouldHandle = new PredicateBuilder().Handle<NearRpcException>(static e => e.IsTransient),
                OnRetry = args =>
                {
                    LogRetry(_logger, args.AttemptNumber + 1, args.Outcome.Exception?.Message ?? "?");
                    return default;
                },
            });
        }

        _retry = builder.Build();
    }

    /// <summary>Gets the endpoint.</summary>
    public Uri Endpoint => _options.Endpoint;

    /// <summary><c>query view_access_key</c> at final finality.</summary>
    /// <param name="accountId">The account.</param>
    /// <param name="publicKey">The key.</param>
    /// <param name="cancellationToken">A cancellation token.</param>
    /// <returns>The access key.</returns>
    public async Task<AccessKeyView> ViewAccessKeyAsync(string accountId, NearPublicKey publicKey, CancellationToken cancellationToken = default)
    {
        NearAccountId.Validate(accountId, nameof(accountId));
        ArgumentNullException.ThrowIfNull(publicKey);
        using JsonDocument doc = await CallWithRetryAsync("query", w =>
        {
            w.WriteStartObject();
            w.WriteString("request_type", "view_access_key");
            w.WriteString("finality", "final");
            w.WriteString("account_id", accountId);
            w.WriteString("public_key", publicKey.ToString());
            w.WriteEndObject();
        }, cancellationToken).ConfigureAwait(false);
        return ParseResult("query", doc.RootElement, static r =>
        {
            bool full = r.TryGetProperty("permission", out JsonElement p) && p.ValueKind == JsonValueKind.String && p.GetString() == "FullAccess";
            return new AccessKeyView(r.GetProperty("nonce").GetUInt64(), r.GetProperty("block_height").GetUInt64(), RequiredString(r, "block_hash"), full);
        });
    }

    /// <summary><c>query view_account</c> at final finality.</summary>
    /// <param name="accountId">The account.</param>
    /// <param name="cancellationToken">A cancellation token.</param>
    /// <returns>The account.</returns>
    public async Task<AccountView> ViewAccountAsync(string accountId, CancellationToken cancellationToken = default)
    {
        NearAccountId.Validate(accountId, nameof(accountId));
        using JsonDocument doc = await CallWithRetryAsync("query", w =>
        {
            w.WriteStartObject();
            w.WriteString("request_type", "view_account");
            w.WriteString("finality", "final");
            w.WriteString("account_id", accountId);
            w.WriteEndObject();
        }, cancellationToken).ConfigureAwait(false);
        return ParseResult("query", doc.RootElement, static r => new AccountView(
            UInt128.Parse(RequiredString(r, "amount"), CultureInfo.InvariantCulture),
            UInt128.Parse(RequiredString(r, "locked"), CultureInfo.InvariantCulture),
            RequiredString(r, "code_hash"),
            r.GetProperty("storage_usage").GetUInt64(),
            r.GetProperty("block_height").GetUInt64()));
    }

    /// <summary><c>query call_function</c> (a view call) at final finality.</summary>
    /// <param name="accountId">The contract.</param>
    /// <param name="methodName">The view method.</param>
    /// <param name="args">The argument bytes (usually UTF-8 JSON).</param>
    /// <param name="cancellationToken">A cancellation token.</param>
    /// <returns>The result.</returns>
    public async Task<CallFunctionResult> CallFunctionAsync(string accountId, string methodName, ReadOnlyMemory<byte> args, CancellationToken cancellationToken = default)
    {
        NearAccountId.Validate(accountId, nameof(accountId));
        ArgumentException.ThrowIfNullOrEmpty(methodName);
        string argsBase64 = Convert.ToBase64String(args.Span);
        using JsonDocument doc = await CallWithRetryAsync("query", w =>
        {
            w.WriteStartObject();
            w.WriteString("request_type", "call_function");
            w.WriteString("finality", "final");
            w.WriteString("account_id", accountId);
            w.WriteString("method_name", methodName);
            w.WriteString("args_base64", argsBase64);
            w.WriteEndObject();
        }, cancellationToken).ConfigureAwait(false);
        return ParseResult("query", doc.RootElement, static r =>
        {
            byte[] result = r.GetProperty("result").EnumerateArray().Select(static b => b.GetByte()).ToArray();
            string[] logs = r.TryGetProperty("logs", out JsonElement l) ? l.EnumerateArray().Select(static x => x.GetString() ?? "").ToArray() : [];
            return new CallFunctionResult(result, logs, r.GetProperty("block_height").GetUInt64());
        });
    }

    /// <summary><c>block</c> with <c>finality: final</c>.</summary>
    /// <param name="cancellationToken">A cancellation token.</param>
    /// <returns>The final block's height and hash.</returns>
    public async Task<BlockView> GetFinalBlockAsync(CancellationToken cancellationToken = default)
    {
        using JsonDocument doc = await CallWithRetryAsync("block", static w =>
        {
            w.WriteStartObject();
            w.WriteString("finality", "final");
            w.WriteEndObject();
        }, cancellationToken).ConfigureAwait(false);
        return ParseResult("block", doc.RootElement, static r =>
        {
            JsonElement header = r.GetProperty("header");
            var block = new BlockView(header.GetProperty("height").GetUInt64(), RequiredString(header, "hash"));
            return block.HashBytes.Length == 32 ? block : throw new FormatException($"block hash {block.Hash} is not 32 bytes");
        });
    }

    /// <summary><c>send_tx</c>: sends the signed bytes and waits for <paramref name="waitUntil"/>. Transient faults re-send the same bytes.</summary>
    /// <param name="transaction">The signed transaction.</param>
    /// <param name="waitUntil">The execution level to wait for.</param>
    /// <param name="cancellationToken">A cancellation token.</param>
    /// <returns>The outcome.</returns>
    public Task<NearTransactionOutcome> SendTransactionAsync(SignedNearTransaction transaction, TxExecutionStatus waitUntil = TxExecutionStatus.Final, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        return SendSignedBytesAsync(transaction.ToBorsh(), waitUntil, cancellationToken);
    }

    /// <summary><c>send_tx</c> with already-encoded signed bytes (for example as stored by a settlement).</summary>
    /// <param name="signedTransaction">The Borsh bytes of a signed transaction.</param>
    /// <param name="waitUntil">The execution level to wait for.</param>
    /// <param name="cancellationToken">A cancellation token.</param>
    /// <returns>The outcome.</returns>
    public async Task<NearTransactionOutcome> SendSignedBytesAsync(ReadOnlyMemory<byte> signedTransaction, TxExecutionStatus waitUntil = TxExecutionStatus.Final, CancellationToken cancellationToken = default)
    {
        string base64 = Convert.ToBase64String(signedTransaction.Span);
        string level = FormatStatus(waitUntil);
        using JsonDocument doc = await CallWithRetryAsync("send_tx", w =>
        {
            w.WriteStartObject();
            w.WriteString("signed_tx_base64", base64);
            w.WriteString("wait_until", level);
            w.WriteEndObject();
        }, cancellationToken).ConfigureAwait(false);
        return ParseResult("send_tx", doc.RootElement, NearTransactionOutcome.Parse);
    }

    /// <summary>
    /// Legacy <c>broadcast_tx_async</c> (equivalent to send_tx with NONE): hands the transaction to the node and returns at once
    /// with its hash (a plain string result), which is checked against the transaction's own hash.
    /// </summary>
    /// <param name="transaction">The signed transaction.</param>
    /// <param name="cancellationToken">A cancellation token.</param>
    /// <returns>The transaction hash (base58) as the node reported it.</returns>
    /// <exception cref="NearRpcInvalidResponseException">The result is not a string, or not this transaction's hash.</exception>
    public async Task<string> BroadcastTransactionAsync(SignedNearTransaction transaction, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        string base64 = transaction.ToBase64();
        string expected = transaction.HashBase58;
        using JsonDocument doc = await CallWithRetryAsync("broadcast_tx_async", w =>
        {
            w.WriteStartArray();
            w.WriteStringValue(base64);
            w.WriteEndArray();
        }, cancellationToken).ConfigureAwait(false);
        return ParseResult("broadcast_tx_async", doc.RootElement, r =>
        {
            string hash = r.ValueKind == JsonValueKind.String ? r.GetString()! : throw new FormatException($"expected the transaction hash as a string, got {r.ValueKind}");
            return hash == expected ? hash : throw new FormatException($"the node returned hash {hash}, but the transaction's hash is {expected}");
        });
    }

    /// <summary>Legacy <c>broadcast_tx_commit</c> (equivalent to send_tx with EXECUTED_OPTIMISTIC).</summary>
    /// <param name="transaction">The signed transaction.</param>
    /// <param name="cancellationToken">A cancellation token.</param>
    /// <returns>The outcome.</returns>
    public async Task<NearTransactionOutcome> BroadcastTransactionCommitAsync(SignedNearTransaction transaction, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        string base64 = transaction.ToBase64();
        using JsonDocument doc = await CallWithRetryAsync("broadcast_tx_commit", w =>
        {
            w.WriteStartArray();
            w.WriteStringValue(base64);
            w.WriteEndArray();
        }, cancellationToken).ConfigureAwait(false);
        return ParseResult("broadcast_tx_commit", doc.RootElement, NearTransactionOutcome.Parse);
    }

    /// <summary><c>tx</c>: the status of a transaction by hash.</summary>
    /// <param name="transactionHash">The hash (base58).</param>
    /// <param name="senderAccountId">The signer.</param>
    /// <param name="waitUntil">The execution level to wait for.</param>
    /// <param name="cancellationToken">A cancellation token.</param>
    /// <returns>The outcome.</returns>
    /// <exception cref="NearRpcException">With cause <c>UNKNOWN_TRANSACTION</c> when the node has not seen it.</exception>
    public async Task<NearTransactionOutcome> GetTransactionStatusAsync(string transactionHash, string senderAccountId, TxExecutionStatus waitUntil = TxExecutionStatus.Final, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(transactionHash);
        NearAccountId.Validate(senderAccountId, nameof(senderAccountId));
        string level = FormatStatus(waitUntil);
        using JsonDocument doc = await CallWithRetryAsync("tx", w =>
        {
            w.WriteStartObject();
            w.WriteString("tx_hash", transactionHash);
            w.WriteString("sender_account_id", senderAccountId);
            w.WriteString("wait_until", level);
            w.WriteEndObject();
        }, cancellationToken).ConfigureAwait(false);
        return ParseResult("tx", doc.RootElement, NearTransactionOutcome.Parse);
    }

    internal static TxExecutionStatus ParseStatus(string s) => s switch
    {
        "NONE" => TxExecutionStatus.None,
        "INCLUDED" => TxExecutionStatus.Included,
        "EXECUTED_OPTIMISTIC" => TxExecutionStatus.ExecutedOptimistic,
        "INCLUDED_FINAL" => TxExecutionStatus.IncludedFinal,
        "EXECUTED" => TxExecutionStatus.Executed,
        "FINAL" => TxExecutionStatus.Final,
        _ => throw new FormatException($"unknown final_execution_status '{s}'"),
    };

    internal static string FormatStatus(TxExecutionStatus s) => s switch
    {
        TxExecutionStatus.None => "NONE",
        TxExecutionStatus.Included => "INCLUDED",
        TxExecutionStatus.ExecutedOptimistic => "EXECUTED_OPTIMISTIC",
        TxExecutionStatus.IncludedFinal => "INCLUDED_FINAL",
        TxExecutionStatus.Executed => "EXECUTED",
        TxExecutionStatus.Final => "FINAL",
        _ => throw new ArgumentOutOfRangeException(nameof(s), s, "Unknown execution status."),
    };

    /// <summary>Maps every shape error of a result (missing or mistyped fields, bad numbers) to <see cref="NearRpcInvalidResponseException"/>.</summary>
    private static T ParseResult<T>(string method, JsonElement result, Func<JsonElement, T> parse)
    {
        try
        {
            return parse(result);
        }
        catch (Exception ex) when (ex is KeyNotFoundException or InvalidOperationException or FormatException or OverflowException or ArgumentException or JsonException)
        {
            throw new NearRpcInvalidResponseException(method, $"the result does not have the documented shape: {ex.Message}", result.GetRawText(), ex);
        }
    }

    private static string RequiredString(JsonElement e, string name) =>
        e.GetProperty(name) is { ValueKind: JsonValueKind.String } v ? v.GetString()! : throw new FormatException($"'{name}' is not a string");

    private async Task<JsonDocument> CallWithRetryAsync(string method, Action<Utf8JsonWriter> writeParams, CancellationToken cancellationToken) =>
        await _retry.ExecuteAsync(
            static async (state, ct) => await state.Self.CallOnceAsync(state.Method, state.WriteParams, ct).ConfigureAwait(false),
            (Self: this, Method: method, WriteParams: writeParams),
            cancellationToken).ConfigureAwait(false);

    private async Task<JsonDocument> CallOnceAsync(string method, Action<Utf8JsonWriter> writeParams, CancellationToken cancellationToken)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("jsonrpc", "2.0");
            w.WriteString("id", Interlocked.Increment(ref _nextId).ToString(CultureInfo.InvariantCulture));
            w.WriteString("method", method);
            w.WritePropertyName("params");
            writeParams(w);
            w.WriteEndObject();
        }

        using var content = new ByteArrayContent(buffer.WrittenSpan.ToArray());
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        HttpResponseMessage response;
        try
        {
            response = await _http.PostAsync(_options.Endpoint, content, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            throw new NearRpcHttpException(method, 0, $"no response from {_options.Endpoint}: {ex.Message}", ex);
        }
        catch (TaskCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw new NearRpcHttpException(method, 0, $"the request to {_options.Endpoint} timed out", ex);
        }

        using (response)
        {
            byte[] body;
            try
            {
                body = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (HttpRequestException ex)
            {
                throw new NearRpcHttpException(method, 0, $"the response from {_options.Endpoint} was cut off: {ex.Message}", ex);
            }

            JsonDocument doc;
            try
            {
                doc = JsonDocument.Parse(body);
            }
            catch (JsonException ex)
            {
                int status = response.StatusCode == HttpStatusCode.OK ? 502 : (int)response.StatusCode;
                string preview = Encoding.UTF8.GetString(body, 0, Math.Min(body.Length, 200));
                throw new NearRpcHttpException(method, status, $"HTTP {(int)response.StatusCode}, body is not JSON: {preview}", ex);
            }

            using (doc)
            {
                JsonElement root = doc.RootElement;
                if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("error", out JsonElement error) && error.ValueKind != JsonValueKind.Null)
                {
                    if (error.ValueKind != JsonValueKind.Object)
                    {
                        throw new NearRpcException(method, "UNKNOWN_ERROR", null, error.GetRawText(), error.GetRawText());
                    }

                    NearRpcException parsed;
                    try
                    {
                        parsed = NearRpcErrorParser.Parse(method, error);
                    }
                    catch (Exception ex) when (ex is KeyNotFoundException or InvalidOperationException or FormatException or OverflowException or ArgumentException)
                    {
                        throw new NearRpcInvalidResponseException(method, $"the error object does not have the documented shape: {ex.Message}", error.GetRawText(), ex);
                    }

                    throw parsed;
                }

                if (!response.IsSuccessStatusCode)
                {
                    throw new NearRpcHttpException(method, (int)response.StatusCode, $"HTTP {(int)response.StatusCode} {response.ReasonPhrase}");
                }

                if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("result", out JsonElement result))
                {
                    throw new NearRpcHttpException(method, 502, "the response has neither result nor error");
                }

                // NEAR reports some query failures inside result (result.error with a string).
                if (method == "query" && result.ValueKind == JsonValueKind.Object && result.TryGetProperty("error", out JsonElement qe) && qe.ValueKind == JsonValueKind.String)
                {
                    throw new NearRpcException(method, "HANDLER_ERROR", "QUERY_ERROR", qe.GetString()!, result.GetRawText());
                }

                return JsonDocument.Parse(result.GetRawText());
            }
        }
    }

    [LoggerMessage(EventId = 6100, EventName = "NearRpcRetry", Level = LogLevel.Warning, Message = "NEAR RPC transient failure, retry {Attempt}: {Reason}")]
    private static partial void LogRetry(ILogger logger, int attempt, string reason);
}
