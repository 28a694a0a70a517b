using System.Net;
using System.Text;

namespace NearML.Ledger.Tests;

/// <summary>Parsing of response shapes recorded from NEAR's documentation and nearcore (Fixtures/near-rpc), served by the loopback test node.</summary>
[TestClass]
public sealed class NearRpcClientTests
{
    private static string Fixture(string name) => File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "near-rpc", name));

    /// <summary>The loopback test node, told to answer each call in turn with the given recorded fixture.</summary>
    private static (NearRpcClient, NearRpcTestServer, HttpClient) Client(params (string Method, HttpStatusCode Status, string Body)[] answers) => Client(2, answers);

    private static (NearRpcClient, NearRpcTestServer, HttpClient) Client(int retries, params (string Method, HttpStatusCode Status, string Body)[] answers)
    {
        var server = new NearRpcTestServer();
        foreach ((string method, HttpStatusCode status, string body) in answers)
        {
            server.InjectRaw(method, (int)status, body);
        }

        HttpClient http = NearRpcTestServer.CreateClient(TimeSpan.FromSeconds(100));
        return (new NearRpcClient(http, new NearRpcClientOptions { Endpoint = server.Endpoint, MaxRetries = retries, RetryDelay = TimeSpan.FromMilliseconds(1) }), server, http);
    }

    private static SignedNearTransaction SampleTx()
    {
        using NearKeyPair k = NearKeyPair.FromSeed(new byte[32]);
        return new NearTransaction("sender.testnet", k.PublicKey, 13, "receiver.testnet", new byte[32], [new TransferAction(1)]).Sign(k);
    }

    [TestMethod]
    public async Task Send_tx_success_fixture_parses_and_request_has_the_documented_shape()
    {
        var (client, handler, http) = Client(("send_tx", HttpStatusCode.OK, Fixture("send_tx_final.json")));
        using (handler)
        using (http)
        {
            SignedNearTransaction tx = SampleTx();
            NearTransactionOutcome o = await client.SendTransactionAsync(tx, TxExecutionStatus.Final);
            Assert.IsTrue(o.IsSuccess);
            Assert.IsTrue(o.IsFinal);
            Assert.AreEqual("ASS7oYwGiem9HaNwJe6vS2kznx2CxueKDvU9BAYJRjNR", o.TransactionHash);
            StringAssert.Contains(handler.Requests[0], "\"method\":\"send_tx\"");
            StringAssert.Contains(handler.Requests[0], $"\"signed_tx_base64\":\"{tx.ToBase64().Replace("+", "\\u002B")}\"");
            StringAssert.Contains(handler.Requests[0], "\"wait_until\":\"FINAL\"");
        }
    }

    [TestMethod]
    public async Task Execution_failure_is_an_outcome_not_an_exception()
    {
        var (client, server, http) = Client(("send_tx", HttpStatusCode.OK, Fixture("send_tx_action_error.json")));
        using (server)
        using (http)
        {
            NearTransactionOutcome o = await client.SendTransactionAsync(SampleTx());
            Assert.IsTrue(o.IsFailure);
            Assert.IsTrue(o.IsFinal);
            StringAssert.Contains(o.Failure!, "not registered");
        }
    }

    [TestMethod]
    public async Task Invalid_nonce_fixture_from_nearcore_gives_both_nonces_and_is_not_retried()
    {
        var (client, handler, http) = Client(("send_tx", HttpStatusCode.OK, Fixture("error_invalid_nonce.json")));
        using (handler)
        using (http)
        {
            var ex = await Assert.ThrowsExactlyAsync<NearInvalidNonceException>(() => client.SendTransactionAsync(SampleTx()));
            Assert.AreEqual(1UL, ex.TransactionNonce);
            Assert.AreEqual(60462377000000UL, ex.AccessKeyNonce);
            Assert.IsTrue(ex.IsHandlerError);
            Assert.IsFalse(ex.IsTransient);
            Assert.AreEqual(1, handler.RequestCount);
        }
    }

    [TestMethod]
    public async Task Expired_and_not_enough_balance_are_typed()
    {
        var (c1, s1, h1) = Client(("send_tx", HttpStatusCode.OK, Fixture("error_expired.json")));
        using (s1)
        using (h1)
        {
            await Assert.ThrowsExactlyAsync<NearTransactionExpiredException>(() => c1.SendTransactionAsync(SampleTx()));
        }

        var (c2, s2, h2) = Client(("send_tx", HttpStatusCode.OK, Fixture("error_not_enough_balance.json")));
        using (s2)
        using (h2)
        {
            var ex = await Assert.ThrowsExactlyAsync<NearNotEnoughBalanceException>(() => c2.SendTransactionAsync(SampleTx()));
            Assert.AreEqual((UInt128)1000, ex.Balance);
            Assert.AreEqual(UInt128.Parse("100000000000000000000"), ex.Cost);
        }
    }

    [TestMethod]
    public async Task Timeout_re_sends_the_same_bytes_then_succeeds()
    {
        var (client, handler, http) = Client(("send_tx", HttpStatusCode.RequestTimeout, Fixture("error_timeout.json")), ("send_tx", HttpStatusCode.OK, Fixture("send_tx_final.json")));
        using (handler)
        using (http)
        {
            NearTransactionOutcome o = await client.SendTransactionAsync(SampleTx());
            Assert.IsTrue(o.IsSuccess);
            Assert.AreEqual(2, handler.RequestCount);
            Assert.AreEqual(handler.Requests[0].Split("\"signed_tx_base64\"")[1], handler.Requests[1].Split("\"signed_tx_base64\"")[1]);
        }
    }

    [TestMethod]
    public async Task Timeout_after_all_retries_is_typed_and_transient()
    {
        var (client, handler, http) = Client(2, Enumerable.Repeat(("send_tx", HttpStatusCode.RequestTimeout, Fixture("error_timeout.json")), 3).ToArray());
        using (handler)
        using (http)
        {
            var ex = await Assert.ThrowsExactlyAsync<NearRpcTimeoutException>(() => client.SendTransactionAsync(SampleTx()));
            Assert.IsTrue(ex.IsTransient);
            Assert.AreEqual(3, handler.RequestCount);
        }
    }

    [TestMethod]
    public async Task Http_fault_with_non_json_body_is_typed()
    {
        var (client, handler, http) = Client(1, ("block", HttpStatusCode.BadGateway, "<html>bad gateway</html>"), ("block", HttpStatusCode.BadGateway, "<html>bad gateway</html>"));
        using (handler)
        using (http)
        {
            var ex = await Assert.ThrowsExactlyAsync<NearRpcHttpException>(() => client.GetFinalBlockAsync());
            Assert.AreEqual(502, ex.StatusCode);
            Assert.AreEqual(2, handler.RequestCount);
        }
    }

    [TestMethod]
    public async Task Unknown_transaction_is_a_handler_error_with_its_cause()
    {
        var (client, handler, http) = Client(("tx", HttpStatusCode.OK, Fixture("error_unknown_transaction.json")));
        using (handler)
        using (http)
        {
            var ex = await Assert.ThrowsExactlyAsync<NearUnknownTransactionException>(() => client.GetTransactionStatusAsync("ASS7oYwGiem9HaNwJe6vS2kznx2CxueKDvU9BAYJRjNR", "sender.testnet"));
            Assert.AreEqual("UNKNOWN_TRANSACTION", ex.CauseName);
            Assert.AreEqual("ASS7oYwGiem9HaNwJe6vS2kznx2CxueKDvU9BAYJRjNR", ex.TransactionHash);
            Assert.IsFalse(ex.IsTransient);
            Assert.AreEqual(1, handler.RequestCount);
            StringAssert.Contains(handler.Requests[0], "\"sender_account_id\":\"sender.testnet\"");
        }
    }

    [TestMethod]
    public async Task Query_and_block_fixtures_parse()
    {
        var (client, handler, http) = Client(("query", HttpStatusCode.OK, Fixture("view_access_key.json")), ("query", HttpStatusCode.OK, Fixture("view_account.json")), ("query", HttpStatusCode.OK, Fixture("call_function.json")), ("block", HttpStatusCode.OK, Fixture("block_final.json")));
        using (handler)
        using (http)
        {
            using NearKeyPair k = NearKeyPair.FromSeed(new byte[32]);
            AccessKeyView ak = await client.ViewAccessKeyAsync("sender.testnet", k.PublicKey);
            Assert.AreEqual(85UL, ak.Nonce);
            Assert.IsTrue(ak.IsFullAccess);
            AccountView acc = await client.ViewAccountAsync("sender.testnet");
            Assert.AreEqual(UInt128.Parse("399992611103597728750000000"), acc.Amount);
            Assert.AreEqual(642UL, acc.StorageUsage);
            CallFunctionResult call = await client.CallFunctionAsync("token.testnet", "ft_balance_of", "{}"u8.ToArray());
            Assert.AreEqual("\"123\"", Encoding.UTF8.GetString(call.Result));
            Assert.AreEqual("view called", call.Logs.Single());
            BlockView block = await client.GetFinalBlockAsync();
            Assert.AreEqual(17824600UL, block.Height);
            Assert.HasCount(32, block.HashBytes);
            StringAssert.Contains(handler.Requests[0], "\"request_type\":\"view_access_key\"");
            StringAssert.Contains(handler.Requests[0], "\"finality\":\"final\"");
            StringAssert.Contains(handler.Requests[3], "\"method\":\"block\"");
        }
    }
}
