using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace NearML.Hosting.ProcessTests;

/// <summary>
/// A bounded loopback connection flood (at most 20 s and 40 000 connections, from 127.0.0.2 and 127.0.0.3, plus idle
/// connections held open from 127.0.0.4) against a coordinator process while a real worker joins from 127.0.0.1: the
/// worker gets in on its first or second try, and the coordinator's log stays small (refusals are summarized).
/// </summary>
[TestClass]
public sealed class ConnectionFloodTests
{
    private static readonly TimeSpan FloodDuration = TimeSpan.FromSeconds(20);
    private const int MaxFloodConnections = 40_000;
    private const int MaxLogLines = 120;

    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    [TestCategory("Process")]
    [TestCategory("Slow")]
    [Timeout(240_000, CooperativeCancellation = true)]
    public async Task Reconnect_flood_does_not_starve_a_real_worker_and_the_log_stays_small()
    {
        await using var cluster = new TestCluster(TestContext, "flood");
        var coordinator = await cluster.StartCoordinatorAsync(0, "--rounds", "3", "--steps", "10", "--batch-size", "32", "--min-workers", "1", "--round-timeout", "00:00:40");
        var before = coordinator.StderrCount;
        var attempts = 0;
        var refusedOrReset = 0;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cluster.Token);
        stop.CancelAfter(FloodDuration);
        var port = cluster.Port;

        // Reconnect flood: connect, maybe send a few garbage bytes, reset (no TIME_WAIT), again.
        async Task FloodAsync(string source, int seed)
        {
            var random = new Random(seed);
            var garbage = new byte[64];
            while (!stop.IsCancellationRequested && Interlocked.Increment(ref attempts) <= MaxFloodConnections)
            {
                using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { LingerState = new LingerOption(true, 0) };
                try
                {
                    s.Bind(new IPEndPoint(IPAddress.Parse(source), 0));
                    await s.ConnectAsync(IPAddress.Loopback, port, stop.Token);
                    if (random.Next(2) == 0)
                    {
                        random.NextBytes(garbage);
                        await s.SendAsync(garbage, SocketFlags.None, stop.Token);
                    }
                }
                catch (SocketException)
                {
                    Interlocked.Increment(ref refusedOrReset);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }

        // Slow clients: open and hold connections that never start TLS (they sit in the handshake budget until it times out).
        var idle = new List<Socket>();
        async Task HoldAsync()
        {
            for (var i = 0; i < 40 && !stop.IsCancellationRequested; i++)
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                lock (idle)
                {
                    idle.Add(s);
                }

                try
                {
                    s.Bind(new IPEndPoint(IPAddress.Parse("127.0.0.4"), 0));
                    await s.ConnectAsync(IPAddress.Loopback, port, stop.Token);
                }
                catch (Exception ex) when (ex is SocketException or OperationCanceledException)
                {
                }
            }
        }

        var flood = new List<Task> { Task.Run(HoldAsync, CancellationToken.None) };
        for (var i = 0; i < 4; i++)
        {
            var source = i % 2 == 0 ? "127.0.0.2" : "127.0.0.3";
            var seed = i;
            flood.Add(Task.Run(() => FloodAsync(source, seed), CancellationToken.None));
        }

        try
        {
            await Task.Delay(TimeSpan.FromSeconds(3), cluster.Token);
            Assert.IsGreaterThan(100, Volatile.Read(ref attempts), "the flood did not start");

            // The real worker joins while the flood runs.
            var worker = cluster.StartWorker("h0");
            await worker.WaitForStderrAsync(@"Worker 'h0' admitted", TimeSpan.FromSeconds(60), 0, cluster.Token);
            var failures = worker.StderrLines.TakeWhile(l => !l.Contains("Worker 'h0' admitted", StringComparison.Ordinal))
                .Count(l => l.Contains("Connection to the coordinator failed", StringComparison.Ordinal));
            TestContext.WriteLine($"worker admitted after {failures} failed attempt(s), {Volatile.Read(ref attempts)} flood connections so far");
            Assert.IsLessThanOrEqualTo(1, failures, "the worker needed more than two tries:\n" + worker.Transcript());
            await Task.WhenAll(flood);
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(flood);
            lock (idle)
            {
                foreach (var s in idle)
                {
                    s.Dispose();
                }
            }
        }

        var total = Math.Min(Volatile.Read(ref attempts), MaxFloodConnections);
        TestContext.WriteLine($"flood: {total} connections in {FloodDuration.TotalSeconds:0} s ({Volatile.Read(ref refusedOrReset)} refused or reset on the client side)");
        Assert.IsGreaterThan(2000, total, "the flood was too small to mean anything");

        // The summary of the last interval arrives within one interval (10 s) after the flood, or when the coordinator stops
        // (a quiet machine finishes the job's 3 rounds before the flood ends; the limiter writes its pending summary on stop).
        await coordinator.WaitForStderrAsync(@"more connection refusals and faults in the last", TimeSpan.FromSeconds(30), before, cluster.Token);
        await Task.Delay(TimeSpan.FromSeconds(11), cluster.Token);
        var lines = coordinator.StderrLines.Skip(before).ToList();
        var summaries = lines.Where(l => l.Contains("more connection refusals", StringComparison.Ordinal)).ToList();
        var suppressed = summaries.Sum(l => long.Parse(Regex.Match(l, @"(\d+) more connection refusals").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
        TestContext.WriteLine($"coordinator wrote {lines.Count} log lines during and after the flood; {summaries.Count} summaries covering {suppressed} suppressed refusals/faults");
        foreach (var s in summaries)
        {
            TestContext.WriteLine(s);
        }

        Assert.IsLessThanOrEqualTo(MaxLogLines, lines.Count, "the flood flooded the log:\n" + string.Join("\n", lines.Take(200)));
        Assert.IsGreaterThan(1000, suppressed, "the summaries do not account for the flood");

        // Training went on: the job completes.
        Assert.AreEqual(0, await coordinator.WaitForExitAsync(TimeSpan.FromSeconds(120), cluster.Token), cluster.Transcripts());
        Assert.HasCount(3, TestCluster.CompletedRounds(coordinator));
        cluster.Passed();
    }
}
