using NearML.Core.Contracts;
using NearML.Training.Engines;
using NearML.Training.Modules;

namespace NearML.Hosting.Jobs;

/// <summary>
/// Conveniences over the built-in managed models of <see cref="JobRegistry.BuiltIn"/> (<c>mlp</c>, <c>cnn</c>, <c>gpt</c>;
/// see <see cref="BuiltInJobs.Models"/>) for code that wants the <see cref="Model"/> itself (samples, tools, tests).
/// Hosts build models through the <see cref="JobRegistry"/>, where applications add their own.
/// </summary>
public static class ModelCatalog
{
    /// <summary>The built-in model keys.</summary>
    public static IReadOnlyList<string> Architectures { get; } = [.. BuiltInJobs.Models.Select(static m => m.Key)];

    /// <summary>Builds a built-in model with its deterministic initialisation.</summary>
    /// <param name="architecture"><c>mlp</c>, <c>cnn</c> or <c>gpt</c> (case-insensitive).</param>
    /// <param name="configJson">The configuration JSON; <see langword="null"/> or empty for <see cref="DefaultConfigJson"/>.</param>
    /// <param name="seed">The initialisation seed: equal seeds give bit-identical parameters.</param>
    /// <returns>The model.</returns>
    /// <exception cref="JobConfigurationException">The architecture is unknown or the configuration is malformed.</exception>
    public static Model Create(string architecture, string? configJson, int seed)
    {
        using var built = JobRegistry.BuiltIn.BuildModel(architecture, new ModelBuildContext(configJson ?? string.Empty, seed, new InnerOptimizerSettings()));
        return ((ManagedTrainableModel)built).Model;
    }

    /// <summary>Gets the default configuration JSON of a built-in model.</summary>
    /// <param name="architecture"><c>mlp</c>, <c>cnn</c> or <c>gpt</c>.</param>
    /// <returns>The JSON text.</returns>
    /// <exception cref="JobConfigurationException">The architecture is unknown.</exception>
    public static string DefaultConfigJson(string architecture) => JobRegistry.BuiltIn.DefaultModelConfig(architecture);

    /// <summary>Describes a model for a <see cref="JobAssignment"/>: key, configuration, parameter layout and its fingerprint.</summary>
    /// <param name="architecture">The model key.</param>
    /// <param name="configJson">The configuration JSON (as given to <see cref="Create"/>).</param>
    /// <param name="model">The model built from them.</param>
    /// <returns>The wire description.</returns>
    public static ModelConfig Describe(string architecture, string? configJson, Model model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return JobModel.Describe(architecture.Trim().ToLowerInvariant(), string.IsNullOrWhiteSpace(configJson) ? DefaultConfigJson(architecture) : configJson, model.Parameters.Layout);
    }

    /// <summary>Builds the built-in model a <see cref="ModelConfig"/> describes and checks that its layout is the announced one.</summary>
    /// <param name="config">The wire description.</param>
    /// <param name="seed">The initialisation seed.</param>
    /// <returns>The model.</returns>
    /// <exception cref="JobConfigurationException">The architecture or configuration is invalid, or the layouts differ.</exception>
    public static Model CreateFrom(ModelConfig config, int seed)
    {
        ArgumentNullException.ThrowIfNull(config);
        var model = Create(config.Architecture, config.ConfigJson, seed);
        JobModel.EnsureLayout(config, model.Parameters.Layout);
        return model;
    }
}
