using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using NearML.Hosting.Jobs;
using NearML.Training.Data;
using NearML.Training.Engines;

namespace NearML.Hosting;

/// <summary>What <c>AddNearMLWorker</c> and <c>AddNearMLCoordinator</c> return: the service collection, for further
/// NearML registrations such as <see cref="NearMLBuilderExtensions.AddModel{TBuilder}(TBuilder, string, Func{ModelBuildContext, ITrainableModel}, string)"/>.</summary>
public interface INearMLBuilder
{
    /// <summary>Gets the services the host is built from.</summary>
    IServiceCollection Services { get; }
}

/// <summary>Returned by <c>AddNearMLWorker</c>: add the models and datasets this worker can train.</summary>
/// <param name="services">The services.</param>
public sealed class NearMLWorkerBuilder(IServiceCollection services) : INearMLBuilder
{
    /// <inheritdoc/>
    public IServiceCollection Services { get; } = services ?? throw new ArgumentNullException(nameof(services));
}

/// <summary>Returned by <c>AddNearMLCoordinator</c>: add the models and datasets jobs can name (the coordinator builds the
/// global model and evaluates it).</summary>
/// <param name="services">The services.</param>
public sealed class NearMLCoordinatorBuilder(IServiceCollection services) : INearMLBuilder
{
    /// <inheritdoc/>
    public IServiceCollection Services { get; } = services ?? throw new ArgumentNullException(nameof(services));
}

/// <summary>
/// Registers models and datasets by key. The built-ins (<c>mlp</c>, <c>cnn</c>, <c>gpt</c>; <c>fashion-mnist</c>, <c>text</c>,
/// <c>npz</c>; see <see cref="BuiltInJobs"/>) come through the same door; registering a key again replaces it. Worker and
/// coordinator in one container share the registrations.
/// </summary>
public static class NearMLBuilderExtensions
{
    /// <summary>Registers a model under <paramref name="key"/>.</summary>
    /// <typeparam name="TBuilder">The builder type.</typeparam>
    /// <param name="builder">The builder.</param>
    /// <param name="key">The key jobs name (case-insensitive).</param>
    /// <param name="factory">Builds the model from the job's (configuration JSON, seed, inner optimizer); the same
    /// context must give the same parameter layout on every machine.</param>
    /// <param name="defaultConfigJson">The configuration used when a job gives none.</param>
    /// <returns>The builder.</returns>
    public static TBuilder AddModel<TBuilder>(this TBuilder builder, string key, Func<ModelBuildContext, ITrainableModel> factory, string defaultConfigJson = "{}")
        where TBuilder : INearMLBuilder
    {
        ArgumentNullException.ThrowIfNull(factory);
        return builder.AddModel(key, (_, c) => factory(c), defaultConfigJson);
    }

    /// <summary>Registers a model under <paramref name="key"/> whose factory uses the host's services.</summary>
    /// <typeparam name="TBuilder">The builder type.</typeparam>
    /// <param name="builder">The builder.</param>
    /// <param name="key">The key jobs name (case-insensitive).</param>
    /// <param name="factory">Builds the model.</param>
    /// <param name="defaultConfigJson">The configuration used when a job gives none.</param>
    /// <returns>The builder.</returns>
    public static TBuilder AddModel<TBuilder>(this TBuilder builder, string key, Func<IServiceProvider, ModelBuildContext, ITrainableModel> factory, string defaultConfigJson = "{}")
        where TBuilder : INearMLBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddSingleton(new ModelRegistration(key, factory, defaultConfigJson));
        return builder;
    }

    /// <summary>Registers a dataset under <paramref name="key"/>.</summary>
    /// <typeparam name="TBuilder">The builder type.</typeparam>
    /// <param name="builder">The builder.</param>
    /// <param name="key">The key jobs name (case-insensitive).</param>
    /// <param name="provider">Loads the dataset from the job's configuration and this host's data folder.</param>
    /// <returns>The builder.</returns>
    public static TBuilder AddDataset<TBuilder>(this TBuilder builder, string key, Func<DatasetLoadContext, TrainingDataset> provider)
        where TBuilder : INearMLBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(provider);
        builder.Services.AddSingleton(new DatasetRegistration(key, (_, c) => provider(c)));
        return builder;
    }

    /// <summary>Registers a dataset provider under <paramref name="key"/>.</summary>
    /// <typeparam name="TBuilder">The builder type.</typeparam>
    /// <param name="builder">The builder.</param>
    /// <param name="key">The key jobs name (case-insensitive).</param>
    /// <param name="provider">The provider.</param>
    /// <returns>The builder.</returns>
    public static TBuilder AddDataset<TBuilder>(this TBuilder builder, string key, IDatasetProvider provider)
        where TBuilder : INearMLBuilder
    {
        ArgumentNullException.ThrowIfNull(provider);
        return builder.AddDataset(key, provider.Load);
    }

    internal static void AddJobRegistry(IServiceCollection services) =>
        services.TryAddSingleton(static sp => new JobRegistry(sp.GetServices<ModelRegistration>(), sp.GetServices<DatasetRegistration>(), sp));
}
