using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using NearML.Hosting.Coordinator;
using NearML.Hosting.Tests.Coordinator;
using NearML.Hosting.Worker;

namespace NearML.Hosting.Tests.Observability;

/// <summary>
/// NearML's health checks read through Microsoft.Extensions.Diagnostics.HealthChecks' <see cref="HealthCheckService"/> in
/// real hosts: each status of the coordinator check (listening, rounds progressing, state folder writable) and of the
/// worker check (connected, attested, training).
/// </summary>
[TestClass]
public sealed class HealthCheckTests
{
    private const string CoordinatorCheck = NearMLHealthCheckExtensions.CoordinatorCheckName;
    private const string WorkerCheck = NearMLHealthCheckExtensions.WorkerCheckName;

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task Coordinator_is_unhealthy_before_listening_and_healthy_when_listening_without_workers()
    {
        var data = TestAssembly.NewTempDirectory("health");
        var host = ObservabilityHosts.Coordinator(data, new CapturingLoggerProvider());
        try
        {
            var before = await ObservabilityHosts.CheckAsync(host, CoordinatorCheck);
            Assert.AreEqual(HealthStatus.Unhealthy, before.Status, before.Description);
            StringAssert.Contains(before.Description, "not listening");

            await host.StartAsync();
            var status = host.Services.GetRequiredService<CoordinatorStatus>();
            await status.Listening.WaitAsync(ObservabilityHosts.Timeout);
            var listening = await ObservabilityHosts.CheckAsync(host, CoordinatorCheck);
            Assert.AreEqual(HealthStatus.Healthy, listening.Status, listening.Description);
            StringAssert.Contains(listening.Description, $"listening on port {status.Port}");
            Assert.AreEqual(0, listening.Data["connected_workers"]);
            CollectionAssert.Contains(listening.Tags.ToList(), NearMLHealthCheckExtensions.Tag);
        }
        finally
        {
            await ObservabilityHosts.StopAsync(host);
            ObservabilityHosts.TryDelete(data);
        }
    }

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task Coordinator_is_degraded_when_a_connected_worker_sees_no_round_complete_within_the_stall_timeout()
    {
        var data = TestAssembly.NewTempDirectory("health");
        var workerData = TestAssembly.NewTempDirectory("health-worker");
        var logs = new CapturingLoggerProvider();

        // Two workers are needed for a round, one comes: rounds cannot progress while a worker is connected.
        var host = ObservabilityHosts.Coordinator(data, logs, o => o.MinWorkers = 2, h => h.RoundStallTimeout = TimeSpan.FromMilliseconds(400));
        IHost? worker = null;
        try
        {
            await host.StartAsync();
            var status = host.Services.GetRequiredService<CoordinatorStatus>();
            await status.Listening.WaitAsync(ObservabilityHosts.Timeout);
            worker = ObservabilityHosts.Worker("health-alice", status.Port, status.Fingerprint, workerData, logs);
            await worker.StartAsync();

            // Connected, and the stall clock starts when it connected: healthy first, degraded after 400 ms.
            await ObservabilityHosts.WaitForAsync(worker, WorkerCheck, HealthStatus.Healthy);
            var degraded = await ObservabilityHosts.WaitForAsync(host, CoordinatorCheck, HealthStatus.Degraded);
            StringAssert.Contains(degraded.Description, "no round completed");
            StringAssert.Contains(degraded.Description, "1 worker(s) are connected (MinWorkers is 2)");
            Assert.AreEqual(1, degraded.Data["connected_workers"]);

            // The worker leaves: nobody is waiting on rounds any more, so the coordinator is healthy again.
            await ObservabilityHosts.StopAsync(worker);
            worker = null;
            var healthy = await ObservabilityHosts.WaitForAsync(host, CoordinatorCheck, HealthStatus.Healthy);
            Assert.AreEqual(0, healthy.Data["connected_workers"]);
        }
        finally
        {
            if (worker is not null)
            {
                await ObservabilityHosts.StopAsync(worker);
            }

            await ObservabilityHosts.StopAsync(host);
            ObservabilityHosts.TryDelete(data);
            ObservabilityHosts.TryDelete(workerData);
        }
    }

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task Coordinator_is_unhealthy_when_its_state_folder_is_gone()
    {
        var data = TestAssembly.NewTempDirectory("health");
        var moved = data + "-moved";
        var host = ObservabilityHosts.Coordinator(data, new CapturingLoggerProvider());
        try
        {
            await host.StartAsync();
            await host.Services.GetRequiredService<CoordinatorStatus>().Listening.WaitAsync(ObservabilityHosts.Timeout);
            Assert.AreEqual(HealthStatus.Healthy, (await ObservabilityHosts.CheckAsync(host, CoordinatorCheck)).Status);

            // The volume under the state folder goes away (renamed here; unmounted or deleted in life).
            Directory.Move(data, moved);
            var entry = await ObservabilityHosts.CheckAsync(host, CoordinatorCheck);
            Assert.AreEqual(HealthStatus.Unhealthy, entry.Status, entry.Description);
            StringAssert.Contains(entry.Description, "is not writable");
            StringAssert.Contains(entry.Description, data);

            Directory.Move(moved, data);
            Assert.AreEqual(HealthStatus.Healthy, (await ObservabilityHosts.CheckAsync(host, CoordinatorCheck)).Status);
        }
        finally
        {
            if (Directory.Exists(moved) && !Directory.Exists(data))
            {
                Directory.Move(moved, data);
            }

            await ObservabilityHosts.StopAsync(host);
            ObservabilityHosts.TryDelete(data);
        }
    }

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task Coordinator_is_unhealthy_after_a_fault_stopped_it()
    {
        var data = TestAssembly.NewTempDirectory("health");
        var host = ObservabilityHosts.Coordinator(data, new CapturingLoggerProvider(), o => o.DatasetDirectory = Path.Combine(data, "no-such-dataset"));
        try
        {
            await host.StartAsync();
            var status = host.Services.GetRequiredService<CoordinatorStatus>();
            await Assert.ThrowsAsync<Exception>(() => status.Listening.WaitAsync(ObservabilityHosts.Timeout), "the coordinator should fail to load the job");
            var entry = await ObservabilityHosts.CheckAsync(host, CoordinatorCheck);
            Assert.AreEqual(HealthStatus.Unhealthy, entry.Status, entry.Description);
            StringAssert.Contains(entry.Description, "the coordinator stopped");
            StringAssert.Contains(entry.Description, "no-such-dataset");
        }
        finally
        {
            await ObservabilityHosts.StopAsync(host);
            ObservabilityHosts.TryDelete(data);
        }
    }

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task Worker_is_unhealthy_before_start_degraded_while_it_cannot_connect_and_unhealthy_when_stopped()
    {
        var workerData = TestAssembly.NewTempDirectory("health-worker");

        // A port nothing listens on: bind a listener, take its port, close it.
        var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        probe.Start();
        var port = ((System.Net.IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        var worker = ObservabilityHosts.Worker("health-nobody", port, new string('a', 64), workerData, new CapturingLoggerProvider());
        try
        {
            var before = await ObservabilityHosts.CheckAsync(worker, WorkerCheck);
            Assert.AreEqual(HealthStatus.Unhealthy, before.Status, before.Description);
            StringAssert.Contains(before.Description, "has not started");

            await worker.StartAsync();
            var degraded = await ObservabilityHosts.WaitForAsync(worker, WorkerCheck, HealthStatus.Degraded);
            StringAssert.Contains(degraded.Description, "not connected to the coordinator");

            await worker.StopAsync();
            var stopped = await ObservabilityHosts.CheckAsync(worker, WorkerCheck);
            Assert.AreEqual(HealthStatus.Unhealthy, stopped.Status, stopped.Description);
            StringAssert.Contains(stopped.Description, "stopped");
        }
        finally
        {
            await ObservabilityHosts.StopAsync(worker);
            ObservabilityHosts.TryDelete(workerData);
        }
    }

    [TestMethod]
    [TestCategory("Slow")]
    [Timeout(180_000, CooperativeCancellation = true)]
    public async Task Worker_is_healthy_while_connected_and_training_and_unhealthy_without_required_hardware_attestation()
    {
        var data = TestAssembly.NewTempDirectory("health");
        var aliceData = TestAssembly.NewTempDirectory("health-worker");
        var bobData = TestAssembly.NewTempDirectory("health-worker");
        var logs = new CapturingLoggerProvider();
        var host = ObservabilityHosts.Coordinator(data, logs, o =>
        {
            o.MinWorkers = 2;
            o.Rounds = 1;
            o.InnerSteps = 15_000; // long enough to be seen training: 1,500 steps took under half a second once the two workers shared one dataset load, and the poll could miss them
        });
        IHost? alice = null, bob = null;
        try
        {
            await host.StartAsync();
            var status = host.Services.GetRequiredService<CoordinatorStatus>();
            await status.Listening.WaitAsync(ObservabilityHosts.Timeout);
            alice = ObservabilityHosts.Worker("health-alice", status.Port, status.Fingerprint, aliceData, logs);
            bob = ObservabilityHosts.Worker("health-bob", status.Port, status.Fingerprint, bobData, logs, health: h => h.RequireHardwareAttestation = true);
            await alice.StartAsync();
            await bob.StartAsync();

            // Connected and attested (simulated evidence): healthy, also while training.
            var training = await WaitForStateAsync(alice, WorkerState.Training);
            Assert.AreEqual(HealthStatus.Healthy, training.Status, training.Description);
            StringAssert.Contains(training.Description, "training round");
            Assert.AreEqual("simulated", training.Data["attestation"]);

            // The same, but this worker's operator requires hardware evidence: simulated evidence is unhealthy.
            var bobEntry = await ObservabilityHosts.CheckAsync(bob, WorkerCheck);
            Assert.AreEqual(HealthStatus.Unhealthy, bobEntry.Status, bobEntry.Description);
            StringAssert.Contains(bobEntry.Description, "hardware attestation is required");

            await status.CompletedTask.WaitAsync(TimeSpan.FromSeconds(150));
            var done = await ObservabilityHosts.WaitForAsync(host, CoordinatorCheck, HealthStatus.Healthy);
            StringAssert.Contains(done.Description, "the job is complete");
        }
        finally
        {
            foreach (var w in new[] { alice, bob })
            {
                if (w is not null)
                {
                    await ObservabilityHosts.StopAsync(w);
                }
            }

            await ObservabilityHosts.StopAsync(host);
            ObservabilityHosts.TryDelete(data);
            ObservabilityHosts.TryDelete(aliceData);
            ObservabilityHosts.TryDelete(bobData);
        }
    }

    private static async Task<HealthReportEntry> WaitForStateAsync(IHost worker, WorkerState state)
    {
        var status = worker.Services.GetRequiredService<WorkerStatus>();
        var deadline = DateTimeOffset.UtcNow + ObservabilityHosts.Timeout;
        while (DateTimeOffset.UtcNow < deadline)
        {
            var entry = await ObservabilityHosts.CheckAsync(worker, WorkerCheck);
            if (status.State == state && (string)entry.Data["state"] == state.ToString())
            {
                return entry;
            }

            await Task.Delay(5);
        }

        Assert.Fail($"the worker never reached {state}: {status}");
        return default;
    }
}
