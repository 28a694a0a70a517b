using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NearML.Hosting;
using NearML.Hosting.Coordinator;

namespace NearML.PostgreSql.Tests;

/// <summary>
/// The coordinator and worker hosts the PostgreSQL tests run: a small <c>mlp</c> job on the test dataset, simulated
/// attestation, the coordinator's state in <see cref="PostgreSqlServer"/> under a schema of the test's own.
/// </summary>
internal static class PostgreSqlTestHosts
{
    /// <summary>Builds a coordinator host (not started) whose state lives in <paramref name="schema"/>.</summary>
    /// <param name="schema">The PostgreSQL schema.</param>
    /// <param name="jobId">The job id.</param>
    /// <param name="dataset">The dataset folder.</param>
    /// <param name="data">The coordinator's data folder.</param>
    /// <param name="configure">Changes to the defaults (2 rounds of 2 steps, hidden 8, 4 shards, 1 worker).</param>
    /// <param name="healthChecks">Whether to add the NearML health checks.</param>
    /// <param name="connectionString">Another server than the shared test server.</param>
    /// <returns>The host.</returns>
    public static IHost Coordinator(string schema, string jobId, string dataset, string data, Action<NearMLCoordinatorOptions>? configure = null, bool healthChecks = false, string? connectionString = null)
    {
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        var nearml = builder.Services.AddNearMLCoordinator(o =>
        {
            o.JobId = jobId;
            o.Port = 0;
            o.DataDirectory = data;
            o.DatasetDirectory = dataset;
            o.ShardCount = 4;
            o.Model = "mlp";
            o.ModelConfigJson = """{"hidden":8}""";
            o.Rounds = 2;
            o.InnerSteps = 2;
            o.BatchSize = 16;
            o.MinWorkers = 1;
            o.AllowSimulatedAttestation = true;
            configure?.Invoke(o);
        }).UsePostgreSql(connectionString ?? PostgreSqlServer.ConnectionString, schema);
        if (healthChecks)
        {
            nearml.AddHealthChecks();
        }

        return builder.Build();
    }

    /// <summary>Builds a worker host (not started) that joins the coordinator behind <paramref name="status"/>.</summary>
    /// <param name="workerId">The worker id.</param>
    /// <param name="status">The coordinator's status (port and certificate fingerprint).</param>
    /// <param name="dataset">The dataset folder.</param>
    /// <param name="data">The worker's data folder.</param>
    /// <returns>The host.</returns>
    public static IHost Worker(string workerId, CoordinatorStatus status, string dataset, string data)
    {
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddNearMLWorker(o =>
        {
            o.WorkerId = workerId;
            o.CoordinatorPort = status.Port;
            o.CoordinatorFingerprint = status.Fingerprint;
            o.DataDirectory = data;
            o.DatasetDirectory = dataset;
            o.AttestationProvider = "simulated";
            o.InitialReconnectDelay = TimeSpan.FromMilliseconds(50);
            o.MaxReconnectDelay = TimeSpan.FromMilliseconds(500);
        });
        return builder.Build();
    }
}
