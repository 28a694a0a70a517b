using System.Security.Cryptography;

namespace NearML.Ledger.Tests;

[TestClass]
public sealed class SettlementTests
{
    private static readonly UInt128 Rich = UInt128.Parse("1000000000000000000000000000"); // 1000 NEAR

    private sealed class Env : IDisposable
    {
        public Env(bool registerAll = true, int workers = 7)
        {
            Server = new NearRpcTestServer();
            Key = NearKeyPair.FromSeed(SHA256.HashData("settle-payer"u8));
            Server.AddAccount("payer.testnet", Rich, Key.PublicKey);
            Server.FtMint("payer.testnet", 1_000_000_000);
            Payouts = Enumerable.Range(0, workers).Select(i => new WorkerPayout($"w{i}.testnet", (ulong)(i + 1), (UInt128)(1000 * (i + 1)))).ToList();
            foreach (WorkerPayout p in Payouts)
            {
                Server.AddAccount(p.WorkerId, 0);
                if (registerAll)
                {
                    Server.FtRegister(p.WorkerId);
                }
            }

            Http = NearRpcTestServer.CreateClient(TimeSpan.FromSeconds(20));
            Client = new NearRpcClient(Http, new NearRpcClientOptions { Endpoint = Server.Endpoint, MaxRetries = 2, RetryDelay = TimeSpan.FromMilliseconds(5) });
            StorePath = TestData.TempFile("settle.db");
        }

        public NearRpcTestServer Server { get; }

        public NearKeyPair Key { get; }

        public List<WorkerPayout> Payouts { get; }

        public HttpClient Http { get; }

        public NearRpcClient Client { get; }

        public string StorePath { get; }

        public byte[] Root { get; } = SHA256.HashData("root"u8);

        public NearSettler Settler(SettlementStore store, SettlementOptions? options = null)
        {
            var creds = NearCredentials.FromSecretKey("payer.testnet", Key.ExportSecretKey());
            options ??= new SettlementOptions { TokenContract = "token.testnet", AnchorContract = "anchor.testnet", MaxTransfersPerTransaction = 3 };
            return new NearSettler(Client, store, creds, options);
        }

        public void AssertPaidExactlyOnce()
        {
            foreach (WorkerPayout p in Payouts)
            {
                Assert.AreEqual(p.Amount, Server.FtBalance(p.WorkerId), p.WorkerId);
            }

            Assert.HasCount(Payouts.Count, Server.FtTransfers);
            Assert.AreEqual(1, Server.MaxExecutionsOfOneTransaction);
        }

        public void Dispose()
        {
            Http.Dispose();
            Server.Dispose();
            Key.Dispose();
        }
    }

    [TestMethod]
    public async Task Ft_settlement_pays_everyone_once_anchors_the_root_and_is_idempotent()
    {
        using var env = new Env();
        using var store = new SettlementStore(env.StorePath);
        SettlementResult r = await env.Settler(store).SettleAsync(4, env.Root, env.Payouts);
        Assert.IsTrue(r.Settled);
        Assert.HasCount(1 + 3, r.Transactions); // anchor + ceil(7/3) ft batches
        Assert.IsTrue(r.Transactions.All(t => t.State == SettlementTxState.Succeeded));
        env.AssertPaidExactlyOnce();
        string rootHex = Convert.ToHexStringLower(env.Root);
        Assert.IsTrue(env.Server.FtTransfers.All(t => t.Memo == $"nearml epoch 4 root {rootHex}"));
        StringAssert.StartsWith(env.Server.Anchors.Single(), $"anchor_root:{{\"epoch\":4,\"root\":\"{rootHex}\",\"payouts\":7,\"total\":\"28000\"}}");

        int executed = env.Server.ExecutedTransactions;
        SettlementResult again = await env.Settler(store).SettleAsync(4, env.Root, env.Payouts);
        Assert.IsTrue(again.Settled);
        Assert.AreEqual(executed, env.Server.ExecutedTransactions);
        env.AssertPaidExactlyOnce();
    }

