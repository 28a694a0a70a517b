using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using NearML.Core;
using NearML.Core.Contracts;
using NearML.Hosting.Jobs;
using NearML.Sharding;
using NearML.Training.Data;
using NearML.Training.Engines;

namespace NearML.Hosting.Worker;

/// <summary>A job this worker cannot take part in (wrong dataset, unsupported strategy, bad model config): retrying will not help.</summary>
internal sealed class WorkerFatalException(string message, Exception? innerException = null) : NearMLException(message, innerException);

/// <summary>
/// What the worker keeps for one job across rounds and reconnects: the model (built once per job through the
/// <see cref="JobRegistry"/>), the global parameters it last downloaded (version + manifest root, so an unchanged version
/// is not downloaded again), and the inner optimizer (kept across rounds, reset when the worker rejoins).
/// </summary>
internal sealed class WorkerJob : IDisposable
{
    private WorkerJob(string jobId, string architecture, string configJson, string datasetKey, ulong seed, ITrainableModel model, JobDataset dataset)
    {
        JobId = jobId;
        Architecture = architecture;
        ConfigJson = configJson;
        DatasetKey = datasetKey;
        Seed = seed;
        Model = model;
        Dataset = dataset;
        Global = new ParameterSet(model.Layout);
        Delta = new ParameterSet(model.Layout);
    }

    public string JobId { get; }

    public string Architecture { get; }

    public string ConfigJson { get; }

    public string DatasetKey { get; }

    public ulong Seed { get; }

    /// <summary>Gets the model through the engine-neutral contract (its host view of the parameters is <see cref="ITrainableModel.Parameters"/>).</summary>
    public ITrainableModel Model { get; }

    public JobDataset Dataset { get; }

    /// <summary>Gets the global parameters of <see cref="GlobalVersion"/> (valid only when <see cref="GlobalRoot"/> is set).</summary>
    public ParameterSet Global { get; }

    /// <summary>Gets a scratch set for θ_global − θ_local.</summary>
    public ParameterSet Delta { get; }

    public ulong GlobalVersion { get; private set; }

    public byte[]? GlobalRoot { get; private set; }

    private InnerOptimizerSettings? _optimizer;

    /// <summary>Returns whether this job state fits <paramref name="assignment"/> (same job, model, dataset and seed).</summary>
    public bool Matches(JobAssignment assignment) =>
        assignment.JobId == JobId
        && assignment.Model.Architecture == Architecture
        && assignment.Model.ConfigJson == ConfigJson
        && DatasetKeyOf(assignment) == DatasetKey
        && assignment.HyperParameters.Seed == Seed;

    /// <summary>Returns whether the worker already holds version <paramref name="version"/> with manifest root <paramref name="root"/>.</summary>
    public bool Holds(ulong version, ReadOnlySpan<byte> root) =>
        GlobalRoot is not null && GlobalVersion == version && root.Length == GlobalRoot.Length && CryptographicOperations.FixedTimeEquals(root, GlobalRoot);

    public void InvalidateGlobal() => GlobalRoot = null;

    public void SetGlobal(ulong version, ReadOnlySpan<byte> root)
    {
        GlobalVersion = version;
        GlobalRoot = root.ToArray();
    }

    /// <summary>Starts a fresh inner optimizer at the next round (on joining or rejoining).</summary>
    public void ResetOptimizer() => _optimizer = null;

    /// <summary>Loads the global parameters into the model (host view, then the engine).</summary>
    public void LoadGlobal()
    {
        Model.Parameters.CopyFrom(Global);
        Model.PushParameters();
    }

    /// <summary>Makes sure the inner optimizer is the job's: a fresh one when absent or when the hyper-parameters changed.</summary>
    public ITrainableModel EnsureTrainer(double learningRate, double weightDecay)
    {
        var settings = new InnerOptimizerSettings(LearningRate: learningRate, WeightDecay: weightDecay);
        if (_optimizer is null || _optimizer != settings)
        {
            Model.ResetOptimizer(settings);
            _optimizer = settings;
        }

        return Model;
    }

    public void Dispose() => Model.Dispose();

    private static string DatasetKeyOf(JobAssignment assignment) =>
        assignment.Dataset is { Key.Length: > 0 } d ? d.Key.Trim().ToLowerInvariant() : JobDataset.FashionMnistName;

