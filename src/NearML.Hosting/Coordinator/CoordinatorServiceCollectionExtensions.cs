using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using NearML.Enclave;
using NearML.Hosting.Coordinator;
using NearML.Hosting.Settlement;
using NearML.Hosting.State;

namespace NearML.Hosting;

/// <summary>Registers the NearML coordinator in a host.</summary>
public static class CoordinatorServiceCollectionExtensions
{
    /// <summary>
    /// Adds the coordinator: <see cref="NearMLCoordinatorOptions"/> (validated on start), the
    /// <see cref="CoordinatorService"/> hosted service, the <see cref="SettlementService"/> component (hosted, with the pooled
    /// NEAR RPC client <see cref="SettlementService.HttpClientName"/>), <see cref="CoordinatorStatus"/>,
    /// <see cref="AttestationAdmissionPolicy"/> and <see cref="NearMLMetrics"/> as singletons, and NearML.Enclave's
    /// <see cref="AttestationVerifier"/> (with <see cref="AttestationAdmissionPolicy.EffectivePolicy"/> of the options and an
    /// <see cref="AttestationNonceStore"/> whose nonces live <see cref="NearMLCoordinatorOptions.AttestationNonceLifetime"/>, unless a
    /// verifier is registered already: set its <see cref="AttestationVerifier.TdxCollateral"/> and
    /// <see cref="AttestationVerifier.SnpCertificateResolver"/> there).
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Sets the options.</param>
    /// <returns>A builder for the models and datasets jobs can name (<c>.AddModel(…)</c>, <c>.AddDataset(…)</c>).</returns>
    public static NearMLCoordinatorBuilder AddNearMLCoordinator(this IServiceCollection services, Action<NearMLCoordinatorOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<NearMLCoordinatorOptions>().Configure(configure).ValidateOnStart();
        return AddCore(services);
    }

    /// <summary>Adds the coordinator with options bound from a configuration section (conventionally <c>NearML:Coordinator</c>).</summary>
    /// <param name="services">The services.</param>
    /// <param name="configuration">The section.</param>
    /// <returns>A builder for the models and datasets jobs can name.</returns>
    public static NearMLCoordinatorBuilder AddNearMLCoordinator(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<NearMLCoordinatorOptions>().Bind(configuration).ValidateOnStart();
        return AddCore(services);
    }

    private static NearMLCoordinatorBuilder AddCore(IServiceCollection services)
    {
        NearMLBuilderExtensions.AddJobRegistry(services);
        services.AddMetrics();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<NearMLCoordinatorOptions>, NearMLCoordinatorOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<NearMLMetrics>();
        services.TryAddSingleton<CoordinatorStatus>();
        services.TryAddSingleton<ICoordinatorStateBackend>(SqliteStateBackend.Instance);
        // Challenge nonces live as long as a handshake may (not Enclave's 5-minute default), so memory follows the admission rate.
        services.TryAddSingleton(sp => new AttestationNonceStore(
            sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<IOptions<NearMLCoordinatorOptions>>().Value.AttestationNonceLifetime));
        services.AddNearMLAttestation(sp => AttestationAdmissionPolicy.EffectivePolicy(sp.GetRequiredService<IOptions<NearMLCoordinatorOptions>>().Value));
        services.TryAddSingleton(sp => new AttestationAdmissionPolicy(sp.GetRequiredService<IOptions<NearMLCoordinatorOptions>>().Value, sp.GetRequiredService<AttestationVerifier>()));
        // Settlement: its own component, started before the coordinator (payer key loaded or refused) and stopped after it;
        // NEAR JSON-RPC through one pooled named client (NearRpcClient retries transient faults itself).
        SettlementService.AddRpcHttpClient(services);
        services.TryAddSingleton<SettlementService>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, SettlementService>(static sp => sp.GetRequiredService<SettlementService>()));
        services.AddHostedService<CoordinatorService>();
        return new NearMLCoordinatorBuilder(services);
    }
}
