using NearML.Core;
using NearML.Core.Contracts;
using NearML.Core.Protocol;
using NearML.Training.Engines;

namespace NearML.Hosting.Jobs;

/// <summary>What a job trains, as the coordinator announces it and a worker checks it: the model and dataset keys with
/// their configurations and the model's layout fingerprint.</summary>
/// <param name="JobId">The job.</param>
/// <param name="ModelKey">The registered model key.</param>
/// <param name="ModelConfigJson">The model configuration.</param>
/// <param name="DatasetKey">The registered dataset key.</param>
/// <param name="DatasetConfigJson">The dataset configuration.</param>
/// <param name="LayoutFingerprint">The coordinator's <see cref="ParameterLayout.Fingerprint"/>.</param>
public sealed record JobSpec(string JobId, string ModelKey, string ModelConfigJson, string DatasetKey, string DatasetConfigJson, string LayoutFingerprint)
{
    /// <summary>Gets the wire form announced in the handshake's Challenge.</summary>
    /// <returns>The descriptor.</returns>
    public JobDescriptor ToDescriptor() => new()
    {
        JobId = JobId,
        ModelKey = ModelKey,
        ModelConfigJson = ModelConfigJson,
        DatasetKey = DatasetKey,
        DatasetConfigJson = DatasetConfigJson,
        LayoutFingerprint = LayoutFingerprint,
    };

    /// <summary>
    /// Decides whether a worker may join this job: it must have the model key and the dataset key registered and its
    /// build of the model must have this layout fingerprint. The message names the key or both fingerprints. A client that
    /// announces no keys and no fingerprint (one that predates registries) is admitted; it checks the layout and the data
    /// against its first assignment.
    /// </summary>
    /// <param name="request">The worker's admission request.</param>
    /// <returns><see langword="null"/> to admit, or the refusal.</returns>
    public AdmissionDecision? Check(AdmissionRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var caps = request.Capabilities;
        if (caps.ModelKeys.Count == 0 && caps.DatasetKeys.Count == 0 && request.LayoutFingerprint.Length == 0)
        {
            // A client that predates registries (or another language's minimal worker) announces nothing: it is admitted and
            // checks the model's layout and the data against the first JobAssignment instead.
            return null;
        }

        if (!caps.ModelKeys.Contains(ModelKey, StringComparer.OrdinalIgnoreCase))
        {
            return AdmissionDecision.Refuse(
                RefusalReason.ModelUnavailable,
                $"job '{JobId}' trains model '{ModelKey}', which worker '{request.WorkerId}' has not registered (it has: {List(caps.ModelKeys)}); register it with AddModel(\"{ModelKey}\", …)");
        }

        if (!caps.DatasetKeys.Contains(DatasetKey, StringComparer.OrdinalIgnoreCase))
        {
            return AdmissionDecision.Refuse(
                RefusalReason.DatasetUnavailable,
                $"job '{JobId}' trains on dataset '{DatasetKey}', which worker '{request.WorkerId}' has not registered (it has: {List(caps.DatasetKeys)}); register it with AddDataset(\"{DatasetKey}\", …)");
        }

        if (!string.Equals(request.LayoutFingerprint, LayoutFingerprint, StringComparison.OrdinalIgnoreCase))
        {
            return AdmissionDecision.Refuse(
                RefusalReason.LayoutMismatch,
                $"worker '{request.WorkerId}' builds model '{ModelKey}' {ModelConfigJson} with layout fingerprint {(request.LayoutFingerprint.Length == 0 ? "(none: it could not build the model)" : request.LayoutFingerprint)}, but the job's is {LayoutFingerprint}: the parameter names, shapes or dtypes differ");
        }

        return null;

        static string List(IEnumerable<string> keys) => keys.Any() ? string.Join(", ", keys) : "none";
    }
}

