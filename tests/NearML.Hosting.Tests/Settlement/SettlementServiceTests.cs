using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using NearML.Hosting.Coordinator;
using NearML.Hosting.Settlement;
using NearML.Hosting.State;
using NearML.Hosting.Tests.Coordinator;
using NearML.Ledger;
using NearML.Ledger.Tests;

namespace NearML.Hosting.Tests.Settlement;

/// <summary>
/// The settlement component (issue 15 §1): transactions are signed by the payer key, never the ledger key (dry run and
/// live, checked on the signed bytes); live settlement without a payer key is refused at start with one message; NEAR
/// RPC goes through the pooled <see cref="IHttpClientFactory"/> client, whose requests <see cref="NearRpcClient"/> retries.
/// </summary>
[TestClass]
public sealed class SettlementServiceTests
{
    private const string Job = "settle-job";
    private const string Payer = "payer.testnet";

    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public async Task A_dry_run_signs_with_a_generated_payer_key_kept_private_in_the_data_folder_never_with_the_ledger_key()
    {
        var dir = TestAssembly.NewTempDirectory("settle-dry");
        using var folder = OpenFolderWithReceipts(dir, epoch: 0, "w1", "w2");
        using var services = Services(o => o.DataDirectory = dir);
        var settlement = services.GetRequiredService<SettlementService>();
        await settlement.StartAsync(TestContext.CancellationToken);

        var keyFile = Path.Combine(dir, SettlementService.DryRunPayerKeyFileName);
        Assert.IsTrue(File.Exists(keyFile));
        if (!OperatingSystem.IsWindows())
        {
            Assert.AreEqual(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(keyFile));
        }

        using var payer = NearKeyPair.Parse(File.ReadAllText(keyFile).Trim());
        Assert.AreEqual(payer.PublicKey, settlement.PayerPublicKey);
        Assert.AreNotEqual(folder.Signer.PublicKey, payer.PublicKey);

        Assert.IsTrue(await settlement.SettleAsync(0, folder.Ledger, folder.State, TestContext.CancellationToken));
        var records = folder.State.ReadSettlements();
        Assert.HasCount(2, records);
        var root = folder.Ledger.ComputeEpochRoot(0);
        foreach (var r in records)
        {
            // A NEAR transaction hash covers the signer's public key: rebuilt with the payer key it matches, with the
            // ledger key it does not.
            Assert.AreEqual(r.Hash, OfflineTransaction(r, root, payer.PublicKey).Sign(payer).HashBase58);
            Assert.AreNotEqual(r.Hash, SimpleBase.Base58.Bitcoin.Encode(OfflineTransaction(r, root, folder.Signer.PublicKey).ComputeHash()));
        }

        // A restart keeps the same payer key (the file is read, not replaced).
        using var again = Services(o => o.DataDirectory = dir);
        await again.GetRequiredService<SettlementService>().StartAsync(TestContext.CancellationToken);
        Assert.AreEqual(payer.PublicKey, again.GetRequiredService<SettlementService>().PayerPublicKey);
    }

