// NearML coordinator as a console process: a generic host running AddNearMLCoordinator, configured from
// appsettings.json, NEARML_ environment variables (NearML__Coordinator__Port=7420) and the command line.
// Machine-readable status lines go to stdout (one per event, see CoordinatorStatusLines.cs); logs go to stderr.
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NearML.Hosting;
using NearML.Hosting.Coordinator;
using NearML.Samples;
using NearML.Samples.Coordinator;

var switches = new Dictionary<string, string>(StringComparer.Ordinal)
{
    ["--listen"] = "NearML:Coordinator:ListenAddress",
    ["--port"] = "NearML:Coordinator:Port",
    ["--data"] = "NearML:Coordinator:DataDirectory",
    ["--dataset"] = "NearML:Coordinator:DatasetDirectory",
    ["--cert"] = "NearML:Coordinator:CertificatePath",
    ["--model"] = "NearML:Coordinator:Model",
    ["--rounds"] = "NearML:Coordinator:Rounds",
    ["--steps"] = "NearML:Coordinator:InnerSteps",
    ["--batch-size"] = "NearML:Coordinator:BatchSize",
    ["--shards"] = "NearML:Coordinator:ShardCount",
    ["--compression"] = "NearML:Coordinator:Compression",
    ["--seed"] = "NearML:Coordinator:Seed",
    ["--min-workers"] = "NearML:Coordinator:MinWorkers",
    ["--max-workers"] = "NearML:Coordinator:MaxWorkers",
    ["--round-timeout"] = "NearML:Coordinator:RoundTimeout",
    ["--heartbeat"] = "NearML:Coordinator:HeartbeatInterval",
    ["--settle-every"] = "NearML:Coordinator:SettleEveryRounds",
    ["--allow-simulated-attestation"] = "NearML:Coordinator:AllowSimulatedAttestation",
    ["--secure"] = "NearML:Coordinator:SecureAggregation",
};
var booleans = new HashSet<string>(StringComparer.Ordinal) { "--allow-simulated-attestation", "--secure" };

if (SampleArguments.WantsHelp(args))
{
    Console.WriteLine("""
        NearML.Samples.Coordinator — runs a NearML training coordinator.

        Options (or any NearML:Coordinator:* key via appsettings.json, --NearML:Coordinator:Key=value,
        or the environment variable NearML__Coordinator__Key):
          --listen ADDR                  listen address (127.0.0.1; 0.0.0.0 for all interfaces)
          --port N                       TCP port (7420; 0 = any free port, printed at start)
          --data DIR                     coordinator data directory (SQLite state, checkpoints, ledger, dev certificate)
          --dataset DIR                  Fashion-MNIST folder (default /usr/share/datasets/fashion-mnist)
          --cert FILE                    PKCS#12 TLS certificate (default: development certificate in --data)
          --model mlp|cnn                model architecture
          --rounds N  --steps H          outer rounds, inner steps per round
          --batch-size N  --shards N  --compression int8|int4|fp16|fp32  --seed N
          --min-workers N  --max-workers N  --round-timeout 00:05:00  --heartbeat 00:00:15
          --settle-every N               settle the ledger every N rounds (dry run unless configured)
          --allow-simulated-attestation  DEVELOPMENT ONLY: admit workers with simulated TEE evidence
          --secure                       secure aggregation

        Status lines on stdout: LISTENING, WORKER, ROUND ... COMPLETE, SETTLEMENT, TRAINING COMPLETE.
        Ctrl+C or SIGTERM stops cleanly.
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

var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
{
    Args = normalized,
    ContentRootPath = AppContext.BaseDirectory,
});
builder.Logging.ClearProviders();
builder.Logging.AddSimpleConsole(o =>
{
    o.SingleLine = true;
    o.TimestampFormat = "HH:mm:ss.fff ";
    o.UseUtcTimestamp = true;
});
builder.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(20));

builder.Services.AddNearMLCoordinator(builder.Configuration.GetSection("NearML:Coordinator"));
builder.Services.AddHostedService<CoordinatorStatusLines>();

using var host = builder.Build();
var final = host.Services.GetRequiredService<CoordinatorStatus>();
try
{
    await host.RunAsync().ConfigureAwait(false);
}
catch (Microsoft.Extensions.Options.OptionsValidationException ex)
{
    Console.Error.WriteLine($"invalid configuration: {string.Join("; ", ex.Failures)}");
    return 2;
}

return final.Listening.IsFaulted || final.CompletedTask.IsFaulted ? 1 : 0;
