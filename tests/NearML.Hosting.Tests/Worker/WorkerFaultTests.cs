using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using NearML.Core.Contracts;
using NearML.Core.Protocol;
using NearML.Hosting.Worker;

namespace NearML.Hosting.Tests.Worker;

/// <summary>Refusals, dropped connections, and start-up configuration errors.</summary>
[TestClass]
public sealed class WorkerFaultTests
{
    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task Policy_refusal_stops_the_worker_with_the_coordinators_reason()
    {
        await using var coordinator = new FakeCoordinator(new RefusingPolicy(RefusalReason.Policy, "worker-a is not on the allow list"));
        await using var worker = new WorkerTestHost(coordinator);
        await worker.StartAsync();
        await worker.WaitUntilAsync(static s => s.State == WorkerState.Failed, "the worker fails");
        StringAssert.Contains(worker.Status.LastError!, "Policy");
        StringAssert.Contains(worker.Status.LastError!, "worker-a is not on the allow list");
        Assert.IsNotNull(worker.Service.ExecuteTask);
        await worker.Service.ExecuteTask.WaitAsync(FakeCoordinator.WaitTimeout);
        Assert.AreEqual(1, coordinator.Connections, "a permanent refusal is not retried");
    }

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task Cohort_full_refusal_is_retried_with_backoff()
    {
        var policy = new RefusingPolicy(RefusalReason.CohortFull, "the cohort is full") { RefuseFirst = 2 };
        await using var coordinator = new FakeCoordinator(policy);
        await using var worker = new WorkerTestHost(coordinator);
        await worker.StartAsync();
        var session = await coordinator.NextSessionAsync();
        Assert.AreEqual(3, coordinator.Connections, "two refusals, then admitted on the third attempt");
        await worker.WaitUntilAsync(static s => s.State == WorkerState.Waiting, "the worker waits for a round");
        Assert.AreEqual(2L, worker.Status.Reconnects);
        Assert.IsNull(worker.Status.LastError, "the error is cleared once admitted");
        session.End();
    }

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task Coordinator_dropping_the_connection_makes_the_worker_reconnect()
    {
        await using var coordinator = new FakeCoordinator();
        await using var worker = new WorkerTestHost(coordinator);
        await worker.StartAsync();
        var first = await coordinator.NextSessionAsync();
        first.End();
        var second = await coordinator.NextSessionAsync();
        Assert.AreEqual(32, first.Worker.PublicKey.Length);
        CollectionAssert.AreEqual(first.Worker.PublicKey.ToArray(), second.Worker.PublicKey.ToArray(), "same identity key after reconnecting");
        Assert.IsGreaterThanOrEqualTo(1L, worker.Status.Reconnects);
        second.End();
    }

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task Wrong_certificate_pin_is_a_permanent_error()
    {
        await using var coordinator = new FakeCoordinator();
        await using var worker = new WorkerTestHost(coordinator, o => o.CoordinatorFingerprint = new string('A', 64));
        await worker.StartAsync();
        await worker.WaitUntilAsync(static s => s.State == WorkerState.Failed, "the worker fails");
        StringAssert.Contains(worker.Status.LastError!, "does not match the pinned");
    }

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task Shutdown_while_waiting_sends_Goodbye()
    {
        await using var coordinator = new FakeCoordinator();
        await using var worker = new WorkerTestHost(coordinator);
        await worker.StartAsync();
        var session = await coordinator.NextSessionAsync();
        await worker.WaitUntilAsync(static s => s.State == WorkerState.Waiting, "admitted");
        var stopping = worker.StopAsync();
        var goodbye = await session.ReceiveUntilAsync<Goodbye>();
        Assert.AreEqual("worker shutting down", goodbye.Message);
        await stopping;
        Assert.AreEqual(WorkerState.Stopped, worker.Status.State);
        session.End();
    }

    [TestMethod]
    public async Task Configfs_tsm_missing_fails_start_with_a_clear_error()
    {
        await using var coordinator = new FakeCoordinator();
        await using var worker = new WorkerTestHost(coordinator, o => o.AttestationProvider = "configfs-tsm");
        var previous = WorkerService.ConfigFsTsmRoot;
        WorkerService.ConfigFsTsmRoot = Path.Combine(Path.GetTempPath(), "no-such-tsm-" + Guid.NewGuid().ToString("n"));
        try
        {
            var ex = await Assert.ThrowsExactlyAsync<InvalidOperationException>(worker.StartAsync);
            StringAssert.Contains(ex.Message, "configfs-tsm");
            StringAssert.Contains(ex.Message, WorkerService.ConfigFsTsmRoot);
        }
        finally
        {
            WorkerService.ConfigFsTsmRoot = previous;
        }
    }

