using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using NearML.Core;

namespace NearML.Ledger.Tests;

/// <summary>What the test server answers to the next call of a method, instead of (or after) doing the honest thing.</summary>
public enum NearFault
{
    /// <summary>Accept the transaction and wait for the requested level as usual, then answer TIMEOUT_ERROR (HTTP 408).</summary>
    TimeoutAfterExecute,

    /// <summary>Answer TIMEOUT_ERROR without accepting the transaction (or, for a read, without answering it).</summary>
    TimeoutBeforeExecute,

    /// <summary>Accept the transaction and wait for the requested level, then drop the connection without an answer.</summary>
    DropAfterExecute,

    /// <summary>Answer INVALID_TRANSACTION / NotEnoughBalance, accepting nothing (a refusal that names no nonce or expiry).</summary>
    NotEnoughBalance,

    /// <summary>Answer HTTP 503 with an HTML body, accepting nothing.</summary>
    ServiceUnavailable,

    /// <summary>Answer INVALID_TRANSACTION / Expired, accepting nothing (a node that judges the block hash too old).</summary>
    Expired,

    /// <summary>Answer INTERNAL_ERROR (HTTP 500), accepting nothing.</summary>
    InternalError,

    /// <summary>Put the transaction into the pool (it is included by later blocks), then answer TIMEOUT_ERROR at once.</summary>
    AcceptThenTimeout,

    /// <summary>Put the transaction into the pool, then drop the connection at once.</summary>
    AcceptThenDrop,

    /// <summary>Put the transaction into the pool, then answer REQUEST_ROUTED (nearcore: forwarded, outcome not known).</summary>
    RequestRouted,

    /// <summary>Answer INVALID_TRANSACTION / InvalidNonce with the key's current nonce, accepting nothing (a node validating re-sent bytes against state).</summary>
    InvalidNonce,

    /// <summary>Answer DOES_NOT_TRACK_SHARD, accepting nothing.</summary>
    DoesNotTrackShard,

    /// <summary>Drop the connection, accepting nothing.</summary>
    Drop,

    /// <summary>Accept the transaction, then answer with the hash as a plain-string result (the broadcast_tx_async shape).</summary>
    PlainStringResult,
}

/// <summary>
/// An in-process NEAR node behind a real JSON-RPC server on loopback (<see cref="HttpListener"/>), modelling nearcore's
/// semantics: real ed25519 signatures over SHA-256 of the Borsh bytes; access-key nonces (above the key's nonce, below
/// height × 10^6) checked when a transaction is submitted and again when a block includes it; block-hash expiry
/// (<see cref="ValidityPeriod"/> blocks); a transaction pool that the next block drains; receipts executed
/// <see cref="ReceiptDelay"/> blocks after inclusion; Doomslug-style finality <see cref="FinalityLag"/> blocks behind the
/// head; and the six <c>wait_until</c> / <c>final_execution_status</c> levels (NONE, INCLUDED, EXECUTED_OPTIMISTIC,
/// INCLUDED_FINAL, EXECUTED, FINAL). A known transaction is never executed twice; <c>tx</c> answers UNKNOWN_TRANSACTION
/// for anything not in a block (as nearcore, which does not look into its pool). One block is produced per request
/// (unless <see cref="Frozen"/>), and a waiting send or status call produces blocks until its level is reached or
/// <see cref="NodeTimeoutBlocks"/> pass (then TIMEOUT_ERROR). Faults and raw answers can be injected per method.
/// </summary>
public sealed class NearRpcTestServer : IDisposable
{
    public static readonly UInt128 Fee = UInt128.Parse("100000000000000000000", CultureInfo.InvariantCulture); // 1e20 yocto per transaction

    private static readonly string[] SendMethods = ["send_tx", "broadcast_tx_commit", "broadcast_tx_async"];