    [TestMethod]
    public async Task A_configured_payer_key_signs_the_dry_run_and_a_malformed_key_file_is_refused_at_start_naming_the_setting()
    {
        var dir = TestAssembly.NewTempDirectory("settle-key");
        Directory.CreateDirectory(dir);
        using var folder = OpenFolderWithReceipts(dir, epoch: 0, "w1");
        using var payer = NearKeyPair.Generate();
        var keyFile = Path.Combine(dir, "payer.key");
        File.WriteAllText(keyFile, payer.ExportSecretKey());
        using (var services = Services(o =>
        {
            o.DataDirectory = dir;
            o.SettlementKeyPath = keyFile;
        }))
        {
            var settlement = services.GetRequiredService<SettlementService>();
            await settlement.StartAsync(TestContext.CancellationToken);
            Assert.AreEqual(payer.PublicKey, settlement.PayerPublicKey);
            Assert.IsFalse(File.Exists(Path.Combine(dir, SettlementService.DryRunPayerKeyFileName)), "no key is generated when one is configured");
            Assert.IsTrue(await settlement.SettleAsync(0, folder.Ledger, folder.State, TestContext.CancellationToken));
            var r = folder.State.ReadSettlements().Single();
            Assert.AreEqual(r.Hash, OfflineTransaction(r, folder.Ledger.ComputeEpochRoot(0), payer.PublicKey).Sign(payer).HashBase58);
        }

        // A NEAR CLI credential file works when it is for the paying account, and is refused when it names another.
        using var other = NearKeyPair.Generate();
        var cases = new (string Content, string? Expected)[]
        {
            (JsonSerializer.Serialize(new { account_id = Payer, public_key = other.PublicKey.ToString(), private_key = other.ExportSecretKey() }), null),
            (JsonSerializer.Serialize(new { account_id = "someone-else.testnet", private_key = other.ExportSecretKey() }), "not for SettlementAccount"),
            (string.Empty, "SettlementKeyPath"),
            ("ed25519:", "SettlementKeyPath"),
            ("not a key", "SettlementKeyPath"),
            ("ed25519:" + other.ExportSecretKey()[8..^4], "SettlementKeyPath"),
            ("{ not json", "SettlementKeyPath"),
        };
        foreach (var (content, expected) in cases)
        {
            File.WriteAllText(keyFile, content);
            using var services = Services(o =>
            {
                o.DataDirectory = dir;
                o.SettlementKeyPath = keyFile;
                o.SettlementAccount = Payer;
            });
            var settlement = services.GetRequiredService<SettlementService>();
            if (expected is null)
            {
                await settlement.StartAsync(TestContext.CancellationToken);
                Assert.AreEqual(other.PublicKey, settlement.PayerPublicKey);
                continue;
            }

            var ex = await Assert.ThrowsExactlyAsync<InvalidNearKeyException>(() => settlement.StartAsync(TestContext.CancellationToken), content);
            StringAssert.Contains(ex.Message, expected, content);
            StringAssert.Contains(ex.Message, keyFile, content);
            Assert.IsFalse(ex.Message.Contains(other.ExportSecretKey(), StringComparison.Ordinal), "the message never holds the secret");
        }
    }

    [TestMethod]
    [Timeout(60_000, CooperativeCancellation = true)]
    public async Task Live_settlement_without_a_payer_key_is_refused_at_start_with_one_message()
    {
        var dir = TestAssembly.NewTempDirectory("settle-refused");
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddNearMLCoordinator(o =>
        {
            CoordinatorHarness.Defaults(o, dir);
            o.SettlementDryRun = false;
            o.SettlementRpcEndpoint = new Uri("http://127.0.0.1:9/");
        });
        using var host = builder.Build();
        var ex = await Assert.ThrowsExactlyAsync<OptionsValidationException>(() => host.StartAsync(TestContext.CancellationToken));
        var failure = ex.Failures.Single();
        Assert.AreEqual(
            "SettlementKeyPath is required when SettlementDryRun is false: live settlement signs with the payer key of SettlementAccount 'nearml-coordinator.testnet', never with the ledger's receipt-signing key (set NearML:Coordinator:SettlementKeyPath to the key file; the samples take --settlement-key FILE).",
            failure);
        Assert.IsFalse(Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any(), "nothing was created: the coordinator did not start");

        // The component itself refuses too when built without validated options (no fallback to any other key).
        using var settlement = new SettlementService(
            Options.Create(new NearMLCoordinatorOptions { DataDirectory = dir, SettlementDryRun = false, SettlementRpcEndpoint = new Uri("http://127.0.0.1:9/") }),
            new CoordinatorStatus());
        var direct = await Assert.ThrowsExactlyAsync<InvalidOperationException>(() => settlement.StartAsync(TestContext.CancellationToken));
        StringAssert.StartsWith(direct.Message, "SettlementKeyPath is required when SettlementDryRun is false");
    }

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task Live_settlement_sends_transactions_signed_by_the_payer_key_through_the_pooled_client_which_retries_a_failed_call()
    {
        using var node = new NearRpcTestServer();
        using var payer = NearKeyPair.Generate();
        node.AddAccount(Payer, UInt128.Parse("10000000000000000000000000", CultureInfo.InvariantCulture), payer.PublicKey);
        var dir = TestAssembly.NewTempDirectory("settle-live");
        Directory.CreateDirectory(dir);
        var keyFile = Path.Combine(dir, "payer.key");
        File.WriteAllText(keyFile, payer.ExportSecretKey());
        using var folder = OpenFolderWithReceipts(dir, epoch: 0, "w1", "w2");
        AppendReceipts(folder, epoch: 1, round: 1, "w1");

        var handlersBuilt = 0;
        var sent = new CountingHandler();
        using var services = Services(
            o =>
            {
                o.DataDirectory = dir;
                o.SettlementDryRun = false;
                o.SettlementRpcEndpoint = node.Endpoint;
                o.SettlementAccount = Payer;
                o.SettlementKeyPath = keyFile;
            },
            s => s.AddHttpClient(SettlementService.HttpClientName)
                .ConfigurePrimaryHttpMessageHandler(() =>
                {
                    Interlocked.Increment(ref handlersBuilt);
                    return new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.Zero };
                })
                .AddHttpMessageHandler(() => sent));
        var settlement = services.GetRequiredService<SettlementService>();
        await settlement.StartAsync(TestContext.CancellationToken);

