using System.Net;
using System.Net.Sockets;
using NearML.Core.Protocol;
using NearML.Hosting.Worker;

namespace NearML.Hosting.Tests.Worker;

/// <summary>Several coordinator addresses (docs/failover.md): parsing, validation, the order of attempts, and a real worker moving to the standby.</summary>
[TestClass]
public sealed class CoordinatorAddressesTests
{
    [TestMethod]
    [DataRow("coordinator.example.org:7421", "coordinator.example.org", 7421)]
    [DataRow("10.0.0.5", "10.0.0.5", 7420)]
    [DataRow(" 10.0.0.5:1 ", "10.0.0.5", 1)]
    [DataRow("[::1]:65535", "::1", 65535)]
    [DataRow("[fe80::1]", "fe80::1", 7420)]
    public void Addresses_parse_with_the_default_port_when_none_is_given(string text, string host, int port)
    {
        var address = CoordinatorAddress.Parse(text, 7420);
        Assert.AreEqual(host, address.Host);
        Assert.AreEqual(port, address.Port);
        Assert.AreEqual(address, CoordinatorAddress.Parse(address.ToString(), 1), "ToString round-trips");
    }

    [TestMethod]
    [DataRow("")]
    [DataRow("   ")]
    [DataRow("host:")]
    [DataRow("host:0")]
    [DataRow("host:65536")]
    [DataRow("host:-1")]
    [DataRow("host:+80")]
    [DataRow("host:80x")]
    [DataRow(":80")]
    [DataRow("::1")]
    [DataRow("[::1")]
    [DataRow("[]:80")]
    [DataRow("[::1]80")]
    [DataRow("two words:80")]
    public void Malformed_addresses_are_refused_with_a_reason(string text)
    {
        var ex = Assert.ThrowsExactly<FormatException>(() => CoordinatorAddress.Parse(text, 7420));
        Assert.IsFalse(string.IsNullOrWhiteSpace(ex.Message));
    }

    [TestMethod]
    public void The_validator_names_the_bad_address_by_index()
    {
        var options = new NearMLWorkerOptions { WorkerId = "w", CoordinatorAddresses = ["a:1", "b:99999"] };
        var result = new NearMLWorkerOptionsValidator().Validate(null, options);
        Assert.IsTrue(result.Failed);
        StringAssert.Contains(result.FailureMessage, "NearML:Worker:CoordinatorAddresses:1");
        Assert.IsTrue(new NearMLWorkerOptionsValidator().Validate(null, new NearMLWorkerOptions { WorkerId = "w", CoordinatorAddresses = ["a:1", "[::1]:2"] }).Succeeded);
    }

    [TestMethod]
    public void Without_addresses_the_worker_uses_CoordinatorHost_and_CoordinatorPort()
    {
        var addresses = CoordinatorAddresses.FromOptions(new NearMLWorkerOptions { CoordinatorHost = "c.example", CoordinatorPort = 9000 });
        Assert.HasCount(1, addresses.All);
        Assert.AreEqual(new CoordinatorAddress("c.example", 9000), addresses.Current);
        Assert.IsTrue(addresses.Failed(), "one address: every failure backs off, as before");
        Assert.AreEqual(0, addresses.CurrentIndex);
    }

    [TestMethod]
    public void Each_failure_moves_to_the_next_address_and_only_a_whole_failed_cycle_backs_off()
    {
        var addresses = CoordinatorAddresses.FromOptions(new NearMLWorkerOptions { CoordinatorPort = 7, CoordinatorAddresses = ["a", "b:8", "c:9"] });
        CollectionAssert.AreEqual(new[] { "a:7", "b:8", "c:9" }, addresses.All.Select(a => a.ToString()).ToList());
        var backoffs = new List<bool>();
        var visited = new List<string> { addresses.Current.Host };
        for (var i = 0; i < 6; i++)
        {
            backoffs.Add(addresses.Failed());
            visited.Add(addresses.Current.Host);
        }

        CollectionAssert.AreEqual(new[] { "a", "b", "c", "a", "b", "c", "a" }, visited);
        CollectionAssert.AreEqual(new[] { false, false, true, false, false, true }, backoffs);

        // Admitted by b: a drop there tries c, then a, and backs off only after b failed again.
        addresses.Failed();
        Assert.AreEqual("b", addresses.Current.Host);
        addresses.Admitted();
        Assert.IsFalse(addresses.Failed());
        Assert.IsFalse(addresses.Failed());
        Assert.IsTrue(addresses.Failed());
        Assert.AreEqual("b", addresses.Current.Host);
    }

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task A_worker_whose_coordinator_dies_is_admitted_by_the_next_address_with_the_same_identity()
    {
        // Two coordinators with one TLS identity (docs/failover.md: the same certificate file), so one pin trusts both.
        using var certificate = CoordinatorCertificate.CreateDevelopment();
        var primary = new FakeCoordinator(certificate: certificate);
        await using var standby = new FakeCoordinator(certificate: certificate);
        var dead = FreePort();
        await using var worker = new WorkerTestHost(primary, o => o.CoordinatorAddresses = [$"127.0.0.1:{dead}", $"127.0.0.1:{primary.Port}", $"127.0.0.1:{standby.Port}"]);
        await worker.StartAsync();

        // The first address refuses the connection: the worker goes straight on to the second.
        var first = await primary.NextSessionAsync();
        await worker.WaitUntilAsync(static s => s.State == WorkerState.Waiting, "admitted by the primary");

        // The primary dies (listener and connections gone): the worker is admitted by the standby, same certificate pin.
        first.End();
        await primary.DisposeAsync();
        var second = await standby.NextSessionAsync();
        CollectionAssert.AreEqual(first.Worker.PublicKey.ToArray(), second.Worker.PublicKey.ToArray(), "the same worker identity");
        await worker.WaitUntilAsync(static s => s.State == WorkerState.Waiting, "admitted by the standby");
        Assert.IsNull(worker.Status.LastError);
        second.End();
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
