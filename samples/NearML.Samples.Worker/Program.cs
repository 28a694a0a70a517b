// NearML worker as a console process: a generic host running AddNearMLWorker, configured from appsettings.json,
// environment variables (NearML__Worker__CoordinatorPort=7420) and the command line. Machine-readable status lines go to
// stdout (see WorkerStatusLines.cs); logs go to stderr. `--swarm N` runs N worker hosts in this one process (load tests:
// one .NET runtime instead of N); `--churn` then stops and restarts some of them at random.
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NearML.Hosting;
using NearML.Hosting.Worker;
using NearML.Samples;
using NearML.Samples.Worker;

var switches = new Dictionary<string, string>(StringComparer.Ordinal)
{
    ["--coordinator"] = "NearML:Worker:CoordinatorHost",
    ["--port"] = "NearML:Worker:CoordinatorPort",
    ["--fingerprint"] = "NearML:Worker:CoordinatorFingerprint",
    ["--id"] = "NearML:Worker:WorkerId",
    ["--data"] = "NearML:Worker:DataDirectory",
    ["--dataset"] = "NearML:Worker:DatasetDirectory",
    ["--attestation"] = "NearML:Worker:AttestationProvider",
    ["--threads"] = "NearML:Worker:ThreadCount",
    ["--max-reconnect-delay"] = "NearML:Worker:MaxReconnectDelay",
    ["--inject-nan-update"] = "NearML:Worker:InjectNanUpdate",
    ["--swarm"] = "Sample:Swarm",
    ["--churn"] = "Sample:Churn",
    ["--churn-seed"] = "Sample:ChurnSeed",
    ["--progress"] = "Sample:PrintProgress",
};
var booleans = new HashSet<string>(StringComparer.Ordinal) { "--inject-nan-update", "--churn", "--progress" };

if (SampleArguments.WantsHelp(args))
{
    Console.WriteLine("""
        NearML.Samples.Worker — contributes this machine's compute to a NearML coordinator.

        Options (or any NearML:Worker:* key via appsettings.json, --NearML:Worker:Key=value,
        or the environment variable NearML__Worker__Key):
          --coordinator HOST        coordinator host (127.0.0.1)
          --port N                  coordinator port (7420)
          --fingerprint AB:CD:..    pin the coordinator's certificate (SHA-256, printed by the coordinator)
          --id NAME                 worker id (required; payouts go to it)
          --data DIR                worker data directory (identity key, receipts)
          --dataset DIR             Fashion-MNIST folder (default /usr/share/datasets/fashion-mnist)
          --attestation configfs-tsm|simulated|none
          --threads N               training threads
          --progress                print a PROGRESS line for every progress report
          --swarm N                 run N worker hosts in this process (ids <id>-00 .. <id>-NN, data <data>/<id>-NN)
          --churn                   with --swarm: stop a random worker every ~1.5 s and restart it ~2 s later
          --inject-nan-update       TEST ONLY: send a NaN pseudo-gradient, to exercise the coordinator's rejection path

        Status lines on stdout: CONNECTED, ADMITTED, ROUND, PROGRESS, RECEIPT, REFUSED, ERROR, STOPPED.
        Ctrl+C or SIGTERM leaves the round cleanly (Goodbye) and exits.
        """);
    return 0;
}

string[] normalized;
try
{
    normalized = SampleArguments.Normalize(args, switches, booleans);
}
catch (ArgumentException ex)
{
    Console.Error.WriteLine(ex.Message);
    return 2;
}

var configuration = new ConfigurationBuilder()
    .SetBasePath(AppContext.BaseDirectory)
    .AddJsonFile("appsettings.json", optional: true)
    .AddEnvironmentVariables()
    .AddCommandLine(normalized)
    .Build();

var swarm = configuration.GetValue("Sample:Swarm", 0);
var printProgress = configuration.GetValue("Sample:PrintProgress", false);
if (swarm <= 0)
{
    using var host = BuildHost(configuration, workerId: null, dataDirectory: null, printProgress, singleHost: true);
    var status = host.Services.GetRequiredService<WorkerStatus>();
    try
    {
        await host.RunAsync().ConfigureAwait(false);
    }
    catch (Microsoft.Extensions.Options.OptionsValidationException ex)
    {
        Console.Error.WriteLine($"invalid configuration: {string.Join("; ", ex.Failures)}");
        return 2;
    }

    return status.State == WorkerState.Failed ? 1 : 0;
}

return await WorkerSwarm.RunAsync(configuration, swarm, printProgress, BuildHost).ConfigureAwait(false);

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
    builder.Logging.AddSimpleConsole(o =>
    {
        o.SingleLine = true;
        o.TimestampFormat = "HH:mm:ss.fff ";
        o.UseUtcTimestamp = true;
    });
    builder.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
    // Every host keeps the default ConsoleLifetime: Ctrl+C / SIGTERM stops each one gracefully (Goodbye), swarm or not.
    builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(15));
    builder.Services.AddNearMLWorker(builder.Configuration.GetSection("NearML:Worker"));
    builder.Services.AddSingleton(new WorkerStatusLinesOptions { PrintProgress = printProgress, StopHostOnFailure = singleHost });
    builder.Services.AddHostedService<WorkerStatusLines>();
    return builder.Build();
}
