using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NearML.Hosting;
using NearML.Hosting.Coordinator;
using NearML.Hosting.Worker;

namespace NearML.Dashboard.Tests;

/// <summary>
/// The wiring the docs show: one ASP.NET Core application hosting a real coordinator (AddNearMLCoordinator, TLS on an
/// ephemeral loopback port) and its dashboard on Kestrel (127.0.0.1, ephemeral port); real workers (AddNearMLWorker, each its
/// own generic host) join over TLS and train a small MLP on the Fashion-MNIST subset shipped in data/.
/// </summary>
internal sealed class DashboardCluster : IAsyncDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);

    private readonly List<IHost> _workers = [];

    private DashboardCluster(WebApplication app, string root)
    {
        App = app;
        Root = root;
        Status = app.Services.GetRequiredService<CoordinatorStatus>();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        BaseAddress = new Uri(address.TrimEnd('/') + "/nearml/");
    }

    public WebApplication App { get; }

    public string Root { get; }

    public string CoordinatorDirectory => Path.Combine(Root, "coordinator");

    public CoordinatorStatus Status { get; }

    /// <summary>Gets the dashboard's address (ending in /nearml/).</summary>
    public Uri BaseAddress { get; }

    public IReadOnlyList<string> WorkerDirectories => [.. Enumerable.Range(0, _workers.Count).Select(WorkerDirectory)];

    public static string SubsetDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "data", "fashion-mnist-subset");
            if (File.Exists(Path.Combine(candidate, "SHA256SUMS")))
            {
                return candidate;
            }
        }

        throw new AssertFailedException("data/fashion-mnist-subset was not found above " + AppContext.BaseDirectory);
    }

    public static string? RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "NearML.sln")))
            {
                return dir.FullName;
            }
        }

        return null;
    }

    /// <summary>Starts the coordinator and the dashboard (no workers yet).</summary>
    public static async Task<DashboardCluster> StartAsync(int rounds = 3, int workers = 2, Action<NearMLDashboardOptions>? dashboard = null, Action<NearMLCoordinatorOptions>? coordinator = null)
    {
        var root = Path.Combine(Path.GetTempPath(), "nearml-dashboard-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(root);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = root, EnvironmentName = "Production" });
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = TimeSpan.FromSeconds(20));
        builder.Services.AddNearMLCoordinator(o =>
        {
            o.Port = 0;
            o.DataDirectory = Path.Combine(root, "coordinator");
            o.DatasetDirectory = SubsetDirectory();
            o.ShardCount = 12;
            o.Model = "mlp";
            o.ModelConfigJson = """{"hidden":32}""";
            o.Rounds = rounds;
            o.InnerSteps = 10;
            o.BatchSize = 32;
            o.UpdateEncoding = "int8";
            o.MinWorkers = workers;
            o.RoundTimeout = TimeSpan.FromSeconds(60);
            o.HeartbeatInterval = TimeSpan.FromSeconds(1);
            o.AllowSimulatedAttestation = true;
            o.EvaluateEveryRounds = 1;
            o.EvaluationSamples = 500;
            o.SettleEveryRounds = 2;
            o.SettlementDryRun = true;
            coordinator?.Invoke(o);
        });
        builder.Services.AddNearMLDashboard(o =>
        {
            o.MinimumPushInterval = TimeSpan.FromMilliseconds(100);
            dashboard?.Invoke(o);
        });
        var app = builder.Build();
        app.MapNearMLDashboard("/nearml");
        using var cts = new CancellationTokenSource(Timeout);
        await app.StartAsync(cts.Token);
        var cluster = new DashboardCluster(app, root);
        await cluster.Status.Listening.WaitAsync(Timeout);
        return cluster;
    }

    public string WorkerDirectory(int index) => Path.Combine(Root, $"worker-{index + 1}");

    /// <summary>Starts <paramref name="count"/> real workers (simulated attestation, pinned TLS certificate).</summary>
    public async Task StartWorkersAsync(int count)
    {
        for (var i = 0; i < count; i++)
        {
            var index = _workers.Count;
            var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
            builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = TimeSpan.FromSeconds(20));
            builder.Services.AddNearMLWorker(o =>
            {
                o.WorkerId = $"worker-{index + 1}";
                o.CoordinatorHost = "127.0.0.1";
                o.CoordinatorPort = Status.Port;
                o.CoordinatorFingerprint = Status.Fingerprint;
                o.DataDirectory = WorkerDirectory(index);
                o.DatasetDirectory = SubsetDirectory();
                o.AttestationProvider = NearMLWorkerOptions.SimulatedProvider;
                o.ThreadCount = 1;
                o.InitialReconnectDelay = TimeSpan.FromMilliseconds(50);
                o.MaxReconnectDelay = TimeSpan.FromMilliseconds(500);
            });
            var host = builder.Build();
            _workers.Add(host);
            using var cts = new CancellationTokenSource(Timeout);
            await host.StartAsync(cts.Token);
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var w in _workers)
        {
            using var cts = new CancellationTokenSource(Timeout);
            await w.StopAsync(cts.Token);
            w.Dispose();
        }

        using (var cts = new CancellationTokenSource(Timeout))
        {
            await App.StopAsync(cts.Token);
        }

        await App.DisposeAsync();
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    public static async Task WaitAsync(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? Timeout);
        while (!condition())
        {
            try
            {
                await Task.Delay(50, cts.Token);
            }
            catch (OperationCanceledException)
            {
                throw new AssertFailedException($"timed out waiting for {what}");
            }
        }
    }
}
