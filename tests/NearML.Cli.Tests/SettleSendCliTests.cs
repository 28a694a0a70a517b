using System.Globalization;
using System.Text.Json;
using NearML.Ledger;
using NearML.Ledger.Tests;

namespace NearML.Cli.Tests;

/// <summary>
/// <c>nearml settle --send</c> pays through the coordinator's settlement path (the pooled named HTTP client and
/// <see cref="NearRpcClient"/>'s retry): against a NEAR JSON-RPC node in the test process that answers the first read with
/// HTTP 503, the epoch is still paid exactly once, signed by the payer key.
/// </summary>
[TestClass]
public sealed class SettleSendCliTests
{
    private const string Payer = "coordinator.testnet";

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task Settle_send_pays_the_epoch_once_retrying_a_transient_node_fault()
    {
        using var folder = await StateFolder.CreateAsync();
        using var node = new NearRpcTestServer();
        using var payer = NearKeyPair.Generate();
        node.AddAccount(Payer, UInt128.Parse("10000000000000000000000000", CultureInfo.InvariantCulture), payer.PublicKey);
        var payerKey = Path.Combine(folder.Root, "payer.key");
        File.WriteAllText(payerKey, payer.ExportSecretKey());

        node.InjectFor("query", NearFault.ServiceUnavailable);
        var sent = await CliProcess.NearmlAsync(
            "settle", folder.Root, "--epoch", "0", "--send", "--pool", "600", "--rpc", node.Endpoint.ToString(), "--account", Payer, "--settlement-key", payerKey, "--json");
        Assert.AreEqual(0, sent.ExitCode, sent.ToString());
        using (var doc = JsonDocument.Parse(sent.Stdout))
        {
            Assert.IsTrue(doc.RootElement.GetProperty("settled").GetBoolean(), sent.Stdout);
        }

        var queries = node.Requests.Where(b => JsonDocument.Parse(b).RootElement.GetProperty("method").GetString() == "query").ToList();
        Assert.IsGreaterThanOrEqualTo(2, queries.Count, "the read that failed with 503 was sent again");
        CollectionAssert.AreEquivalent(StateFolder.Workers, node.NativeTransfers.Select(t => t.Receiver).ToArray());
        Assert.AreEqual(1, node.MaxExecutionsOfOneTransaction);
        Assert.IsEmpty(node.Failures);

        // Run again: nothing is paid twice (the settlement store says the epoch is settled).
        var again = await CliProcess.NearmlAsync(
            "settle", folder.Root, "--epoch", "0", "--send", "--pool", "600", "--rpc", node.Endpoint.ToString(), "--account", Payer, "--settlement-key", payerKey, "--json");
        Assert.AreEqual(0, again.ExitCode, again.ToString());
        Assert.HasCount(StateFolder.Workers.Length, node.NativeTransfers);
    }
}
