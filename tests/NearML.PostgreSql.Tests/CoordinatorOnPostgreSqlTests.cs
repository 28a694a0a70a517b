using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NearML.Hosting;
using NearML.Hosting.Coordinator;
using NearML.Hosting.State;
using NearML.Hosting.Tests.Jobs;
using NearML.Ledger;

namespace NearML.PostgreSql.Tests;

/// <summary>A real coordinator host with <c>UsePostgreSql(…)</c> and a real worker: rounds, receipts, settlements and the restart all go through PostgreSQL.</summary>
[TestClass]
public sealed class CoordinatorOnPostgreSqlTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);

    [TestMethod]
    [Timeout(300_000, CooperativeCancellation = true)]
    public async Task A_coordinator_using_PostgreSql_trains_records_everything_there_and_resumes_after_a_restart()
    {
        PostgreSqlServer.RequireServer();
        var schema = PostgreSqlServer.NewSchema();
        var root = Path.Combine(Path.GetTempPath(), $"nearml-pg-e2e-{Guid.NewGuid():N}");
        var dataset = SyntheticFashionMnist.Write(Path.Combine(root, "dataset"), 600, 100);
        var data = Path.Combine(root, "coordinator");
        try
        {
            await RunAsync(schema, dataset, data, rounds: 2, Path.Combine(root, "worker"));

            // Nothing in SQLite files: the state, ledger and settlement stores are the schema's tables.
            foreach (var file in new[] { CoordinatorStateFolder.StateFileName, CoordinatorStateFolder.LedgerFileName, CoordinatorStateFolder.SettlementFileName })
            {
                Assert.IsFalse(File.Exists(Path.Combine(data, file)), file);
            }

            Assert.IsTrue(File.Exists(Path.Combine(data, CoordinatorStateFolder.SignerKeyFileName)));
            using (var backend = new PostgreSqlStateBackend(new PostgreSqlStateOptions { ConnectionString = PostgreSqlServer.ConnectionString, Schema = schema }))
            using (var folder = CoordinatorStateFolder.Open(data, backend, "pg-e2e"))
            {
                Assert.AreEqual(1, folder.LastRound);
                Assert.AreEqual(2, folder.State.ReadRounds().Count);
                Assert.AreEqual(2, folder.Ledger.Head.Count, "one receipt per round from the one worker");
                Assert.AreEqual(folder.Ledger.Head.Count, folder.State.LatestLedgerAnchor()!.Count);
                Assert.AreEqual(1, folder.State.LatestCheckpoint()!.Round);
                Assert.IsTrue(File.Exists(folder.State.LatestCheckpoint()!.Path));
                Assert.IsTrue(folder.State.ReadSettlements().Count > 0, "the dry-run settlement of epoch 0 is recorded");
                Assert.IsTrue(folder.State.ReadMembership().Any(m => m.WorkerId == "pg-worker"));
            }

            // Restart with one more round: it resumes at round 2 from the PostgreSQL checkpoint index and anchor.
            await RunAsync(schema, dataset, data, rounds: 3, Path.Combine(root, "worker"));
            using (var backend = new PostgreSqlStateBackend(new PostgreSqlStateOptions { ConnectionString = PostgreSqlServer.ConnectionString, Schema = schema }))
            using (var folder = CoordinatorStateFolder.Open(data, backend, "pg-e2e"))
            {
                CollectionAssert.AreEqual(new long[] { 0, 1, 2 }, folder.State.ReadRounds().Select(r => r.Round).ToList());
                var receipts = folder.Ledger.ReadEpochReceipts(0).Concat(folder.Ledger.ReadEpochReceipts(1)).Select(r => r.Receipt).ToList();
                CollectionAssert.AreEqual(new long[] { 0, 1, 2 }, receipts.Select(r => r.Round).ToList(), "no round credited twice or lost");
                Assert.IsTrue(folder.Ledger.VerifySignatures(folder.Signer.PublicKey).IsValid);
            }
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

    private static async Task RunAsync(string schema, string dataset, string data, int rounds, string workerData)
    {
        using var coordinator = PostgreSqlTestHosts.Coordinator(schema, "pg-e2e", dataset, data, o =>
        {
            o.ModelConfigJson = """{"hidden":16}""";
            o.Rounds = rounds;
            o.InnerSteps = 3;
            o.UpdateEncoding = "fp32";
            o.RoundTimeout = TimeSpan.FromSeconds(60);
            o.HeartbeatInterval = TimeSpan.FromSeconds(1);
            o.EvaluationSamples = 50;
            o.SettleEveryRounds = 2;
        });
        using var cts = new CancellationTokenSource(Timeout);
        Assert.IsInstanceOfType<PostgreSqlStateBackend>(coordinator.Services.GetRequiredService<ICoordinatorStateBackend>());
        await coordinator.StartAsync(cts.Token);
        var status = coordinator.Services.GetRequiredService<CoordinatorStatus>();
        await status.Listening.WaitAsync(cts.Token);

        using var worker = PostgreSqlTestHosts.Worker("pg-worker", status, dataset, workerData);
        await worker.StartAsync(cts.Token);
        try
        {
            await status.CompletedTask.WaitAsync(cts.Token);
        }
        finally
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await worker.StopAsync(stop.Token);
            await coordinator.StopAsync(stop.Token);
        }
    }
}