    [TestMethod]
    public async Task Native_transfers_go_one_per_transaction()
    {
        using var env = new Env(workers: 3);
        using var store = new SettlementStore(env.StorePath);
        SettlementResult r = await env.Settler(store, new SettlementOptions()).SettleAsync(1, env.Root, env.Payouts);
        Assert.HasCount(3, r.Transactions);
        foreach (WorkerPayout p in env.Payouts)
        {
            Assert.AreEqual(p.Amount, env.Server.Balance(p.WorkerId));
        }
    }

    [TestMethod]
    public async Task Dry_run_signs_and_stores_but_sends_nothing()
    {
        using var env = new Env();
        using var store = new SettlementStore(env.StorePath);
        var options = new SettlementOptions { TokenContract = "token.testnet", AnchorContract = "anchor.testnet", MaxTransfersPerTransaction = 3, DryRun = true };
        SettlementResult r = await env.Settler(store, options).SettleAsync(2, env.Root, env.Payouts);
        Assert.IsTrue(r.DryRun);
        Assert.IsFalse(r.Settled);
        Assert.AreEqual(0, env.Server.ExecutedTransactions);
        Assert.HasCount(4, r.Transactions);
        foreach (SettlementTransaction t in r.Transactions)
        {
            StringAssert.Contains(r.Summary, t.Hash);
            Assert.IsTrue(SignedNearTransaction.Parse(t.SignedBytes).Verify());
        }

        StringAssert.Contains(r.Summary, "DRY RUN");
        StringAssert.Contains(r.Summary, "pay w6.testnet: 7000");
        await Assert.ThrowsExactlyAsync<SettlementException>(() => env.Settler(store).SettleAsync(2, env.Root, env.Payouts));
    }

    [TestMethod]
    public async Task A_different_intent_for_a_stored_epoch_is_refused()
    {
        using var env = new Env();
        using var store = new SettlementStore(env.StorePath);
        await env.Settler(store).SettleAsync(3, env.Root, env.Payouts);
        var changed = env.Payouts.Select(p => p with { Amount = p.Amount + 1 }).ToList();
        await Assert.ThrowsExactlyAsync<SettlementException>(() => env.Settler(store).SettleAsync(3, env.Root, changed));
        await Assert.ThrowsExactlyAsync<SettlementException>(() => env.Settler(store).SettleAsync(3, SHA256.HashData("other"u8), env.Payouts));
    }

    [TestMethod]
    [DataRow(NearFault.TimeoutAfterExecute)]
    [DataRow(NearFault.DropAfterExecute)]
    [DataRow(NearFault.TimeoutBeforeExecute)]
    [DataRow(NearFault.ServiceUnavailable)]
    [DataRow(NearFault.InternalError)]
    public async Task Faults_on_send_still_pay_exactly_once(NearFault fault)
    {
        using var env = new Env();
        using var store = new SettlementStore(env.StorePath);
        env.Server.Inject(fault, fault);
        SettlementResult r = await env.Settler(store).SettleAsync(5, env.Root, env.Payouts);
        Assert.IsTrue(r.Settled);
        env.AssertPaidExactlyOnce();
        Assert.IsTrue(r.Transactions.All(t => t.Attempt == 0), "the same signed bytes were re-sent, never re-signed");
    }

    [TestMethod]
    public async Task Persistent_timeouts_leave_a_resumable_settlement_that_resends_the_same_bytes()
    {
        using var env = new Env();
        using var store = new SettlementStore(env.StorePath);
        env.Server.Inject(NearFault.TimeoutAfterExecute, NearFault.TimeoutAfterExecute, NearFault.TimeoutAfterExecute);
        // The first attempt's outcome is unknown to the client, but a status query finds it: it is recorded, not re-signed.
        SettlementResult r = await env.Settler(store).SettleAsync(6, env.Root, env.Payouts);
        Assert.IsTrue(r.Settled);
        env.AssertPaidExactlyOnce();

        using var env2 = new Env();
        using var store2 = new SettlementStore(env2.StorePath);
        env2.Server.Inject(Enumerable.Repeat(NearFault.TimeoutBeforeExecute, 3).ToArray());
        var ex = await Assert.ThrowsExactlyAsync<SettlementException>(() => env2.Settler(store2).SettleAsync(6, env2.Root, env2.Payouts));
        Assert.IsTrue(ex.IsTransient);
        SettlementTransaction stored = store2.GetTransactions(6).Single();
        SettlementResult resumed = await env2.Settler(store2).SettleAsync(6, env2.Root, env2.Payouts);
        Assert.IsTrue(resumed.Settled);
        Assert.AreEqual(stored.Hash, resumed.Transactions[0].Hash);
        env2.AssertPaidExactlyOnce();
    }

