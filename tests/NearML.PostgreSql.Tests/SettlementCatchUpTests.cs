using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NearML.Hosting;
using NearML.Hosting.Coordinator;
using NearML.Hosting.State;
using NearML.Hosting.Tests.Jobs;

namespace NearML.PostgreSql.Tests;

/// <summary>
/// A coordinator that died after recording an epoch's last round but before settling it (a crash, or a failover to a
/// standby): the next coordinator settles that epoch at start, once (docs/failover.md, "What is guaranteed").
/// </summary>
[TestClass]
public sealed class SettlementCatchUpTests
{
    [TestMethod]
    [Timeout(240_000, CooperativeCancellation = true)]
    public async Task An_epoch_recorded_but_not_settled_is_settled_once_by_the_next_coordinator()
    {
        PostgreSqlServer.RequireServer();
        var schema = PostgreSqlServer.NewSchema();
        var root = Path.Combine(Path.GetTempPath(), $"nearml-pg-catchup-{Guid.NewGuid():N}");
        var dataset = SyntheticFashionMnist.Write(Path.Combine(root, "dataset"), 300, 50);
        var data = Path.Combine(root, "coordinator");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(200));
        try
        {
            // Two rounds, one epoch, settled (dry run) at the end.
            using (var coordinator = Coordinator(schema, dataset, data))
            {
                await coordinator.StartAsync(cts.Token);
                var status = coordinator.Services.GetRequiredService<CoordinatorStatus>();
                await status.Listening.WaitAsync(cts.Token);
                using var worker = Worker(status, dataset, Path.Combine(root, "worker"));
                await worker.StartAsync(cts.Token);
                await status.CompletedTask.WaitAsync(cts.Token);
                await worker.StopAsync(cts.Token);
                await coordinator.StopAsync(cts.Token);
            }

            var settled = Settlements(schema, data);
            Assert.IsNotEmpty(settled);
            Assert.IsTrue(settled.All(s => s.Epoch == 0 && s.DryRun));

            // As if the coordinator had died between recording round 1 and settling epoch 0 (dry-run records only: a sent
            // settlement's exactly-once store is checked against them at start).
            PostgreSqlServer.Execute($"DELETE FROM {schema}.coord_settlements");
            using (var coordinator = Coordinator(schema, dataset, data))
            {
                await coordinator.StartAsync(cts.Token);
                var status = coordinator.Services.GetRequiredService<CoordinatorStatus>();
                await status.CompletedTask.WaitAsync(cts.Token);
                await coordinator.StopAsync(cts.Token);
            }

            var again = Settlements(schema, data);
            CollectionAssert.AreEquivalent(settled.Select(s => (s.Epoch, s.Receiver, s.Amount)).ToList(), again.Select(s => (s.Epoch, s.Receiver, s.Amount)).ToList(), "the same payouts, once");

            // A third start finds it settled and settles nothing more.
            using (var coordinator = Coordinator(schema, dataset, data))
            {
                await coordinator.StartAsync(cts.Token);
                await coordinator.Services.GetRequiredService<CoordinatorStatus>().CompletedTask.WaitAsync(cts.Token);
                await coordinator.StopAsync(cts.Token);
            }

            Assert.HasCount(again.Count, Settlements(schema, data));
        }
        finally
        {
            PostgreSqlServer.Execute($"DROP SCHEMA IF EXISTS {schema} CASCADE");
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static IReadOnlyList<SettlementRecord> Settlements(string schema, string data)
    {
        using var backend = new PostgreSqlStateBackend(new PostgreSqlStateOptions { ConnectionString = PostgreSqlServer.ConnectionString, Schema = schema });
        using var state = backend.OpenState(data);
        return state.ReadSettlements();
    }

    private static IHost Coordinator(string schema, string dataset, string data) =>
        PostgreSqlTestHosts.Coordinator(schema, "pg-catchup", dataset, data, static o =>
        {
            o.UpdateEncoding = "fp32";
            o.RoundTimeout = TimeSpan.FromSeconds(60);
            o.HeartbeatInterval = TimeSpan.FromSeconds(1);
            o.EvaluationSamples = 50;
            o.SettleEveryRounds = 2;
        });

    private static IHost Worker(CoordinatorStatus status, string dataset, string data) =>
        PostgreSqlTestHosts.Worker("catchup-worker", status, dataset, data);
}
