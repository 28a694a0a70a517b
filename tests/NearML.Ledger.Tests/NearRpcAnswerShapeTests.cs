using System.Security.Cryptography;

namespace NearML.Ledger.Tests;

/// <summary>
/// Every shape of answer a NEAR RPC server (or what stands in front of it) can give, served over loopback HTTP by the
/// test node, maps to one of the client's typed results or exceptions (NearRpcExceptions.cs), never to another exception.
/// Error names and causes are nearcore's (docs.near.org/api/rpc/errors).
/// </summary>
[TestClass]
public sealed class NearRpcAnswerShapeTests
{
    private const string Ok = "ok";

    private static readonly NearKeyPair Key = NearKeyPair.FromSeed(SHA256.HashData("shape-payer"u8));

    private static readonly SignedNearTransaction Tx =
        new NearTransaction("payer.testnet", Key.PublicKey, 7, "w0.testnet", SHA256.HashData("block"u8), [new TransferAction(1)]).Sign(Key);

    private static string Result(string json) => "{\"jsonrpc\":\"2.0\",\"result\":" + json + ",\"id\":\"{id}\"}";

    private static string Error(string name, string? cause, string info = "{}", string data = "\"x\"") =>
        "{\"jsonrpc\":\"2.0\",\"error\":{\"name\":\"" + name + "\"" + (cause is null ? "" : ",\"cause\":{\"name\":\"" + cause + "\",\"info\":" + info + "}")
        + ",\"code\":-32000,\"message\":\"Server error\",\"data\":" + data + "},\"id\":\"{id}\"}";

    private static string InvalidTx(string invalidTxError) =>
        Error("HANDLER_ERROR", "INVALID_TRANSACTION", "{\"TxExecutionError\":{\"InvalidTxError\":" + invalidTxError + "}}");

    private static readonly string Outcome = "{\"final_execution_status\":\"FINAL\",\"status\":{\"SuccessValue\":\"\"},\"transaction\":{\"hash\":\"" + Tx.HashBase58 + "\"},\"transaction_outcome\":{\"id\":\"" + Tx.HashBase58 + "\"},\"receipts_outcome\":[]}";

