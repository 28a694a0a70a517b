using NearML.Core.Contracts;
using NearML.Hosting.Worker;

namespace NearML.Hosting.Tests.Worker;

/// <summary>Protocol 2.0's typed job settings: an assignment whose typed settings are missing or out of range stops the worker with a reason naming the field.</summary>
[TestClass]
public sealed class WorkerTypedSettingsTests
{
    [TestInitialize]
    public void RequireDataset() => TestJob.RequireDataset();

    public static IEnumerable<object[]> BadAssignments() =>
    [
        ["no update encoding", new Action<JobAssignment>(a => a.HyperParameters.UpdateEncoding = UpdateEncoding.Unspecified), "update encoding unspecified"],
        ["an unknown update encoding", new Action<JobAssignment>(a => a.HyperParameters.UpdateEncoding = (UpdateEncoding)9), "update encoding unknown (9)"],
        ["no dataset", new Action<JobAssignment>(a => a.Dataset = null), "JobAssignment.dataset is missing"],
        ["a short manifest root", new Action<JobAssignment>(a => a.Dataset.ManifestRoot = Google.Protobuf.ByteString.CopyFrom(a.Dataset.ManifestRoot.Span[1..])), "dataset.manifest_root of 31 bytes"],
        ["no shard count", new Action<JobAssignment>(a => a.Dataset.ShardCount = 0), "dataset.shard_count 0"],
    ];

    [TestMethod]
    [Timeout(300_000, CooperativeCancellation = true)]
    [DynamicData(nameof(BadAssignments))]
    public async Task A_bad_typed_setting_stops_the_worker_naming_it(string what, Action<JobAssignment> spoil, string reason)
    {
        var assignment = TestJob.Instance.Assignment(round: 1);
        spoil(assignment);
        await using var coordinator = new FakeCoordinator();
        await using var worker = new WorkerTestHost(coordinator);
        await worker.StartAsync();
        var session = await coordinator.NextSessionAsync();
        await session.SendAsync(assignment);
        await worker.WaitUntilAsync(static s => s.State == WorkerState.Failed, $"the worker fails on {what}");
        StringAssert.Contains(worker.Status.LastError!, reason);
        Assert.AreEqual(1, coordinator.Connections, "a permanent failure does not reconnect");
        session.End();
    }
}
