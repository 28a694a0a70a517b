using System.Security.Cryptography;

namespace NearML.Ledger.Tests;

/// <summary>
/// Every level at which the chain may know an earlier attempt (in the pool only, INCLUDED, EXECUTED_OPTIMISTIC,
/// INCLUDED_FINAL, EXECUTED, FINAL) × every answer the RPC server may give to the re-send × both ways a node ends a
/// status wait (TIMEOUT_ERROR, or the level reached so far). A known attempt is waited for and never replaced; an
/// unknown one is replaced only with the same nonce; the worker is paid exactly once in the end.
/// </summary>
[TestClass]
public sealed class SettlementStatusMatrixTests
{
    private static readonly UInt128 Rich = UInt128.Parse("1000000000000000000000000000");
    private static readonly UInt128 Amount = UInt128.Parse("5000000000000000000000");
    private static readonly byte[] Root = SHA256.HashData("matrix-root"u8);

    /// <summary>null = the attempt waits in the pool (the chain's <c>tx</c> answers UNKNOWN_TRANSACTION).</summary>
    private static readonly TxExecutionStatus?[] Levels =
        [null, TxExecutionStatus.Included, TxExecutionStatus.ExecutedOptimistic, TxExecutionStatus.IncludedFinal, TxExecutionStatus.Executed, TxExecutionStatus.Final];

    /// <summary>null = the node answers honestly.</summary>
    private static readonly NearFault?[] Answers =
    [
        null, NearFault.InvalidNonce, NearFault.Expired, NearFault.NotEnoughBalance, NearFault.TimeoutBeforeExecute, NearFault.TimeoutAfterExecute,
        NearFault.AcceptThenTimeout, NearFault.AcceptThenDrop, NearFault.DropAfterExecute, NearFault.Drop, NearFault.ServiceUnavailable,
        NearFault.InternalError, NearFault.RequestRouted, NearFault.DoesNotTrackShard, NearFault.PlainStringResult,
    ];

    public static IEnumerable<object?[]> Cases() =>
        from level in Levels
        from answer in Answers
        from currentLevel in new[] { false, true }
        select new object?[] { level, answer, currentLevel };

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public async Task A_known_attempt_is_waited_for_and_an_unknown_one_is_replaced_only_with_its_nonce(TxExecutionStatus? level, NearFault? answer, bool answerCurrentLevel)
    {
        using var server = new NearRpcTestServer { AnswerCurrentLevelOnTimeout = answerCurrentLevel };
        using NearKeyPair key = NearKeyPair.FromSeed(SHA256.HashData("matrix-payer"u8));
        server.AddAccount("payer.testnet", Rich, key.PublicKey);
        server.AddAccount("w0.testnet", 0);
        using var http = NearRpcTestServer.CreateClient(TimeSpan.FromSeconds(20));
        var client = new NearRpcClient(http, new NearRpcClientOptions { Endpoint = server.Endpoint, MaxRetries = 0 });
        using NearCredentials creds = NearCredentials.FromSecretKey("payer.testnet", key.ExportSecretKey());
        WorkerPayout[] payouts = [new("w0.testnet", 1, Amount)];
        string path = TestData.TempFile("matrix.db");
        string context = $"level {level?.ToString() ?? "pool"}, answer {answer?.ToString() ?? "honest"}, current-level answers {answerCurrentLevel}";

        async Task<Exception?> RunAsync()
        {
            using var store = new SettlementStore(path);
            try
            {
                await new NearSettler(client, store, creds, new SettlementOptions()).SettleAsync(1, Root, payouts);
                return null;
            }
            catch (SettlementException ex)
            {
                return ex;
            }
        }

        IReadOnlyList<SettlementTransaction> Stored()
        {
            using var store = new SettlementStore(path);
            return store.GetTransactions(1);
        }

        // 1. The first attempt reaches the node's pool, but the answer is lost.
        server.AdvanceBlocks(5); // new keys start at height × 10^6, which is also the nonce bound at that height
        server.Frozen = true;
        server.Inject(NearFault.AcceptThenTimeout);
        Exception? first = await RunAsync();
        Assert.IsInstanceOfType<SettlementException>(first, context);
        Assert.IsTrue(((SettlementException)first).IsTransient, $"{context}: {first}");
        SettlementTransaction attempt0 = Stored().Single();
        Assert.AreEqual(1, server.PoolSize, context);

        // 2. The chain takes it to the level under test, then stops.
        if (level is { } target)
        {
            server.ReceiptDelay = target is TxExecutionStatus.Included or TxExecutionStatus.IncludedFinal ? 5UL : 1UL;
            server.FinalityLag = 1;
            server.FinalityStalled = target is TxExecutionStatus.Included or TxExecutionStatus.ExecutedOptimistic;
            server.Frozen = false;
            for (int i = 0; i < 20 && server.LevelOf(attempt0.Hash) != target; i++)
            {
                server.AdvanceBlocks(1);
            }

            Assert.AreEqual(target, server.LevelOf(attempt0.Hash), context);
            server.Frozen = true;
        }

        // 3. The settler re-sends and gets the answer under test.
        if (answer is { } fault)
        {
            server.Inject(fault);
        }

        Exception? second = await RunAsync();
        IReadOnlyList<SettlementTransaction> afterSecond = Stored();
        Assert.IsTrue(afterSecond.All(t => t.Nonce == attempt0.Nonce), $"{context}: a second nonce was signed while attempt 0 could still land");
        if (level is TxExecutionStatus.Executed or TxExecutionStatus.Final)
        {
            Assert.IsNull(second, $"{context}: {second}");
            Assert.AreEqual(SettlementTxState.Succeeded, afterSecond.Single().State, context);
        }
        else
        {
            Assert.IsInstanceOfType<SettlementException>(second, context);
            if (level is not null)
            {
                // Known to the chain: waited for, never replaced.
                Assert.AreEqual(attempt0.Hash, afterSecond.Single().Hash, context);
                Assert.AreEqual(SettlementTxState.Signed, afterSecond.Single().State, context);
                Assert.IsTrue(((SettlementException)second).IsTransient, $"{context}: {second.Message}");
            }
            else if (answer == NearFault.Expired)
            {
                Assert.AreEqual(SettlementTxState.Replaced, afterSecond[0].State, context);
                Assert.HasCount(2, afterSecond, context);
            }
            else
            {
                Assert.AreEqual(attempt0.Hash, afterSecond.Single().Hash, context);
            }
        }

        // 4. The chain resumes: the settlement completes and the worker is paid exactly once.
        server.Frozen = false;
        server.FinalityStalled = false;
        Exception? last = null;
        for (int run = 0; run < 5; run++)
        {
            last = await RunAsync();
            if (last is null)
            {
                break;
            }

            Assert.IsTrue(last is SettlementException { IsTransient: true } || answer == NearFault.NotEnoughBalance, $"{context}: {last}");
        }

        Assert.IsNull(last, $"{context}: {last}");
        Assert.AreEqual(Amount, server.Balance("w0.testnet"), context);
        Assert.HasCount(1, server.NativeTransfers, context);
        Assert.AreEqual(1, server.MaxExecutionsOfOneTransaction, context);
        Assert.IsTrue(Stored().All(t => t.Nonce == attempt0.Nonce), context);
        Assert.IsEmpty(server.Failures, string.Join("\n", server.Failures));
    }