    /// <summary>method, HTTP status, body, delay ms, expected type name (or "ok"), expected ErrorName (or null), expected IsTransient.</summary>
    public static IEnumerable<object?[]> Shapes()
    {
        string hash = Tx.HashBase58;

        // results
        yield return ["send_tx", 200, Result(Outcome), 0, Ok, null, false];
        yield return ["send_tx", 200, Result("\"" + hash + "\""), 0, nameof(NearRpcInvalidResponseException), "INVALID_RESPONSE", true];
        yield return ["send_tx", 200, Result("null"), 0, nameof(NearRpcInvalidResponseException), "INVALID_RESPONSE", true];
        yield return ["send_tx", 200, Result("[]"), 0, nameof(NearRpcInvalidResponseException), "INVALID_RESPONSE", true];
        yield return ["send_tx", 200, Result("{\"final_execution_status\":\"NONE\"}"), 0, Ok, null, false];
        yield return ["send_tx", 200, Result("{\"final_execution_status\":\"SOMEDAY\"}"), 0, nameof(NearRpcInvalidResponseException), "INVALID_RESPONSE", true];
        yield return ["send_tx", 200, Result("{\"final_execution_status\":7}"), 0, Ok, null, false]; // not a string: treated as a legacy answer without the field, whose status decides
        yield return ["broadcast_tx_async", 200, Result("\"" + hash + "\""), 0, Ok, null, false];
        yield return ["broadcast_tx_async", 200, Result(Outcome), 0, nameof(NearRpcInvalidResponseException), "INVALID_RESPONSE", true];
        yield return ["broadcast_tx_async", 200, Result("\"11111111111111111111111111111111\""), 0, nameof(NearRpcInvalidResponseException), "INVALID_RESPONSE", true];
        yield return ["broadcast_tx_async", 200, Result("42"), 0, nameof(NearRpcInvalidResponseException), "INVALID_RESPONSE", true];
        yield return ["tx", 200, Result("{\"final_execution_status\":\"INCLUDED\"}"), 0, Ok, null, false];
        yield return ["tx", 200, Result("\"" + hash + "\""), 0, nameof(NearRpcInvalidResponseException), "INVALID_RESPONSE", true];
        yield return ["block", 200, Result("{}"), 0, nameof(NearRpcInvalidResponseException), "INVALID_RESPONSE", true];
        yield return ["block", 200, Result("{\"header\":{\"height\":-1,\"hash\":\"x\"}}"), 0, nameof(NearRpcInvalidResponseException), "INVALID_RESPONSE", true];
        yield return ["block", 200, Result("{\"header\":{\"height\":5,\"hash\":\"0OIl\"}}"), 0, nameof(NearRpcInvalidResponseException), "INVALID_RESPONSE", true];
        yield return ["block", 200, Result("{\"header\":{\"height\":5,\"hash\":\"abc\"}}"), 0, nameof(NearRpcInvalidResponseException), "INVALID_RESPONSE", true];
        yield return ["query", 200, Result("{\"nonce\":\"x\",\"block_height\":1,\"block_hash\":\"h\"}"), 0, nameof(NearRpcInvalidResponseException), "INVALID_RESPONSE", true];
        yield return ["query", 200, Result("{\"error\":\"access key does not exist\",\"logs\":[]}"), 0, nameof(NearRpcException), "HANDLER_ERROR", false];

        // INVALID_TRANSACTION and each InvalidTxError the client names
        yield return ["send_tx", 200, InvalidTx("{\"InvalidNonce\":{\"tx_nonce\":7,\"ak_nonce\":9}}"), 0, nameof(NearInvalidNonceException), "HANDLER_ERROR", false];
        yield return ["send_tx", 200, InvalidTx("\"Expired\""), 0, nameof(NearTransactionExpiredException), "HANDLER_ERROR", false];
        yield return ["send_tx", 200, InvalidTx("{\"NotEnoughBalance\":{\"signer_id\":\"a\",\"balance\":\"1\",\"cost\":\"2\"}}"), 0, nameof(NearNotEnoughBalanceException), "HANDLER_ERROR", false];
        yield return ["send_tx", 200, InvalidTx("\"InvalidSignature\""), 0, nameof(NearInvalidTransactionException), "HANDLER_ERROR", false];
        yield return ["send_tx", 200, InvalidTx("{\"NonceTooLarge\":{\"tx_nonce\":9,\"upper_bound\":8}}"), 0, nameof(NearInvalidTransactionException), "HANDLER_ERROR", false];
        yield return ["send_tx", 200, Error("HANDLER_ERROR", "INVALID_TRANSACTION"), 0, nameof(NearInvalidTransactionException), "HANDLER_ERROR", false];
        yield return ["send_tx", 200, InvalidTx("{\"InvalidNonce\":{\"tx_nonce\":\"seven\",\"ak_nonce\":9}}"), 0, nameof(NearRpcInvalidResponseException), "INVALID_RESPONSE", true];
        yield return ["send_tx", 200, InvalidTx("{\"NotEnoughBalance\":{\"balance\":\"-1\",\"cost\":\"2\"}}"), 0, nameof(NearRpcInvalidResponseException), "INVALID_RESPONSE", true];

        // other handler errors by cause
        yield return ["tx", 200, Error("HANDLER_ERROR", "UNKNOWN_TRANSACTION", "{\"requested_transaction_hash\":\"" + hash + "\"}"), 0, nameof(NearUnknownTransactionException), "HANDLER_ERROR", false];
        foreach (string transient in new[] { "REQUEST_ROUTED", "DOES_NOT_TRACK_SHARD", "UNKNOWN_BLOCK", "UNAVAILABLE_SHARD", "NO_SYNCED_BLOCKS", "NOT_SYNCED_YET" })
        {
            yield return ["send_tx", 200, Error("HANDLER_ERROR", transient), 0, nameof(NearRpcException), "HANDLER_ERROR", true];
        }

        foreach (string permanent in new[] { "UNKNOWN_ACCOUNT", "INVALID_ACCOUNT", "UNKNOWN_ACCESS_KEY", "UNKNOWN_CHUNK", "GARBAGE_COLLECTED_BLOCK", "CONTRACT_EXECUTION_ERROR" })
        {
            yield return ["query", 200, Error("HANDLER_ERROR", permanent), 0, nameof(NearRpcException), "HANDLER_ERROR", false];
        }

        yield return ["send_tx", 400, Error("REQUEST_VALIDATION_ERROR", "PARSE_ERROR"), 0, nameof(NearRpcException), "REQUEST_VALIDATION_ERROR", false];
        yield return ["send_tx", 200, Error("REQUEST_VALIDATION_ERROR", "METHOD_NOT_FOUND"), 0, nameof(NearRpcException), "REQUEST_VALIDATION_ERROR", false];
        yield return ["send_tx", 500, Error("INTERNAL_ERROR", "INTERNAL_ERROR"), 0, nameof(NearRpcException), "INTERNAL_ERROR", true];
        yield return ["send_tx", 408, Error("TIMEOUT_ERROR", "TIMEOUT_ERROR"), 0, nameof(NearRpcTimeoutException), "TIMEOUT_ERROR", true];
        yield return ["tx", 408, Error("TIMEOUT_ERROR", null), 0, nameof(NearRpcTimeoutException), "TIMEOUT_ERROR", true];
        yield return ["send_tx", 200, "{\"jsonrpc\":\"2.0\",\"error\":\"boom\",\"id\":\"{id}\"}", 0, nameof(NearRpcException), "UNKNOWN_ERROR", false];
        yield return ["send_tx", 200, "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32000},\"id\":\"{id}\"}", 0, nameof(NearRpcException), "UNKNOWN_ERROR", false];

        // HTTP-level answers
        foreach (int code in new[] { 500, 502, 503, 504, 429, 408 })
        {
            yield return ["send_tx", code, "<html>gateway</html>", 0, nameof(NearRpcHttpException), "HTTP_ERROR", true];
        }

        foreach (int code in new[] { 400, 401, 403, 404 })
        {
            yield return ["send_tx", code, "not here", 0, nameof(NearRpcHttpException), "HTTP_ERROR", false];
        }

        yield return ["send_tx", 500, Result(Outcome), 0, nameof(NearRpcHttpException), "HTTP_ERROR", true];
        yield return ["send_tx", 200, "{\"jsonrpc\":", 0, nameof(NearRpcHttpException), "HTTP_ERROR", true];
        yield return ["send_tx", 200, "", 0, nameof(NearRpcHttpException), "HTTP_ERROR", true];
        yield return ["send_tx", 200, "[1,2]", 0, nameof(NearRpcHttpException), "HTTP_ERROR", true];
        yield return ["send_tx", 200, "{\"jsonrpc\":\"2.0\",\"id\":\"{id}\"}", 0, nameof(NearRpcHttpException), "HTTP_ERROR", true];
        yield return ["send_tx", 200, Result(Outcome), 3000, nameof(NearRpcHttpException), "HTTP_ERROR", true]; // the client's timeout
        yield return ["tx", 200, Result(Outcome), 3000, nameof(NearRpcHttpException), "HTTP_ERROR", true];
    }

