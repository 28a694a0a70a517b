using NearML.Core;
using NearML.Core.Contracts;
using NearML.Hosting.Jobs;
using NearML.Hosting.Worker;
using NearML.Sharding;
using NearML.Training.Data;
using Microsoft.Extensions.DependencyInjection;
using NearML.Training.Engines;
using static NearML.Hosting.Tests.ByoModel.ByoModelFixtures;

namespace NearML.Hosting.Tests.ByoModel;

/// <summary>Models and datasets registered by key (not switched), and the refusals at join, over real TLS.</summary>
[TestClass]
public sealed class BringYourOwnModelTests
{
    [TestMethod]
    public async Task A_custom_managed_model_and_dataset_train_with_a_coordinator_and_two_workers()
    {
        var (coordinator, status, coordinatorLogs) = await StartCoordinatorAsync(
            b => b.AddModel("tiny", c => Tiny(c)).AddDataset("blobs", _ => BlobsDataset()),
            o => o.MinWorkers = 2);
        var threadsSeen = new System.Collections.Concurrent.ConcurrentQueue<int?>();
        var (w1, s1, _) = await StartWorkerAsync(status, "byom-1", b =>
        {
            b.Services.Configure<NearMLWorkerOptions>(o => o.ThreadCount = 3);
            b.AddModel("tiny", c =>
            {
                threadsSeen.Enqueue(c.Threads);
                return Tiny(c);
            }).AddDataset("blobs", _ => BlobsDataset());
        });
        var (w2, s2, _) = await StartWorkerAsync(status, "byom-2", b => b.AddModel("tiny", c => Tiny(c)).AddDataset("blobs", _ => BlobsDataset()));
        try
        {
            await status.CompletedTask.WaitAsync(TimeSpan.FromSeconds(120));
            var rounds = status.Rounds;
            Assert.HasCount(3, rounds, string.Join("\n", coordinatorLogs.Lines));
            Assert.IsTrue(rounds.All(r => r.Accepted == 2), string.Join("; ", rounds.Select(r => $"{r.Round}: {r.Accepted}")));
            Assert.IsGreaterThan(0.9, status.LastAccuracy!.Value, $"accuracy {status.LastAccuracy}");
            Assert.IsLessThan(rounds[0].MeanLoss, rounds[^1].MeanLoss);
            Assert.IsGreaterThan(0L, s1.Receipts + s2.Receipts);

            // The worker's ThreadCount reaches the model factory when the job's model is built (the join-time layout
            // check may build it without a thread count first).
            Assert.Contains(3, threadsSeen.Select(t => t ?? -1).ToList(), string.Join(", ", threadsSeen));
        }
        finally
        {
            await StopAsync(w1, w2, coordinator);
        }
    }

    [TestMethod]
    public async Task A_worker_without_the_jobs_model_key_is_refused_with_the_reason_on_both_sides()
    {
        var (coordinator, status, coordinatorLogs) = await StartCoordinatorAsync(b => b.AddModel("tiny", c => Tiny(c)).AddDataset("blobs", _ => BlobsDataset()));
        var (worker, workerStatus, workerLogs) = await StartWorkerAsync(status, "no-model", b => b.AddDataset("blobs", _ => BlobsDataset()));
        try
        {
            await WaitForAsync(() => workerStatus.LastError?.Contains("ModelUnavailable", StringComparison.Ordinal) == true, "the refusal at the worker");
            StringAssert.Contains(workerStatus.LastError, "model 'tiny'");
            Assert.IsTrue(coordinatorLogs.Contains("ModelUnavailable"), string.Join("\n", coordinatorLogs.Lines));
            Assert.IsTrue(coordinatorLogs.Contains("has not registered"));
            Assert.IsTrue(workerLogs.Contains("cannot run here"), string.Join("\n", workerLogs.Lines));
            Assert.IsEmpty(status.Rounds);
            Assert.IsNull(workerStatus.JobId);
        }
        finally
        {
            await StopAsync(worker, coordinator);
        }
    }

    [TestMethod]
    public async Task A_worker_without_the_jobs_dataset_key_is_refused_with_the_reason_on_both_sides()
    {
        var (coordinator, status, coordinatorLogs) = await StartCoordinatorAsync(b => b.AddModel("tiny", c => Tiny(c)).AddDataset("blobs", _ => BlobsDataset()));
        var (worker, workerStatus, workerLogs) = await StartWorkerAsync(status, "no-data", b => b.AddModel("tiny", c => Tiny(c)));
        try
        {
            await WaitForAsync(() => workerStatus.LastError?.Contains("DatasetUnavailable", StringComparison.Ordinal) == true, "the refusal at the worker");
            StringAssert.Contains(workerStatus.LastError, "dataset 'blobs'");
            Assert.IsTrue(coordinatorLogs.Contains("DatasetUnavailable"), string.Join("\n", coordinatorLogs.Lines));
            Assert.IsTrue(workerLogs.Contains("dataset 'blobs'"), string.Join("\n", workerLogs.Lines));
            Assert.IsEmpty(status.Rounds);
        }
        finally
        {
            await StopAsync(worker, coordinator);
        }
    }