    [TestMethod]
    public async Task Nonce_taken_by_another_transaction_is_superseded_and_re_signed_once_provably_dead()
    {
        using var env = new Env();
        using var store = new SettlementStore(env.StorePath);
        var options = new SettlementOptions { TokenContract = "token.testnet", AnchorContract = "anchor.testnet", MaxTransfersPerTransaction = 3 };
        bool bumped = false;
        options.OnStep = (step, slot) =>
        {
            if (step == SettlementStep.TransactionStored && slot == 1 && !bumped)
            {
                bumped = true;
                env.Server.SetAccessKeyNonce("payer.testnet", env.Key.PublicKey, env.Server.Height * 1_000_000 - 10); // another client used the key
            }
        };
        SettlementResult r = await env.Settler(store, options).SettleAsync(7, env.Root, env.Payouts);
        Assert.IsTrue(r.Settled);
        IReadOnlyList<SettlementTransaction> all = store.GetTransactions(7);
        Assert.AreEqual(SettlementTxState.Superseded, all.Single(t => t.Slot == 1 && t.Attempt == 0).State);
        Assert.AreEqual(1, r.Transactions.Single(t => t.Slot == 1).Attempt);
        env.AssertPaidExactlyOnce();
    }

    [TestMethod]
    public async Task Expired_block_hash_is_superseded_only_when_the_chain_does_not_know_the_transaction()
    {
        using var env = new Env();
        using var store = new SettlementStore(env.StorePath);
        var options = new SettlementOptions { TokenContract = "token.testnet", AnchorContract = "anchor.testnet", MaxTransfersPerTransaction = 3 };
        bool advanced = false;
        options.OnStep = (step, slot) =>
        {
            if (step == SettlementStep.TransactionStored && slot == 2 && !advanced)
            {
                advanced = true;
                env.Server.AdvanceBlocks(env.Server.ValidityPeriod + 5);
            }
        };
        SettlementResult r = await env.Settler(store, options).SettleAsync(8, env.Root, env.Payouts);
        Assert.IsTrue(r.Settled);
        Assert.AreEqual(SettlementTxState.Superseded, store.GetTransactions(8).Single(t => t.Slot == 2 && t.Attempt == 0).State);
        env.AssertPaidExactlyOnce();
    }

    [TestMethod]
    public async Task Execution_failure_is_recorded_and_never_retried()
    {
        using var env = new Env(registerAll: false);
        foreach (WorkerPayout p in env.Payouts.Take(3))
        {
            env.Server.FtRegister(p.WorkerId);
        }

        using var store = new SettlementStore(env.StorePath);
        SettlementResult r = await env.Settler(store).SettleAsync(9, env.Root, env.Payouts);
        Assert.IsTrue(r.Settled);
        Assert.AreEqual(SettlementTxState.Succeeded, r.Transactions[1].State);
        Assert.AreEqual(SettlementTxState.Failed, r.Transactions[2].State);
        StringAssert.Contains(r.Transactions[2].Outcome!, "not registered");
        int executed = env.Server.ExecutedTransactions;
        await env.Settler(store).SettleAsync(9, env.Root, env.Payouts);
        Assert.AreEqual(executed, env.Server.ExecutedTransactions);
        Assert.AreEqual((UInt128)1000, env.Server.FtBalance("w0.testnet"));
        Assert.AreEqual((UInt128)0, env.Server.FtBalance("w3.testnet"));
    }