    [TestMethod]
    public async Task At_the_attempt_cap_a_replaced_attempt_that_landed_is_still_recorded()
    {
        using var server = new NearRpcTestServer();
        using NearKeyPair key = NearKeyPair.FromSeed(SHA256.HashData("cap-payer"u8));
        server.AddAccount("payer.testnet", Rich, key.PublicKey);
        server.AddAccount("w0.testnet", 0);
        server.AdvanceBlocks(5);
        using var http = NearRpcTestServer.CreateClient(TimeSpan.FromSeconds(20));
        var client = new NearRpcClient(http, new NearRpcClientOptions { Endpoint = server.Endpoint, MaxRetries = 0 });
        using NearCredentials creds = NearCredentials.FromSecretKey("payer.testnet", key.ExportSecretKey());
        WorkerPayout[] payouts = [new("w0.testnet", 1, Amount)];
        string path = TestData.TempFile("cap.db");
        var options = new SettlementOptions { MaxAttemptsPerSlot = 2 };

        // Attempt 0 reaches the pool; the node then calls it and its same-nonce successor expired.
        server.Frozen = true;
        server.Inject(NearFault.AcceptThenTimeout, NearFault.Expired, NearFault.Expired);
        using (var store = new SettlementStore(path))
        {
            var settler = new NearSettler(client, store, creds, options);
            Assert.IsTrue((await Assert.ThrowsExactlyAsync<SettlementException>(() => settler.SettleAsync(1, Root, payouts))).IsTransient);
            var twice = await Assert.ThrowsExactlyAsync<SettlementException>(() => settler.SettleAsync(1, Root, payouts));
            StringAssert.Contains(twice.Message, "in a row expired");
            var capped = await Assert.ThrowsExactlyAsync<SettlementException>(() => settler.SettleAsync(1, Root, payouts));
            Assert.IsFalse(capped.IsTransient, capped.Message);
            Assert.IsTrue(store.GetTransactions(1).All(t => t.State == SettlementTxState.Replaced), string.Join(", ", store.GetTransactions(1)));
        }

        // The pool's copy of attempt 0 lands after all: the capped settlement finds and records it.
        server.Frozen = false;
        server.AdvanceBlocks(8);
        using (var store = new SettlementStore(path))
        {
            SettlementResult r = await new NearSettler(client, store, creds, options).SettleAsync(1, Root, payouts);
            Assert.IsTrue(r.Settled);
            Assert.AreEqual(0, r.Transactions.Single().Attempt);
            Assert.AreEqual(SettlementTxState.Succeeded, r.Transactions.Single().State);
        }

        Assert.AreEqual(Amount, server.Balance("w0.testnet"));
        Assert.HasCount(1, server.NativeTransfers);
    }
}