    /// <summary>
    /// Builds the job state for an assignment: loads (or reuses) the dataset through the registry and checks it against the
    /// coordinator's manifest (its root, and each assigned shard's bytes through a <see cref="ShardReader"/>), builds the
    /// model through the registry and checks its layout against the assignment's.
    /// </summary>
    /// <exception cref="WorkerFatalException">The dataset or model is missing here or does not match the coordinator's.</exception>
    public static WorkerJob Create(JobAssignment assignment, string? datasetDirectory, JobRegistry registry, int? threads = null)
    {
        var hp = assignment.HyperParameters;
        var spec = assignment.Dataset ?? throw new WorkerFatalException($"job '{assignment.JobId}' gives no dataset (JobAssignment.dataset is missing)");
        var datasetKey = DatasetKeyOf(assignment);
        if (!registry.HasDataset(datasetKey))
        {
            throw new WorkerFatalException($"job '{assignment.JobId}' trains on dataset '{datasetKey}', which this worker has not registered (it has: {string.Join(", ", registry.DatasetKeys)})");
        }

        if (!registry.HasModel(assignment.Model.Architecture))
        {
            throw new WorkerFatalException($"job '{assignment.JobId}' trains model '{assignment.Model.Architecture}', which this worker has not registered (it has: {string.Join(", ", registry.ModelKeys)})");
        }

        if (spec.ShardCount is < 1 or > int.MaxValue)
        {
            throw new WorkerFatalException($"job '{assignment.JobId}' gives dataset.shard_count {spec.ShardCount}; it must be at least 1");
        }

        var shardCount = (int)spec.ShardCount;
        var datasetConfig = spec.ConfigJson.Length > 0 ? spec.ConfigJson : "{}";
        JobDataset dataset;
        try
        {
            dataset = DatasetCache.Get(registry, datasetKey, datasetConfig, datasetDirectory, shardCount, hp.Seed);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or NearMLException)
        {
            throw new WorkerFatalException($"cannot load dataset '{datasetKey}' from '{datasetDirectory ?? "(default path)"}': {ex.Message}", ex);
        }

        if (spec.Manifest.Length > 0)
        {
            ShardManifest manifest;
            try
            {
                manifest = ShardManifest.Parse(spec.Manifest.ToByteArray(), "the coordinator's manifest");
            }
            catch (InvalidDataFormatException ex)
            {
                throw new WorkerFatalException($"job '{assignment.JobId}' sends a dataset manifest that does not parse: {ex.Message}", ex);
            }

            try
            {
                dataset.VerifyShards(manifest, assignment.ShardIds.Select(static s => (int)s).ToArray());
            }
            catch (ShardIntegrityException ex)
            {
                throw new WorkerFatalException(
                    $"refusing job '{assignment.JobId}': shard {ex.ShardIndex} of dataset '{datasetKey}' fails its integrity check against the coordinator's manifest (root {manifest.MerkleRootHex}): {ex.Message}", ex);
            }
            catch (JobConfigurationException ex)
            {
                throw new WorkerFatalException($"refusing job '{assignment.JobId}': {ex.Message}", ex);
            }
        }

        if (spec.ManifestRoot.Length != 32)
        {
            throw new WorkerFatalException($"job '{assignment.JobId}' gives a dataset.manifest_root of {spec.ManifestRoot.Length} bytes; it must be 32");
        }

        if (!spec.ManifestRoot.Span.SequenceEqual(dataset.ManifestRoot.Span))
        {
            var expectedRoot = Convert.ToHexStringLower(spec.ManifestRoot.Span);
            var actual = Convert.ToHexStringLower(dataset.ManifestRoot.Span);
            throw new WorkerFatalException(
                $"dataset manifest root mismatch for job '{assignment.JobId}': the coordinator's shards have root {expectedRoot}, this worker's files under '{datasetDirectory ?? "(default path)"}' give {actual}; refusing to train on different data");
        }

        ITrainableModel model;
        try
        {
            model = registry.BuildModel(
                assignment.Model.Architecture,
                new ModelBuildContext(assignment.Model.ConfigJson, unchecked((int)hp.Seed), new InnerOptimizerSettings(LearningRate: hp.InnerLearningRate, WeightDecay: hp.WeightDecay), threads));
        }
        catch (JobConfigurationException ex)
        {
            throw new WorkerFatalException($"cannot build model '{assignment.Model.Architecture}' for job '{assignment.JobId}': {ex.Message}", ex);
        }

        try
        {
            JobModel.EnsureLayout(assignment.Model, model.Layout);
        }
        catch (JobConfigurationException ex)
        {
            model.Dispose();
            throw new WorkerFatalException($"the coordinator's parameter layout for '{assignment.Model.Architecture}' differs from this worker's: {ex.Message}", ex);
        }

        return new WorkerJob(assignment.JobId, assignment.Model.Architecture, assignment.Model.ConfigJson, datasetKey, hp.Seed, model, dataset);
    }

    /// <summary>
    /// One load of a dataset per process and (registration, configuration, folder, shard count, seed), shared by every
    /// worker in the process. Keyed by the registration, not the registry: every host builds its own registry, but the
    /// built-in registrations are one object per process, so fifty hosts in one process (a swarm, a marketplace running
    /// many slots) hold one Fashion-MNIST, not fifty (a 50-host swarm grew to 22 GB and was OOM-killed when the key was
    /// per registry). A registration's provider must give equal records for equal contexts on every machine (its
    /// contract), so which host's registry performs the load does not matter.
    /// </summary>
    private static class DatasetCache
    {
        private static readonly ConcurrentDictionary<(object, string, string, int, ulong), Lazy<JobDataset>> Cache = new();

        public static JobDataset Get(JobRegistry registry, string key, string config, string? directory, int shardCount, ulong seed)
        {
            object identity = registry.FindDataset(key) ?? (object)registry;
            var k = (identity, config, directory is null ? string.Empty : Path.GetFullPath(directory), shardCount, seed);
            var lazy = Cache.GetOrAdd(k, _ => new Lazy<JobDataset>(() =>
                JobDataset.Create(registry.LoadDataset(key, new DatasetLoadContext(config, seed, directory)), shardCount, seed)));
            try
            {
                return lazy.Value;
            }
            catch
            {
                Cache.TryRemove(new KeyValuePair<(object, string, string, int, ulong), Lazy<JobDataset>>(k, lazy));
                throw;
            }
        }
    }
}
