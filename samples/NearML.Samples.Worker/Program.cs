// NearML worker as a console process: a generic host running AddNearMLWorker, configured from appsettings.json,
// environment variables (NearML__Worker__CoordinatorPort=7420) and the command line (typed switches, or any
// NearML:Worker:* key). Machine-readable status lines go to stdout (see WorkerStatusLines.cs); logs go to stderr.
// `--swarm N` runs N worker hosts in this one process (load tests: one .NET runtime instead of N); `--churn` then stops and
// restarts some of them at random. When the coordinator says the job is complete the process exits 0
// (NearML:Worker:StopApplicationOnCompletion, on here). Exit codes: 0 done or stopped, 1 refused/failed, 2 bad input.
using System.CommandLine;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NearML.Hosting;
using NearML.Hosting.Worker;
using NearML.Samples;
using NearML.Samples.Worker;

var rest = SampleArguments.ExtractConfiguration(args, NearMLWorkerOptions.SectionName, typeof(NearMLWorkerOptions), out var configArgs, out var configError);
if (configError is not null)
{
    return SampleCommandLine.Fail(SampleCommandLine.BadInput, configError);
}

var coordinator = new Option<string[]>("--coordinator")
{
    Description = "Coordinator host or host:port (127.0.0.1); repeat it for a serving coordinator and its standbys: the worker tries them in turn (docs/failover.md)",
    HelpName = "HOST[:PORT]",
    AllowMultipleArgumentsPerToken = false,
};
var port = new Option<int?>("--port") { Description = "Coordinator port (7420)", HelpName = "N" };
var fingerprint = new Option<string>("--fingerprint") { Description = "Pin the coordinator's certificate (SHA-256, printed by the coordinator)", HelpName = "AB:CD:.." };
var id = new Option<string>("--id") { Description = "Worker id (required; payouts go to it)", HelpName = "NAME" };
var data = new Option<string>("--data") { Description = "Worker data directory (identity key, receipts)", HelpName = "DIR" };
var dataset = new Option<string>("--dataset") { Description = "Fashion-MNIST folder (default /usr/share/datasets/fashion-mnist)", HelpName = "DIR" };
var attestation = new Option<string>("--attestation") { Description = "Attestation evidence: configfs-tsm, simulated or none" };
attestation.AcceptOnlyFromAmong(NearMLWorkerOptions.ConfigFsTsmProvider, NearMLWorkerOptions.SimulatedProvider, NearMLWorkerOptions.NoProvider);
var threads = new Option<int?>("--threads") { Description = "Training threads", HelpName = "N" };
var maxReconnectDelay = new Option<TimeSpan?>("--max-reconnect-delay") { Description = "Longest wait between reconnection attempts (00:00:30)", HelpName = "HH:MM:SS" };
var injectNan = new Option<bool>("--inject-nan-update") { Description = "TEST ONLY: send a NaN pseudo-gradient, to exercise the coordinator's rejection path" };
var swarm = new Option<int>("--swarm") { Description = "Run N worker hosts in this process (ids <id>-00 .. <id>-NN, data <data>/<id>-NN)", HelpName = "N" };
var churn = new Option<bool>("--churn") { Description = "With --swarm: stop a random worker every ~1.5 s and restart it ~2 s later" };
var churnSeed = new Option<int>("--churn-seed") { Description = "With --churn: the random seed", DefaultValueFactory = _ => 1, HelpName = "N" };
var progress = new Option<bool>("--progress") { Description = "Print a PROGRESS line for every progress report" };

var root = new RootCommand("""
    NearML.Samples.Worker: contributes this machine's compute to a NearML coordinator.
    Any NearML:Worker:* key can also be set in appsettings.json, as --NearML:Worker:Key=value, or as the environment variable
    NearML__Worker__Key. Status lines on stdout: STATE, ROUND, PROGRESS, RECEIPT, ERROR, FAILED, STOPPED.
    The process exits 0 when the coordinator completes the job (--NearML:Worker:StopApplicationOnCompletion=false keeps it running).
    Ctrl+C or SIGTERM leaves the round cleanly (Goodbye) and exits. Exit codes: 0 done or stopped, 1 refused or failed, 2 bad input.
    """)
{
    coordinator, port, fingerprint, id, data, dataset, attestation, threads, maxReconnectDelay, injectNan, swarm, churn, churnSeed, progress,
};

