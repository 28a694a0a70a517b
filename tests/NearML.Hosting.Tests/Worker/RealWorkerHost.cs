using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NearML.Hosting.Tests.Coordinator;

namespace NearML.Hosting.Tests.Worker;

/// <summary>Starts a real worker host (AddNearMLWorker, simulated TEE, short reconnect delays) against a test coordinator.</summary>
internal static class RealWorkerHost
{
    /// <summary>Builds and starts one worker host; the caller stops and disposes it.</summary>
    /// <param name="coordinator">The coordinator to join (port and pinned fingerprint).</param>
    /// <param name="id">The worker id.</param>
    /// <param name="dataDirectory">The worker's data folder (identity key, receipts).</param>
    /// <param name="logs">Captures the worker's log.</param>
    /// <returns>The started host.</returns>
    public static async Task<IHost> StartAsync(CoordinatorHarness coordinator, string id, string dataDirectory, ILoggerProvider logs)
    {
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.AddProvider(logs);
        builder.Services.AddNearMLWorker(o =>
        {
            o.WorkerId = id;
            o.CoordinatorPort = coordinator.Port;
            o.CoordinatorFingerprint = coordinator.Fingerprint;
            o.DataDirectory = dataDirectory;
            o.DatasetDirectory = TestAssembly.DatasetDirectory;
            o.AttestationProvider = "simulated";
            o.InitialReconnectDelay = TimeSpan.FromMilliseconds(50);
            o.MaxReconnectDelay = TimeSpan.FromMilliseconds(500);
        });
        var host = builder.Build();
        using var start = new CancellationTokenSource(FakeCoordinator.WaitTimeout);
        await host.StartAsync(start.Token);
        return host;
    }
}