/// <summary>Describing and checking models on the wire.</summary>
public static class JobModel
{
    /// <summary>Describes a model for a <see cref="JobAssignment"/>: key, configuration, layout and fingerprint.</summary>
    /// <param name="key">The model key.</param>
    /// <param name="configJson">The configuration.</param>
    /// <param name="layout">The layout.</param>
    /// <returns>The wire description.</returns>
    public static ModelConfig Describe(string key, string configJson, ParameterLayout layout)
    {
        ArgumentNullException.ThrowIfNull(layout);
        var config = new ModelConfig { Architecture = key, ConfigJson = configJson, LayoutFingerprint = layout.Fingerprint };
        foreach (var e in layout.Entries)
        {
            var spec = new TensorSpec { Name = e.Name };
            spec.Shape.AddRange(e.Shape);
            config.Tensors.Add(spec);
        }

        return config;
    }

    /// <summary>Checks that a layout is the one a <see cref="ModelConfig"/> announces.</summary>
    /// <param name="config">The announcement.</param>
    /// <param name="layout">The local layout.</param>
    /// <exception cref="JobConfigurationException">The layouts differ (the message names the first difference).</exception>
    public static void EnsureLayout(ModelConfig config, ParameterLayout layout)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(layout);
        var entries = layout.Entries;
        if (config.Tensors.Count > 0 && config.Tensors.Count != entries.Length)
        {
            throw new JobConfigurationException($"model '{config.Architecture}' has {entries.Length} tensors here but the job announces {config.Tensors.Count}.");
        }

        for (var i = 0; i < config.Tensors.Count; i++)
        {
            var spec = config.Tensors[i];
            if (spec.Name != entries[i].Name || !spec.Shape.SequenceEqual(entries[i].Shape))
            {
                throw new JobConfigurationException(
                    $"tensor #{i} is '{entries[i].Name}' {entries[i].ShapeText} here but '{spec.Name}' [{string.Join(", ", spec.Shape)}] in the job.");
            }
        }

        if (config.LayoutFingerprint.Length > 0 && !string.Equals(config.LayoutFingerprint, layout.Fingerprint, StringComparison.OrdinalIgnoreCase))
        {
            throw new JobConfigurationException($"model '{config.Architecture}' has layout fingerprint {layout.Fingerprint} here but {config.LayoutFingerprint} in the job.");
        }
    }

    /// <summary>Builds a model and returns its layout fingerprint, or empty when the key is not registered or the build fails.</summary>
    /// <param name="registry">The registry.</param>
    /// <param name="job">The announced job.</param>
    /// <param name="error">Why no fingerprint could be computed.</param>
    /// <returns>The fingerprint or empty.</returns>
    public static string Fingerprint(JobRegistry registry, JobDescriptor job, out string? error)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(job);
        error = null;
        if (!registry.HasModel(job.ModelKey))
        {
            error = $"job '{job.JobId}' trains model '{job.ModelKey}', which this worker has not registered (it has: {string.Join(", ", registry.ModelKeys)})";
            return string.Empty;
        }

        if (!registry.HasDataset(job.DatasetKey))
        {
            error = $"job '{job.JobId}' trains on dataset '{job.DatasetKey}', which this worker has not registered (it has: {string.Join(", ", registry.DatasetKeys)})";
        }

        try
        {
            using var model = registry.BuildModel(job.ModelKey, new ModelBuildContext(job.ModelConfigJson, 0, new InnerOptimizerSettings()));
            var fingerprint = model.Layout.Fingerprint;
            if (error is null && !string.Equals(fingerprint, job.LayoutFingerprint, StringComparison.OrdinalIgnoreCase))
            {
                error = $"this worker builds model '{job.ModelKey}' with layout fingerprint {fingerprint}, but job '{job.JobId}' announces {job.LayoutFingerprint}";
            }

            return fingerprint;
        }
        catch (JobConfigurationException ex)
        {
            error = ex.Message;
            return string.Empty;
        }
    }
}
