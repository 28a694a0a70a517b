using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using NearML.Core.Contracts;
using NearML.Core.Protocol;

namespace NearML.Core.Tests.Protocol;

/// <summary>
/// The listener's budget for connections that are not admitted yet: per address (concurrent and rate) and overall, with
/// admitted connections leaving it. Flood sockets bind other loopback source addresses (127.0.0.2, 127.0.0.3) so the
/// honest worker on 127.0.0.1 is a different address, as on a real network.
/// </summary>
[TestClass]
public sealed class ConnectionLimitTests
{
    private static X509Certificate2 s_certificate = null!;

    public TestContext TestContext { get; set; } = null!;

    [ClassInitialize]
    public static void CreateCertificate(TestContext context) => s_certificate = CoordinatorCertificate.CreateDevelopment();

    [ClassCleanup]
    public static void DisposeCertificate() => s_certificate.Dispose();

    private static CoordinatorTrust Pin => CoordinatorTrust.Pinned(CoordinatorCertificate.GetFingerprint(s_certificate));

    private static ProtocolListener Start(ProtocolListenerOptions options, ConcurrentQueue<Exception> faults)
    {
        options.ConnectionFaulted = (_, ex) => faults.Enqueue(ex);
        var handshake = new CoordinatorHandshakeOptions { Policy = AdmissionPolicies.AdmitAnyIdentity, Timeout = TimeSpan.FromSeconds(30) };
        var listener = new ProtocolListener(
            new IPEndPoint(IPAddress.Loopback, 0),
            s_certificate,
            async (connection, ct) =>
            {
                await CoordinatorHandshake.RunAsync(connection, handshake, ct);
                while (await connection.ReceiveAsync(ct) is not (null or Goodbye))
                {
                }
            },
            options);
        listener.Start();
        return listener;
    }

    private async Task<Socket> ConnectFromAsync(string source, int port)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Parse(source), 0));
        await socket.ConnectAsync(IPAddress.Loopback, port, TestContext.CancellationToken);
        return socket;
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        for (var i = 0; i < 1000 && !condition(); i++)
        {
            await Task.Delay(10);
        }

        Assert.IsTrue(condition(), what);
    }

    private static int Refusals(ConcurrentQueue<Exception> faults, string text) =>
        faults.Count(f => f is ProtocolException { Code: ErrorCode.Refused } p && p.Message.Contains(text, StringComparison.Ordinal));

    [TestMethod]
    [Timeout(60_000, CooperativeCancellation = true)]
    public async Task Idle_handshakes_from_one_address_are_capped_and_a_worker_from_another_is_admitted()
    {
        var faults = new ConcurrentQueue<Exception>();
        await using var listener = Start(new ProtocolListenerOptions { MaxPendingHandshakes = 8, MaxPendingHandshakesPerAddress = 4, HandshakeBurstPerAddress = 100, HandshakeRatePerAddress = 100 }, faults);
        var port = listener.LocalEndPoint.Port;
        var idle = new List<Socket>();
        try
        {
            for (var i = 0; i < 10; i++)
            {
                idle.Add(await ConnectFromAsync("127.0.0.2", port));
            }

            await WaitUntilAsync(() => Refusals(faults, "per-address pending-handshake limit of 4") == 6, $"6 of 10 idle connections from one address are refused; faults: {string.Join(" | ", faults.Select(f => f.Message))}");
            Assert.AreEqual(4, listener.PendingHandshakes);

            // A worker from 127.0.0.1 still gets in, and once admitted it no longer counts against the handshake budget.
            await using var connection = await ProtocolConnector.ConnectAsync("127.0.0.1", port, Pin, cancellationToken: TestContext.CancellationToken);
            using var identity = Ed25519Identity.Generate();
            var admission = await WorkerHandshake.RunAsync(connection, identity, new WorkerHandshakeOptions { WorkerId = "honest" }, TestContext.CancellationToken);
            Assert.AreEqual(32, admission.SessionId.Length);
            // The listener gives the admitted connection's handshake slot back just after the worker reads its admission.
            await WaitUntilAsync(() => listener.ActiveConnections == 5 && listener.PendingHandshakes == 4, $"4 idle + 1 admitted connections are served, 4 pending (pending {listener.PendingHandshakes})");

            // The overall budget: a second address may add only 4 more pending (8 in all).
            for (var i = 0; i < 6; i++)
            {
                idle.Add(await ConnectFromAsync("127.0.0.3", port));
            }

            await WaitUntilAsync(() => Refusals(faults, "pending-handshake limit of 8 reached") == 2, "the overall pending budget of 8 refuses the rest");
            Assert.AreEqual(8, listener.PendingHandshakes);
        }
        finally
        {
            foreach (var s in idle)
            {
                s.Dispose();
            }
        }

        // Closed flood connections give their slots back.
        await WaitUntilAsync(() => listener.PendingHandshakes == 0, "the pending budget is released when the clients close");
    }

    [TestMethod]
    [Timeout(60_000, CooperativeCancellation = true)]
    public async Task Reconnect_flood_from_one_address_is_rate_limited_by_a_token_bucket()
    {
        var faults = new ConcurrentQueue<Exception>();
        await using var listener = Start(new ProtocolListenerOptions { HandshakeBurstPerAddress = 5, HandshakeRatePerAddress = 0.01 }, faults);
        var port = listener.LocalEndPoint.Port;
        for (var i = 0; i < 20; i++)
        {
            using var s = await ConnectFromAsync("127.0.0.2", port);
        }

        await WaitUntilAsync(() => Refusals(faults, "per-address handshake rate") == 15, $"5 connections pass the bucket, 15 are refused; faults: {faults.Count}");

        // Another address has its own bucket.
        await using var connection = await ProtocolConnector.ConnectAsync("127.0.0.1", port, Pin, cancellationToken: TestContext.CancellationToken);
        using var identity = Ed25519Identity.Generate();
        _ = await WorkerHandshake.RunAsync(connection, identity, new WorkerHandshakeOptions { WorkerId = "honest" }, TestContext.CancellationToken);
        await WaitUntilAsync(() => listener.PendingHandshakes == 0, "the closed flood connections and the admitted worker leave the pending budget");
    }

    [TestMethod]
    public void Invalid_limits_are_refused()
    {
        foreach (var options in new[]
        {
            new ProtocolListenerOptions { MaxPendingHandshakes = 0 },
            new ProtocolListenerOptions { MaxPendingHandshakesPerAddress = 0 },
            new ProtocolListenerOptions { HandshakeBurstPerAddress = 0 },
            new ProtocolListenerOptions { HandshakeRatePerAddress = 0 },
            new ProtocolListenerOptions { HandshakeRatePerAddress = double.NaN },
        })
        {
            Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new ProtocolListener(new IPEndPoint(IPAddress.Loopback, 0), s_certificate, (_, _) => Task.CompletedTask, options));
        }
    }
}