    private static async Task<object> CallAsync(NearRpcClient client, string method) => method switch
    {
        "send_tx" => await client.SendTransactionAsync(Tx),
        "broadcast_tx_async" => await client.BroadcastTransactionAsync(Tx),
        "tx" => await client.GetTransactionStatusAsync(Tx.HashBase58, "payer.testnet"),
        "block" => await client.GetFinalBlockAsync(),
        "query" => await client.ViewAccessKeyAsync("payer.testnet", Key.PublicKey),
        _ => throw new ArgumentOutOfRangeException(nameof(method)),
    };

    [TestMethod]
    [DynamicData(nameof(Shapes))]
    public async Task Every_answer_shape_maps_to_a_typed_result_or_error(string method, int status, string body, int delayMs, string expected, string? errorName, bool transient)
    {
        using var server = new NearRpcTestServer();
        using var http = NearRpcTestServer.CreateClient(TimeSpan.FromSeconds(1));
        var client = new NearRpcClient(http, new NearRpcClientOptions { Endpoint = server.Endpoint, MaxRetries = 0 });
        server.InjectRaw(method, status, body, TimeSpan.FromMilliseconds(delayMs));
        string context = $"{method} HTTP {status} after {delayMs} ms: {body}";
        try
        {
            object result = await CallAsync(client, method);
            Assert.AreEqual(Ok, expected, $"{context} returned {result}");
        }
        catch (Exception ex)
        {
            Assert.AreEqual(expected, ex.GetType().Name, $"{context}: {ex}");
            var rpc = (NearRpcException)ex;
            Assert.AreEqual(errorName, rpc.ErrorName, context);
            Assert.AreEqual(transient, rpc.IsTransient, context);
            Assert.AreEqual(method, rpc.Method, context);
        }
    }

