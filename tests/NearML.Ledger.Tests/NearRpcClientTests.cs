using System.Net;
using System.Text;

namespace NearML.Ledger.Tests;

/// <summary>Parsing of response shapes recorded from NEAR's documentation and nearcore (Fixtures/near-rpc).</summary>
[TestClass]
public sealed class NearRpcClientTests
{
    private sealed class StubHandler(Func<int, (HttpStatusCode, string)> respond) : HttpMessageHandler
    {
        public int Calls { get; private set; }

        public List<string> Bodies { get; } = [];

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Bodies.Add(await request.Content!.ReadAsStringAsync(cancellationToken));
            (HttpStatusCode code, string body) = respond(Calls++);
            return new HttpResponseMessage(code) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        }
    }

    private static string Fixture(string name) => File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "near-rpc", name));

    private static (NearRpcClient, StubHandler, HttpClient) Client(Func<int, (HttpStatusCode, string)> respond, int retries = 2)
    {
        var handler = new StubHandler(respond);
        var http = new HttpClient(handler);
        return (new NearRpcClient(http, new NearRpcClientOptions { Endpoint = new Uri("http://rpc.invalid/"), MaxRetries = retries, RetryDelay = TimeSpan.FromMilliseconds(1) }), handler, http);
    }

    private static SignedNearTransaction SampleTx()
    {
        using NearKeyPair k = NearKeyPair.FromSeed(new byte[32]);
        return new NearTransaction("sender.testnet", k.PublicKey, 13, "receiver.testnet", new byte[32], [new TransferAction(1)]).Sign(k);
    }

    [TestMethod]
    public async Task Send_tx_success_fixture_parses_and_request_has_the_documented_shape()
    {
        var (client, handler, http) = Client(_ => (HttpStatusCode.OK, Fixture("send_tx_final.json")));
        using (http)
        {
            SignedNearTransaction tx = SampleTx();
            NearTransactionOutcome o = await client.SendTransactionAsync(tx, TxExecutionStatus.Final);
            Assert.IsTrue(o.IsSuccess);
            Assert.IsTrue(o.IsFinal);
            Assert.AreEqual("ASS7oYwGiem9HaNwJe6vS2kznx2CxueKDvU9BAYJRjNR", o.TransactionHash);
            StringAssert.Contains(handler.Bodies[0], "\"method\":\"send_tx\"");
            StringAssert.Contains(handler.Bodies[0], $"\"signed_tx_base64\":\"{tx.ToBase64().Replace("+", "\\u002B")}\"");
            StringAssert.Contains(handler.Bodies[0], "\"wait_until\":\"FINAL\"");
        }
    }

    [TestMethod]
    public async Task Execution_failure_is_an_outcome_not_an_exception()
    {
        var (client, _, http) = Client(_ => (HttpStatusCode.OK, Fixture("send_tx_action_error.json")));
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
        var (client, handler, http) = Client(_ => (HttpStatusCode.OK, Fixture("error_invalid_nonce.json")));
        using (http)
        {
            var ex = await Assert.ThrowsExactlyAsync<NearInvalidNonceException>(() => client.SendTransactionAsync(SampleTx()));
            Assert.AreEqual(1UL, ex.TransactionNonce);
            Assert.AreEqual(60462377000000UL, ex.AccessKeyNonce);
            Assert.IsTrue(ex.IsHandlerError);
            Assert.IsFalse(ex.IsTransient);
            Assert.AreEqual(1, handler.Calls);
        }
    }

    [TestMethod]
    public async Task Expired_and_not_enough_balance_are_typed()
    {
        var (c1, _, h1) = Client(_ => (HttpStatusCode.OK, Fixture("error_expired.json")));
        using (h1)
        {
            await Assert.ThrowsExactlyAsync<NearTransactionExpiredException>(() => c1.SendTransactionAsync(SampleTx()));
        }

        var (c2, _, h2) = Client(_ => (HttpStatusCode.OK, Fixture("error_not_enough_balance.json")));
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
        var (client, handler, http) = Client(i => i == 0 ? (HttpStatusCode.RequestTimeout, Fixture("error_timeout.json")) : (HttpStatusCode.OK, Fixture("send_tx_final.json")));
        using (http)
        {
            NearTransactionOutcome o = await client.SendTransactionAsync(SampleTx());
            Assert.IsTrue(o.IsSuccess);
            Assert.AreEqual(2, handler.Calls);
            Assert.AreEqual(handler.Bodies[0].Split("\"signed_tx_base64\"")[1], handler.Bodies[1].Split("\"signed_tx_base64\"")[1]);
        }
    }

    [TestMethod]
    public async Task Timeout_after_all_retries_is_typed_and_transient()
    {
        var (client, handler, http) = Client(_ => (HttpStatusCode.RequestTimeout, Fixture("error_timeout.json")), retries: 2);
        using (http)
        {
            var ex = await Assert.ThrowsExactlyAsync<NearRpcTimeoutException>(() => client.SendTransactionAsync(SampleTx()));
            Assert.IsTrue(ex.IsTransient);
            Assert.AreEqual(3, handler.Calls);
        }
    }

    [TestMethod]
    public async Task Http_fault_with_non_json_body_is_typed()
    {
        var (client, handler, http) = Client(_ => (HttpStatusCode.BadGateway, "<html>bad gateway</html>"), retries: 1);
        using (http)
        {
            var ex = await Assert.ThrowsExactlyAsync<NearRpcHttpException>(() => client.GetFinalBlockAsync());
            Assert.AreEqual(502, ex.StatusCode);
            Assert.AreEqual(2, handler.Calls);
        }
    }

    [TestMethod]
    public async Task Unknown_transaction_is_a_handler_error_with_its_cause()
    {
        var (client, handler, http) = Client(_ => (HttpStatusCode.OK, Fixture("error_unknown_transaction.json")));
        using (http)
        {
            var ex = await Assert.ThrowsExactlyAsync<NearUnknownTransactionException>(() => client.GetTransactionStatusAsync("ASS7oYwGiem9HaNwJe6vS2kznx2CxueKDvU9BAYJRjNR", "sender.testnet"));
            Assert.AreEqual("UNKNOWN_TRANSACTION", ex.CauseName);
            Assert.AreEqual("ASS7oYwGiem9HaNwJe6vS2kznx2CxueKDvU9BAYJRjNR", ex.TransactionHash);
            Assert.IsFalse(ex.IsTransient);
            Assert.AreEqual(1, handler.Calls);
            StringAssert.Contains(handler.Bodies[0], "\"sender_account_id\":\"sender.testnet\"");
        }
    }

    [TestMethod]
    public async Task Query_and_block_fixtures_parse()
    {
        var (client, handler, http) = Client(i => (HttpStatusCode.OK, Fixture(i switch { 0 => "view_access_key.json", 1 => "view_account.json", 2 => "call_function.json", _ => "block_final.json" })));
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
            StringAssert.Contains(handler.Bodies[0], "\"request_type\":\"view_access_key\"");
            StringAssert.Contains(handler.Bodies[0], "\"finality\":\"final\"");
            StringAssert.Contains(handler.Bodies[3], "\"method\":\"block\"");
        }
    }
}
