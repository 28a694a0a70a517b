using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NearML.Hosting;
using NearML.Hosting.Coordinator;
using NearML.Hosting.State;
using NearML.Hosting.Tests.Jobs;
using NearML.Ledger;

namespace NearML.PostgreSql.Tests;

/// <summary>The coordinator lease (docs/failover.md): one holder per schema, released when its session ends.</summary>
[TestClass]
public sealed class CoordinatorLeaseTests
{
    private static PostgreSqlStateBackend Backend(string schema, TimeSpan? check = null) => new(new PostgreSqlStateOptions
    {
        ConnectionString = PostgreSqlServer.ConnectionString,
        Schema = schema,
        LeaseCheckInterval = check ?? TimeSpan.FromSeconds(1),
    });

    [TestMethod]
    public void A_second_backend_on_the_same_schema_gets_the_lease_only_after_the_first_releases_it()
    {
        PostgreSqlServer.RequireServer();
        var schema = PostgreSqlServer.NewSchema();
        using var first = Backend(schema, TimeSpan.FromMilliseconds(100));
        using var second = Backend(schema);
        var lease = first.TryAcquireLease("/unused", "job");
        Assert.IsNotNull(lease);
        StringAssert.Contains(lease.Description, schema);
        try
        {
            // Asked again and again while it is held: never granted, and the first keeps it.
            for (var i = 0; i < 3; i++)
            {
                Assert.IsNull(second.TryAcquireLease("/unused", "job"), "a second coordinator got the lease while the first holds it");
                Assert.IsNull(first.TryAcquireLease("/unused", "job"), "the lease is not re-entrant across sessions");
            }

            // The holder's check (every 100 ms here) finds its session still holding the lock: not lost.
            Thread.Sleep(800);
            Assert.IsFalse(lease.Lost.IsCancellationRequested, "the holder's own check lost a lease it holds");
        }
        finally
        {
            lease.Dispose();
        }

        using var taken = second.TryAcquireLease("/unused", "job");
        Assert.IsNotNull(taken, "the lease was not granted after the first holder released it");
        Assert.IsNull(first.TryAcquireLease("/unused", "job"));
    }

    [TestMethod]
    public void Leases_of_different_schemas_are_independent()
    {
        PostgreSqlServer.RequireServer();
        using var a = Backend(PostgreSqlServer.NewSchema());
        using var b = Backend(PostgreSqlServer.NewSchema());
        using var la = a.TryAcquireLease("/unused", "job-a");
        using var lb = b.TryAcquireLease("/unused", "job-b");
        Assert.IsNotNull(la);
        Assert.IsNotNull(lb);
    }

    [TestMethod]
    [Timeout(60_000, CooperativeCancellation = true)]
    public async Task When_the_holders_session_ends_it_is_told_the_lease_is_lost_and_a_standby_gets_it()
    {
        PostgreSqlServer.RequireServer();
        var schema = PostgreSqlServer.NewSchema();
        using var first = Backend(schema, TimeSpan.FromMilliseconds(200));
        using var second = Backend(schema);
        using var lease = first.TryAcquireLease("/unused", "job");
        Assert.IsNotNull(lease);
        Assert.IsNull(second.TryAcquireLease("/unused", "job"));

        // What PostgreSQL does when the holder's process dies: the session ends and its advisory locks go with it.
        PostgreSqlServer.Execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'nearml-coordinator-lease' AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = hashtext('" + schema + "')::oid)");
        var watch = Stopwatch.StartNew();
        ICoordinatorLease? taken = null;
        while (taken is null && watch.Elapsed < TimeSpan.FromSeconds(10))
        {
            taken = second.TryAcquireLease("/unused", "job");
            await Task.Delay(50);
        }

