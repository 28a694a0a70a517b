using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace NearML.Enclave;

/// <summary>Registers NearML attestation services with the options pattern.</summary>
public static class EnclaveServiceCollectionExtensions
{
    /// <summary>The conventional configuration section of the policy.</summary>
    public const string PolicySection = "NearML:Attestation:Policy";

    /// <summary>
    /// Binds <see cref="AttestationPolicy"/> from <paramref name="configuration"/> (validated on start), and registers an
    /// <see cref="AttestationNonceStore"/> (nonce lifetime <paramref name="nonceLifetime"/>, default 5 minutes), the
    /// <see cref="TimeProvider"/> (system clock unless one is registered) and an <see cref="AttestationVerifier"/> whose policy
    /// follows the configuration. The store and the verifier are added only when none is registered yet (one verifier per host).
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configuration">The policy section, for example <c>configuration.GetSection(PolicySection)</c>.</param>
    /// <param name="nonceLifetime">Nonce lifetime.</param>
    /// <returns>The same collection.</returns>
    public static IServiceCollection AddNearMLAttestation(this IServiceCollection services, IConfiguration configuration, TimeSpan? nonceLifetime = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<AttestationPolicy>().Bind(configuration).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<AttestationPolicy>, PolicyValidator>());
        AddShared(services, nonceLifetime);
        services.TryAddSingleton(sp => new AttestationVerifier(
            sp.GetRequiredService<IOptionsMonitor<AttestationPolicy>>(),
            sp.GetRequiredService<AttestationNonceStore>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetService<ILogger<AttestationVerifier>>()));
        return services;
    }

    /// <summary>
    /// Registers an <see cref="AttestationVerifier"/> with the policy <paramref name="policy"/> builds (validated when the
    /// verifier is created), an <see cref="AttestationNonceStore"/> and the <see cref="TimeProvider"/>, each only when none is
    /// registered yet. A host whose own options carry the policy (the NearML coordinator) registers its verifier this way.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="policy">Builds the policy from the services (called once, when the verifier is first resolved).</param>
    /// <param name="nonceLifetime">Nonce lifetime (default 5 minutes).</param>
    /// <returns>The same collection.</returns>
    public static IServiceCollection AddNearMLAttestation(this IServiceCollection services, Func<IServiceProvider, AttestationPolicy> policy, TimeSpan? nonceLifetime = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(policy);
        AddShared(services, nonceLifetime);
        services.TryAddSingleton(sp => new AttestationVerifier(
            policy(sp),
            sp.GetRequiredService<AttestationNonceStore>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetService<ILogger<AttestationVerifier>>()));
        return services;
    }

    private static void AddShared(IServiceCollection services, TimeSpan? nonceLifetime)
    {
        TimeSpan lifetime = nonceLifetime ?? TimeSpan.FromMinutes(5);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(lifetime, TimeSpan.Zero, nameof(nonceLifetime));
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp => new AttestationNonceStore(sp.GetRequiredService<TimeProvider>(), lifetime));
    }

    private sealed class PolicyValidator : IValidateOptions<AttestationPolicy>
    {
        public ValidateOptionsResult Validate(string? name, AttestationPolicy options) =>
            options.Validate() is { } error ? ValidateOptionsResult.Fail($"{PolicySection}: {error}") : ValidateOptionsResult.Success;
    }
}
