using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using NearML.Hosting.Coordinator;
using NearML.Hosting.Tests.Coordinator;

namespace NearML.Hosting.Tests.Observability;

/// <summary>
/// The <c>NearML</c> activity source, collected with an <see cref="ActivityListener"/> over one round of a real coordinator
/// and real workers: span names, parent/child links, tags, and a refused join with status Error and <c>error.type</c>.
/// </summary>
[TestClass]
public sealed class TracingTests
{
    [TestMethod]
    public void Source_and_meter_are_named_NearML_and_carry_the_package_version()
    {
        Assert.AreEqual("NearML", NearMLTracing.Source.Name);
        Assert.AreEqual(NearMLTracing.Version, NearMLTracing.Source.Version);
        StringAssert.StartsWith(NearMLTracing.Version, "0.");
        Assert.DoesNotContain("+", NearMLTracing.Version);
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var metrics = new NearMLMetrics(services.GetRequiredService<IMeterFactory>());
        Assert.AreEqual(NearMLMetrics.MeterName, metrics.Meter.Name);
        Assert.AreEqual(NearMLTracing.Version, metrics.Meter.Version);
    }

    [TestMethod]
    public void A_missing_or_malformed_trace_parent_gives_root_spans_and_a_valid_one_a_remote_parent()
    {
        Assert.AreEqual(default, NearMLTracing.RemoteRound(null));
        Assert.AreEqual(default, NearMLTracing.RemoteRound(string.Empty));
        Assert.AreEqual(default, NearMLTracing.RemoteRound("not-a-traceparent"));
        Assert.AreEqual(default, NearMLTracing.RemoteRound("00-00000000000000000000000000000000-b7ad6b7169203331-01"), "an all-zero trace id is invalid");
        var parsed = NearMLTracing.RemoteRound("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        Assert.AreEqual("0af7651916cd43dd8448eb211c80319c", parsed.TraceId.ToHexString());
        Assert.AreEqual("b7ad6b7169203331", parsed.SpanId.ToHexString());
        Assert.IsTrue(parsed.IsRemote);
    }

    [TestMethod]
    [TestCategory("Slow")]
    [Timeout(240_000, CooperativeCancellation = true)]
    public async Task One_round_of_a_real_job_records_join_round_upload_aggregate_checkpoint_and_settle_spans()
    {
        var jobId = "trace-" + Guid.NewGuid().ToString("N")[..8];
        var stopped = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == NearMLTracing.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = stopped.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);

        var data = TestAssembly.NewTempDirectory("trace");
        var directories = new List<string>();
        var logs = new CapturingLoggerProvider();
        var coordinator = ObservabilityHosts.Coordinator(data, logs, o =>
        {
            o.JobId = jobId;
            o.Rounds = 1;
            o.MinWorkers = 2;
            o.SettleEveryRounds = 1;
        });
        var workers = new List<IHost>();
        try
        {
            await coordinator.StartAsync();
            var status = coordinator.Services.GetRequiredService<CoordinatorStatus>();
            await status.Listening.WaitAsync(ObservabilityHosts.Timeout);

            // A worker without attestation evidence is refused first (the coordinator admits simulated evidence, not none).
            var refusedData = TestAssembly.NewTempDirectory("trace-worker");
            directories.Add(refusedData);
            var refused = ObservabilityHosts.Worker("trace-mallory", status.Port, status.Fingerprint, refusedData, logs, attestation: "none");
            workers.Add(refused);
            await refused.StartAsync();
            await WaitAsync(() => stopped.Any(a => a.OperationName == NearMLTracing.Join && a.Status == ActivityStatusCode.Error && Side(a) == "coordinator"), "a refused join");
            await ObservabilityHosts.StopAsync(refused);
            workers.Remove(refused);

            foreach (var id in new[] { "trace-alice", "trace-bob" })
            {
                var d = TestAssembly.NewTempDirectory("trace-worker");
                directories.Add(d);
                var w = ObservabilityHosts.Worker(id, status.Port, status.Fingerprint, d, logs);
                workers.Add(w);
                await w.StartAsync();
            }

            await status.CompletedTask.WaitAsync(TimeSpan.FromSeconds(150));
            await WaitAsync(() => stopped.Any(a => a.OperationName == NearMLTracing.Checkpoint) && stopped.Count(a => a.OperationName == NearMLTracing.Upload && Side(a) == "worker") == 2, "the checkpoint and both workers' upload spans");
        }
        finally
        {
            foreach (var w in workers)
            {
                await ObservabilityHosts.StopAsync(w);
            }

            await ObservabilityHosts.StopAsync(coordinator);
            ObservabilityHosts.TryDelete(data);
            directories.ForEach(ObservabilityHosts.TryDelete);
        }

        var spans = stopped.ToList();
        var round = spans.Single(a => a.OperationName == NearMLTracing.Round && (string?)a.GetTagItem("nearml.job.id") == jobId);
        Assert.AreEqual(0L, round.GetTagItem("nearml.round"));
        Assert.AreEqual(2, round.GetTagItem("nearml.cohort"));
        Assert.AreEqual(2, round.GetTagItem("nearml.updates.accepted"));
        Assert.AreEqual(ActivityStatusCode.Unset, round.Status);
        Assert.AreEqual(default, round.ParentSpanId, "a round is a root span");
        Assert.AreEqual("NearML", round.Source.Name);

        var children = spans.Where(a => a.ParentSpanId == round.SpanId && a.TraceId == round.TraceId).ToList();
        var uploads = children.Where(a => a.OperationName == NearMLTracing.Upload && Side(a) == "coordinator").ToList();
        CollectionAssert.AreEquivalent(new[] { "trace-alice", "trace-bob" }, uploads.Select(u => (string?)u.GetTagItem("nearml.worker.id")).ToArray());
        Assert.IsTrue(uploads.All(u => u.GetTagItem("nearml.update.bytes") is long b && b > 0 && u.Status == ActivityStatusCode.Unset));
        Assert.IsTrue(uploads.All(u => u.StartTimeUtc >= round.StartTimeUtc && u.StartTimeUtc + u.Duration <= round.StartTimeUtc + round.Duration), "uploads lie within their round");
        Assert.HasCount(1, children.Where(a => a.OperationName == NearMLTracing.Aggregate).ToList());
        var checkpoint = children.Single(a => a.OperationName == NearMLTracing.Checkpoint);
        Assert.AreEqual(0L, checkpoint.GetTagItem("nearml.round"));
        var settle = children.Single(a => a.OperationName == NearMLTracing.Settle);
        Assert.AreEqual(0L, settle.GetTagItem("nearml.epoch"));
        Assert.AreEqual(true, settle.GetTagItem("nearml.settlement.dry_run"));
        Assert.AreEqual(ActivityStatusCode.Unset, settle.Status);

        // Joins: one per side per admitted worker, roots of their own traces, tagged with the worker id.
        var joins = spans.Where(a => a.OperationName == NearMLTracing.Join && a.Status == ActivityStatusCode.Unset).ToList();
        foreach (var id in new[] { "trace-alice", "trace-bob" })
        {
            Assert.IsTrue(joins.Any(j => Side(j) == "coordinator" && (string?)j.GetTagItem("nearml.worker.id") == id && (string?)j.GetTagItem("nearml.attestation.format") is { Length: > 0 }), $"coordinator join of {id}");
            Assert.IsTrue(joins.Any(j => Side(j) == "worker" && (string?)j.GetTagItem("nearml.worker.id") == id), $"worker join of {id}");
        }

        Assert.IsTrue(joins.All(j => j.ParentSpanId == default));
        var workerUploads = spans.Where(a => a.OperationName == NearMLTracing.Upload && Side(a) == "worker").ToList();
        Assert.HasCount(2, workerUploads);
        Assert.IsTrue(workerUploads.All(u => (string?)u.GetTagItem("nearml.update.encoding") == "fp32" && u.GetTagItem("nearml.round") is 0L));

        // One trace across the two sides: each worker's training and upload of round 0 are children of the coordinator's
        // round span, through JobAssignment.trace_parent.
        Assert.IsTrue(workerUploads.All(u => u.TraceId == round.TraceId && u.ParentSpanId == round.SpanId), "worker uploads are children of the coordinator's round");
        var training = spans.Where(a => a.OperationName == NearMLTracing.Train).ToList();
        CollectionAssert.AreEquivalent(new[] { "trace-alice", "trace-bob" }, training.Select(t => (string?)t.GetTagItem("nearml.worker.id")).ToArray());
        Assert.IsTrue(training.All(t => t.TraceId == round.TraceId && t.ParentSpanId == round.SpanId && t.GetTagItem("nearml.steps") is int n && n > 0), "worker training spans are children of the coordinator's round");

        // The refused join: status Error and error.type = the refusal reason, on both sides.
        var refusedJoins = spans.Where(a => a.OperationName == NearMLTracing.Join && a.Status == ActivityStatusCode.Error).ToList();
        var coordinatorRefusal = refusedJoins.First(a => Side(a) == "coordinator");
        var workerRefusal = refusedJoins.First(a => Side(a) == "worker");
        Assert.AreEqual("trace-mallory", (string?)workerRefusal.GetTagItem("nearml.worker.id"));
        foreach (var r in new[] { coordinatorRefusal, workerRefusal })
        {
            var errorType = (string?)r.GetTagItem(NearMLTracing.ErrorTypeTag);
            Assert.IsFalse(string.IsNullOrEmpty(errorType), "error.type is set");
            Assert.IsTrue(Enum.TryParse<NearML.Core.Contracts.RefusalReason>(errorType, out _), $"error.type '{errorType}' is a refusal reason");
            Assert.IsFalse(string.IsNullOrEmpty(r.StatusDescription));
        }

        Assert.AreEqual((string?)coordinatorRefusal.GetTagItem(NearMLTracing.ErrorTypeTag), (string?)workerRefusal.GetTagItem(NearMLTracing.ErrorTypeTag));
        Assert.IsTrue(workerRefusal.Events.Any(e => e.Name == "exception"), "the worker's refused join records the exception");
    }

    private static string? Side(Activity a) => a.OperationName == NearMLTracing.Upload
        ? (a.GetTagItem("nearml.update.encoding") is null ? "coordinator" : "worker")
        : (string?)a.GetTagItem("nearml.side");

    private static async Task WaitAsync(Func<bool> condition, string what)
    {
        var deadline = DateTimeOffset.UtcNow + ObservabilityHosts.Timeout;
        while (!condition())
        {
            if (DateTimeOffset.UtcNow > deadline)
            {
                Assert.Fail("timed out waiting for " + what);
            }

            await Task.Delay(20);
        }
    }
}
