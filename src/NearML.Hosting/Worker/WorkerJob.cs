using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using NearML.Core;
using NearML.Core.Contracts;
using NearML.Hosting.Jobs;
using NearML.Training.Modules;
using NearML.Training.Optim;
using NearML.Training;

namespace NearML.Hosting.Worker;

/// <summary>A job this worker cannot take part in (wrong dataset, unsupported strategy, bad model config): retrying will not help.</summary>
internal sealed class WorkerFatalException(string message, Exception? innerException = null) : NearMLException(message, innerException);

/// <summary>
/// What the worker keeps for one job across rounds and reconnects: the model (built once per job), the global parameters it
/// last downloaded (version + manifest root, so an unchanged version is not downloaded again), and the inner AdamW state
/// (kept across rounds, reset when the worker rejoins).
/// </summary>
internal sealed class WorkerJob
{
    private WorkerJob(string jobId, string architecture, string configJson, ulong seed, Model model, JobDataset dataset)
    {
        JobId = jobId;
        Architecture = architecture;
        ConfigJson = configJson;
        Seed = seed;
        Model = model;
        Dataset = dataset;
        Global = new ParameterSet(model.Parameters.Layout);
        Delta = new ParameterSet(model.Parameters.Layout);
    }

    public string JobId { get; }

    public string Architecture { get; }

    public string ConfigJson { get; }

    public ulong Seed { get; }

    public Model Model { get; }

    public JobDataset Dataset { get; }

    /// <summary>Gets the global parameters of <see cref="GlobalVersion"/> (valid only when <see cref="GlobalRoot"/> is set).</summary>
    public ParameterSet Global { get; }

    /// <summary>Gets a scratch set for θ_global − θ_local.</summary>
    public ParameterSet Delta { get; }

    public ulong GlobalVersion { get; private set; }

    public byte[]? GlobalRoot { get; private set; }

    public LocalTrainer? Trainer { get; private set; }

    public double LearningRate { get; private set; }

    public double WeightDecay { get; private set; }

    /// <summary>Returns whether this job state fits <paramref name="assignment"/> (same job, model and seed).</summary>
    public bool Matches(JobAssignment assignment) =>
        assignment.JobId == JobId
        && assignment.Model.Architecture == Architecture
        && assignment.Model.ConfigJson == ConfigJson
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

    /// <summary>Starts a fresh inner optimizer (on joining or rejoining).</summary>
    public void ResetOptimizer() => Trainer = null;

    /// <summary>Gets the trainer, creating the inner AdamW when absent or when the hyper-parameters changed.</summary>
    public LocalTrainer EnsureTrainer(double learningRate, double weightDecay)
    {
        if (Trainer is null || LearningRate != learningRate || WeightDecay != weightDecay)
        {
            var optimizer = new AdamW(Model.Parameters.Layout, new AdamWOptions { LearningRate = learningRate, WeightDecay = weightDecay });
            Trainer = new LocalTrainer(Model, optimizer);
            LearningRate = learningRate;
            WeightDecay = weightDecay;
        }

        return Trainer;
    }

    /// <summary>
    /// Builds the job state for an assignment: loads (or reuses) the dataset and checks its manifest root against the
    /// assignment, builds the model through <see cref="ModelCatalog"/> and checks its layout against the assignment's.
    /// </summary>
    /// <exception cref="WorkerFatalException">The dataset or model does not match the coordinator's.</exception>
    public static WorkerJob Create(JobAssignment assignment, string? datasetDirectory)
    {
        var hp = assignment.HyperParameters;
        var extra = hp.Extra;
        if (extra.TryGetValue("dataset", out var datasetName) && !string.Equals(datasetName, "fashion-mnist", StringComparison.OrdinalIgnoreCase))
        {
            throw new WorkerFatalException($"job '{assignment.JobId}' trains on dataset '{datasetName}'; this worker only has 'fashion-mnist'");
        }

        if (!extra.TryGetValue("shard_count", out var shardText)
            || !int.TryParse(shardText, NumberStyles.None, CultureInfo.InvariantCulture, out var shardCount) || shardCount < 1)
        {
            throw new WorkerFatalException($"job '{assignment.JobId}' gives no valid extra[\"shard_count\"] (got '{shardText}')");
        }

        JobDataset dataset;
        try
        {
            dataset = DatasetCache.Get(datasetDirectory, shardCount, hp.Seed);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataFormatException)
        {
            throw new WorkerFatalException($"cannot load Fashion-MNIST from '{datasetDirectory ?? "(default path)"}': {ex.Message}", ex);
        }

        if (extra.TryGetValue("manifest_root", out var expectedRoot))
        {
            var actual = Convert.ToHexStringLower(dataset.ManifestRoot.Span);
            if (!string.Equals(actual, expectedRoot.Trim(), StringComparison.OrdinalIgnoreCase))
            {
                throw new WorkerFatalException(
                    $"dataset manifest root mismatch for job '{assignment.JobId}': the coordinator's shards have root {expectedRoot}, this worker's files under '{datasetDirectory ?? "(default path)"}' give {actual}; refusing to train on different data");
            }
        }

        Model model;
        try
        {
            model = ModelCatalog.Create(assignment.Model.Architecture, assignment.Model.ConfigJson, unchecked((int)hp.Seed));
        }
        catch (JobConfigurationException ex)
        {
            throw new WorkerFatalException($"cannot build model '{assignment.Model.Architecture}' for job '{assignment.JobId}': {ex.Message}", ex);
        }

        if (assignment.Model.Tensors.Count > 0)
        {
            var expected = new ParameterLayout(assignment.Model.Tensors.Select(static t => (t.Name, t.Shape.ToArray())));
            try
            {
                expected.EnsureSameAs(model.Parameters.Layout);
            }
            catch (LayoutMismatchException ex)
            {
                throw new WorkerFatalException($"the coordinator's parameter layout for '{assignment.Model.Architecture}' differs from this worker's: {ex.Message}", ex);
            }
        }

        return new WorkerJob(assignment.JobId, assignment.Model.Architecture, assignment.Model.ConfigJson, hp.Seed, model, dataset);
    }

    /// <summary>One load of the dataset files per process and (folder, shard count, seed), shared by every worker in the process.</summary>
    private static class DatasetCache
    {
        private static readonly ConcurrentDictionary<(string, int, ulong), Lazy<JobDataset>> Cache = new();

        public static JobDataset Get(string? directory, int shardCount, ulong seed)
        {
            var key = (directory is null ? string.Empty : Path.GetFullPath(directory), shardCount, seed);
            var lazy = Cache.GetOrAdd(key, k => new Lazy<JobDataset>(() => JobDataset.LoadFashionMnist(directory, k.Item2, k.Item3)));
            try
            {
                return lazy.Value;
            }
            catch
            {
                Cache.TryRemove(new KeyValuePair<(string, int, ulong), Lazy<JobDataset>>(key, lazy));
                throw;
            }
        }
    }
}
