using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NearML.Dashboard;
using NearML.Hosting.Coordinator;
using Spectre.Console;

namespace NearML.Samples.LocalCluster;

/// <summary>
/// The live dashboard (NearML.Dashboard) of the local cluster's coordinator, on Kestrel at 127.0.0.1 (loopback: no token).
/// The coordinator runs in its own generic host here, so its status and options are handed to the dashboard's container.
/// </summary>
internal sealed class DashboardServer : IAsyncDisposable
{
    private readonly WebApplication? _app;

    private DashboardServer(WebApplication? app) => _app = app;

    public static async Task<DashboardServer> StartAsync(ClusterSettings settings, IHost coordinator, CancellationToken cancellationToken)
    {
        if (settings.DashboardPort is not { } port)
        {
            return new DashboardServer(null);
        }

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = settings.StateDirectory });
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, port));
        builder.Services.AddSingleton(coordinator.Services.GetRequiredService<CoordinatorStatus>());
        builder.Services.AddSingleton(coordinator.Services.GetRequiredService<IOptions<NearMLCoordinatorOptions>>());
        builder.Services.AddNearMLDashboard();
        var app = builder.Build();
        app.MapNearMLDashboard("/nearml");
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (IOException ex)
        {
            // Port taken: the cluster still runs, without the page.
            AnsiConsole.MarkupLine($"[yellow]Dashboard not started:[/] {Markup.Escape(ex.Message)} (choose another with --dashboard-port, or --no-dashboard)");
            await app.DisposeAsync().ConfigureAwait(false);
            return new DashboardServer(null);
        }

        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First().TrimEnd('/');
        AnsiConsole.MarkupLine($"Dashboard: [bold link]{address}/nearml/[/] (live; read-only; loopback only)");
        return new DashboardServer(app);
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await _app.StopAsync(timeout.Token).ConfigureAwait(false);
            await _app.DisposeAsync().ConfigureAwait(false);
        }
    }
}