        // The node answers the first read with HTTP 503: NearRpcClient's retry sends it again through the same client.
        node.InjectFor("query", NearFault.ServiceUnavailable);
        Assert.IsTrue(await settlement.SettleAsync(0, folder.Ledger, folder.State, TestContext.CancellationToken));
        Assert.IsTrue(await settlement.SettleAsync(1, folder.Ledger, folder.State, TestContext.CancellationToken));

        var queries = node.Requests.Where(b => JsonDocument.Parse(b).RootElement.GetProperty("method").GetString() == "query").ToList();
        Assert.IsGreaterThanOrEqualTo(2, queries.Count);
        Assert.AreEqual(Params(queries[0]), Params(queries[1]), "the failed read was retried with the same request");
        Assert.AreEqual(node.RequestCount, sent.Count, "every request, the retried one included, went through the factory's client");
        Assert.AreEqual(1, handlersBuilt, "two epochs share one pooled handler");

        // Decode the bytes the node received: every transaction is signed by the payer key, none by the ledger key.
        var signed = node.Requests
            .Select(b => JsonDocument.Parse(b).RootElement)
            .Where(r => r.GetProperty("method").GetString() == "send_tx")
            .Select(r => SignedNearTransaction.Parse(Convert.FromBase64String(r.GetProperty("params").GetProperty("signed_tx_base64").GetString()!)))
            .ToList();
        Assert.IsNotEmpty(signed);
        foreach (var tx in signed)
        {
            Assert.AreEqual(payer.PublicKey, tx.Transaction.PublicKey);
            Assert.AreNotEqual(folder.Signer.PublicKey, tx.Transaction.PublicKey);
            Assert.AreEqual(Payer, tx.Transaction.SignerId);
            Assert.IsTrue(tx.Verify(), "signed by the payer key");
        }

