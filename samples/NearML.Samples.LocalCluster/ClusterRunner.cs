using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NearML.Hosting;
using NearML.Hosting.Coordinator;
using NearML.Hosting.Worker;
using NearML.Hosting.Jobs;
using NearML.Training.Data;
using Spectre.Console;
using NearML.Samples;

namespace NearML.Samples.LocalCluster;

/// <summary>
/// Starts one coordinator host and N worker hosts in this process (each a separate generic host with its own DI container,
/// options, identity key and data folder; they talk only through loopback TLS sockets), shows progress, prints the summary.
/// </summary>
internal static class ClusterRunner
{
    public static async Task<int> RunAsync(ClusterSettings settings, CancellationToken cancellationToken)
    {
        if (settings.Workers is < 1 or > 64 || settings.Rounds < 1 || settings.InnerSteps < 1)
        {
            return SampleCommandLine.Fail(SampleCommandLine.BadInput, "--workers must be 1-64, --rounds and --steps at least 1");
        }

        if (settings.DashboardPort is < 0 or > 65535)
        {
            return SampleCommandLine.Fail(SampleCommandLine.BadInput, "--dashboard-port must be 0-65535");
        }

        // --data DIR as given; else $FASHION_MNIST_DIR; else the full set if installed; else the subset copied next to this program.
        var dataset = FashionMnistSource.Resolve(settings.DatasetDirectory);
        var datasetDirectory = dataset.Directory;
        if (!FashionMnistSource.IsComplete(datasetDirectory))
        {
            Console.Error.WriteLine($"Fashion-MNIST was not found in '{datasetDirectory}' (and the subset normally shipped next to this program, {Path.Combine(AppContext.BaseDirectory, FashionMnistSource.SubsetFolder)}, is missing too).");
            Console.Error.WriteLine("Install the full set with:   sudo apt-get install dataset-fashion-mnist");
            Console.Error.WriteLine("or point to a folder holding train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]:   --data DIR");
            return 2;
        }

        if (settings.Fresh && Directory.Exists(settings.StateDirectory))
        {
            Directory.Delete(settings.StateDirectory, recursive: true);
        }

        Directory.CreateDirectory(settings.StateDirectory);
        var logPath = Path.Combine(settings.StateDirectory, "cluster.log");
        using var log = new FileLog(logPath);

        PrintBanner(settings, dataset, logPath);

        var clock = Stopwatch.StartNew();
        var cpuStart = Process.GetCurrentProcess().TotalProcessorTime;
        using var coordinator = BuildCoordinator(settings, datasetDirectory, log);
        try
        {
            await coordinator.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Microsoft.Extensions.Options.OptionsValidationException ex) when (settings.Secure)
        {
            Console.Error.WriteLine($"--secure: this coordinator refused secure aggregation: {string.Join("; ", ex.Failures)}");
            return 2;
        }
        catch (NotSupportedException ex) when (settings.Secure)
        {
            Console.Error.WriteLine($"--secure: secure aggregation is not supported by this coordinator yet: {ex.Message}");
            return 2;
        }

        var status = coordinator.Services.GetRequiredService<CoordinatorStatus>();
        try
        {
            await status.Listening.WaitAsync(TimeSpan.FromSeconds(60), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or NearML.Core.NearMLException or IOException or System.Net.Sockets.SocketException)
        {
            Console.Error.WriteLine($"The coordinator did not start listening: {ex.Message} (log: {logPath})");
            await StopAsync(coordinator).ConfigureAwait(false);
            return 1;
        }

        AnsiConsole.MarkupLine($"Coordinator listening on [bold]127.0.0.1:{status.Port}[/], certificate SHA-256 [grey]{status.Fingerprint}[/] (pinned by every worker)");
        await using var dashboard = await DashboardServer.StartAsync(settings, coordinator, cancellationToken).ConfigureAwait(false);

        var workers = new List<IHost>();
        for (var i = 0; i < settings.Workers; i++)
        {
            workers.Add(BuildWorker(settings, i, datasetDirectory, status.Port, status.Fingerprint!, log));
        }

        await Task.WhenAll(workers.Select(w => w.StartAsync(cancellationToken))).ConfigureAwait(false);
        var workerStatus = workers.Select(w => w.Services.GetRequiredService<WorkerStatus>()).ToArray();

        var outcome = await new ProgressView(settings, status, workerStatus).RunAsync(cancellationToken).ConfigureAwait(false);

        // The last round's receipts are on their way when the coordinator reports completion: give them a moment.
        if (outcome == ProgressOutcome.Completed && status.Rounds.Count > 0)
        {
            var receiptsDeadline = Stopwatch.StartNew();
            while (receiptsDeadline.Elapsed < TimeSpan.FromSeconds(10)
                && workerStatus.Any(w => w.State != WorkerState.Failed && w.LastReceiptRound != (ulong)(settings.Rounds - 1)))
            {
                await Task.Delay(50, CancellationToken.None).ConfigureAwait(false);
            }
        }

        // Workers first (they send Goodbye), then the coordinator (final checkpoint, ledger closed).
        await Task.WhenAll(workers.Select(w => StopAsync(w))).ConfigureAwait(false);
        await StopAsync(coordinator).ConfigureAwait(false);
        var elapsed = clock.Elapsed;
        var cpu = Process.GetCurrentProcess().TotalProcessorTime - cpuStart;

        foreach (var w in workers)
        {
            w.Dispose();
        }

        if (outcome == ProgressOutcome.Failed)
        {
            foreach (var error in workerStatus.Select(w => w.LastError).Where(e => e is not null).Distinct())
            {
                Console.Error.WriteLine($"worker failure: {error}");
            }

            if (settings.Secure)
            {
                Console.Error.WriteLine("--secure: secure aggregation is not available end to end in this build (see the failure above); run without --secure.");
                return 2;
            }
        }

        if (outcome != ProgressOutcome.Completed)
        {
            AnsiConsole.MarkupLine(outcome == ProgressOutcome.Cancelled
                ? "[yellow]Stopped. Run the same command again to resume from the last completed round.[/]"
                : $"[red]Training did not complete; see {Markup.Escape(logPath)}.[/]");
            return outcome == ProgressOutcome.Cancelled ? 130 : 1;
        }

        var pool = UInt128.Parse(coordinator.Services.GetRequiredService<IOptions<NearMLCoordinatorOptions>>().Value.RewardPerEpoch, System.Globalization.CultureInfo.InvariantCulture);
        if (status.Rounds.Count == 0)
        {
            AnsiConsole.MarkupLine($"The job in {Markup.Escape(settings.StateDirectory)} was already complete (final accuracy {(status.LastAccuracy is { } a ? a.ToString("P2", System.Globalization.CultureInfo.InvariantCulture) : "not re-evaluated")}, ledger root {Markup.Escape(status.LedgerRoot ?? "–")}). Add [bold]--fresh[/] to train again from scratch.");
            return 0;
        }

        Summary.Print(settings, dataset, status, workerStatus, pool, elapsed, cpu);
        Charts.Write(settings, status, workerStatus);
        return 0;
    }

    private static void PrintBanner(ClusterSettings settings, FashionMnistLocation dataset, string logPath)
    {
        AnsiConsole.Write(new Rule("[bold]NearML local cluster[/]").LeftJustified());
        AnsiConsole.MarkupLine($"{settings.Workers} workers × {settings.Rounds} rounds × {settings.InnerSteps} inner steps, model [bold]{settings.Model}[/], updates [bold]{settings.UpdateEncoding}[/]{(settings.Secure ? ", [bold]secure aggregation[/]" : string.Empty)}");
        AnsiConsole.MarkupLine($"Data: {Markup.Escape(dataset.Description)}{(dataset.IsSubset ? " [grey](the full 60,000/10,000 set is used when installed: sudo apt-get install dataset-fashion-mnist, or --data DIR)[/]" : string.Empty)}");
        AnsiConsole.MarkupLine($"State (SQLite, checkpoints, ledger, keys): [grey]{Markup.Escape(settings.StateDirectory)}[/]   Log: [grey]{Markup.Escape(logPath)}[/]");
        AnsiConsole.MarkupLine("[yellow]Development policy:[/] workers use the [bold]simulated[/] TEE attestation provider and the coordinator admits it "
            + "(AllowSimulatedAttestation = true). This proves nothing about the workers' hardware; a real coordinator leaves it off (docs/operator-guide.md).");
        AnsiConsole.MarkupLine(settings.SettlementKeyPath is null
            ? "[yellow]Settlement:[/] dry run — NEAR transactions are built and signed with a development payer key (settlement-payer.key in the coordinator's state folder, not the ledger key) but never sent."
            : $"[yellow]Settlement:[/] dry run — NEAR transactions are built and signed with the payer key {Markup.Escape(settings.SettlementKeyPath)} but never sent.");
    }

    private static IHost BuildCoordinator(ClusterSettings settings, string datasetDirectory, FileLog log)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true, ContentRootPath = settings.StateDirectory });
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(log.Provider("coordinator"));
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        builder.Services.AddSingleton<IHostLifetime, QuietLifetime>();
        builder.Services.AddNearMLCoordinator(o =>
        {
            o.ListenAddress = "127.0.0.1";
            o.Port = 0;
            o.DataDirectory = settings.CoordinatorDirectory;
            o.Model = settings.Model;
            o.DatasetDirectory = datasetDirectory;
            o.Rounds = settings.Rounds;
            o.InnerSteps = settings.InnerSteps;
            o.UpdateEncoding = settings.UpdateEncoding;
            o.MinWorkers = settings.Workers;
            o.AllowSimulatedAttestation = true;
            o.SettlementDryRun = true;
            o.SettlementKeyPath = settings.SettlementKeyPath;
            o.SecureAggregation = settings.Secure;
            o.EvaluateEveryRounds = 1;
            o.SettleEveryRounds = Math.Max(1, (settings.Rounds + 1) / 2);
            o.RoundTimeout = TimeSpan.FromMinutes(2);
            o.HeartbeatInterval = TimeSpan.FromSeconds(5);
        });
        return builder.Build();
    }

    private static IHost BuildWorker(ClusterSettings settings, int index, string datasetDirectory, int port, string fingerprint, FileLog log)
    {
        var id = ClusterSettings.WorkerId(index);
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true, ContentRootPath = settings.StateDirectory });
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(log.Provider(id));
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        builder.Services.AddSingleton<IHostLifetime, QuietLifetime>();
        builder.Services.AddNearMLWorker(o =>
        {
            o.CoordinatorHost = "127.0.0.1";
            o.CoordinatorPort = port;
            o.CoordinatorFingerprint = fingerprint;
            o.WorkerId = id;
            o.DataDirectory = settings.WorkerDirectory(index);
            o.DatasetDirectory = datasetDirectory;
            o.AttestationProvider = "simulated";
            o.ThreadCount = 1;
            o.MaxReconnectDelay = TimeSpan.FromSeconds(5);
        });
        return builder.Build();
    }

    private static async Task StopAsync(IHost host)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        try
        {
            await host.StopAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // stop timed out; the process exits anyway
        }
    }

}