    [TestMethod]
    public async Task A_worker_whose_layout_fingerprint_differs_is_refused_with_both_fingerprints()
    {
        var (coordinator, status, coordinatorLogs) = await StartCoordinatorAsync(b => b.AddModel("tiny", c => Tiny(c)).AddDataset("blobs", _ => BlobsDataset()));
        var (worker, workerStatus, workerLogs) = await StartWorkerAsync(status, "wide", b => b.AddModel("tiny", c => Tiny(c, hidden: 13)).AddDataset("blobs", _ => BlobsDataset()));
        try
        {
            await WaitForAsync(() => workerStatus.LastError?.Contains("LayoutMismatch", StringComparison.Ordinal) == true, "the refusal at the worker");
            using var ours = Tiny(new ModelBuildContext("{}", 0, new InnerOptimizerSettings()));
            using var theirs = Tiny(new ModelBuildContext("{}", 0, new InnerOptimizerSettings()), hidden: 13);
            StringAssert.Contains(workerStatus.LastError, ours.Layout.Fingerprint);
            StringAssert.Contains(workerStatus.LastError, theirs.Layout.Fingerprint);
            Assert.IsTrue(coordinatorLogs.Contains("LayoutMismatch"), string.Join("\n", coordinatorLogs.Lines));
            Assert.IsTrue(workerLogs.Contains(theirs.Layout.Fingerprint), string.Join("\n", workerLogs.Lines));
            Assert.IsEmpty(status.Rounds);
        }
        finally
        {
            await StopAsync(worker, coordinator);
        }
    }

    [TestMethod]
    public async Task A_NaN_loss_withholds_the_contribution_and_does_not_poison_the_global_model()
    {
        var (coordinator, status, coordinatorLogs) = await StartCoordinatorAsync(
            b => b.AddModel("tiny", c => Tiny(c)).AddDataset("blobs", _ => BlobsDataset()),
            o =>
            {
                o.MinWorkers = 2;
                o.RoundTimeout = TimeSpan.FromSeconds(8);
            });
        var (healthy, _, _) = await StartWorkerAsync(status, "healthy", b => b.AddModel("tiny", c => Tiny(c)).AddDataset("blobs", _ => BlobsDataset()));
        var (nan, nanStatus, nanLogs) = await StartWorkerAsync(status, "nan", b => b.AddModel("tiny", c => Tiny(c, poisoned: true)).AddDataset("blobs", _ => BlobsDataset()));
        try
        {
            await status.CompletedTask.WaitAsync(TimeSpan.FromSeconds(120));
            var rounds = status.Rounds;
            Assert.HasCount(3, rounds, string.Join("\n", coordinatorLogs.Lines));
            foreach (var r in rounds)
            {
                CollectionAssert.Contains(r.AcceptedWorkers.ToList(), "healthy");
                CollectionAssert.DoesNotContain(r.AcceptedWorkers.ToList(), "nan");
            }

            Assert.IsTrue(nanLogs.Contains("non-finite value"), string.Join("\n", nanLogs.Lines));
            Assert.AreEqual(0L, nanStatus.Receipts);
            Assert.IsTrue(double.IsFinite(status.LastAccuracy!.Value));
            Assert.IsGreaterThan(0.8, status.LastAccuracy.Value);
        }
        finally
        {
            await StopAsync(healthy, nan, coordinator);
        }
    }

    [TestMethod]
    public async Task A_worker_whose_copy_of_a_shard_differs_refuses_the_job_naming_the_shard()
    {
        var (coordinator, status, _) = await StartCoordinatorAsync(b => b.AddModel("tiny", c => Tiny(c)).AddDataset("blobs", _ => BlobsDataset()));

        // The worker's record 0 differs; with one worker every shard is assigned to it.
        var (worker, workerStatus, workerLogs) = await StartWorkerAsync(status, "corrupt", b => b.AddModel("tiny", c => Tiny(c)).AddDataset("blobs", _ => BlobsDataset(corruptRecord: 0)));
        try
        {
            var expected = JobDataset.Create(BlobsDataset(), 4, 1);
            var shard = Array.IndexOf(expected.RecordsOf([0, 1, 2, 3]), 0) / 60;
            await WaitForAsync(() => workerStatus.LastError?.Contains("integrity", StringComparison.Ordinal) == true, "the shard refusal");
            StringAssert.Contains(workerStatus.LastError, $"shard {shard} of dataset 'blobs'");
            Assert.IsTrue(workerLogs.Contains("SHA-256"), string.Join("\n", workerLogs.Lines));
        }
        finally
        {
            await StopAsync(worker, coordinator);
        }
    }
}

