using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using NearML.Hosting;
using NearML.Hosting.Coordinator;
using NearML.Hosting.Tests.Jobs;

namespace NearML.PostgreSql.Tests;

/// <summary>
/// The coordinator's health check asks the state backend whether it can serve: on PostgreSQL, a server that goes away is
/// reported (by the serving coordinator, which also loses its lease, and by a standby, which could not take over), and a
/// standby becomes healthy and serves again once the server is back. Each test runs its own PostgreSQL server, which it
/// stops and starts.
/// </summary>
[TestClass]
public sealed class PostgreSqlHealthTests
{
    [TestMethod]
    public async Task The_backend_reports_a_server_it_cannot_reach_naming_it()
    {
        PostgreSqlServer.RequireServer();
        using (var reachable = new PostgreSqlStateBackend(new PostgreSqlStateOptions { ConnectionString = PostgreSqlServer.ConnectionString, Schema = PostgreSqlServer.NewSchema() }))
        {
            Assert.IsNull(await reachable.CheckHealthAsync("/unused", CancellationToken.None));
        }

        using var unreachable = new PostgreSqlStateBackend(new PostgreSqlStateOptions { ConnectionString = "Host=127.0.0.1;Port=1;Username=x;Timeout=2", Schema = "s" });
        var problem = await unreachable.CheckHealthAsync("/unused", CancellationToken.None);
        Assert.IsNotNull(problem);
        StringAssert.Contains(problem, "cannot be reached");
        StringAssert.Contains(problem, "127.0.0.1:1");
    }

    [TestMethod]
    [Timeout(240_000, CooperativeCancellation = true)]
    public async Task A_standby_whose_server_goes_away_is_unhealthy_and_serves_once_the_server_is_back()
    {
        PostgreSqlServer.RequireServer();
        using var server = PostgreSqlInstance.Start(PostgreSqlInstance.FindBin()!);
        var schema = PostgreSqlServer.NewSchema();
        var root = Path.Combine(Path.GetTempPath(), $"nearml-pg-health-{Guid.NewGuid():N}");
        var dataset = SyntheticFashionMnist.Write(Path.Combine(root, "dataset"), 300, 50);
        var data = Path.Combine(root, "coordinator");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(200));
        IHost Coordinator() => PostgreSqlTestHosts.Coordinator(
            schema, "pg-health", dataset, data, static o => o.LeaseRetryInterval = TimeSpan.FromMilliseconds(200), healthChecks: true, connectionString: server.ConnectionString);
        try
        {
            using var a = Coordinator();
            await a.StartAsync(cts.Token);
            var statusA = a.Services.GetRequiredService<CoordinatorStatus>();
            await statusA.Listening.WaitAsync(cts.Token);
            var serving = await CheckAsync(a, cts.Token);
            Assert.AreEqual(HealthStatus.Healthy, serving.Status, serving.Description);
            Assert.AreEqual("PostgreSQL", serving.Data["state_backend"]);

            using var b = Coordinator();
            await b.StartAsync(cts.Token);
            var statusB = b.Services.GetRequiredService<CoordinatorStatus>();
            while (statusB.Role != CoordinatorRole.Standby)
            {
                await Task.Delay(50, cts.Token);
            }

            Assert.AreEqual(HealthStatus.Healthy, (await CheckAsync(b, cts.Token)).Status, "a standby that could take over is healthy");

            // The database server goes away (stopped here; a crash, a network partition or maintenance in life).
            server.StopServer();
            var standby = await WaitForAsync(b, HealthStatus.Unhealthy, cts.Token);
            StringAssert.StartsWith(standby.Description, "standby that could not take over");
            StringAssert.Contains(standby.Description, "cannot be reached");
            var lost = await WaitForAsync(a, HealthStatus.Unhealthy, cts.Token);
            var why = lost.Description ?? string.Empty;
            Assert.IsTrue(why.Contains("lost its lease", StringComparison.Ordinal) || why.Contains("cannot be reached", StringComparison.Ordinal), why);

            // The server is back: the first coordinator stopped (it lost its lease), so the standby takes over and is healthy.
            server.StartAgain();
            var watch = Stopwatch.StartNew();
            await statusB.Listening.WaitAsync(TimeSpan.FromSeconds(60), cts.Token);
            Console.WriteLine($"standby serving {watch.Elapsed.TotalSeconds:0.00} s after the server came back");
            var back = await WaitForAsync(b, HealthStatus.Healthy, cts.Token);
            Assert.AreEqual("serving", back.Data["role"]);
            await b.StopAsync(cts.Token);
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await a.StopAsync(stop.Token);
        }
        finally
        {
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static async Task<HealthReportEntry> CheckAsync(IHost host, CancellationToken ct) =>
        (await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync(ct)).Entries[NearMLHealthCheckExtensions.CoordinatorCheckName];

    private static async Task<HealthReportEntry> WaitForAsync(IHost host, HealthStatus wanted, CancellationToken ct)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var entry = await CheckAsync(host, ct);
            if (entry.Status == wanted)
            {
                return entry;
            }

            if (watch.Elapsed > TimeSpan.FromSeconds(60))
            {
                Assert.Fail($"the coordinator's health stayed {entry.Status} ({entry.Description}); expected {wanted}");
            }

            await Task.Delay(200, ct);
        }
    }
}