    [TestMethod]
    public async Task Simulated_attestation_sends_simulated_evidence()
    {
        var policy = new RecordingPolicy();
        await using var coordinator = new FakeCoordinator(policy);
        await using var worker = new WorkerTestHost(coordinator, o => o.AttestationProvider = "simulated");
        await worker.StartAsync();
        var session = await coordinator.NextSessionAsync();
        Assert.AreEqual("simulated", session.Worker.EvidenceFormat);
        var evidence = WorkerAttestation.DecodeEvidence(policy.Format!, policy.Evidence);
        Assert.AreEqual(NearML.Enclave.AttestationVendor.InsecureSimulated, evidence.Vendor);
        var claims = NearML.Enclave.InsecureSimulatedEvidence.ToClaims(evidence.Evidence);
        CollectionAssert.AreEqual(policy.ReportData, claims.ReportData.ToArray(), "the evidence binds the handshake's report data");
        session.End();
    }

    [TestMethod]
    public async Task Options_are_validated_when_the_host_starts()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["NearML:Worker:CoordinatorPort"] = "70000",
            ["NearML:Worker:AttestationProvider"] = "sgx",
        });
        builder.Services.AddNearMLWorker(builder.Configuration.GetSection("NearML:Worker"));
        using var host = builder.Build();
        var ex = await Assert.ThrowsExactlyAsync<OptionsValidationException>(() => host.StartAsync());
        StringAssert.Contains(ex.Message, "NearML:Worker:WorkerId is required");
        StringAssert.Contains(ex.Message, "70000");
        StringAssert.Contains(ex.Message, "'sgx'");
    }

    [TestMethod]
    public void Registration_binds_options_and_registers_the_service_once()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddNearMLWorker(o => o.WorkerId = "w1");
        services.AddNearMLWorker(o => o.CoordinatorPort = 9000);
        using var provider = services.BuildServiceProvider();
        var options = provider.GetRequiredService<IOptions<NearMLWorkerOptions>>().Value;
        Assert.AreEqual("w1", options.WorkerId);
        Assert.AreEqual(9000, options.CoordinatorPort);
        Assert.AreEqual("none", options.AttestationProvider);
        Assert.HasCount(1, provider.GetServices<IHostedService>().OfType<WorkerService>());
        Assert.AreSame(provider.GetRequiredService<WorkerStatus>(), provider.GetRequiredService<WorkerStatus>());
    }

    [TestMethod]
    public void Backoff_doubles_up_to_the_maximum_with_jitter_in_the_upper_half()
    {
        var backoff = new ReconnectBackoff(TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(2));
        var ceilings = new[] { 100, 200, 400, 800, 1600, 2000, 2000, 2000 };
        foreach (var ceiling in ceilings)
        {
            var delay = backoff.Next();
            Assert.IsTrue(delay >= TimeSpan.FromMilliseconds(ceiling / 2.0) && delay <= TimeSpan.FromMilliseconds(ceiling), $"{delay} within [{ceiling / 2}, {ceiling}] ms");
        }

        backoff.Reset();
        Assert.IsLessThanOrEqualTo(TimeSpan.FromMilliseconds(100), backoff.Next());
    }

    private sealed class RefusingPolicy(RefusalReason reason, string message) : IAdmissionPolicy
    {
        private int _calls;

        public int RefuseFirst { get; init; } = int.MaxValue;

        public ValueTask<AdmissionDecision> EvaluateAsync(AdmissionRequest request, CancellationToken cancellationToken) =>
            ValueTask.FromResult(Interlocked.Increment(ref _calls) <= RefuseFirst ? AdmissionDecision.Refuse(reason, message) : AdmissionDecision.Admit);
    }

    private sealed class RecordingPolicy : IAdmissionPolicy
    {
        public string? Format { get; private set; }

        public byte[] Evidence { get; private set; } = [];

        public byte[] ReportData { get; private set; } = [];

        public ValueTask<AdmissionDecision> EvaluateAsync(AdmissionRequest request, CancellationToken cancellationToken)
        {
            Format = request.EvidenceFormat;
            Evidence = request.Evidence.ToArray();
            ReportData = request.ReportData.ToArray();
            return ValueTask.FromResult(AdmissionDecision.Admit);
        }
    }
}
