using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NearML.Hosting.Tests.Coordinator;
using NearML.Hosting.Worker;

namespace NearML.Hosting.Tests.Worker;

/// <summary>The real worker service (registered with AddNearMLWorker in a host) against the real coordinator service.</summary>
[TestClass]
public sealed class WorkerWithCoordinatorTests
{
    [TestMethod]
    [TestCategory("Slow")]
    [Timeout(300_000, CooperativeCancellation = true)]
    public Task Two_workers_complete_a_three_round_job_and_each_logs_a_verified_receipt_per_round() => RunJobAsync(["alice", "bob"], secure: false);

    [TestMethod]
    [TestCategory("Slow")]
    [Timeout(300_000, CooperativeCancellation = true)]
    public Task Three_workers_complete_a_secure_aggregation_job_and_each_logs_a_verified_receipt_per_round() => RunJobAsync(["alice", "bob", "carol"], secure: true);

    private static async Task RunJobAsync(string[] workerIds, bool secure)
    {
        await using var coordinator = await CoordinatorHarness.StartAsync(o =>
        {
            o.MinWorkers = workerIds.Length;
            o.RoundTimeout = TimeSpan.FromSeconds(120);
            o.SecureAggregation = secure;
        });
        var hosts = new List<IHost>();
        var directories = new List<string>();
        var workerLogs = new CapturingLoggerProvider();
        try
        {
            foreach (var id in workerIds)
            {
                var data = TestAssembly.NewTempDirectory("worker-" + id);
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

            Assert.HasCount(3, coordinator.Status.Rounds);
            Assert.IsTrue(coordinator.Status.Rounds.All(r => r.Accepted == workerIds.Length), "every worker's update was accepted every round");
            foreach (var (host, data) in hosts.Zip(directories))
            {
                var status = host.Services.GetRequiredService<WorkerStatus>();
                using var wait = new CancellationTokenSource(FakeCoordinator.WaitTimeout);
                while (status.State != WorkerState.Completed)
                {
                    await Task.Delay(20, wait.Token);
                }

                Assert.AreEqual(3L, status.Receipts, status.ToString());
                var receipts = new WorkerReceiptLog(data).ReadAll();
                CollectionAssert.AreEqual(new ulong[] { 0, 1, 2 }.Select(r => r + receipts[0].Round).ToArray(), receipts.Select(static r => r.Round).ToArray());
                Assert.IsTrue(receipts.All(static r => r.Receipt.Receipt.SamplesProcessed > 0));
            }
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
