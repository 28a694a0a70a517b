// NearML coordinator as a console process: a generic host running AddNearMLCoordinator, configured from
// appsettings.json, NEARML_ environment variables (NearML__Coordinator__Port=7420) and the command line (typed switches,
// or any NearML:Coordinator:* key). Machine-readable status lines go to stdout (one per event, see
// CoordinatorStatusLines.cs); logs go to stderr. Exit codes: 0 done, 1 refused/failed, 2 bad input, 130 cancelled.
using System.CommandLine;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NearML.Hosting;
using NearML.Hosting.Coordinator;
using NearML.PostgreSql;
using NearML.Samples;
using NearML.Samples.Coordinator;

var rest = SampleArguments.ExtractConfiguration(args, NearMLCoordinatorOptions.SectionName, typeof(NearMLCoordinatorOptions), out var configArgs, out var configError);
if (configError is not null)
{
    return SampleCommandLine.Fail(SampleCommandLine.BadInput, configError);
}

var listen = new Option<string>("--listen") { Description = "Listen address (127.0.0.1; 0.0.0.0 for all interfaces)", HelpName = "ADDR" };
var port = new Option<int?>("--port") { Description = "TCP port (7420; 0 = any free port, printed at start)", HelpName = "N" };
var data = new Option<string>("--data") { Description = "Coordinator data directory (SQLite state, checkpoints, ledger, development certificate)", HelpName = "DIR" };
var dataset = new Option<string>("--dataset") { Description = "Fashion-MNIST folder (default /usr/share/datasets/fashion-mnist)", HelpName = "DIR" };
var cert = new Option<string>("--cert") { Description = "PKCS#12 TLS certificate (default: development certificate in --data)", HelpName = "FILE" };
var model = new Option<string>("--model") { Description = "Model architecture: mlp, cnn or gpt" };
var rounds = new Option<int?>("--rounds") { Description = "Outer rounds", HelpName = "N" };
var steps = new Option<int?>("--steps") { Description = "Inner steps per round (H)", HelpName = "H" };
var batchSize = new Option<int?>("--batch-size") { Description = "Samples per inner step", HelpName = "N" };
var shards = new Option<int?>("--shards") { Description = "Dataset shards", HelpName = "N" };
var encoding = new Option<string>("--encoding") { Description = "Update encoding: int8, int4, fp16 or fp32 (NearML:Coordinator:UpdateEncoding)" };
var compression = new Option<string>("--compression") { Description = "Deprecated alias of --encoding (sets the deprecated Compression key; the coordinator logs a warning)", Hidden = true };
var seed = new Option<int?>("--seed") { Description = "Seed (model initialisation, shards)", HelpName = "N" };
var minWorkers = new Option<int?>("--min-workers") { Description = "Workers needed before a round starts", HelpName = "N" };
var maxWorkers = new Option<int?>("--max-workers") { Description = "Most workers admitted", HelpName = "N" };
var roundTimeout = new Option<TimeSpan?>("--round-timeout") { Description = "Round deadline (00:05:00)", HelpName = "HH:MM:SS" };
var heartbeat = new Option<TimeSpan?>("--heartbeat") { Description = "Heartbeat interval (00:00:15)", HelpName = "HH:MM:SS" };
var settleEvery = new Option<int?>("--settle-every") { Description = "Settle the ledger every N rounds (dry run unless configured)", HelpName = "N" };
var settlementKey = new Option<string>("--settlement-key") { Description = "Payer key file of SettlementAccount (ed25519:<base58> or a NEAR CLI credential file); required for live settlement, never the ledger key (dry run default: DIR/settlement-payer.key, generated)", HelpName = "FILE" };
var allowSimulated = new Option<bool>("--allow-simulated-attestation") { Description = "DEVELOPMENT ONLY: admit workers with simulated TEE evidence" };
var secure = new Option<bool>("--secure") { Description = "Secure aggregation (SecAgg+): the coordinator learns only the sum of updates" };
var postgres = new Option<string>("--postgres") { Description = "Keep the state, ledger and settlements in PostgreSQL (Npgsql connection string); two coordinators on one database: one serves, the other stands by (docs/failover.md)", HelpName = "CONNSTR" };
var postgresSchema = new Option<string>("--postgres-schema") { Description = "With --postgres: the schema of this job's tables (nearml)", HelpName = "NAME" };

var root = new RootCommand("""
    NearML.Samples.Coordinator: runs a NearML training coordinator.
    Any NearML:Coordinator:* key can also be set in appsettings.json, as --NearML:Coordinator:Key=value, or as the environment
    variable NearML__Coordinator__Key. Status lines on stdout: LISTENING, WORKERS, ROUND ... COMPLETE, SETTLEMENT, TRAINING COMPLETE.
    With --postgres, two coordinators may share one database: one holds the lease and serves, the other prints STANDBY and
    takes over (loading the state like a restart) when the first dies; give both the same --data folder (shared storage:
    checkpoints, signing key, certificate) or the same --cert (docs/failover.md).
    Ctrl+C or SIGTERM stops cleanly. Exit codes: 0 training complete or stopped, 1 failed, 2 bad input.
    """)
{
    listen, port, data, dataset, cert, model, rounds, steps, batchSize, shards, encoding, compression, seed, minWorkers, maxWorkers, roundTimeout, heartbeat,
    settleEvery, settlementKey, allowSimulated, secure, postgres, postgresSchema,
};

