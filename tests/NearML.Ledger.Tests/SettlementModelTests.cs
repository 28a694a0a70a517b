using System.Security.Cryptography;

namespace NearML.Ledger.Tests;

/// <summary>
/// Model-based test of exactly-once settlement: against the simulated NEAR node (random receipt delay, finality lag,
/// validity period, node timeout, stalls and freezes), random RPC answers to every method, another client consuming the
/// payer key's nonces, and settler instances killed at random points (a throw at a random durable step, or cancellation
/// while a random request is in flight, after the node did its work) and restarted from the real SQLite settlement store,
/// no worker is ever paid twice and the root is anchored at most once; once the faults stop, the settlement completes
/// with every worker paid exactly once.
/// </summary>
[TestClass]
public sealed class SettlementModelTests
{
    private static readonly UInt128 Rich = UInt128.Parse("1000000000000000000000000000");

    private static readonly NearFault[] SendFaults =
    [
        NearFault.TimeoutAfterExecute, NearFault.TimeoutBeforeExecute, NearFault.DropAfterExecute, NearFault.ServiceUnavailable, NearFault.Expired,
        NearFault.InternalError, NearFault.AcceptThenTimeout, NearFault.AcceptThenDrop, NearFault.RequestRouted, NearFault.InvalidNonce,
        NearFault.DoesNotTrackShard, NearFault.Drop, NearFault.PlainStringResult, NearFault.NotEnoughBalance,
    ];

    private static readonly NearFault[] ReadFaults =
        [NearFault.TimeoutBeforeExecute, NearFault.ServiceUnavailable, NearFault.InternalError, NearFault.DoesNotTrackShard, NearFault.Drop];

    private sealed class SimulatedCrash : Exception
    {
        public SimulatedCrash(string message) : base(message) { }
    }

    public static IEnumerable<object[]> Seeds() => Enumerable.Range(1, 12).Select(s => new object[] { s });

    public static IEnumerable<object[]> ManySeeds() => Enumerable.Range(100, 60).Select(s => new object[] { s });

    [TestMethod]
    [DynamicData(nameof(Seeds))]
    public Task Random_answers_crashes_and_restarts_never_pay_twice(int seed) => RunModelAsync(seed);

    [TestMethod]
    [TestCategory("Slow")]
    [DynamicData(nameof(ManySeeds))]
    public Task Random_answers_crashes_and_restarts_never_pay_twice_many_seeds(int seed) => RunModelAsync(seed);

