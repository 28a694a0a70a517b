using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
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
    /// <see cref="TimeProvider"/> (system clock unless one is registered) and an <see cref="AttestationVerifier"/>.
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
        services.AddSingleton<IValidateOptions<AttestationPolicy>, PolicyValidator>();
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton(sp => new AttestationNonceStore(sp.GetRequiredService<TimeProvider>(), nonceLifetime ?? TimeSpan.FromMinutes(5)));
        services.AddSingleton(sp => new AttestationVerifier(
            sp.GetRequiredService<IOptionsMonitor<AttestationPolicy>>(),
            sp.GetRequiredService<AttestationNonceStore>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetService<Microsoft.Extensions.Logging.ILogger<AttestationVerifier>>()));
        return services;
    }

    private sealed class PolicyValidator : IValidateOptions<AttestationPolicy>
    {
        public ValidateOptionsResult Validate(string? name, AttestationPolicy options) =>
            options.Validate() is { } error ? ValidateOptionsResult.Fail($"{PolicySection}: {error}") : ValidateOptionsResult.Success;
    }
}
