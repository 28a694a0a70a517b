using System.Diagnostics.Metrics;
using Google.Protobuf;
using NearML.Core.Contracts;
using NearML.Core.Protocol;
using NearML.Hosting.Jobs;
using NearML.Hosting.Worker;

namespace NearML.Hosting.Tests.Worker;

/// <summary>The worker against a scripted coordinator over real loopback TLS, training on the real Fashion-MNIST.</summary>
[TestClass]
public sealed class WorkerRoundTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestInitialize]
    public void RequireDataset() => TestJob.RequireDataset();

    [TestMethod]
    [Timeout(300_000, CooperativeCancellation = true)]
    public async Task Full_round_downloads_trains_uploads_a_finite_delta_and_logs_the_receipt_then_skips_an_unchanged_download()
    {
        var job = TestJob.Instance;
        await using var coordinator = new FakeCoordinator();
        await using var worker = new WorkerTestHost(coordinator);
        long metricSent = 0, metricSteps = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (ReferenceEquals(instrument.Meter, worker.Metrics.Meter))
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, _, _) =>
        {
            if (instrument.Name == "nearml.bytes.sent")
            {
                Interlocked.Add(ref metricSent, value);
            }
            else if (instrument.Name == "nearml.steps")
            {
                Interlocked.Add(ref metricSteps, value);
            }
        });
        listener.Start();
        await worker.StartAsync();
        var session = await coordinator.NextSessionAsync();
        Assert.AreEqual("worker-a", session.Worker.WorkerId);

        // Round 1: the worker asks for version 1, verifies it, trains, uploads.
        await session.SendAsync(job.Assignment(round: 1, version: 1, steps: 5));
        var request = await session.ReceiveUntilAsync<ParameterRequest>();
        Assert.AreEqual(1UL, request.ParameterVersion);
        await ParameterTransfer.SendAsync(session.Connection, job.Parameters, 1, job.Manifest);
        var (update, payload) = await session.ReceiveUpdateAsync();
        Assert.AreEqual(1UL, update.Round);
        Assert.AreEqual(1UL, update.BaseParameterVersion);
        Assert.AreEqual(UpdateEncoding.Int8, update.Encoding);
        Assert.AreEqual(5UL * 32, update.SampleCount, "5 steps of 32 samples");
        Assert.IsTrue(float.IsFinite(update.Loss) && update.Loss > 0, $"loss {update.Loss}");
        var delta = new float[job.Parameters.Length];
        UpdateEncodings.Decode(update.Encoding, payload, delta);
        Assert.IsTrue(delta.All(float.IsFinite), "the decoded delta is finite");
        Assert.IsTrue(delta.Any(static d => d != 0), "training moved the parameters");

        await session.SendReceiptAsync(TestJob.JobId, 1, payload, update.SampleCount);
        await worker.WaitUntilAsync(static s => s.Receipts == 1, "the receipt is logged");
        Assert.AreEqual(1UL, worker.Status.LastReceiptRound);
        Assert.AreEqual(1UL, worker.Status.ParameterVersion);

        // Round 2 at the same version and root: no ParameterRequest, straight to training.
        await session.SendAsync(job.Assignment(round: 2, version: 1, steps: 3));
        var seen = new List<IMessage>();
        var (update2, payload2) = await session.ReceiveUpdateAsync(seen);
        Assert.IsFalse(seen.OfType<ParameterRequest>().Any(), "an unchanged version is not downloaded again");
        Assert.AreEqual(2UL, update2.Round);
        Assert.AreEqual(3UL * 32, update2.SampleCount);

        await session.SendReceiptAsync(TestJob.JobId, 2, payload2, update2.SampleCount);
        await worker.WaitUntilAsync(static s => s.Receipts == 2, "the second receipt is logged");
        var log = new WorkerReceiptLog(worker.DataDirectory).ReadAll();
        Assert.HasCount(2, log);
        Assert.AreEqual(1UL, log[0].Round);
        Assert.AreEqual(2UL, log[1].Round);
        Assert.AreEqual(coordinator.ReceiptKey.PublicKey, log[0].Receipt.CoordinatorKey);
        Assert.IsGreaterThan(0L, worker.Status.BytesSent);
        Assert.IsGreaterThan((long)job.Manifest.TotalBytes, worker.Status.BytesReceived);
        Assert.AreEqual(8L, Interlocked.Read(ref metricSteps), "nearml.steps counts 5 + 3 inner steps");
        Assert.AreEqual(worker.Status.BytesSent, Interlocked.Read(ref metricSent), "nearml.bytes.sent matches the status");
        session.End();
    }

    [TestMethod]
    [TestCategory("Slow")]
    [Timeout(300_000, CooperativeCancellation = true)]
    public async Task Update_larger_than_one_MiB_is_sent_in_parts_with_the_whole_payload_hash()
    {
        // hidden 400: ~318k parameters, fp32 update ~1.27 MB -> 2 parts.
        var job = new TestJob("""{"inputs":784,"hidden":400,"classes":10}""");
        await using var coordinator = new FakeCoordinator();
        await using var worker = new WorkerTestHost(coordinator);
        await worker.StartAsync();
        var session = await coordinator.NextSessionAsync();
        await session.SendAsync(job.Assignment(round: 1, steps: 1, encoding: UpdateEncoding.Fp32));
        await session.ReceiveUntilAsync<ParameterRequest>();
        await ParameterTransfer.SendAsync(session.Connection, job.Parameters, 1, job.Manifest);
        var (update, payload) = await session.ReceiveUpdateAsync();
        Assert.AreEqual(2U, update.PartCount);
        Assert.AreEqual(job.Parameters.Length * 4, payload.Length);
        var delta = new float[job.Parameters.Length];
        UpdateEncodings.Decode(UpdateEncoding.Fp32, payload, delta);
        Assert.IsTrue(delta.All(float.IsFinite));
        session.End();
    }

    [TestMethod]
    [Timeout(300_000, CooperativeCancellation = true)]
    public async Task Corrupted_parameter_chunk_fails_the_session_and_the_worker_reconnects()
    {
        var job = TestJob.Instance;
        await using var coordinator = new FakeCoordinator();
        await using var worker = new WorkerTestHost(coordinator);
        await worker.StartAsync();
        // The worker clears LastError once it is admitted again, which may happen before the test looks: record every value.
        var errors = new System.Collections.Concurrent.ConcurrentQueue<string>();
        worker.Status.StatusChanged += (_, _) => errors.Enqueue(worker.Status.LastError ?? string.Empty);
        var session = await coordinator.NextSessionAsync();
        await session.SendAsync(job.Assignment(round: 1));
        await session.ReceiveUntilAsync<ParameterRequest>();
        var data = new byte[4096];
        await session.SendAsync(new ParameterChunk { Offset = 0, Data = ByteString.CopyFrom(data), Blake3 = ByteString.CopyFrom(new byte[32]) });

        // The worker rejects the chunk (hash mismatch), closes, and comes back on a new connection.
        var second = await coordinator.NextSessionAsync();
        Assert.AreEqual("worker-a", second.Worker.WorkerId);
        Assert.IsTrue(errors.Any(static e => e.Contains("BLAKE3", StringComparison.Ordinal)), "errors seen: " + string.Join(" | ", errors.Distinct()));
        Assert.IsGreaterThanOrEqualTo(1L, worker.Status.Reconnects);
        Assert.IsNull(worker.Status.ParameterVersion, "unverified parameters are not kept");

        // On the new connection it downloads again and completes the round.
        await second.SendAsync(job.Assignment(round: 1));
        await second.ReceiveUntilAsync<ParameterRequest>();
        await ParameterTransfer.SendAsync(second.Connection, job.Parameters, 1, job.Manifest);
        var (update, _) = await second.ReceiveUpdateAsync();
        Assert.AreEqual(1UL, update.Round);
        second.End();
        session.End();
    }

    [TestMethod]
    [Timeout(300_000, CooperativeCancellation = true)]
    public async Task Receipt_with_a_bad_signature_is_rejected_and_not_logged()
    {
        var job = TestJob.Instance;
        await using var coordinator = new FakeCoordinator();
        await using var worker = new WorkerTestHost(coordinator);
        await worker.StartAsync();
        var session = await coordinator.NextSessionAsync();
        await session.SendAsync(job.Assignment(round: 1, steps: 2));
        await session.ReceiveUntilAsync<ParameterRequest>();
        await ParameterTransfer.SendAsync(session.Connection, job.Parameters, 1, job.Manifest);
        var (update, payload) = await session.ReceiveUpdateAsync();
        await session.SendReceiptAsync(TestJob.JobId, 1, payload, update.SampleCount, corruptSignature: true);
        await worker.WaitUntilAsync(static s => s.LastError?.Contains("receipt rejected", StringComparison.Ordinal) == true, "the receipt is rejected");
        Assert.AreEqual(0L, worker.Status.Receipts);
        Assert.IsEmpty(new WorkerReceiptLog(worker.DataDirectory).ReadAll());
        StringAssert.Contains(worker.Status.LastError!, "does not verify");

        // The session goes on: the next round works and a good receipt is logged.
        await session.SendAsync(job.Assignment(round: 2, steps: 2));
        var (update2, payload2) = await session.ReceiveUpdateAsync();
        await session.SendReceiptAsync(TestJob.JobId, 2, payload2, update2.SampleCount);
        await worker.WaitUntilAsync(static s => s.Receipts == 1, "the good receipt is logged");
        Assert.AreEqual(2UL, new WorkerReceiptLog(worker.DataDirectory).ReadAll().Single().Round);
        session.End();
    }

    [TestMethod]
    [Timeout(300_000, CooperativeCancellation = true)]
    public async Task Deadline_already_passed_skips_the_round_without_an_update()
    {
        var job = TestJob.Instance;
        await using var coordinator = new FakeCoordinator();
        await using var worker = new WorkerTestHost(coordinator);
        await worker.StartAsync();
        var session = await coordinator.NextSessionAsync();

        // Round 1's deadline is an hour in the past: the worker skips it before even asking for parameters.
        var past = DateTimeOffset.UtcNow.AddHours(-1).ToUnixTimeMilliseconds();
        await session.SendAsync(job.Assignment(round: 1, deadlineUnixMs: past));

        // Round 2 has an hour to go: the next frames must be round 2's download request and update, nothing for round 1.
        var later = DateTimeOffset.UtcNow.AddHours(1).ToUnixTimeMilliseconds();
        await session.SendAsync(job.Assignment(round: 2, deadlineUnixMs: later));
        var seen = new List<IMessage>();
        await session.ReceiveUntilAsync<ParameterRequest>(seen);
        await ParameterTransfer.SendAsync(session.Connection, job.Parameters, 1, job.Manifest);
        var (update, _) = await session.ReceiveUpdateAsync(seen);
        Assert.IsFalse(seen.OfType<Progress>().Any(static p => p.Round == 1), "no progress for the skipped round");
        Assert.IsInstanceOfType<ParameterRequest>(seen[0], "the first frame after the assignments is round 2's parameter request");
        Assert.AreEqual(2UL, update.Round, "the round whose deadline had passed was skipped");
        session.End();
    }

    [TestMethod]
    [Timeout(300_000, CooperativeCancellation = true)]
    public async Task Deadline_reached_mid_round_sends_the_update_of_the_steps_done()
    {
        // The worker's wall clock is the test's: no real-time margin decides anything.
        var t0 = new DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var clock = new SettableClock(t0);
        var job = TestJob.Instance;
        await using var coordinator = new FakeCoordinator();
        await using var worker = new WorkerTestHost(coordinator, timeProvider: clock);
        await worker.StartAsync();
        var session = await coordinator.NextSessionAsync();
        const uint planned = 1_000_000;
        await session.SendAsync(job.Assignment(round: 1, steps: planned, deadlineUnixMs: t0.AddHours(1).ToUnixTimeMilliseconds()));
        await session.ReceiveUntilAsync<ParameterRequest>();
        await ParameterTransfer.SendAsync(session.Connection, job.Parameters, 1, job.Manifest);
        var progress = await session.ReceiveUntilAsync<Progress>();
        Assert.IsGreaterThanOrEqualTo(1U, progress.Step);

        // Jump to 0.1 s before the deadline: too close for another step plus the upload reserve.
        clock.Now = t0.AddHours(1).AddMilliseconds(-100);
        var (update, payload) = await session.ReceiveUpdateAsync();
        // Every step trains at least one sample, and fewer steps than planned were done.
        Assert.IsTrue(update.SampleCount >= progress.Step && update.SampleCount < planned * 32UL, $"{update.SampleCount} samples trained; {planned} steps were planned");
        var delta = new float[job.Parameters.Length];
        UpdateEncodings.Decode(update.Encoding, payload, delta);
        Assert.IsTrue(delta.All(float.IsFinite));
        session.End();
    }

    [TestMethod]
    [Timeout(300_000, CooperativeCancellation = true)]
    public async Task Coordinator_restart_on_the_same_port_the_worker_reconnects_and_keeps_its_parameters()
    {
        var job = TestJob.Instance;
        var first = new FakeCoordinator();
        var port = first.Port;
        using var certificate = System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadPkcs12(
            first.Certificate.Export(System.Security.Cryptography.X509Certificates.X509ContentType.Pkcs12), null);
        await using var worker = new WorkerTestHost(first);
        await worker.StartAsync();
        var session = await first.NextSessionAsync();
        await session.SendAsync(job.Assignment(round: 1, steps: 2));
        await session.ReceiveUntilAsync<ParameterRequest>();
        await ParameterTransfer.SendAsync(session.Connection, job.Parameters, 1, job.Manifest);
        await session.ReceiveUpdateAsync();

        // The coordinator goes away (crash before the receipt) and comes back with the same certificate and port.
        session.End();
        await first.DisposeAsync();
        await worker.WaitUntilAsync(static s => s.Reconnects >= 1, "the worker notices");
        await using var second = new FakeCoordinator(certificate: certificate, port: port);
        var resumed = await second.NextSessionAsync();
        Assert.AreEqual("worker-a", resumed.Worker.WorkerId);

        // It restarts from the same parameter version: the worker does not download it again.
        await resumed.SendAsync(job.Assignment(round: 1, steps: 2));
        var seen = new List<IMessage>();
        var (update, _) = await resumed.ReceiveUpdateAsync(seen);
        Assert.IsFalse(seen.OfType<ParameterRequest>().Any(), "parameters v1 are still held after reconnecting");
        Assert.AreEqual(1UL, update.Round);
        resumed.End();
    }

    [TestMethod]
    [Timeout(300_000, CooperativeCancellation = true)]
    public async Task InjectNanUpdate_sends_an_int8_update_that_decodes_to_non_finite_values()
    {
        var job = TestJob.Instance;
        await using var coordinator = new FakeCoordinator();
        await using var worker = new WorkerTestHost(coordinator, o => o.InjectNanUpdate = true);
        await worker.StartAsync();
        var session = await coordinator.NextSessionAsync();
        await session.SendAsync(job.Assignment(round: 1, steps: 1, encoding: UpdateEncoding.Int8));
        await session.ReceiveUntilAsync<ParameterRequest>();
        await ParameterTransfer.SendAsync(session.Connection, job.Parameters, 1, job.Manifest);
        var (update, payload) = await session.ReceiveUpdateAsync();
        var delta = new float[job.Parameters.Length];
        UpdateEncodings.Decode(update.Encoding, payload, delta);
        Assert.IsFalse(delta.All(float.IsFinite), "the coordinator sees a non-finite update to reject");
        session.End();
    }

    [TestMethod]
    [Timeout(300_000, CooperativeCancellation = true)]
    public async Task Dataset_manifest_mismatch_stops_the_worker_with_a_clear_error()
    {
        var job = TestJob.Instance;
        await using var coordinator = new FakeCoordinator();
        await using var worker = new WorkerTestHost(coordinator);
        await worker.StartAsync();
        var session = await coordinator.NextSessionAsync();
        await session.SendAsync(job.Assignment(round: 1, manifestRoot: Enumerable.Repeat((byte)0xaa, 32).ToArray()));
        await worker.WaitUntilAsync(static s => s.State == WorkerState.Failed, "the worker fails");
        StringAssert.Contains(worker.Status.LastError!, "manifest root mismatch");
        Assert.AreEqual(1, coordinator.Connections, "a permanent failure does not reconnect");
        session.End();
    }

    [TestMethod]
    [Timeout(300_000, CooperativeCancellation = true)]
    public async Task Connection_lost_mid_training_stops_the_round_and_the_worker_reconnects()
    {
        var job = TestJob.Instance;
        await using var coordinator = new FakeCoordinator();
        await using var worker = new WorkerTestHost(coordinator);
        await worker.StartAsync();
        var session = await coordinator.NextSessionAsync();

        // A round far too long to finish: only noticing the lost connection gets the worker back.
        await session.SendAsync(job.Assignment(round: 1, steps: 1_000_000));
        await session.ReceiveUntilAsync<ParameterRequest>();
        await ParameterTransfer.SendAsync(session.Connection, job.Parameters, 1, job.Manifest);
        await session.ReceiveUntilAsync<Progress>();
        session.End();

        var second = await coordinator.NextSessionAsync();
        Assert.AreEqual("worker-a", second.Worker.WorkerId);
        Assert.IsLessThan(1_000_000, worker.Status.Step, "the round was abandoned");
        second.End();
    }

    [TestMethod]
    [Timeout(300_000, CooperativeCancellation = true)]
    public async Task Shutdown_mid_round_sends_Goodbye()
    {
        var job = TestJob.Instance;
        await using var coordinator = new FakeCoordinator();
        await using var worker = new WorkerTestHost(coordinator);
        await worker.StartAsync();
        var session = await coordinator.NextSessionAsync();
        await session.SendAsync(job.Assignment(round: 1, steps: 1_000_000));
        await session.ReceiveUntilAsync<ParameterRequest>();
        await ParameterTransfer.SendAsync(session.Connection, job.Parameters, 1, job.Manifest);
        await worker.WaitUntilAsync(static s => s.State == WorkerState.Training && s.Step > 0, "training has started");

        var stopping = worker.StopAsync();
        var goodbye = await session.ReceiveUntilAsync<Goodbye>();
        Assert.IsTrue(goodbye.RejoinLater);
        StringAssert.Contains(goodbye.Message, "mid-round");
        await stopping;
        Assert.AreEqual(WorkerState.Stopped, worker.Status.State);
        session.End();
    }
}