        CollectionAssert.AreEquivalent(new[] { "w1", "w1", "w2" }, node.NativeTransfers.Select(t => t.Receiver).ToArray());
        Assert.AreEqual(1, node.MaxExecutionsOfOneTransaction);
        var records = folder.State.ReadSettlements();
        CollectionAssert.AreEqual(new long[] { 0, 0, 1 }, records.Select(r => r.Epoch).ToArray());
        Assert.IsTrue(records.All(r => !r.DryRun));
        CollectionAssert.IsSubsetOf(records.Select(r => r.Hash).ToArray(), signed.Select(s => s.HashBase58).ToArray());
        Assert.IsEmpty(node.Failures);
    }

    [TestMethod]
    [Timeout(180_000, CooperativeCancellation = true)]
    public async Task A_coordinator_with_live_settlement_pays_on_chain_with_the_payer_key()
    {
        using var node = new NearRpcTestServer();
        using var payer = NearKeyPair.Generate();
        node.AddAccount(Payer, UInt128.Parse("10000000000000000000000000", CultureInfo.InvariantCulture), payer.PublicKey);
        var dir = TestAssembly.NewTempDirectory("settle-coord");
        Directory.CreateDirectory(dir);
        var keyFile = Path.Combine(dir, "payer.key");
        File.WriteAllText(keyFile, payer.ExportSecretKey());
        await using (var c = await CoordinatorHarness.StartAsync(
            o =>
            {
                o.Rounds = 2;
                o.SettlementDryRun = false;
                o.SettlementRpcEndpoint = node.Endpoint;
                o.SettlementAccount = Payer;
                o.SettlementKeyPath = keyFile;
            },
            dir))
        {
            await using var w = await FakeWorker.StartAsync(c, "w1");
            await c.Status.CompletedTask.WaitAsync(CoordinatorHarness.Timeout, TestContext.CancellationToken);
            Assert.IsTrue(c.Logs.Contains("Settlement of epoch 0 (sent)"));
        }

        using var ledgerKey = NearKeyPair.Parse(File.ReadAllText(Path.Combine(dir, CoordinatorStateFolder.SignerKeyFileName)).Trim());
        using var store = new SettlementStore(Path.Combine(dir, CoordinatorStateFolder.SettlementFileName));
        var stored = store.GetTransactions(0);
        Assert.IsNotEmpty(stored);
        foreach (var t in stored)
        {
            var tx = SignedNearTransaction.Parse(t.SignedBytes);
            Assert.AreEqual(payer.PublicKey, tx.Transaction.PublicKey);
            Assert.AreNotEqual(ledgerKey.PublicKey, tx.Transaction.PublicKey);
        }

        Assert.AreEqual("w1", node.NativeTransfers.Single().Receiver);
    }

    private static string Params(string body) => JsonDocument.Parse(body).RootElement.GetProperty("params").GetRawText();

    private static NearTransaction OfflineTransaction(SettlementRecord r, byte[] root, NearPublicKey key) =>
        new("nearml-coordinator.testnet", key, r.Nonce, r.Receiver, SHA256.HashData([.. "nearml/offline-settlement/v1"u8, .. root]),
            [new TransferAction(UInt128.Parse(r.Amount, CultureInfo.InvariantCulture))]);

    private static CoordinatorStateFolder OpenFolderWithReceipts(string dir, long epoch, params string[] workers)
    {
        var folder = CoordinatorStateFolder.Open(dir, Job);
        AppendReceipts(folder, epoch, round: epoch, workers);
        return folder;
    }

    private static void AppendReceipts(CoordinatorStateFolder folder, long epoch, long round, params string[] workers)
    {
        var receipts = workers.Select((w, i) => SignedReceipt.Sign(
            new ContributionReceipt(Job, round, w, 100 + (ulong)i, 0, 5, 1000, AttestationVerdict.Verified, SHA256.HashData([(byte)i, (byte)round]), 1_700_000_000_000),
            folder.Signer)).ToList();
        folder.Ledger.AppendBatch(epoch, receipts);
    }

    private static ServiceProvider Services(Action<NearMLCoordinatorOptions> configure, Action<IServiceCollection>? more = null)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        more?.Invoke(services);
        services.AddNearMLCoordinator(o =>
        {
            CoordinatorHarness.Defaults(o, o.DataDirectory);
            configure(o);
        });
        return services.BuildServiceProvider();
    }

    private sealed class CountingHandler : DelegatingHandler
    {
        private int _count;

        public int Count => Volatile.Read(ref _count);

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _count);
            return base.SendAsync(request, cancellationToken);
        }
    }
}