/// <summary>The registry and data seam without a network.</summary>
[TestClass]
public sealed class JobRegistryTests
{
    [TestMethod]
    public void Built_ins_are_ordinary_registrations_and_a_later_registration_replaces_a_key()
    {
        CollectionAssert.IsSubsetOf(new[] { "cnn", "gpt", "mlp" }, JobRegistry.BuiltIn.ModelKeys.ToList());
        CollectionAssert.IsSubsetOf(new[] { "fashion-mnist", "npz", "text" }, JobRegistry.BuiltIn.DatasetKeys.ToList());
        var replaced = new JobRegistry([new ModelRegistration("MLP", (_, c) => Tiny(c))], []);
        using var m = replaced.BuildModel("mlp", new ModelBuildContext(string.Empty, 1, new InnerOptimizerSettings()));
        Assert.AreEqual("hidden.weight", m.Layout.Entries[0].Name);
    }

    [TestMethod]
    public void Unknown_keys_and_models_without_parameters_are_typed_errors_with_a_clear_message()
    {
        var registry = new JobRegistry(
            [new ModelRegistration("empty", (_, _) => new ManagedTrainableModel(new EmptyModel(), new InnerOptimizerSettings()))],
            []);
        var unknown = Assert.ThrowsExactly<JobConfigurationException>(() => registry.BuildModel("charlm", new ModelBuildContext("{}", 0, new InnerOptimizerSettings())));
        StringAssert.Contains(unknown.Message, "unknown model 'charlm'");
        StringAssert.Contains(unknown.Message, "mlp");
        var empty = Assert.ThrowsExactly<JobConfigurationException>(() => registry.BuildModel("empty", new ModelBuildContext("{}", 0, new InnerOptimizerSettings())));
        StringAssert.Contains(empty.Message, "no trainable parameters");
        var data = Assert.ThrowsExactly<JobConfigurationException>(() => registry.LoadDataset("shakespeare", new DatasetLoadContext("{}", 0)));
        StringAssert.Contains(data.Message, "unknown dataset 'shakespeare'");
    }

    [TestMethod]
    public void Every_single_byte_corruption_of_a_shard_is_refused_naming_the_shard()
    {
        var good = JobDataset.Create(BlobsDataset(), 4, 1);
        var manifest = good.Manifest;
        good.VerifyShards(manifest, [0, 1, 2, 3]);
        for (var record = 0; record < 240; record += 17)
        {
            var bad = JobDataset.Create(BlobsDataset(corruptRecord: record), 4, 1);
            var shard = Array.IndexOf(bad.RecordsOf([0, 1, 2, 3]), record) / 60;
            var ex = Assert.ThrowsExactly<ShardIntegrityException>(() => bad.VerifyShards(manifest, [0, 1, 2, 3]));
            Assert.AreEqual(shard, ex.ShardIndex);
            StringAssert.Contains(ex.Message, $"Shard {shard}");

            // The other shards still verify.
            bad.VerifyShards(manifest, [.. Enumerable.Range(0, 4).Where(s => s != shard)]);
        }
    }

    [TestMethod]
    public void Npy_and_text_datasets_cut_into_manifests_that_round_trip()
    {
        var npy = JobDataset.Create(BlobsDataset(), 4, 1);
        Assert.AreEqual(ShardKind.NpyRecords, npy.Manifest.Kind);
        var parsed = ShardManifest.Parse(npy.Manifest.ToJson(), "json");
        Assert.AreEqual(npy.ManifestRootHex, parsed.MerkleRootHex);

        var text = new TextTokenDataset("text", new TextDataset(string.Concat(Enumerable.Repeat("to be or not to be, that is the question. ", 200))), 16, 256);
        var job = JobDataset.Create(text, 5, 1);
        Assert.AreEqual(ShardKind.TextBytes, job.Manifest.Kind);
        Assert.AreEqual(ShardManifest.Parse(job.Manifest.ToJson(), "json").MerkleRootHex, job.ManifestRootHex);
        var source = job.CreateBatchSource([1, 2], 4, 3);
        source.StartEpoch(0);
        var batch = source.CreateBatch();
        Assert.IsTrue(source.TryFill(batch));
        Assert.AreEqual(16, batch.TokensPerSample);
    }

    private sealed class EmptyModel : NearML.Training.Modules.Model
    {
        public EmptyModel() => InitializeParameters(0);

        public override int Classes => 1;

        public override NearML.Training.Tensors.Tensor Forward(NearML.Training.Tensors.Tape tape, Batch batch) => throw new NotSupportedException();
    }
}