        using (taken)
        {
            Assert.IsNotNull(taken, "the standby did not get the lease after the holder's session ended");
            await Task.Delay(Timeout.Infinite, lease.Lost).ContinueWith(_ => { }, TaskScheduler.Default).WaitAsync(TimeSpan.FromSeconds(10));
            Assert.IsTrue(lease.Lost.IsCancellationRequested, "the old holder was not told it lost the lease");
        }
    }

    [TestMethod]
    public void The_SQLite_backend_always_grants_its_lease_and_never_loses_it()
    {
        var a = SqliteStateBackend.Instance.TryAcquireLease("/tmp/x", "job");
        var b = SqliteStateBackend.Instance.TryAcquireLease("/tmp/x", "job");
        Assert.AreSame(CoordinatorLease.Unshared, a);
        Assert.AreSame(CoordinatorLease.Unshared, b);
        Assert.IsFalse(a!.Lost.CanBeCanceled);
    }

    [TestMethod]
    public void An_unreachable_server_is_a_storage_error_naming_the_server()
    {
        using var backend = new PostgreSqlStateBackend(new PostgreSqlStateOptions { ConnectionString = "Host=127.0.0.1;Port=1;Username=x;Timeout=2", Schema = "s" });
        var ex = Assert.ThrowsExactly<LedgerStorageException>(() => backend.TryAcquireLease("/unused", "job"));
        StringAssert.Contains(ex.Message, "127.0.0.1:1");
    }

    [TestMethod]
    [Timeout(180_000, CooperativeCancellation = true)]
    public async Task A_second_coordinator_on_the_same_schema_stands_by_healthy_without_listening_and_serves_once_the_first_stops()
    {
        PostgreSqlServer.RequireServer();
        var schema = PostgreSqlServer.NewSchema();
        var root = Path.Combine(Path.GetTempPath(), $"nearml-pg-lease-{Guid.NewGuid():N}");
        var dataset = SyntheticFashionMnist.Write(Path.Combine(root, "dataset"), 300, 50);
        var data = Path.Combine(root, "coordinator");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(150));
        try
        {
            using var a = Coordinator(schema, dataset, data);
            await a.StartAsync(cts.Token);
            var statusA = a.Services.GetRequiredService<CoordinatorStatus>();
            await statusA.Listening.WaitAsync(cts.Token);
            Assert.AreEqual(CoordinatorRole.Serving, statusA.Role);

            using var b = Coordinator(schema, dataset, data);
            await b.StartAsync(cts.Token);
            var statusB = b.Services.GetRequiredService<CoordinatorStatus>();
            while (statusB.Role != CoordinatorRole.Standby)
            {
                await Task.Delay(50, cts.Token);
            }

            var health = await b.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync(cts.Token);
            Assert.AreEqual(HealthStatus.Healthy, health.Status);
            var entry = health.Entries[NearMLHealthCheckExtensions.CoordinatorCheckName];
            StringAssert.StartsWith(entry.Description, "standby");
            Assert.AreEqual("standby", entry.Data["role"]);
            await Task.Delay(1500, cts.Token);
            Assert.AreEqual(0, statusB.Port, "a standby must not listen");
            Assert.IsFalse(statusB.Listening.IsCompleted);

            Assert.IsNull(statusA.LastError, "the serving coordinator must keep its lease while the standby waits");
            Assert.AreEqual(CoordinatorRole.Serving, statusA.Role);
            var watch = Stopwatch.StartNew();
            await a.StopAsync(cts.Token);
            await statusB.Listening.WaitAsync(TimeSpan.FromSeconds(30), cts.Token);
            Console.WriteLine($"standby serving {watch.Elapsed.TotalSeconds:0.00} s after the first coordinator stopped");
            Assert.AreEqual(CoordinatorRole.Serving, statusB.Role);
            Assert.IsNotNull(statusB.LeaseAcquiredAt);
            Assert.AreEqual(statusA.Fingerprint, statusB.Fingerprint, "same data folder, same development certificate: workers pinning it trust both");
            await b.StopAsync(cts.Token);
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

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task A_coordinator_whose_lease_session_is_terminated_stops_serving_with_the_reason()
    {
        PostgreSqlServer.RequireServer();
        var schema = PostgreSqlServer.NewSchema();
        var root = Path.Combine(Path.GetTempPath(), $"nearml-pg-lost-{Guid.NewGuid():N}");
        var dataset = SyntheticFashionMnist.Write(Path.Combine(root, "dataset"), 300, 50);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(100));
        try
        {
            using var host = Coordinator(schema, dataset, Path.Combine(root, "coordinator"));
            await host.StartAsync(cts.Token);
            var status = host.Services.GetRequiredService<CoordinatorStatus>();
            await status.Listening.WaitAsync(cts.Token);

            // An operator (or a network fault) ends the lease's session: a standby could take the lease now.
            PostgreSqlServer.Execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'nearml-coordinator-lease' AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = hashtext('" + schema + "')::oid)");
            var failed = await Assert.ThrowsExactlyAsync<CoordinatorStateException>(() => status.CompletedTask.WaitAsync(TimeSpan.FromSeconds(30), cts.Token));
            StringAssert.Contains(failed.Message, "lost its lease");
            StringAssert.Contains(status.LastError!, "lost its lease");
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await host.StopAsync(stop.Token);
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

    private static IHost Coordinator(string schema, string dataset, string data) =>
        PostgreSqlTestHosts.Coordinator(schema, "pg-lease", dataset, data, static o => o.LeaseRetryInterval = TimeSpan.FromMilliseconds(200), healthChecks: true);
}