    [TestMethod]
    public async Task A_dropped_connection_is_typed_and_transient_for_every_method()
    {
        foreach (string method in new[] { "send_tx", "broadcast_tx_async", "tx", "query" })
        {
            using var server = new NearRpcTestServer();
            using var http = NearRpcTestServer.CreateClient(TimeSpan.FromSeconds(5));
            var client = new NearRpcClient(http, new NearRpcClientOptions { Endpoint = server.Endpoint, MaxRetries = 0 });
            server.InjectFor(method is "send_tx" or "broadcast_tx_async" ? "send" : method, NearFault.Drop);
            var ex = await Assert.ThrowsExactlyAsync<NearRpcHttpException>(() => CallAsync(client, method), method);
            // HttpListener's abort reaches the client as a reset (0) or as an empty answer (read as 502): both say the outcome is unknown.
            Assert.IsTrue(ex.StatusCode is 0 or 502, $"{method}: {ex.StatusCode}");
            Assert.IsTrue(ex.IsTransient && ex.OutcomeUnknown, method);
        }
    }

    [TestMethod]
    public async Task Broadcast_tx_async_returns_the_hash_and_the_transaction_lands()
    {
        using var server = new NearRpcTestServer();
        using NearKeyPair key = NearKeyPair.FromSeed(SHA256.HashData("async-payer"u8));
        server.AddAccount("payer.testnet", UInt128.Parse("1000000000000000000000000"), key.PublicKey);
        server.AddAccount("w0.testnet", 0);
        server.AdvanceBlocks(3);
        using var http = NearRpcTestServer.CreateClient(TimeSpan.FromSeconds(10));
        var client = new NearRpcClient(http, new NearRpcClientOptions { Endpoint = server.Endpoint, MaxRetries = 0 });
        BlockView block = await client.GetFinalBlockAsync();
        AccessKeyView ak = await client.ViewAccessKeyAsync("payer.testnet", key.PublicKey);
        SignedNearTransaction tx = new NearTransaction("payer.testnet", key.PublicKey, ak.Nonce + 1, "w0.testnet", block.HashBytes, [new TransferAction(3)]).Sign(key);
        Assert.AreEqual(tx.HashBase58, await client.BroadcastTransactionAsync(tx));
        NearTransactionOutcome final = await client.GetTransactionStatusAsync(tx.HashBase58, "payer.testnet", TxExecutionStatus.Final);
        Assert.IsTrue(final.IsFinal && final.IsSuccess);
        Assert.AreEqual((UInt128)3, server.Balance("w0.testnet"));
    }
}
