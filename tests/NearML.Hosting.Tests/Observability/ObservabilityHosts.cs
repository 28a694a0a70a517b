using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NearML.Hosting.Coordinator;
using NearML.Hosting.Tests.Coordinator;

namespace NearML.Hosting.Tests.Observability;

/// <summary>Real coordinator and worker hosts with NearML's health checks registered (<c>.AddHealthChecks()</c>).</summary>
internal static class ObservabilityHosts
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    public static IHost Coordinator(string dataDirectory, CapturingLoggerProvider logs, Action<NearMLCoordinatorOptions>? configure = null, Action<NearMLCoordinatorHealthOptions>? health = null)
    {
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.AddProvider(logs);
        builder.Services.Configure<HostOptions>(h =>
        {
            h.ShutdownTimeout = TimeSpan.FromSeconds(20);
            h.BackgroundServiceExceptionBehavior = BackgroundServiceExceptionBehavior.Ignore;
        });
        builder.Services
            .AddNearMLCoordinator(o =>
            {
                CoordinatorHarness.Defaults(o, dataDirectory);
                configure?.Invoke(o);
            })
            .AddHealthChecks(health);
        return builder.Build();
    }

    public static IHost Worker(string id, int port, string? fingerprint, string dataDirectory, CapturingLoggerProvider logs, string attestation = "simulated", Action<NearMLWorkerHealthOptions>? health = null)
    {
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.AddProvider(logs);
        builder.Services
            .AddNearMLWorker(o =>
            {
                o.WorkerId = id;
                o.CoordinatorHost = "127.0.0.1";
                o.CoordinatorPort = port;
                o.CoordinatorFingerprint = fingerprint;
                o.DataDirectory = dataDirectory;
                o.DatasetDirectory = TestAssembly.DatasetDirectory;
                o.AttestationProvider = attestation;
                o.InitialReconnectDelay = TimeSpan.FromMilliseconds(50);
                o.MaxReconnectDelay = TimeSpan.FromMilliseconds(500);
                o.StopApplicationOnFatalError = false;
                o.StopApplicationOnCompletion = false;
            })
            .AddHealthChecks(health);
        return builder.Build();
    }

    public static async Task<HealthReportEntry> CheckAsync(IHost host, string name)
    {
        var report = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        Assert.IsTrue(report.Entries.TryGetValue(name, out var entry), $"no '{name}' check in {string.Join(", ", report.Entries.Keys)}");
        return entry;
    }

    /// <summary>Polls the check until it reports <paramref name="expected"/>; returns that entry or fails with the last one.</summary>
    public static async Task<HealthReportEntry> WaitForAsync(IHost host, string name, HealthStatus expected)
    {
        var deadline = DateTimeOffset.UtcNow + Timeout;
        HealthReportEntry entry;
        do
        {
            entry = await CheckAsync(host, name);
            if (entry.Status == expected)
            {
                return entry;
            }

            await Task.Delay(50);
        }
        while (DateTimeOffset.UtcNow < deadline);
        Assert.Fail($"'{name}' stayed {entry.Status} ({entry.Description}), expected {expected}");
        return entry;
    }

    public static async Task StopAsync(IHost host)
    {
        using var stop = new CancellationTokenSource(Timeout);
        try
        {
            await host.StopAsync(stop.Token);
        }
        finally
        {
            host.Dispose();
        }
    }

    public static void TryDelete(string directory)
    {
        try
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
        catch (IOException)
        {
        }
    }
}
