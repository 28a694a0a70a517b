using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using NearML.Hosting.Tests.Coordinator;
using NearML.Hosting.Worker;
using NearML.Ledger;

namespace NearML.Hosting.Tests.EndToEnd;

/// <summary>A real coordinator host and real worker hosts (AddNearMLWorker) in this process, over loopback TLS.</summary>
[TestClass]
public sealed class EndToEndTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task Two_real_workers_train_three_rounds_and_are_credited_once_per_round()
    {
        await using var c = await CoordinatorHarness.StartAsync(o =>
        {
            o.MinWorkers = 2;
            o.Rounds = 3;
            o.InnerSteps = 10;
            o.BatchSize = 32;
            o.UpdateEncoding = "int8";
            o.EvaluationSamples = 0;
        });
        var workers = new List<IHost>();
        try
        {
            workers.Add(await StartWorkerAsync(c, "w-a", TestAssembly.DatasetDirectory));
            workers.Add(await StartWorkerAsync(c, "w-b", TestAssembly.DatasetDirectory));
            await c.Status.CompletedTask.WaitAsync(CoordinatorHarness.Timeout);
            foreach (var w in workers)
            {
                var status = w.Services.GetRequiredService<WorkerStatus>();
                await WaitAsync(() => status.Receipts >= 3, "3 receipts");
                Assert.AreEqual(3L, status.Receipts);
            }

            Assert.IsTrue(c.Status.Rounds.All(r => r.Accepted == 2 && r.AcceptedWorkers.Count == 2));
            Assert.AreEqual(6L, c.Status.LedgerEntries);
            Assert.IsTrue(c.Status.LastAccuracy > 0.3, $"the synthetic classes are easy; accuracy {c.Status.LastAccuracy}");
            Assert.IsNotEmpty(c.Status.Settlements);
            Report(c);
        }
        finally
        {
            await StopAllAsync(workers);
        }
    }

    [TestMethod]
    [TestCategory("Slow")]
    [Timeout(600_000, CooperativeCancellation = true)]
    public async Task Three_workers_train_Fashion_MNIST_while_one_leaves_and_rejoins()
    {
        const string Real = "/usr/share/datasets/fashion-mnist";
        if (!File.Exists(Path.Combine(Real, "train-images-idx3-ubyte.gz")))
        {
            Assert.Inconclusive($"Fashion-MNIST is not installed in {Real} (apt-get install dataset-fashion-mnist).");
        }

        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var wall = Stopwatch.StartNew();
        await using var c = await CoordinatorHarness.StartAsync(o =>
        {
            o.DatasetDirectory = Real;
            o.ShardCount = 60;
            o.ModelConfigJson = null;
            o.MinWorkers = 2;
            o.Rounds = 6;
            o.InnerSteps = 50;
            o.BatchSize = 64;
            o.UpdateEncoding = "int8";
            o.EvaluationSamples = 0;
            o.RoundTimeout = TimeSpan.FromSeconds(90);
            o.SettleEveryRounds = 3;
        });
        var workers = new List<IHost>();
        try
        {
            workers.Add(await StartWorkerAsync(c, "w-a", Real));
            workers.Add(await StartWorkerAsync(c, "w-b", Real));
            var leaver = await StartWorkerAsync(c, "w-c", Real);
            await WaitAsync(() => c.Status.Rounds.Count >= 2, "two rounds");
            await leaver.StopAsync(new CancellationTokenSource(CoordinatorHarness.Timeout).Token);
            leaver.Dispose();
            await WaitAsync(() => c.Status.Rounds.Count >= 4, "four rounds");
            workers.Add(await StartWorkerAsync(c, "w-c", Real));
            await c.Status.CompletedTask.WaitAsync(TimeSpan.FromMinutes(8));

            var rounds = c.Status.Rounds;
            Assert.AreEqual(6, rounds.Count);
            Assert.IsTrue(rounds.All(r => r.Accepted >= 2), string.Join("; ", rounds.Select(r => $"{r.Round}:{r.Accepted}/{r.Cohort}")));
            Assert.IsTrue(c.Status.LastAccuracy > 0.7, $"accuracy {c.Status.LastAccuracy}");
            Assert.IsTrue(rounds.Any(r => !r.AcceptedWorkers.Contains("w-c")), "w-c was away for at least one round");
            using var ledger = ContributionLedger.OpenSqlite(Path.Combine(c.DataDirectory, "ledger.db"));
            var keys = ledger.Store.Read(0).Select(e => SignedReceipt.Parse(e.Payload).Receipt).Select(r => (r.Round, r.WorkerId)).ToList();
            Assert.AreEqual(keys.Count, keys.Distinct().Count(), "no duplicate (round, worker) receipt");
            Assert.AreEqual(rounds.Sum(r => r.Accepted), keys.Count);
            Report(c, wall.Elapsed, Process.GetCurrentProcess().TotalProcessorTime - cpu);
        }
        finally
        {
            await StopAllAsync(workers);
        }
    }

    private static async Task<IHost> StartWorkerAsync(CoordinatorHarness c, string id, string dataset)
    {
        var data = TestAssembly.NewTempDirectory("worker-" + id);
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = TimeSpan.FromSeconds(20));
        builder.Services.AddNearMLWorker(o =>
        {
            o.WorkerId = id;
            o.CoordinatorHost = "127.0.0.1";
            o.CoordinatorPort = c.Port;
            o.CoordinatorFingerprint = c.Fingerprint;
            o.DataDirectory = data;
            o.DatasetDirectory = dataset;
            o.AttestationProvider = NearMLWorkerOptions.SimulatedProvider;
            o.ThreadCount = 1;
            o.InitialReconnectDelay = TimeSpan.FromMilliseconds(50);
            o.MaxReconnectDelay = TimeSpan.FromMilliseconds(500);
        });
        var host = builder.Build();
        using var cts = new CancellationTokenSource(CoordinatorHarness.Timeout);
        await host.StartAsync(cts.Token);
        return host;
    }

    private static async Task StopAllAsync(List<IHost> hosts)
    {
        foreach (var h in hosts)
        {
            using var cts = new CancellationTokenSource(CoordinatorHarness.Timeout);
            await h.StopAsync(cts.Token);
            h.Dispose();
        }
    }

    private static async Task WaitAsync(Func<bool> condition, string what)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        while (!condition())
        {
            try
            {
                await Task.Delay(50, cts.Token);
            }
            catch (OperationCanceledException)
            {
                throw new AssertFailedException($"timed out waiting for {what}");
            }
        }
    }

    private void Report(CoordinatorHarness c, TimeSpan? wall = null, TimeSpan? cpu = null)
    {
        var inv = CultureInfo.InvariantCulture;
        foreach (var r in c.Status.Rounds)
        {
            TestContext.WriteLine(string.Create(inv, $"round {r.Round}: {r.Accepted}/{r.Cohort} accepted [{string.Join(",", r.AcceptedWorkers)}], loss {r.MeanLoss:F4}, accuracy {r.Accuracy:P2}, update bytes {r.UpdateBytes}, {r.Duration.TotalSeconds:F1} s"));
        }

        TestContext.WriteLine(string.Create(inv, $"coordinator bytes: up (from workers) {c.Status.TotalBytesUp}, down (to workers) {c.Status.TotalBytesDown}; ledger entries {c.Status.LedgerEntries}, head {c.Status.LedgerRoot}"));
        TestContext.WriteLine($"settlements (dry run): {string.Join(", ", c.Status.Settlements)}");
        if (wall is { } w && cpu is { } p)
        {
            TestContext.WriteLine(string.Create(inv, $"wall {w.TotalSeconds:F1} s, process CPU {p.TotalSeconds:F1} s, loadavg {File.ReadAllText("/proc/loadavg").Trim()}"));
        }
    }
}