root.SetAction(async (parse, _) =>
{
    var overrides = new ConfigOverrides(parse, NearMLCoordinatorOptions.SectionName);
    overrides.Set(listen, "ListenAddress", v => v);
    overrides.Set(port, "Port", v => SampleCommandLine.Invariant(v!.Value));
    overrides.Set(data, "DataDirectory", v => v);
    overrides.Set(dataset, "DatasetDirectory", v => v);
    overrides.Set(cert, "CertificatePath", v => v);
    overrides.Set(model, "Model", v => v);
    overrides.Set(rounds, "Rounds", v => SampleCommandLine.Invariant(v!.Value));
    overrides.Set(steps, "InnerSteps", v => SampleCommandLine.Invariant(v!.Value));
    overrides.Set(batchSize, "BatchSize", v => SampleCommandLine.Invariant(v!.Value));
    overrides.Set(shards, "ShardCount", v => SampleCommandLine.Invariant(v!.Value));
    overrides.Set(encoding, "UpdateEncoding", v => v);
    overrides.Set(compression, "Compression", v => v);
    overrides.Set(seed, "Seed", v => SampleCommandLine.Invariant(v!.Value));
    overrides.Set(minWorkers, "MinWorkers", v => SampleCommandLine.Invariant(v!.Value));
    overrides.Set(maxWorkers, "MaxWorkers", v => SampleCommandLine.Invariant(v!.Value));
    overrides.Set(roundTimeout, "RoundTimeout", v => v!.Value.ToString("c"));
    overrides.Set(heartbeat, "HeartbeatInterval", v => v!.Value.ToString("c"));
    overrides.Set(settleEvery, "SettleEveryRounds", v => SampleCommandLine.Invariant(v!.Value));
    overrides.Set(settlementKey, "SettlementKeyPath", v => v);
    overrides.Set(allowSimulated, "AllowSimulatedAttestation", v => v ? "true" : "false");
    overrides.Set(secure, "SecureAggregation", v => v ? "true" : "false");
    overrides.Set(postgres, "PostgreSql:ConnectionString", v => v);
    overrides.Set(postgresSchema, "PostgreSql:Schema", v => v);
    return await RunAsync([.. configArgs], overrides.Values).ConfigureAwait(false);
});

// The generic host's console lifetime handles Ctrl+C / SIGTERM (graceful Goodbye within ShutdownTimeout).
return await SampleCommandLine.RunAsync(root, rest, terminationTimeout: null).ConfigureAwait(false);

static async Task<int> RunAsync(string[] configArgs, Dictionary<string, string?> overrides)
{
    var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
    {
        Args = configArgs,
        ContentRootPath = AppContext.BaseDirectory,
    });
    builder.Configuration.AddInMemoryCollection(overrides);
    var section = builder.Configuration.GetSection(NearMLCoordinatorOptions.SectionName);
    try
    {
        // A value that does not convert (Rounds=abc in appsettings.json or the environment) is bad input: say so before starting.
        _ = section.Get<NearMLCoordinatorOptions>();
    }
    catch (InvalidOperationException ex)
    {
        return SampleCommandLine.Fail(SampleCommandLine.BadInput, "invalid configuration: " + SampleCommandLine.OneLine(ex));
    }

    builder.Logging.ClearProviders();
    SampleHost.ConfigureLogging(builder);
    builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(20));

    var coordinator = builder.Services.AddNearMLCoordinator(section);
    var postgreSql = section.GetSection("PostgreSql");
    if (!string.IsNullOrWhiteSpace(postgreSql["ConnectionString"]))
    {
        coordinator.UsePostgreSql(postgreSql);
    }
    builder.Services.AddHostedService<CoordinatorStatusLines>();

    using var host = builder.Build();
    var final = host.Services.GetRequiredService<CoordinatorStatus>();
    try
    {
        await host.RunAsync().ConfigureAwait(false);
    }
    catch (Microsoft.Extensions.Options.OptionsValidationException ex)
    {
        return SampleCommandLine.Fail(SampleCommandLine.BadInput, $"invalid configuration: {string.Join("; ", ex.Failures)}");
    }
    catch (Exception ex) when (ex is InvalidOperationException or IOException or UnauthorizedAccessException or NearML.Core.NearMLException
        or System.Security.Cryptography.CryptographicException or System.Net.Sockets.SocketException)
    {
        return SampleCommandLine.Fail(SampleCommandLine.Refused, SampleCommandLine.OneLine(ex));
    }

    return final.Listening.IsFaulted || final.CompletedTask.IsFaulted ? SampleCommandLine.Refused : SampleCommandLine.Success;
}
