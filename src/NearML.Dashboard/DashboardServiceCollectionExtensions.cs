using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace NearML.Dashboard;

/// <summary>Registers the dashboard's services.</summary>
public static class DashboardServiceCollectionExtensions
{
    /// <summary>
    /// Adds the dashboard. It reads the coordinator's <see cref="NearML.Hosting.Coordinator.CoordinatorStatus"/> and
    /// <see cref="NearML.Hosting.Coordinator.NearMLCoordinatorOptions"/> from the container (registered by <c>AddNearMLCoordinator</c>,
    /// or by the application when the coordinator runs in another host); map it with
    /// <see cref="DashboardEndpointRouteBuilderExtensions.MapNearMLDashboard"/>.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Sets the options (token, push interval).</param>
    /// <returns>The services.</returns>
    public static IServiceCollection AddNearMLDashboard(this IServiceCollection services, Action<NearMLDashboardOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<NearMLDashboardOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.Validate(
            o =>
            {
                try
                {
                    o.Validate();
                    return true;
                }
                catch (ArgumentException)
                {
                    return false;
                }
            },
            "NearMLDashboardOptions: AccessToken needs at least 16 characters, MinimumPushInterval must not be negative, KeepAliveInterval must be positive, MaxRounds at least 1.");
        services.TryAddSingleton<DashboardFeed>();
        services.TryAddSingleton<LedgerVerifier>();
        return services;
    }
}
