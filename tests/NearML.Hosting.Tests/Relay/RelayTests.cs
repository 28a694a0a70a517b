using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NearML.Hosting.Tests.Coordinator;
using NearML.Hosting.Tests.Worker;
using NearML.Hosting.Worker;

namespace NearML.Hosting.Tests.Relay;

/// <summary>DDP and DeMo over the coordinator relay: the real coordinator and two real workers over loopback TLS.</summary>
[TestClass]
public sealed class RelayTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    [Timeout(300_000, CooperativeCancellation = true)]
    public Task Ddp_job_over_the_relay_learns_and_both_workers_hold_identical_parameters() => RunAsync("ddp", 3e-3);

    [TestMethod]
    [Timeout(300_000, CooperativeCancellation = true)]
    public Task DeMo_job_over_the_relay_learns() => RunAsync("demo", 1e-3);

    private async Task RunAsync(string strategy, double learningRate)
    {
        await using var coordinator = await CoordinatorHarness.StartAsync(o =>
        {
            o.SyncStrategy = strategy;
            o.MinWorkers = 2;
            o.Rounds = 3;
            o.InnerSteps = 10;
            o.InnerLearningRate = learningRate;
            o.WeightDecay = 0;
            o.RoundTimeout = TimeSpan.FromSeconds(60);
        });
        var hosts = new List<IHost>();
        var directories = new List<string>();
        var workerLogs = new CapturingLoggerProvider();
        try
        {
            foreach (var id in new[] { "alice", "bob" })
            {
                var data = TestAssembly.NewTempDirectory("relay-" + id);
                directories.Add(data);
                hosts.Add(await RealWorkerHost.StartAsync(coordinator, id, data, workerLogs));
            }

            try
            {
                await coordinator.Status.CompletedTask.WaitAsync(FakeCoordinator.WaitTimeout);
            }
            catch (TimeoutException)
            {
                throw new AssertFailedException("the job did not complete; coordinator log:\n" + string.Join("\n", coordinator.Logs.Lines) + "\nworker log:\n" + string.Join("\n", workerLogs.Lines));
            }

            var rounds = coordinator.Status.Rounds;
            foreach (var r in rounds)
            {
                TestContext.WriteLine($"{strategy} round {r.Round}: {r.Accepted}/{r.Cohort} accepted, loss {r.MeanLoss:F4}, accuracy {r.Accuracy:P2}, update bytes {r.UpdateBytes}");
            }

            foreach (var line in workerLogs.Lines.Where(l => l.Contains("relay bytes sent", StringComparison.Ordinal)))
            {
                TestContext.WriteLine(line);
            }

            Assert.HasCount(3, rounds);
            Assert.IsTrue(rounds.All(r => r.Accepted == 2), "both workers' round updates were accepted every round");
            Assert.IsTrue(rounds[^1].MeanLoss < rounds[0].MeanLoss, $"mean training loss fell: {rounds[0].MeanLoss} -> {rounds[^1].MeanLoss}");
            Assert.IsTrue(rounds[^1].Accuracy > rounds[0].Accuracy, $"test accuracy improved: {rounds[0].Accuracy} -> {rounds[^1].Accuracy}");
            Assert.IsTrue(coordinator.Status.LastAccuracy > 0.3, $"the synthetic classes are easy (chance 10%); accuracy {coordinator.Status.LastAccuracy}");
            Assert.AreEqual(3, coordinator.Logs.Lines.Count(l => l.Contains("10 relay exchanges completed", StringComparison.Ordinal)),
                "each round relayed exactly its 10 step exchanges");

            var parameters = new List<float[]>();
            foreach (var host in hosts)
            {
                var status = host.Services.GetRequiredService<WorkerStatus>();
                using (var wait = new CancellationTokenSource(FakeCoordinator.WaitTimeout))
                {
                    while (status.State != WorkerState.Completed)
                    {
                        await Task.Delay(20, wait.Token);
                    }
                }

                Assert.AreEqual(3L, status.Receipts, status.ToString());
                Assert.IsGreaterThan(0L, status.BytesSent);
                Assert.IsGreaterThan(0L, status.BytesReceived);
                var worker = host.Services.GetServices<IHostedService>().OfType<WorkerService>().Single();
                parameters.Add(worker.CopyParameters() ?? throw new AssertFailedException("the worker holds no parameters"));
            }

            Assert.IsGreaterThan(0L, coordinator.Status.TotalBytesUp);
            Assert.IsGreaterThan(0L, coordinator.Status.TotalBytesDown);
            Assert.IsTrue(workerLogs.Lines.Any(l => l.Contains("relay bytes sent", StringComparison.Ordinal)), "the relay rounds logged their bytes");
            CollectionAssert.AreEqual(parameters[0], parameters[1], "DDP and DeMo apply the same relayed result on every worker: identical parameters");
        }
        finally
        {
            foreach (var host in hosts)
            {
                using var stop = new CancellationTokenSource(FakeCoordinator.WaitTimeout);
                await host.StopAsync(stop.Token);
                host.Dispose();
            }

            foreach (var d in directories)
            {
                try
                {
                    Directory.Delete(d, true);
                }
                catch (IOException)
                {
                }
            }
        }
    }
}
