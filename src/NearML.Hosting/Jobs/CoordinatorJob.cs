using Google.Protobuf;
using NearML.Core.Contracts;
using NearML.Hosting.Coordinator;
using NearML.Training;
using NearML.Training.Data;
using NearML.Training.Engines;

namespace NearML.Hosting.Jobs;

/// <summary>
/// The coordinator's side of a job, built from its options through the <see cref="JobRegistry"/>: the sharded dataset,
/// the global model (its <see cref="ITrainableModel.Parameters"/> are the global parameters), a second instance for
/// evaluation, the wire description and the <see cref="JobSpec"/> announced at join.
/// </summary>
internal sealed class CoordinatorJob : IDisposable
{
    private readonly DatasetSpec _dataset;

    private CoordinatorJob(JobSpec spec, JobDataset dataset, int requestedShardCount, ITrainableModel model, ITrainableModel evaluator, ModelConfig config)
    {
        Spec = spec;
        Dataset = dataset;
        Model = model;
        Evaluator = evaluator;
        ModelConfig = config;
        _dataset = new DatasetSpec
        {
            Key = spec.DatasetKey,
            ConfigJson = spec.DatasetConfigJson,
            Name = dataset.Manifest.Name,
            ShardCount = (uint)dataset.ShardCount,
            RequestedShardCount = (uint)requestedShardCount,
            ManifestRoot = ByteString.CopyFrom(dataset.ManifestRoot.Span),
            Manifest = ByteString.CopyFrom(dataset.Manifest.ToJson()),
        };
    }

    public JobSpec Spec { get; }

    public JobDataset Dataset { get; }

    public ITrainableModel Model { get; }

    public ITrainableModel Evaluator { get; }

    public ModelConfig ModelConfig { get; }

    /// <summary>Builds the job.</summary>
    /// <exception cref="JobConfigurationException">A key is unknown or a configuration refused.</exception>
    public static CoordinatorJob Load(NearMLCoordinatorOptions o, JobRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(o);
        ArgumentNullException.ThrowIfNull(registry);
        var modelKey = o.Model.Trim().ToLowerInvariant();
        var modelConfig = string.IsNullOrWhiteSpace(o.ModelConfigJson) ? registry.DefaultModelConfig(modelKey) : o.ModelConfigJson;
        var datasetKey = o.Dataset.Trim().ToLowerInvariant();
        var datasetConfig = string.IsNullOrWhiteSpace(o.DatasetConfigJson) ? "{}" : o.DatasetConfigJson;
        var data = registry.LoadDataset(datasetKey, new DatasetLoadContext(datasetConfig, (ulong)o.Seed, o.DatasetDirectory));
        var dataset = JobDataset.Create(data, o.ShardCount, (ulong)o.Seed);
        var optimizer = new InnerOptimizerSettings(LearningRate: o.InnerLearningRate, WeightDecay: o.WeightDecay);
        var model = registry.BuildModel(modelKey, new ModelBuildContext(modelConfig, o.Seed, optimizer));
        ITrainableModel? evaluator = null;
        try
        {
            evaluator = registry.BuildModel(modelKey, new ModelBuildContext(modelConfig, o.Seed, optimizer));
            model.PullParameters();
            var config = JobModel.Describe(modelKey, modelConfig, model.Layout);
            var spec = new JobSpec(o.JobId, modelKey, modelConfig, datasetKey, datasetConfig, model.Layout.Fingerprint);
            return new CoordinatorJob(spec, dataset, o.ShardCount, model, evaluator, config);
        }
        catch
        {
            evaluator?.Dispose();
            model.Dispose();
            throw;
        }
    }

    /// <summary>Adds the dataset (key, configuration, shard count, manifest and its root) to an assignment.</summary>
    /// <remarks>Every assignment shares one <see cref="DatasetSpec"/> message, built once; it is never changed.</remarks>
    public void Stamp(JobAssignment assignment) => assignment.Dataset = _dataset;

    /// <summary>Scores the global parameters on the held-out set.</summary>
    public EvaluationResult Evaluate(int batchSize, int maxSamples, CancellationToken cancellationToken)
    {
        Evaluator.Parameters.CopyFrom(Model.Parameters);
        Evaluator.PushParameters();
        return Evaluator.Evaluate(Dataset.CreateEvaluationSource(batchSize, maxSamples), cancellationToken);
    }

    public void Dispose()
    {
        Evaluator.Dispose();
        Model.Dispose();
    }
}