    [TestMethod]
    public async Task Not_enough_balance_stops_with_a_non_transient_error_and_keeps_the_bytes()
    {
        using var env = new Env(workers: 2);
        env.Server.AddAccount("payer.testnet", 5, env.Key.PublicKey);
        using var store = new SettlementStore(env.StorePath);
        var ex = await Assert.ThrowsExactlyAsync<SettlementException>(() => env.Settler(store).SettleAsync(10, env.Root, env.Payouts));
        Assert.IsFalse(ex.IsTransient);
        StringAssert.Contains(ex.Message, "NotEnoughBalance");
        string hash = store.GetTransactions(10).Single().Hash;
        env.Server.AddAccount("payer.testnet", Rich, env.Key.PublicKey, keyNonce: store.GetTransactions(10).Single().Nonce - 1);
        SettlementResult r = await env.Settler(store).SettleAsync(10, env.Root, env.Payouts);
        Assert.IsTrue(r.Settled);
        Assert.AreEqual(hash, r.Transactions[0].Hash);
    }

    [TestMethod]
    public async Task Test_server_enforces_nearcore_rules()
    {
        using var env = new Env(workers: 1);
        BlockView block = await env.Client.GetFinalBlockAsync();
        AccessKeyView ak = await env.Client.ViewAccessKeyAsync("payer.testnet", env.Key.PublicKey);
        NearTransaction Tx(ulong nonce, byte[]? blockHash = null) =>
            new("payer.testnet", env.Key.PublicKey, nonce, "w0.testnet", blockHash ?? block.HashBytes, [new TransferAction(1)]);

        var low = await Assert.ThrowsExactlyAsync<NearInvalidNonceException>(() => env.Client.SendTransactionAsync(Tx(ak.Nonce).Sign(env.Key)));
        Assert.AreEqual(ak.Nonce, low.AccessKeyNonce);
        var tooLarge = await Assert.ThrowsExactlyAsync<NearInvalidTransactionException>(() => env.Client.SendTransactionAsync(Tx(ulong.MaxValue - 1).Sign(env.Key)));
        Assert.AreEqual("NonceTooLarge", tooLarge.Kind);
        await Assert.ThrowsExactlyAsync<NearTransactionExpiredException>(() => env.Client.SendTransactionAsync(Tx(ak.Nonce + 1, new byte[32]).Sign(env.Key)));
        SignedNearTransaction good = Tx(ak.Nonce + 1).Sign(env.Key);
        var forged = good with { Signature = (byte[])good.Signature.Clone() };
        forged.Signature[0] ^= 1;
        var bad = await Assert.ThrowsExactlyAsync<NearInvalidTransactionException>(() => env.Client.SendTransactionAsync(forged));
        Assert.AreEqual("InvalidSignature", bad.Kind);
        NearTransactionOutcome first = await env.Client.SendTransactionAsync(good);
        NearTransactionOutcome dup = await env.Client.BroadcastTransactionCommitAsync(good);
        Assert.AreEqual(first.TransactionHash, dup.TransactionHash);
        Assert.AreEqual(1, env.Server.MaxExecutionsOfOneTransaction);
        Assert.AreEqual((UInt128)1, env.Server.Balance("w0.testnet"));
        NearTransactionOutcome status = await env.Client.GetTransactionStatusAsync(good.HashBase58, "payer.testnet");
        Assert.IsTrue(status.IsSuccess);
        AccountView payer = await env.Client.ViewAccountAsync("payer.testnet");
        Assert.AreEqual(Rich - NearRpcTestServer.Fee - 1, payer.Amount);
        CallFunctionResult bal = await env.Client.CallFunctionAsync("token.testnet", "ft_balance_of", """{"account_id":"payer.testnet"}"""u8.ToArray());
        Assert.AreEqual("\"1000000000\"", System.Text.Encoding.UTF8.GetString(bal.Result));
    }
}