    private readonly HttpListener _listener = new();
    private readonly Lock _gate = new();
    private readonly Dictionary<string, UInt128> _balances = new();
    private readonly Dictionary<(string Account, string Key), List<(ulong Height, ulong Nonce)>> _accessKeys = new();
    private readonly Dictionary<string, UInt128> _ftBalances = new();
    private readonly HashSet<string> _ftRegistered = new();
    private readonly Dictionary<string, ChainTx> _chain = new();
    private readonly List<SignedNearTransaction> _pool = new();
    private readonly Dictionary<string, int> _executions = new();
    private readonly Dictionary<string, Queue<NearFault>> _faults = new();
    private readonly Dictionary<string, Queue<(int Status, string Body, TimeSpan Delay)>> _raw = new();
    private readonly List<string> _anchors = new();
    private readonly List<(string Receiver, UInt128 Amount, string Memo)> _ftTransfers = new();
    private readonly List<(string Receiver, UInt128 Amount)> _nativeTransfers = new();
    private readonly List<string> _failures = new();
    private readonly List<string> _requests = new();
    private readonly Task _loop;
    private ulong _height = 1000;
    private ulong _final = 1000;

    public NearRpcTestServer(string tokenContract = "token.testnet", string anchorContract = "anchor.testnet", ulong validityPeriod = 100)
    {
        TokenContract = tokenContract;
        AnchorContract = anchorContract;
        ValidityPeriod = validityPeriod;
        for (int attempt = 0; ; attempt++)
        {
            // The port is free when picked but may be taken before Start (tests run in parallel): pick another.
            Endpoint = new Uri($"http://127.0.0.1:{FreePort()}/");
            _listener.Prefixes.Add(Endpoint.ToString());
            try
            {
                _listener.Start();
                break;
            }
            catch (HttpListenerException) when (attempt < 10)
            {
                _listener.Prefixes.Clear();
            }
        }

        _loop = Task.Run(LoopAsync);
    }

    public Uri Endpoint { get; }

    public string TokenContract { get; }

    public string AnchorContract { get; }

    public ulong ValidityPeriod { get; }

    /// <summary>Gets or sets how many blocks after inclusion a transaction's receipts execute (its refund one block later).</summary>
    public ulong ReceiptDelay { get; set; } = 1;

    /// <summary>Gets or sets how far finality trails the head.</summary>
    public ulong FinalityLag { get; set; } = 2;

    /// <summary>Gets or sets a value indicating whether finality is stalled (the head still advances).</summary>
    public bool FinalityStalled { get; set; }

    /// <summary>Gets or sets a value indicating whether no blocks are produced at all.</summary>
    public bool Frozen { get; set; }

    /// <summary>Gets or sets a value indicating whether a wait that times out answers with the level reached so far (as some RPC providers do) instead of TIMEOUT_ERROR.</summary>
    public bool AnswerCurrentLevelOnTimeout { get; set; }

    /// <summary>Gets or sets how many blocks a waiting call lets pass before it answers TIMEOUT_ERROR.</summary>
    public int NodeTimeoutBlocks { get; set; } = 20;

    /// <summary>Gets or sets a callback run (under the server's lock) after each request is processed, before its answer is written.</summary>
    public Action<string>? AfterRequest { get; set; }

    public ulong Height { get { lock (_gate) { return _height; } } }

    public ulong FinalHeight { get { lock (_gate) { return _final; } } }

    public int RequestCount { get; private set; }

    public void AddAccount(string account, UInt128 balance, NearPublicKey? key = null, ulong? keyNonce = null)
    {
        lock (_gate)
        {
            _balances[account] = balance;
            if (key is not null)
            {
                _accessKeys[(account, key.ToString())] = [(0, keyNonce ?? _height * 1_000_000)]; // nearcore seeds new keys with height × 10^6
            }
        }
    }

