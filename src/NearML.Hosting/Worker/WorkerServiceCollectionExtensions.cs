using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NearML.Hosting.Worker;

namespace NearML.Hosting;

/// <summary>Registers the NearML worker in a host: <c>services.AddNearMLWorker(...)</c>.</summary>
public static class WorkerServiceCollectionExtensions
{
    /// <summary>
    /// Adds the NearML worker: <see cref="NearMLWorkerOptions"/> (validated when the host starts), the
    /// <see cref="WorkerStatus"/> and <see cref="NearMLMetrics"/> singletons (metrics when the host has an <see cref="IMeterFactory"/>),
    /// and the <see cref="WorkerService"/> hosted service. A second call only applies
    /// <paramref name="configure"/> again; the service is registered once.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets the options (at least <see cref="NearMLWorkerOptions.WorkerId"/>).</param>
    /// <returns>A builder for the worker's models and datasets (<c>.AddModel(…)</c>, <c>.AddDataset(…)</c>).</returns>
    public static NearMLWorkerBuilder AddNearMLWorker(this IServiceCollection services, Action<NearMLWorkerOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<NearMLWorkerOptions>().Configure(configure);
        return AddCore(services);
    }

    /// <summary>
    /// Adds the NearML worker with options bound from <paramref name="configuration"/> (typically
    /// <c>builder.Configuration.GetSection("NearML:Worker")</c>), validated when the host starts.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configuration">The configuration section holding the options.</param>
    /// <returns>A builder for the worker's models and datasets.</returns>
    public static NearMLWorkerBuilder AddNearMLWorker(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<NearMLWorkerOptions>().Bind(configuration);
        return AddCore(services);
    }

    private static NearMLWorkerBuilder AddCore(IServiceCollection services)
    {
        NearMLBuilderExtensions.AddJobRegistry(services);
        services.AddOptions<NearMLWorkerOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<NearMLWorkerOptions>, NearMLWorkerOptionsValidator>());
        services.TryAddSingleton<WorkerStatus>();
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<NearMLMetrics>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, WorkerService>(static sp => new WorkerService(
            sp.GetRequiredService<IOptions<NearMLWorkerOptions>>(),
            sp.GetRequiredService<WorkerStatus>(),
            sp.GetRequiredService<ILoggerFactory>(),
            sp.GetService<TimeProvider>(),
            sp.GetService<IHostApplicationLifetime>(),
            sp.GetService<IMeterFactory>() is null ? null : sp.GetRequiredService<NearMLMetrics>(),
            sp.GetRequiredService<NearML.Hosting.Jobs.JobRegistry>())));
        return new NearMLWorkerBuilder(services);
    }
}