    private static async Task RunModelAsync(int seed)
    {
        var rng = new Random(seed);
        using var server = new NearRpcTestServer(validityPeriod: (ulong)rng.Next(8, 40))
        {
            ReceiptDelay = (ulong)rng.Next(1, 4),
            FinalityLag = (ulong)rng.Next(1, 4),
            NodeTimeoutBlocks = rng.Next(1, 12),
            AnswerCurrentLevelOnTimeout = rng.Next(2) == 0,
        };
        using NearKeyPair key = NearKeyPair.FromSeed(SHA256.HashData(BitConverter.GetBytes(seed)));
        server.AddAccount("payer.testnet", Rich, key.PublicKey);
        server.FtMint("payer.testnet", 1_000_000_000);
        WorkerPayout[] payouts = Enumerable.Range(0, rng.Next(2, 8)).Select(i => new WorkerPayout($"w{i}.testnet", (ulong)(i + 1), (UInt128)(1000 * (i + 1)))).ToArray();
        foreach (WorkerPayout p in payouts)
        {
            server.FtRegister(p.WorkerId);
        }

        server.AdvanceBlocks(3);
        using var http = NearRpcTestServer.CreateClient(TimeSpan.FromSeconds(20));
        var client = new NearRpcClient(http, new NearRpcClientOptions { Endpoint = server.Endpoint, MaxRetries = rng.Next(0, 3), RetryDelay = TimeSpan.FromMilliseconds(1) });
        using NearCredentials creds = NearCredentials.FromSecretKey("payer.testnet", key.ExportSecretKey());
        int perTx = rng.Next(1, 4);
        string path = TestData.TempFile("model.db");
        byte[] root = SHA256.HashData(BitConverter.GetBytes(seed * 31));
        var log = new List<string>();
        string Context() => $"seed {seed} (validity {server.ValidityPeriod}, receipt delay {server.ReceiptDelay}, finality lag {server.FinalityLag}, node timeout {server.NodeTimeoutBlocks} blocks, current-level answers {server.AnswerCurrentLevelOnTimeout}):\n{string.Join("\n", log.TakeLast(30))}";

        void AssertNeverPaidTwice()
        {
            foreach (WorkerPayout p in payouts)
            {
                int paid = server.FtTransfers.Count(t => t.Receiver == p.WorkerId);
                Assert.IsLessThanOrEqualTo(1, paid, $"{p.WorkerId} paid {paid} times; {Context()}");
                Assert.IsLessThanOrEqualTo(p.Amount, server.FtBalance(p.WorkerId), Context());
            }

            Assert.IsLessThanOrEqualTo(1, server.Anchors.Count, Context());
            Assert.IsLessThanOrEqualTo(1, server.MaxExecutionsOfOneTransaction, Context());
            Assert.IsEmpty(server.Failures, string.Join("\n", server.Failures));
        }

        async Task<bool> RunOnceAsync(int run, int crashAtStep, int cancelAtRequest)
        {
            using var cts = new CancellationTokenSource();
            if (cancelAtRequest >= 0)
            {
                server.AfterRequest = _ =>
                {
                    if (server.RequestCount >= cancelAtRequest)
                    {
                        cts.Cancel(); // the node did its work; the settler dies before it reads the answer
                    }
                };
            }

            int steps = 0;
            var options = new SettlementOptions
            {
                TokenContract = "token.testnet",
                AnchorContract = "anchor.testnet",
                MaxTransfersPerTransaction = perTx,
                MaxAttemptsPerSlot = 1000,
                OnStep = (step, slot) =>
                {
                    if (++steps == crashAtStep)
                    {
                        throw new SimulatedCrash($"killed at step {steps} ({step} slot {slot})");
                    }
                },
            };
            using var store = new SettlementStore(path); // every run is a new instance over the stored state, as after a restart
            try
            {
                SettlementResult r = await new NearSettler(client, store, creds, options).SettleAsync(3, root, payouts, cts.Token);
                log.Add($"run {run}: settled={r.Settled}");
                return r.Settled;
            }
            catch (Exception ex) when (ex is SettlementException or SimulatedCrash or OperationCanceledException)
            {
                string states = string.Join(" ", store.GetTransactions(3).Select(t => $"{t.Slot}.{t.Attempt}:{t.State}@{t.Nonce}"));
                log.Add($"run {run}: {ex.GetType().Name}: {ex.Message} | {states}");
                return false;
            }
            finally
            {
                server.AfterRequest = null;
            }
        }

        // Chaos: random answers, foreign nonces, stalls, expiry, kills.
        for (int run = 0; run < 24; run++)
        {
            if (rng.Next(3) == 0)
            {
                server.Inject(Enumerable.Range(0, rng.Next(1, 4)).Select(_ => SendFaults[rng.Next(SendFaults.Length)]).ToArray());
            }

            if (rng.Next(4) == 0)
            {
                server.InjectFor("tx", ReadFaults[rng.Next(ReadFaults.Length)]);
            }

            if (rng.Next(6) == 0)
            {
                server.InjectFor("query", ReadFaults[rng.Next(ReadFaults.Length)]);
            }

            if (rng.Next(8) == 0)
            {
                ulong bumped = server.AccessKeyNonce("payer.testnet", key.PublicKey) + (ulong)rng.Next(1, 4);
                server.SetAccessKeyNonce("payer.testnet", key.PublicKey, bumped); // another client used the key
                log.Add($"run {run}: foreign nonce {bumped}");
            }

            if (rng.Next(5) == 0)
            {
                server.AdvanceBlocks((ulong)rng.Next(1, (int)server.ValidityPeriod + 5));
            }

            server.Frozen = rng.Next(7) == 0;
            server.FinalityStalled = rng.Next(6) == 0;
            int crashAtStep = rng.Next(2) == 0 ? rng.Next(1, 10) : -1;
            int cancelAtRequest = rng.Next(3) == 0 ? server.RequestCount + rng.Next(1, 12) : -1;
            await RunOnceAsync(run, crashAtStep, cancelAtRequest);
            server.Frozen = false;
            server.FinalityStalled = false;
            AssertNeverPaidTwice();
        }

        // Calm: the faults stop; the settlement must complete.
        server.ClearFaults();
        bool settled = false;
        for (int run = 100; run < 140 && !settled; run++)
        {
            settled = await RunOnceAsync(run, -1, -1);
            AssertNeverPaidTwice();
            server.AdvanceBlocks(2);
        }

        Assert.IsTrue(settled, Context());
        foreach (WorkerPayout p in payouts)
        {
            Assert.AreEqual(p.Amount, server.FtBalance(p.WorkerId), Context());
        }

        Assert.HasCount(payouts.Length, server.FtTransfers, Context());
        Assert.HasCount(1, server.Anchors, Context());
    }
}
