using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using NearML.Core;

namespace NearML.Ledger.Tests;

/// <summary>What the test server does to the next send_tx/broadcast_tx_commit.</summary>
public enum NearFault
{
    /// <summary>Execute the transaction, then answer TIMEOUT_ERROR (HTTP 408) as if the outcome were not known in time.</summary>
    TimeoutAfterExecute,

    /// <summary>Answer TIMEOUT_ERROR without executing.</summary>
    TimeoutBeforeExecute,

    /// <summary>Execute the transaction, then drop the connection without an answer.</summary>
    DropAfterExecute,

    /// <summary>Answer HTTP 503 without executing.</summary>
    ServiceUnavailable,

    /// <summary>Answer INVALID_TRANSACTION / Expired without executing.</summary>
    Expired,

    /// <summary>Answer INTERNAL_ERROR without executing.</summary>
    InternalError,
}

/// <summary>
/// An in-process NEAR JSON-RPC server on loopback that validates transactions the way nearcore does: real ed25519
/// signatures over SHA-256 of the Borsh bytes, access-key nonces (above the key's nonce, below height × 10^6),
/// block-hash expiry, and duplicate transactions (a known transaction returns its stored outcome and never executes
/// twice). It executes Transfer, ft_transfer (NEP-141, 1 yocto deposit) and an anchoring method, charges a fixed
/// fee, advances one block per request, and can be told to fail in each way in <see cref="NearFault"/>.
/// </summary>
public sealed class NearRpcTestServer : IDisposable
{
    public static readonly UInt128 Fee = UInt128.Parse("100000000000000000000", CultureInfo.InvariantCulture); // 1e20 yocto per transaction

    private readonly HttpListener _listener = new();
    private readonly Lock _gate = new();
    private readonly Dictionary<string, UInt128> _balances = new();
    private readonly Dictionary<(string Account, string Key), ulong> _accessKeys = new();
    private readonly Dictionary<string, UInt128> _ftBalances = new();
    private readonly HashSet<string> _ftRegistered = new();
    private readonly Dictionary<string, string> _outcomes = new();
    private readonly Dictionary<string, int> _executions = new();
    private readonly Queue<NearFault> _faults = new();
    private readonly List<string> _anchors = new();
    private readonly List<(string Receiver, UInt128 Amount, string Memo)> _ftTransfers = new();
    private readonly List<(string Receiver, UInt128 Amount)> _nativeTransfers = new();
    private readonly Task _loop;
    private ulong _height = 1000;

    public NearRpcTestServer(string tokenContract = "token.testnet", string anchorContract = "anchor.testnet", ulong validityPeriod = 100)
    {
        TokenContract = tokenContract;
        AnchorContract = anchorContract;
        ValidityPeriod = validityPeriod;
        int port = FreePort();
        Endpoint = new Uri($"http://127.0.0.1:{port}/");
        _listener.Prefixes.Add(Endpoint.ToString());
        _listener.Start();
        _loop = Task.Run(LoopAsync);
    }

    public Uri Endpoint { get; }

    public string TokenContract { get; }

    public string AnchorContract { get; }

    public ulong ValidityPeriod { get; }

    public ulong Height { get { lock (_gate) { return _height; } } }

    public int RequestCount { get; private set; }

    public void AddAccount(string account, UInt128 balance, NearPublicKey? key = null, ulong? keyNonce = null)
    {
        lock (_gate)
        {
            _balances[account] = balance;
            if (key is not null)
            {
                _accessKeys[(account, key.ToString())] = keyNonce ?? _height * 1_000_000; // nearcore seeds new keys with height × 10^6
            }
        }
    }

    public void SetAccessKeyNonce(string account, NearPublicKey key, ulong nonce)
    {
        lock (_gate)
        {
            _accessKeys[(account, key.ToString())] = nonce;
        }
    }

    public void FtMint(string account, UInt128 amount)
    {
        lock (_gate)
        {
            _ftBalances[account] = FtBalance(account) + amount;
            _ftRegistered.Add(account);
        }
    }

    public void FtRegister(string account)
    {
        lock (_gate)
        {
            _ftRegistered.Add(account);
        }
    }

