using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using NearML.Hosting.Settlement;
using NearML.Ledger;
using NearML.Ledger.Tests;

namespace NearML.Hosting.Tests.Settlement;

/// <summary>
/// <see cref="SettlementService.CreateRpcClient"/> is the one way a NEAR JSON-RPC client for settlement is built (the
/// coordinator's component and <c>nearml settle</c>): over the pooled <see cref="SettlementService.HttpClientName"/> client
/// registered by <see cref="SettlementService.AddRpcHttpClient"/>, with <see cref="NearRpcClient"/>'s retry.
/// </summary>
[TestClass]
public sealed class SettlementRpcClientTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    [Timeout(60_000, CooperativeCancellation = true)]
    public async Task The_settlement_rpc_client_goes_through_the_named_pooled_client_and_retries_a_transient_fault()
    {
        using var node = new NearRpcTestServer();
        using var key = NearKeyPair.Generate();
        node.AddAccount("payer.testnet", UInt128.Parse("1000", CultureInfo.InvariantCulture), key.PublicKey);
        var handlersBuilt = 0;
        var requests = 0;
        var services = new ServiceCollection();
        SettlementService.AddRpcHttpClient(services)
            .ConfigurePrimaryHttpMessageHandler(() =>
            {
                Interlocked.Increment(ref handlersBuilt);
                return new SocketsHttpHandler();
            })
            .AddHttpMessageHandler(() => new Counting(() => Interlocked.Increment(ref requests)));
        using var sp = services.BuildServiceProvider();
        var factory = sp.GetRequiredService<IHttpClientFactory>();

        node.InjectFor("query", NearFault.ServiceUnavailable);
        var first = SettlementService.CreateRpcClient(factory, node.Endpoint);
        var view = await first.ViewAccessKeyAsync("payer.testnet", key.PublicKey, TestContext.CancellationToken);
        Assert.IsNotNull(view);
        var second = SettlementService.CreateRpcClient(factory, node.Endpoint);
        _ = await second.ViewAccountAsync("payer.testnet", TestContext.CancellationToken);

        var queries = node.Requests.Count(b => JsonDocument.Parse(b).RootElement.GetProperty("method").GetString() == "query");
        Assert.AreEqual(3, queries, "the read answered with 503 was sent again, then the second client's read");
        Assert.AreEqual(node.RequestCount, requests, "every request went through the named client's handlers");
        Assert.AreEqual(1, handlersBuilt, "both clients share one pooled handler");
        Assert.AreEqual("endpoint", Assert.ThrowsExactly<ArgumentNullException>(() => SettlementService.CreateRpcClient(factory, null!)).ParamName);
        Assert.AreEqual("httpClientFactory", Assert.ThrowsExactly<ArgumentNullException>(() => SettlementService.CreateRpcClient(null!, node.Endpoint)).ParamName);
    }

    private sealed class Counting(Action onRequest) : DelegatingHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            onRequest();
            return base.SendAsync(request, cancellationToken);
        }
    }
}
