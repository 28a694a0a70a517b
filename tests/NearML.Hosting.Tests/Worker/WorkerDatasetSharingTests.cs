using NearML.Hosting.Jobs;
using NearML.Hosting.Worker;
using NearML.Training.Data;

namespace NearML.Hosting.Tests.Worker;

/// <summary>
/// Many worker hosts in one process (a swarm, a marketplace running many slots) share one loaded copy of a dataset: every
/// host builds its own <see cref="JobRegistry"/>, but the built-in registrations are one object per process.
/// </summary>
[TestClass]
public sealed class WorkerDatasetSharingTests
{
    [TestInitialize]
    public void RequireDataset() => TestJob.RequireDataset();

    [TestMethod]
    public void Hosts_with_their_own_registries_share_one_built_in_dataset()
    {
        var assignment = TestJob.Instance.Assignment(round: 1);
        using var a = WorkerJob.Create(assignment, TestJob.DatasetDirectory, new JobRegistry([], []));
        using var b = WorkerJob.Create(assignment, TestJob.DatasetDirectory, new JobRegistry([], []));
        Assert.AreSame(a.Dataset, b.Dataset, "two hosts in one process hold one Fashion-MNIST");
        Assert.AreNotSame(a.Model, b.Model, "each host has its own model");
    }

    [TestMethod]
    public void A_different_registration_under_the_same_key_loads_its_own_copy()
    {
        var assignment = TestJob.Instance.Assignment(round: 1);
        var loads = 0;
        var replacement = new DatasetRegistration("fashion-mnist", (_, c) =>
        {
            Interlocked.Increment(ref loads);
            var data = FashionMnist.Load(c.DataDirectory!);
            return new ClassificationDataset("fashion-mnist", data.Train, data.Test, RecordEncoding.Idx);
        });
        using var builtIn = WorkerJob.Create(assignment, TestJob.DatasetDirectory, new JobRegistry([], []));
        using var own = WorkerJob.Create(assignment, TestJob.DatasetDirectory, new JobRegistry([], [replacement]));
        using var ownAgain = WorkerJob.Create(assignment, TestJob.DatasetDirectory, new JobRegistry([], [replacement]));
        Assert.AreNotSame(builtIn.Dataset, own.Dataset, "an application's own registration is not confused with the built-in");
        Assert.AreSame(own.Dataset, ownAgain.Dataset, "one registration object is loaded once per process");
        Assert.AreEqual(1, loads);
    }
}
