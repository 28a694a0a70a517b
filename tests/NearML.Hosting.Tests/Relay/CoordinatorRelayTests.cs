using System.Runtime.InteropServices;
using Google.Protobuf;
using NearML.Core.Contracts;
using NearML.Hosting.Tests.Coordinator;

namespace NearML.Hosting.Tests.Relay;

/// <summary>The coordinator's relay driven frame by frame by minimal workers: weighted mean, NaN rejection, a member leaving.</summary>
[TestClass]
public sealed class CoordinatorRelayTests
{
    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task Relay_averages_by_weight_rejects_nan_and_completes_without_a_member_that_disconnects()
    {
        await using var c = await CoordinatorHarness.StartAsync(o =>
        {
            o.SyncStrategy = "ddp";
            o.MinWorkers = 3;
            o.Rounds = 1;
            o.RoundTimeout = TimeSpan.FromSeconds(60);
        });
        var workers = new List<FakeWorker>();
        try
        {
            foreach (var id in new[] { "f1", "f2", "f3" })
            {
                workers.Add(await FakeWorker.StartAsync(c, id, FakeBehavior.Silent));
            }

            using var wait = new CancellationTokenSource(CoordinatorHarness.Timeout);
            while (workers.Any(w => w.Assignments.IsEmpty))
            {
                await Task.Delay(20, wait.Token);
            }

            var assignment = workers[0].Assignments.Single();
            Assert.AreEqual(SyncStrategy.Ddp, assignment.HyperParameters.SyncStrategy);
            Assert.AreEqual(UpdateEncoding.Fp32, assignment.HyperParameters.UpdateEncoding);

            // Exchange 0: a weighted mean; f2's contribution holds a NaN and is rejected.
            await Reduce(workers[0], assignment, 0, [1f, 2f], 1);
            await Reduce(workers[1], assignment, 0, [1f, float.NaN], 1);
            await Reduce(workers[2], assignment, 0, [5f, 6f], 3);
            var results = await ResultsAsync(workers, 0);
            Assert.HasCount(3, results, "every contributor, the rejected one included, gets the result");
            var r = results[0];
            CollectionAssert.AreEqual(new[] { "f1", "f3" }, r.Participants.ToArray());
            Assert.AreEqual(4.0, r.TotalWeight);
            CollectionAssert.AreEqual(new[] { 4f, 5f }, MemoryMarshal.Cast<byte, float>(r.Payload.Span).ToArray());
            Assert.HasCount(1, r.Rejections);
            StringAssert.StartsWith(r.Rejections[0], "f2: NonFinite");
            Assert.IsTrue(c.Logs.Contains("contribution of 'f2' rejected (NonFinite)"));

            // Exchange 1: an all-gather; f2 disconnects before contributing and is dropped from the exchange.
            await workers[1].DisposeAsync();
            workers.RemoveAt(1);
            await workers[0].Connection.SendAsync(new RelayContribution { JobId = assignment.JobId, Round = assignment.Round, Tag = 1, Kind = RelayKind.Gather, Payload = ByteString.CopyFromUtf8("a") });
            await workers[1].Connection.SendAsync(new RelayContribution { JobId = assignment.JobId, Round = assignment.Round, Tag = 1, Kind = RelayKind.Gather, Payload = ByteString.CopyFromUtf8("cc") });
            var gathered = await ResultsAsync(workers, 1);
            Assert.HasCount(2, gathered);
            foreach (var g in gathered)
            {
                CollectionAssert.AreEqual(new[] { "f1", "f3" }, g.Participants.ToArray());
                CollectionAssert.AreEqual(new[] { "a", "cc" }, g.Payloads.Select(p => p.ToStringUtf8()).ToArray());
            }
        }
        finally
        {
            foreach (var w in workers)
            {
                await w.DisposeAsync();
            }
        }
    }

    private static async Task Reduce(FakeWorker w, JobAssignment a, long tag, float[] values, double weight)
    {
        var bytes = MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
        await w.Connection.SendAsync(new RelayContribution
        {
            JobId = a.JobId, Round = a.Round, Tag = tag, Kind = RelayKind.Reduce, Weight = weight, Encoding = UpdateEncoding.Fp32, Payload = ByteString.CopyFrom(bytes),
        });
    }

    private static async Task<List<RelayResult>> ResultsAsync(List<FakeWorker> workers, long tag)
    {
        using var wait = new CancellationTokenSource(CoordinatorHarness.Timeout);
        while (workers.Any(w => !w.RelayResults.Any(r => r.Tag == tag)))
        {
            await Task.Delay(20, wait.Token);
        }

        return [.. workers.Select(w => w.RelayResults.Single(r => r.Tag == tag))];
    }
}