    /// <summary>Another client's transaction consumed nonces of the key in the current head block (final after <see cref="FinalityLag"/> blocks).</summary>
    public void SetAccessKeyNonce(string account, NearPublicKey key, ulong nonce)
    {
        lock (_gate)
        {
            _accessKeys[(account, key.ToString())].Add((_height, nonce));
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

    /// <summary>Gets the body of every request received, in order.</summary>
    public IReadOnlyList<string> Requests { get { lock (_gate) { return _requests.ToList(); } } }

    /// <summary>Gets the exceptions this server threw while handling requests (a bug in the server; expected empty).</summary>
    public IReadOnlyList<string> Failures { get { lock (_gate) { return _failures.ToList(); } } }

    public int PoolSize { get { lock (_gate) { return _pool.Count; } } }

    /// <summary>Gets the level a transaction has reached: <see langword="null"/> when no block includes it.</summary>
    public TxExecutionStatus? LevelOf(string hash)
    {
        lock (_gate)
        {
            return _chain.TryGetValue(hash, out ChainTx? t) ? Level(t) : null;
        }
    }

    /// <summary>Queues faults for the next transaction submissions (send_tx, broadcast_tx_commit, broadcast_tx_async).</summary>
    public void Inject(params NearFault[] faults) => InjectFor("send", faults);

    /// <summary>Queues faults for the next calls of <paramref name="method"/> ("send" for any submission method).</summary>
    public void InjectFor(string method, params NearFault[] faults)
    {
        lock (_gate)
        {
            if (!_faults.TryGetValue(method, out Queue<NearFault>? q))
            {
                _faults[method] = q = new Queue<NearFault>();
            }

            foreach (NearFault f in faults)
            {
                q.Enqueue(f);
            }
        }
    }

    /// <summary>Forgets every queued fault and raw answer.</summary>
    public void ClearFaults()
    {
        lock (_gate)
        {
            _faults.Clear();
            _raw.Clear();
        }
    }

    /// <summary>Gets the key's nonce in the head state.</summary>
    public ulong AccessKeyNonce(string account, NearPublicKey key)
    {
        lock (_gate)
        {
            return CurrentNonce(account, key);
        }
    }

    /// <summary>Answers the next call of <paramref name="method"/> with exactly these bytes ("{id}" is replaced by the request id), after an optional delay.</summary>
    public void InjectRaw(string method, int status, string body, TimeSpan delay = default)
    {
        lock (_gate)
        {
            if (!_raw.TryGetValue(method, out Queue<(int, string, TimeSpan)>? q))
            {
                _raw[method] = q = new Queue<(int, string, TimeSpan)>();
            }

            q.Enqueue((status, body, delay));
        }
    }

    /// <summary>Produces <paramref name="blocks"/> blocks (including pool transactions and executing due receipts).</summary>
    public void AdvanceBlocks(ulong blocks)
    {
        lock (_gate)
        {
            for (ulong i = 0; i < blocks; i++)
            {
                ProduceBlock();
            }
        }
    }

    public void Dispose()
    {
        try
        {
            _listener.Close(); // stops and releases the prefix (Stop then Close can re-bind and fail with "address in use")
        }
        catch (HttpListenerException)
        {
        }

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

    /// <summary>
    /// A client for this server that opens a new connection per request. HttpListener closes a kept-alive connection after
    /// an injected drop in a way the client's pool can race with: the next, honest request then fails with "response ended
    /// prematurely" on a reused connection (seen in about one run in four of the status matrix). Real nodes are reached
    /// through the retrying client; these tests use <c>MaxRetries = 0</c> so that every injected fault bites, hence no reuse.
    /// </summary>
    public static HttpClient CreateClient(TimeSpan timeout) =>
        new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.Zero }) { Timeout = timeout };

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

            _ = Task.Run(() => HandleAsync(ctx));
        }
    }

    private async Task HandleAsync(HttpListenerContext ctx)
    {
        try
        {
            using var reader = new StreamReader(ctx.Request.InputStream, Encoding.UTF8);
            string body = await reader.ReadToEndAsync();
            (int status, string? json, TimeSpan delay) = Process(body);
            if (delay > TimeSpan.Zero)
            {
                await Task.Delay(delay);
            }

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
        catch (Exception ex)
        {
            lock (_gate)
            {
                _failures.Add(ex.ToString()); // a bug in this server: tests assert there is none
            }

            try
            {
                ctx.Response.Abort();
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }

    private (int Status, string? Json, TimeSpan Delay) Process(string body)
    {
        using JsonDocument doc = JsonDocument.Parse(body);
        JsonElement root = doc.RootElement;
        string id = root.TryGetProperty("id", out JsonElement idEl) ? idEl.ToString() : "dontcare";
        string method = root.GetProperty("method").GetString()!;
        JsonElement p = root.GetProperty("params");
        lock (_gate)
        {
            RequestCount++;
            _requests.Add(body);
            ProduceBlock(); // one block per request
            try
            {
                if (_raw.TryGetValue(method, out Queue<(int Status, string Body, TimeSpan Delay)>? raw) && raw.Count > 0)
                {
                    (int rs, string rb, TimeSpan rd) = raw.Dequeue();
                    return (rs, rb.Replace("{id}", id, StringComparison.Ordinal), rd);
                }

                bool isSend = SendMethods.Contains(method);
                NearFault? fault = _faults.TryGetValue(isSend ? "send" : method, out Queue<NearFault>? q) && q.Count > 0 ? q.Dequeue() : null;
                (int status, string? json) = method switch
                {
                    "block" => Ok(id, string.Concat("{\"author\":\"test.near\",\"header\":{\"height\":", Convert.ToString((_final), CultureInfo.InvariantCulture), ",\"hash\":\"", Convert.ToString((BlockHash(_final)), CultureInfo.InvariantCulture), "\",\"prev_hash\":\"", Convert.ToString((BlockHash(_final - 1)), CultureInfo.InvariantCulture), "\",\"timestamp\":", Convert.ToString((_final * 1_000_000_000), CultureInfo.InvariantCulture), ",\"chunks_included\":1},\"chunks\":[]}")),
                    "query" => ReadFault(id, fault) ?? Query(id, p),
                    "send_tx" => Send(id, p.GetProperty("signed_tx_base64").GetString()!, ParseLevel(p, TxExecutionStatus.ExecutedOptimistic), fault, plainHash: false),
                    "broadcast_tx_commit" => Send(id, p[0].GetString()!, TxExecutionStatus.ExecutedOptimistic, fault, plainHash: false),
                    "broadcast_tx_async" => Send(id, p[0].GetString()!, TxExecutionStatus.None, fault, plainHash: true),
                    "tx" => ReadFault(id, fault) ?? Status(id, p.GetProperty("tx_hash").GetString()!, ParseLevel(p, TxExecutionStatus.ExecutedOptimistic)),
                    _ => Error(id, 200, "REQUEST_VALIDATION_ERROR", "METHOD_NOT_FOUND", string.Concat("{\"method_name\":\"", Convert.ToString((method), CultureInfo.InvariantCulture), "\"}"), "\"Method not found\""),
                };
                AfterRequest?.Invoke(method);
                return (status, json, TimeSpan.Zero);
            }
            catch (InvalidDataFormatException ex)
            {
                return AsTriple(Error(id, 200, "REQUEST_VALIDATION_ERROR", "PARSE_ERROR", string.Concat("{\"error_message\":", Convert.ToString((JsonSerializer.Serialize(ex.Message)), CultureInfo.InvariantCulture), "}"), JsonSerializer.Serialize(ex.Message)));
            }
        }
    }

    private static (int, string?, TimeSpan) AsTriple((int S, string? J) r) => (r.S, r.J, TimeSpan.Zero);

    private static TxExecutionStatus ParseLevel(JsonElement p, TxExecutionStatus fallback) =>
        p.ValueKind == JsonValueKind.Object && p.TryGetProperty("wait_until", out JsonElement w) ? w.GetString() switch
        {
            "NONE" => TxExecutionStatus.None,
            "INCLUDED" => TxExecutionStatus.Included,
            "EXECUTED_OPTIMISTIC" => TxExecutionStatus.ExecutedOptimistic,
            "INCLUDED_FINAL" => TxExecutionStatus.IncludedFinal,
            "EXECUTED" => TxExecutionStatus.Executed,
            "FINAL" => TxExecutionStatus.Final,
            _ => throw new InvalidDataFormatException("wait_until", 0, $"unknown wait_until {w}"),
        } : fallback;

    /// <summary>A fault on a read (query, tx) answers without looking at the chain; null when the read is answered honestly.</summary>
    private (int, string?)? ReadFault(string id, NearFault? fault) => fault switch
    {
        null => null,
        NearFault.TimeoutBeforeExecute or NearFault.TimeoutAfterExecute or NearFault.AcceptThenTimeout => Timeout(id),
        NearFault.ServiceUnavailable => (503, "<html>503 Service Unavailable</html>"),
        NearFault.InternalError => Error(id, 500, "INTERNAL_ERROR", "INTERNAL_ERROR", """{"error_message":"injected"}""", "\"injected\""),
        NearFault.DoesNotTrackShard => Error(id, 200, "HANDLER_ERROR", "UNAVAILABLE_SHARD", "{}", "\"injected\""),
        NearFault.Drop or NearFault.DropAfterExecute or NearFault.AcceptThenDrop => (0, null),
        _ => throw new InvalidOperationException($"{fault} is not a read fault"),
    };

    /// <summary>Produces one block: includes valid pool transactions (lowest nonce first), executes due receipts, advances finality.</summary>
    private void ProduceBlock()
    {
        if (Frozen)
        {
            return;
        }

        ulong prev = _height;
        _height++;
        foreach (SignedNearTransaction signed in _pool.OrderBy(t => t.Transaction.Nonce).ToList())
        {
            _pool.Remove(signed);
            string hash = signed.HashBase58;
            if (_chain.ContainsKey(hash) || Validate(signed, prev) is not null)
            {
                continue; // already included, or invalid on the state this block builds on: dropped, as a chunk producer does
            }

            NearTransaction tx = signed.Transaction;
            _accessKeys[(tx.SignerId, tx.PublicKey.ToString())].Add((_height, tx.Nonce));
            _balances[tx.SignerId] -= Cost(tx);
            _chain[hash] = new ChainTx(signed, _height);
        }

        foreach (ChainTx t in _chain.Values.Where(t => t.ExecutedAt is null && t.IncludedAt + ReceiptDelay <= _height))
        {
            t.Failure = Execute(t.Signed.Transaction);
            t.ExecutedAt = _height;
            _executions[t.Hash] = _executions.GetValueOrDefault(t.Hash) + 1;
        }

        if (!FinalityStalled && _height > FinalityLag)
        {
            _final = Math.Max(_final, _height - FinalityLag);
        }
    }

    private TxExecutionStatus Level(ChainTx t)
    {
        bool executed = t.ExecutedAt is not null;
        bool includedFinal = _final >= t.IncludedAt;
        if (includedFinal && executed && _final >= t.ExecutedAt!.Value + 1 && _height >= t.ExecutedAt.Value + 1)
        {
            return TxExecutionStatus.Final; // receipts and refund executed, all in final blocks
        }

        if (includedFinal && executed)
        {
            return TxExecutionStatus.Executed;
        }

        if (includedFinal)
        {
            return TxExecutionStatus.IncludedFinal;
        }

        return executed ? TxExecutionStatus.ExecutedOptimistic : TxExecutionStatus.Included;
    }

    private static UInt128 Cost(NearTransaction tx)
    {
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

        return cost;
    }

    private ulong CurrentNonce(string account, NearPublicKey key) => _accessKeys[(account, key.ToString())][^1].Nonce;

    /// <summary>nearcore's validity checks against the state after block <paramref name="atHeight"/>; the InvalidTxError JSON, or null.</summary>
    private string? Validate(SignedNearTransaction signed, ulong atHeight)
    {
        NearTransaction tx = signed.Transaction;
        if (!signed.Verify())
        {
            return "\"InvalidSignature\"";
        }

        if (!_balances.TryGetValue(tx.SignerId, out UInt128 balance))
        {
            return string.Concat("{\"SignerDoesNotExist\":{\"signer_id\":\"", Convert.ToString((tx.SignerId), CultureInfo.InvariantCulture), "\"}}");
        }

        if (!_accessKeys.ContainsKey((tx.SignerId, tx.PublicKey.ToString())))
        {
            return string.Concat("{\"InvalidAccessKeyError\":{\"AccessKeyNotFound\":{\"account_id\":\"", Convert.ToString((tx.SignerId), CultureInfo.InvariantCulture), "\",\"public_key\":\"", Convert.ToString((tx.PublicKey), CultureInfo.InvariantCulture), "\"}}}");
        }

        string blockHash = SimpleBase.Base58.Bitcoin.Encode(tx.BlockHash);
        bool recent = false;
        for (ulong h = atHeight; h + ValidityPeriod >= atHeight && h > 0; h--)
        {
            if (BlockHash(h) == blockHash)
            {
                recent = true;
                break;
            }
        }

        if (!recent)
        {

            return "\"Expired\"";
        }

        ulong akNonce = CurrentNonce(tx.SignerId, tx.PublicKey);
        if (tx.Nonce <= akNonce)
        {
            return string.Concat("{\"InvalidNonce\":{\"tx_nonce\":", Convert.ToString((tx.Nonce), CultureInfo.InvariantCulture), ",\"ak_nonce\":", Convert.ToString((akNonce), CultureInfo.InvariantCulture), "}}");
        }

        ulong upper = atHeight * 1_000_000;
        if (tx.Nonce >= upper)
        {
            return string.Concat("{\"NonceTooLarge\":{\"tx_nonce\":", Convert.ToString((tx.Nonce), CultureInfo.InvariantCulture), ",\"upper_bound\":", Convert.ToString((upper), CultureInfo.InvariantCulture), "}}");
        }

        UInt128 cost = Cost(tx);
        if (balance < cost)
        {
            return string.Concat("{\"NotEnoughBalance\":{\"signer_id\":\"", Convert.ToString((tx.SignerId), CultureInfo.InvariantCulture), "\",\"balance\":\"", Convert.ToString((balance), CultureInfo.InvariantCulture), "\",\"cost\":\"", Convert.ToString((cost), CultureInfo.InvariantCulture), "\"}}");
        }

        return null;
    }

    private (int, string?) Status(string id, string hash, TxExecutionStatus waitUntil)
    {
        if (!_chain.ContainsKey(hash))
        {
            return Error(id, 200, "HANDLER_ERROR", "UNKNOWN_TRANSACTION", string.Concat("{\"requested_transaction_hash\":\"", Convert.ToString((hash), CultureInfo.InvariantCulture), "\"}"), $"\"Transaction {hash} doesn't exist\"");
        }

        return WaitFor(id, hash, waitUntil);
    }

    /// <summary>Lets blocks pass until the transaction reaches <paramref name="waitUntil"/>, then answers its outcome at the level reached; TIMEOUT_ERROR after <see cref="NodeTimeoutBlocks"/>.</summary>
    private (int, string?) WaitFor(string id, string hash, TxExecutionStatus waitUntil)
    {
        for (int i = 0; ; i++)
        {
            if (_chain.TryGetValue(hash, out ChainTx? t))
            {
                TxExecutionStatus level = Level(t);
                if (level >= waitUntil)
                {
                    return Ok(id, Outcome(t, level));
                }
            }
            else if (waitUntil == TxExecutionStatus.None && _pool.Any(x => x.HashBase58 == hash))
            {
                return Ok(id, "{\"final_execution_status\":\"NONE\"}");
            }
            else if (!_pool.Any(x => x.HashBase58 == hash))
            {
                return Timeout(id); // dropped from the pool: nearcore's wait ends in a timeout
            }

            if (i >= NodeTimeoutBlocks || Frozen)
            {
                // nearcore answers TIMEOUT_ERROR; some RPC providers answer with the level reached so far instead.
                return AnswerCurrentLevelOnTimeout && _chain.TryGetValue(hash, out ChainTx? reached) ? Ok(id, Outcome(reached, Level(reached))) : Timeout(id);
            }

            ProduceBlock();
        }
    }

    private (int, string?) Send(string id, string base64, TxExecutionStatus waitUntil, NearFault? fault, bool plainHash)
    {
        SignedNearTransaction signed = SignedNearTransaction.Parse(Convert.FromBase64String(base64));
        NearTransaction tx = signed.Transaction;
        string hash = signed.HashBase58;
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
            case NearFault.DoesNotTrackShard:
                return Error(id, 200, "HANDLER_ERROR", "DOES_NOT_TRACK_SHARD", "{}", "\"Node does not track the shard\"");
            case NearFault.Drop:
                return (0, null);
            case NearFault.NotEnoughBalance:
                return InvalidTx(id, string.Concat("{\"NotEnoughBalance\":{\"signer_id\":\"", tx.SignerId, "\",\"balance\":\"0\",\"cost\":\"", Convert.ToString(Cost(tx), CultureInfo.InvariantCulture), "\"}}"));
            case NearFault.InvalidNonce:
                {
                    ulong ak = _accessKeys.TryGetValue((tx.SignerId, tx.PublicKey.ToString()), out var history) ? history[^1].Nonce : 0;
                    return InvalidTx(id, string.Concat("{\"InvalidNonce\":{\"tx_nonce\":", Convert.ToString((tx.Nonce), CultureInfo.InvariantCulture), ",\"ak_nonce\":", Convert.ToString((ak), CultureInfo.InvariantCulture), "}}"));
                }
        }

        // A transaction the chain already has is never executed again: its outcome is returned (after waiting for the level).
        if (!_chain.ContainsKey(hash) && !_pool.Any(x => x.HashBase58 == hash))
        {
            if (Validate(signed, _height) is { } invalid)
            {
                return InvalidTx(id, invalid);
            }

            _pool.Add(signed);
        }

        switch (fault)
        {
            case NearFault.AcceptThenTimeout:
                return Timeout(id);
            case NearFault.AcceptThenDrop:
                return (0, null);
            case NearFault.RequestRouted:
                return Error(id, 200, "HANDLER_ERROR", "REQUEST_ROUTED", string.Concat("{\"transaction_hash\":\"", hash, "\"}"), "\"routed\"");
            case NearFault.PlainStringResult:
                return Ok(id, $"\"{hash}\"");
        }

        if (plainHash)
        {
            return Ok(id, $"\"{hash}\"");
        }

        (int status, string? json) = WaitFor(id, hash, waitUntil);
        return fault switch
        {
            NearFault.TimeoutAfterExecute => Timeout(id),
            NearFault.DropAfterExecute => (0, null),
            _ => (status, json),
        };
    }

    private string Outcome(ChainTx t, TxExecutionStatus level)
    {
        string levelName = NearRpcClientLevel(level);
        if (t.ExecutedAt is null)
        {
            return string.Concat("{\"final_execution_status\":\"", levelName, "\"}"); // included, receipts not executed: no outcome yet
        }

        NearTransaction tx = t.Signed.Transaction;
        string status = t.Failure is null ? """{"SuccessValue":""}""" : string.Concat("{\"Failure\":", Convert.ToString((t.Failure), CultureInfo.InvariantCulture), "}");
        return string.Concat("{\"final_execution_status\":\"", levelName, "\",\"status\":", Convert.ToString((status), CultureInfo.InvariantCulture), ",\"transaction\":{\"signer_id\":\"", Convert.ToString((tx.SignerId), CultureInfo.InvariantCulture), "\",\"public_key\":\"", Convert.ToString((tx.PublicKey), CultureInfo.InvariantCulture), "\",\"nonce\":", Convert.ToString((tx.Nonce), CultureInfo.InvariantCulture), ",\"receiver_id\":\"", Convert.ToString((tx.ReceiverId), CultureInfo.InvariantCulture), "\",\"actions\":[],\"signature\":\"ed25519:", Convert.ToString((SimpleBase.Base58.Bitcoin.Encode(t.Signed.Signature)), CultureInfo.InvariantCulture), "\",\"hash\":\"", Convert.ToString((t.Hash), CultureInfo.InvariantCulture), "\"},\"transaction_outcome\":{\"proof\":[],\"block_hash\":\"", Convert.ToString((BlockHash(t.IncludedAt)), CultureInfo.InvariantCulture), "\",\"id\":\"", Convert.ToString((t.Hash), CultureInfo.InvariantCulture), "\",\"outcome\":{\"logs\":[],\"receipt_ids\":[],\"gas_burnt\":223182562500,\"tokens_burnt\":\"", Convert.ToString((Fee), CultureInfo.InvariantCulture), "\",\"executor_id\":\"", Convert.ToString((tx.SignerId), CultureInfo.InvariantCulture), "\",\"status\":{\"SuccessReceiptId\":\"", Convert.ToString((t.Hash), CultureInfo.InvariantCulture), "\"}}},\"receipts_outcome\":[]}");
    }

    private static string NearRpcClientLevel(TxExecutionStatus level) => level switch
    {
        TxExecutionStatus.None => "NONE",
        TxExecutionStatus.Included => "INCLUDED",
        TxExecutionStatus.ExecutedOptimistic => "EXECUTED_OPTIMISTIC",
        TxExecutionStatus.IncludedFinal => "INCLUDED_FINAL",
        TxExecutionStatus.Executed => "EXECUTED",
        _ => "FINAL",
    };

    private sealed class ChainTx(SignedNearTransaction signed, ulong includedAt)
    {
        public SignedNearTransaction Signed { get; } = signed;

        public string Hash { get; } = signed.HashBase58;

        public ulong IncludedAt { get; } = includedAt;

        public ulong? ExecutedAt { get; set; }

        public string? Failure { get; set; }
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
                    if (!_accessKeys.TryGetValue((account, key), out List<(ulong Height, ulong Nonce)>? history))
                    {
                        return Error(id, 200, "HANDLER_ERROR", "UNKNOWN_ACCESS_KEY", string.Concat("{\"public_key\":\"", Convert.ToString((key), CultureInfo.InvariantCulture), "\",\"block_height\":", Convert.ToString((_height), CultureInfo.InvariantCulture), ",\"block_hash\":\"", Convert.ToString((BlockHash(_height)), CultureInfo.InvariantCulture), "\"}"), "\"access key does not exist\"");
                    }

                    // finality "final": the nonce as of the last final block
                    ulong nonce = history.Last(h => h.Height <= _final).Nonce;
                    return Ok(id, string.Concat("{\"nonce\":", Convert.ToString((nonce), CultureInfo.InvariantCulture), ",\"permission\":\"FullAccess\",\"block_height\":", Convert.ToString((_final), CultureInfo.InvariantCulture), ",\"block_hash\":\"", Convert.ToString((BlockHash(_final)), CultureInfo.InvariantCulture), "\"}"));
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