    public UInt128 FtBalance(string account)
    {
        lock (_gate)
        {
            return _ftBalances.TryGetValue(account, out UInt128 v) ? v : 0;
        }
    }

    public UInt128 Balance(string account)
    {
        lock (_gate)
        {
            return _balances.TryGetValue(account, out UInt128 v) ? v : 0;
        }
    }

    public IReadOnlyList<string> Anchors { get { lock (_gate) { return _anchors.ToList(); } } }

    public IReadOnlyList<(string Receiver, UInt128 Amount, string Memo)> FtTransfers { get { lock (_gate) { return _ftTransfers.ToList(); } } }

    public IReadOnlyList<(string Receiver, UInt128 Amount)> NativeTransfers { get { lock (_gate) { return _nativeTransfers.ToList(); } } }

    public int ExecutedTransactions { get { lock (_gate) { return _executions.Count; } } }

    public int MaxExecutionsOfOneTransaction { get { lock (_gate) { return _executions.Count == 0 ? 0 : _executions.Values.Max(); } } }

    public void Inject(params NearFault[] faults)
    {
        lock (_gate)
        {
            foreach (NearFault f in faults)
            {
                _faults.Enqueue(f);
            }
        }
    }

    /// <summary>Advances the chain by <paramref name="blocks"/> blocks (to expire block hashes).</summary>
    public void AdvanceBlocks(ulong blocks)
    {
        lock (_gate)
        {
            _height += blocks;
        }
    }

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
        try
        {
            _loop.GetAwaiter().GetResult();
        }
        catch (ObjectDisposedException)
        {
        }
        catch (HttpListenerException)
        {
        }
    }

    public static string BlockHash(ulong height) => SimpleBase.Base58.Bitcoin.Encode(SHA256.HashData(Encoding.ASCII.GetBytes($"test-block-{height}")));

    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    private async Task LoopAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext ctx;
            try
            {
                ctx = await _listener.GetContextAsync();
            }
            catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            _ = Task.Run(() => Handle(ctx));
        }
    }

    private void Handle(HttpListenerContext ctx)
    {
        try
        {
            using var reader = new StreamReader(ctx.Request.InputStream, Encoding.UTF8);
            string body = reader.ReadToEnd();
            (int status, string? json) = Process(body);
            if (json is null)
            {
                ctx.Response.Abort(); // drop the connection without an answer
                return;
            }

            byte[] bytes = Encoding.UTF8.GetBytes(json);
            ctx.Response.StatusCode = status;
            ctx.Response.ContentType = "application/json";
            ctx.Response.ContentLength64 = bytes.Length;
            ctx.Response.OutputStream.Write(bytes);
            ctx.Response.Close();
        }
        catch (HttpListenerException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private (int Status, string? Json) Process(string body)
    {
        using JsonDocument doc = JsonDocument.Parse(body);
        JsonElement root = doc.RootElement;
        string id = root.TryGetProperty("id", out JsonElement idEl) ? idEl.ToString() : "dontcare";
        string method = root.GetProperty("method").GetString()!;
        JsonElement p = root.GetProperty("params");
        lock (_gate)
        {
            RequestCount++;
            _height++; // one block per request
            try
            {
                return method switch
                {
                    "block" => Ok(id, string.Concat("{\"author\":\"test.near\",\"header\":{\"height\":", Convert.ToString((_height), CultureInfo.InvariantCulture), ",\"hash\":\"", Convert.ToString((BlockHash(_height)), CultureInfo.InvariantCulture), "\",\"prev_hash\":\"", Convert.ToString((BlockHash(_height - 1)), CultureInfo.InvariantCulture), "\",\"timestamp\":", Convert.ToString((_height * 1_000_000_000), CultureInfo.InvariantCulture), ",\"chunks_included\":1},\"chunks\":[]}")),
                    "query" => Query(id, p),
                    "send_tx" => Send(id, method, p.GetProperty("signed_tx_base64").GetString()!),
                    "broadcast_tx_commit" => Send(id, method, p[0].GetString()!),
                    "tx" => Status(id, p.GetProperty("tx_hash").GetString()!),
                    _ => Error(id, 200, "REQUEST_VALIDATION_ERROR", "METHOD_NOT_FOUND", string.Concat("{\"method_name\":\"", Convert.ToString((method), CultureInfo.InvariantCulture), "\"}"), "\"Method not found\""),
                };
            }
            catch (InvalidDataFormatException ex)
            {
                return Error(id, 200, "REQUEST_VALIDATION_ERROR", "PARSE_ERROR", string.Concat("{\"error_message\":", Convert.ToString((JsonSerializer.Serialize(ex.Message)), CultureInfo.InvariantCulture), "}"), JsonSerializer.Serialize(ex.Message));
            }
        }
    }

    private (int, string?) Query(string id, JsonElement p)
    {
        string type = p.GetProperty("request_type").GetString()!;
        string account = p.GetProperty("account_id").GetString()!;
        switch (type)
        {
            case "view_access_key":
                {
                    string key = p.GetProperty("public_key").GetString()!;
                    if (!_accessKeys.TryGetValue((account, key), out ulong nonce))
                    {
                        return Error(id, 200, "HANDLER_ERROR", "UNKNOWN_ACCESS_KEY", string.Concat("{\"public_key\":\"", Convert.ToString((key), CultureInfo.InvariantCulture), "\",\"block_height\":", Convert.ToString((_height), CultureInfo.InvariantCulture), ",\"block_hash\":\"", Convert.ToString((BlockHash(_height)), CultureInfo.InvariantCulture), "\"}"), "\"access key does not exist\"");
                    }

                    return Ok(id, string.Concat("{\"nonce\":", Convert.ToString((nonce), CultureInfo.InvariantCulture), ",\"permission\":\"FullAccess\",\"block_height\":", Convert.ToString((_height), CultureInfo.InvariantCulture), ",\"block_hash\":\"", Convert.ToString((BlockHash(_height)), CultureInfo.InvariantCulture), "\"}"));
                }

            case "view_account":
                if (!_balances.TryGetValue(account, out UInt128 amount))
                {
                    return Error(id, 200, "HANDLER_ERROR", "UNKNOWN_ACCOUNT", string.Concat("{\"requested_account_id\":\"", Convert.ToString((account), CultureInfo.InvariantCulture), "\",\"block_height\":", Convert.ToString((_height), CultureInfo.InvariantCulture), ",\"block_hash\":\"", Convert.ToString((BlockHash(_height)), CultureInfo.InvariantCulture), "\"}"), "\"account does not exist\"");
                }

                return Ok(id, string.Concat("{\"amount\":\"", Convert.ToString((amount), CultureInfo.InvariantCulture), "\",\"locked\":\"0\",\"code_hash\":\"11111111111111111111111111111111\",\"storage_usage\":182,\"storage_paid_at\":0,\"block_height\":", Convert.ToString((_height), CultureInfo.InvariantCulture), ",\"block_hash\":\"", Convert.ToString((BlockHash(_height)), CultureInfo.InvariantCulture), "\"}"));
            case "call_function":
                {
                    string methodName = p.GetProperty("method_name").GetString()!;
                    byte[] args = Convert.FromBase64String(p.GetProperty("args_base64").GetString()!);
                    if (account == TokenContract && methodName == "ft_balance_of")
                    {
                        using JsonDocument a = JsonDocument.Parse(args);
                        string who = a.RootElement.GetProperty("account_id").GetString()!;
                        byte[] result = Encoding.UTF8.GetBytes($"\"{FtBalance(who)}\"");
                        return Ok(id, string.Concat("{\"result\":[", Convert.ToString((string.Join(",", result)), CultureInfo.InvariantCulture), "],\"logs\":[],\"block_height\":", Convert.ToString((_height), CultureInfo.InvariantCulture), ",\"block_hash\":\"", Convert.ToString((BlockHash(_height)), CultureInfo.InvariantCulture), "\"}"));
                    }

                    return Error(id, 200, "HANDLER_ERROR", "CONTRACT_EXECUTION_ERROR", string.Concat("{\"vm_error\":\"MethodNotFound\",\"block_height\":", Convert.ToString((_height), CultureInfo.InvariantCulture), ",\"block_hash\":\"", Convert.ToString((BlockHash(_height)), CultureInfo.InvariantCulture), "\"}"), "\"MethodNotFound\"");
                }

            default:
                return Error(id, 200, "REQUEST_VALIDATION_ERROR", "PARSE_ERROR", "{}", "\"unknown request_type\"");
        }
    }

    private (int, string?) Status(string id, string hash)
    {
        if (_outcomes.TryGetValue(hash, out string? outcome))
        {
            return Ok(id, outcome);
        }

        return Error(id, 200, "HANDLER_ERROR", "UNKNOWN_TRANSACTION", string.Concat("{\"requested_transaction_hash\":\"", Convert.ToString((hash), CultureInfo.InvariantCulture), "\"}"), $"\"Transaction {hash} doesn't exist\"");
    }

    private (int, string?) Send(string id, string method, string base64)
    {
        SignedNearTransaction signed = SignedNearTransaction.Parse(Convert.FromBase64String(base64));
        NearTransaction tx = signed.Transaction;
        string hash = signed.HashBase58;

        NearFault? fault = _faults.Count > 0 ? _faults.Dequeue() : null;
        switch (fault)
        {
            case NearFault.TimeoutBeforeExecute:
                return Timeout(id);
            case NearFault.ServiceUnavailable:
                return (503, "<html>503 Service Unavailable</html>");
            case NearFault.Expired:
                return InvalidTx(id, "\"Expired\"");
            case NearFault.InternalError:
                return Error(id, 500, "INTERNAL_ERROR", "INTERNAL_ERROR", """{"error_message":"injected"}""", "\"injected\"");
        }

        // A transaction the chain already has is never executed again: its outcome is returned.
        if (_outcomes.TryGetValue(hash, out string? known))
        {
            return AfterExecute(id, fault, known);
        }

        if (!signed.Verify())
        {
            return InvalidTx(id, "\"InvalidSignature\"");
        }

        if (!_balances.TryGetValue(tx.SignerId, out UInt128 balance))
        {
            return InvalidTx(id, string.Concat("{\"SignerDoesNotExist\":{\"signer_id\":\"", Convert.ToString((tx.SignerId), CultureInfo.InvariantCulture), "\"}}"));
        }

        if (!_accessKeys.TryGetValue((tx.SignerId, tx.PublicKey.ToString()), out ulong akNonce))
        {
            return InvalidTx(id, string.Concat("{\"InvalidAccessKeyError\":{\"AccessKeyNotFound\":{\"account_id\":\"", Convert.ToString((tx.SignerId), CultureInfo.InvariantCulture), "\",\"public_key\":\"", Convert.ToString((tx.PublicKey), CultureInfo.InvariantCulture), "\"}}}"));
        }

        string blockHash = SimpleBase.Base58.Bitcoin.Encode(tx.BlockHash);
        ulong? blockHeight = null;
        for (ulong h = _height; h + ValidityPeriod + 1 > _height && h > 0; h--)
        {
            if (BlockHash(h) == blockHash)
            {
                blockHeight = h;
                break;
            }
        }

        if (blockHeight is null)
        {
            return InvalidTx(id, "\"Expired\"");
        }

        if (tx.Nonce <= akNonce)
        {
            return InvalidTx(id, string.Concat("{\"InvalidNonce\":{\"tx_nonce\":", Convert.ToString((tx.Nonce), CultureInfo.InvariantCulture), ",\"ak_nonce\":", Convert.ToString((akNonce), CultureInfo.InvariantCulture), "}}"));
        }

        ulong upper = _height * 1_000_000;
        if (tx.Nonce >= upper)
        {
            return InvalidTx(id, string.Concat("{\"NonceTooLarge\":{\"tx_nonce\":", Convert.ToString((tx.Nonce), CultureInfo.InvariantCulture), ",\"upper_bound\":", Convert.ToString((upper), CultureInfo.InvariantCulture), "}}"));
        }

        UInt128 cost = Fee;
        foreach (NearAction a in tx.Actions)
        {
            cost += a switch
            {
                TransferAction t => t.Deposit,
                FunctionCallAction f => f.Deposit,
                _ => 0,
            };
        }

        if (balance < cost)
        {
            return InvalidTx(id, string.Concat("{\"NotEnoughBalance\":{\"signer_id\":\"", Convert.ToString((tx.SignerId), CultureInfo.InvariantCulture), "\",\"balance\":\"", Convert.ToString((balance), CultureInfo.InvariantCulture), "\",\"cost\":\"", Convert.ToString((cost), CultureInfo.InvariantCulture), "\"}}"));
        }

        // Valid: the nonce is consumed and the fee charged whatever the actions do.
        _accessKeys[(tx.SignerId, tx.PublicKey.ToString())] = tx.Nonce;
        _balances[tx.SignerId] = balance - cost;
        string? failure = Execute(tx);
        string status = failure is null ? """{"SuccessValue":""}""" : string.Concat("{\"Failure\":", Convert.ToString((failure), CultureInfo.InvariantCulture), "}");
        string outcome = string.Concat("{\"final_execution_status\":\"FINAL\",\"status\":", Convert.ToString((status), CultureInfo.InvariantCulture), ",\"transaction\":{\"signer_id\":\"", Convert.ToString((tx.SignerId), CultureInfo.InvariantCulture), "\",\"public_key\":\"", Convert.ToString((tx.PublicKey), CultureInfo.InvariantCulture), "\",\"nonce\":", Convert.ToString((tx.Nonce), CultureInfo.InvariantCulture), ",\"receiver_id\":\"", Convert.ToString((tx.ReceiverId), CultureInfo.InvariantCulture), "\",\"actions\":[],\"signature\":\"ed25519:", Convert.ToString((SimpleBase.Base58.Bitcoin.Encode(signed.Signature)), CultureInfo.InvariantCulture), "\",\"hash\":\"", Convert.ToString((hash), CultureInfo.InvariantCulture), "\"},\"transaction_outcome\":{\"proof\":[],\"block_hash\":\"", Convert.ToString((BlockHash(_height)), CultureInfo.InvariantCulture), "\",\"id\":\"", Convert.ToString((hash), CultureInfo.InvariantCulture), "\",\"outcome\":{\"logs\":[],\"receipt_ids\":[],\"gas_burnt\":223182562500,\"tokens_burnt\":\"", Convert.ToString((Fee), CultureInfo.InvariantCulture), "\",\"executor_id\":\"", Convert.ToString((tx.SignerId), CultureInfo.InvariantCulture), "\",\"status\":{\"SuccessReceiptId\":\"", Convert.ToString((hash), CultureInfo.InvariantCulture), "\"}}},\"receipts_outcome\":[]}");
        _outcomes[hash] = outcome;
        _executions[hash] = _executions.GetValueOrDefault(hash) + 1;
        return AfterExecute(id, fault, outcome);
    }

    private (int, string?) AfterExecute(string id, NearFault? fault, string outcome) => fault switch
    {
        NearFault.TimeoutAfterExecute => Timeout(id),
        NearFault.DropAfterExecute => (0, null),
        _ => Ok(id, outcome),
    };

    /// <summary>Applies the actions; returns the failure JSON or null. A failed receipt refunds attached deposits, like NEAR.</summary>
    private string? Execute(NearTransaction tx)
    {
        var ftPending = new List<(string From, string To, UInt128 Amount, string Memo)>();
        var nativePending = new List<(string To, UInt128 Amount)>();
        for (int i = 0; i < tx.Actions.Count; i++)
        {
            switch (tx.Actions[i])
            {
                case TransferAction t:
                    nativePending.Add((tx.ReceiverId, t.Deposit));
                    break;
                case FunctionCallAction f when tx.ReceiverId == TokenContract && f.MethodName == "ft_transfer":
                    {
                        if (f.Deposit != 1)
                        {
                            return ActionError(i, "Requires attached deposit of exactly 1 yoctoNEAR");
                        }

                        using JsonDocument a = JsonDocument.Parse(f.Args);
                        string to = a.RootElement.GetProperty("receiver_id").GetString()!;
                        UInt128 amount = UInt128.Parse(a.RootElement.GetProperty("amount").GetString()!, CultureInfo.InvariantCulture);
                        string memo = a.RootElement.TryGetProperty("memo", out JsonElement m) ? m.GetString() ?? "" : "";
                        if (!_ftRegistered.Contains(to))
                        {
                            return ActionError(i, $"The account {to} is not registered");
                        }

                        UInt128 already = ftPending.Where(x => x.From == tx.SignerId).Aggregate(UInt128.Zero, (s, x) => s + x.Amount);
                        if (FtBalance(tx.SignerId) < already + amount)
                        {
                            return ActionError(i, "The account doesn't have enough balance");
                        }

                        ftPending.Add((tx.SignerId, to, amount, memo));
                        break;
                    }

                case FunctionCallAction f when tx.ReceiverId == AnchorContract:
                    _anchors.Add($"{f.MethodName}:{Encoding.UTF8.GetString(f.Args)}");
                    break;
                default:
                    return ActionError(i, "MethodNotFound");
            }
        }

        // All actions of a transaction apply together (one receipt).
        foreach ((string to, UInt128 amount) in nativePending)
        {
            _balances[to] = (_balances.TryGetValue(to, out UInt128 b) ? b : 0) + amount;
            _nativeTransfers.Add((to, amount));
        }

        foreach ((string from, string to, UInt128 amount, string memo) in ftPending)
        {
            _ftBalances[from] -= amount;
            _ftBalances[to] = FtBalance(to) + amount;
            _ftTransfers.Add((to, amount, memo));
        }

        return null;
    }

    private string ActionError(int index, string message)
    {
        return string.Concat("{\"ActionError\":{\"index\":", Convert.ToString((index), CultureInfo.InvariantCulture), ",\"kind\":{\"FunctionCallError\":{\"ExecutionError\":", Convert.ToString((JsonSerializer.Serialize("Smart contract panicked: " + message)), CultureInfo.InvariantCulture), "}}}}");
    }

    private static (int, string?) Ok(string id, string result) => (200, string.Concat("{\"jsonrpc\":\"2.0\",\"result\":", Convert.ToString((result), CultureInfo.InvariantCulture), ",\"id\":\"", Convert.ToString((id), CultureInfo.InvariantCulture), "\"}"));

    private static (int, string?) Timeout(string id) =>
        (408, string.Concat("{\"jsonrpc\":\"2.0\",\"error\":{\"name\":\"TIMEOUT_ERROR\",\"cause\":{\"name\":\"TIMEOUT_ERROR\",\"info\":{}},\"code\":-32000,\"message\":\"Server error\",\"data\":\"Timeout\"},\"id\":\"", Convert.ToString((id), CultureInfo.InvariantCulture), "\"}"));

    // The shape nearcore returns (cause.info and the legacy data both carry the InvalidTxError).
    private static (int, string?) InvalidTx(string id, string invalidTxError) =>
        (200, string.Concat("{\"jsonrpc\":\"2.0\",\"error\":{\"name\":\"HANDLER_ERROR\",\"cause\":{\"name\":\"INVALID_TRANSACTION\",\"info\":{\"TxExecutionError\":{\"InvalidTxError\":", Convert.ToString((invalidTxError), CultureInfo.InvariantCulture), "}}},\"code\":-32000,\"message\":\"Server error\",\"data\":{\"TxExecutionError\":{\"InvalidTxError\":", Convert.ToString((invalidTxError), CultureInfo.InvariantCulture), "}}},\"id\":\"", Convert.ToString((id), CultureInfo.InvariantCulture), "\"}"));

    private static (int, string?) Error(string id, int http, string name, string cause, string info, string data) =>
        (http, string.Concat("{\"jsonrpc\":\"2.0\",\"error\":{\"name\":\"", Convert.ToString((name), CultureInfo.InvariantCulture), "\",\"cause\":{\"name\":\"", Convert.ToString((cause), CultureInfo.InvariantCulture), "\",\"info\":", Convert.ToString((info), CultureInfo.InvariantCulture), "},\"code\":-32000,\"message\":\"Server error\",\"data\":", Convert.ToString((data), CultureInfo.InvariantCulture), "},\"id\":\"", Convert.ToString((id), CultureInfo.InvariantCulture), "\"}"));
}