root.SetAction(async (parse, cancellationToken) =>
{
    const string S = NearMLWorkerOptions.SectionName;
    var overrides = new ConfigOverrides(parse, S);
    if (parse.GetValue(coordinator) is { Length: > 0 } addresses)
    {
        if (addresses.Length == 1 && !addresses[0].Contains(':', StringComparison.Ordinal))
        {
            overrides.Values[$"{S}:CoordinatorHost"] = addresses[0];
        }
        else
        {
            for (var i = 0; i < addresses.Length; i++)
            {
                overrides.Values[$"{S}:CoordinatorAddresses:{SampleCommandLine.Invariant(i)}"] = addresses[i];
            }
        }
    }

    overrides.Set(port, "CoordinatorPort", v => SampleCommandLine.Invariant(v!.Value));
    overrides.Set(fingerprint, "CoordinatorFingerprint", v => v);
    overrides.Set(id, "WorkerId", v => v);
    overrides.Set(data, "DataDirectory", v => v);
    overrides.Set(dataset, "DatasetDirectory", v => v);
    overrides.Set(attestation, "AttestationProvider", v => v);
    overrides.Set(threads, "ThreadCount", v => SampleCommandLine.Invariant(v!.Value));
    overrides.Set(maxReconnectDelay, "MaxReconnectDelay", v => v!.Value.ToString("c"));
    overrides.Set(injectNan, "InjectNanUpdate", v => v ? "true" : "false");

    var configuration = new ConfigurationBuilder()
        .AddInMemoryCollection(new Dictionary<string, string?> { [$"{S}:StopApplicationOnCompletion"] = "true" })
        .SetBasePath(AppContext.BaseDirectory)
        .AddJsonFile("appsettings.json", optional: true)
        .AddEnvironmentVariables()
        .AddCommandLine([.. configArgs])
        .AddInMemoryCollection(overrides.Values)
        .Build();
    try
    {
        // A value that does not convert (ThreadCount=abc in appsettings.json or the environment) is bad input: say so before starting.
        _ = configuration.GetSection(S).Get<NearMLWorkerOptions>();
    }
    catch (InvalidOperationException ex)
    {
        return SampleCommandLine.Fail(SampleCommandLine.BadInput, "invalid configuration: " + SampleCommandLine.OneLine(ex));
    }

    var count = parse.GetValue(swarm);
    if (count < 0)
    {
        return SampleCommandLine.Fail(SampleCommandLine.BadInput, $"--swarm must be 0 (one worker) or more; got {count}");
    }

    var printProgress = parse.GetValue(progress);
    try
    {
        if (count == 0)
        {
            using var host = BuildHost(configuration, workerId: null, dataDirectory: null, printProgress, singleHost: true);
            var status = host.Services.GetRequiredService<WorkerStatus>();
            await host.RunAsync(cancellationToken).ConfigureAwait(false);
            return status.State == WorkerState.Failed ? SampleCommandLine.Refused : SampleCommandLine.Success;
        }

        return await WorkerSwarm.RunAsync(configuration, count, printProgress, parse.GetValue(churn), parse.GetValue(churnSeed), BuildHost).ConfigureAwait(false);
    }
    catch (Microsoft.Extensions.Options.OptionsValidationException ex)
    {
        return SampleCommandLine.Fail(SampleCommandLine.BadInput, $"invalid configuration: {string.Join("; ", ex.Failures)}");
    }
    catch (Exception ex) when (ex is InvalidOperationException or IOException or UnauthorizedAccessException or NearML.Core.NearMLException
        or System.Security.Cryptography.CryptographicException)
    {
        // the identity key cannot be read (corrupt worker.key), configfs-tsm is missing, the data folder is not writable, ...
        return SampleCommandLine.Fail(SampleCommandLine.Refused, SampleCommandLine.OneLine(ex));
    }
});

// The generic host's console lifetime handles Ctrl+C / SIGTERM (graceful Goodbye within ShutdownTimeout).
return await SampleCommandLine.RunAsync(root, rest, terminationTimeout: null).ConfigureAwait(false);

static IHost BuildHost(IConfiguration configuration, string? workerId, string? dataDirectory, bool printProgress, bool singleHost)
{
    var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
    {
        DisableDefaults = true,
        ContentRootPath = AppContext.BaseDirectory,
    });
    builder.Configuration.AddConfiguration(configuration);
    var overrides = new Dictionary<string, string?>();
    if (workerId is not null)
    {
        overrides["NearML:Worker:WorkerId"] = workerId;
    }

    if (dataDirectory is not null)
    {
        overrides["NearML:Worker:DataDirectory"] = dataDirectory;
    }

    builder.Configuration.AddInMemoryCollection(overrides);
    builder.Logging.AddConfiguration(builder.Configuration.GetSection("Logging"));
    SampleHost.ConfigureLogging(builder);
    // Every host keeps the default ConsoleLifetime: Ctrl+C / SIGTERM stops each one gracefully (Goodbye), swarm or not.
    builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(15));
    builder.Services.AddNearMLWorker(builder.Configuration.GetSection("NearML:Worker"));
    builder.Services.AddSingleton(new WorkerStatusLinesOptions { PrintProgress = printProgress, StopHostOnFailure = singleHost });
    builder.Services.AddHostedService<WorkerStatusLines>();
    return builder.Build();
}
