using System.Globalization;
using NearML.Hosting.State;
using NearML.Ledger;
using Npgsql;

namespace NearML.PostgreSql.Internal;

/// <summary>
/// A coordinator lease as a PostgreSQL session-level advisory lock, keyed by the schema, held on a dedicated unpooled
/// connection for the process's life. PostgreSQL releases it when that session ends — a clean dispose, or the process
/// dying (its socket closes) — so a standby's next <c>pg_try_advisory_lock</c> gets it. A probe on the connection every
/// check interval notices a broken connection and cancels <see cref="Lost"/>.
/// </summary>
internal sealed class PgLease : ICoordinatorLease
{
    private const string LockSql = "SELECT pg_try_advisory_lock(hashtext('nearml-coordinator-lease'), hashtext($1))";
    private const string UnlockSql = "SELECT pg_advisory_unlock(hashtext('nearml-coordinator-lease'), hashtext($1))";

    private readonly NpgsqlConnection _connection;
    private readonly string _schema;
    private readonly CancellationTokenSource _lost = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _monitor;
    private int _disposed;

    private PgLease(NpgsqlConnection connection, string schema, string description, TimeSpan checkInterval)
    {
        _connection = connection;
        _schema = schema;
        Description = description;
        _monitor = Task.Run(() => MonitorAsync(checkInterval));
    }

    public string Description { get; }

    public CancellationToken Lost => _lost.Token;

    /// <summary>Tries once to take the lease of <paramref name="schema"/>; <see langword="null"/> when another session holds it.</summary>
    /// <exception cref="LedgerStorageException">The server cannot be reached.</exception>
    public static PgLease? TryAcquire(string connectionString, PgSchema schema, TimeSpan checkInterval)
    {
        var csb = new NpgsqlConnectionStringBuilder(connectionString)
        {
            // The lock lives as long as this session: never hand the connection back to a pool.
            Pooling = false,
            ApplicationName = "nearml-coordinator-lease",
            // The check below queries the session every interval; TCP keepalives also notice a silently dead peer.
            TcpKeepAlive = true,
        };
        var connection = new NpgsqlConnection(csb.ConnectionString);
        try
        {
            connection.Open();
            using var cmd = new NpgsqlCommand(LockSql, connection);
            cmd.Parameters.AddWithValue(schema.Name);
            if (!(bool)cmd.ExecuteScalar()!)
            {
                connection.Dispose();
                return null;
            }

            var description = string.Create(CultureInfo.InvariantCulture, $"PostgreSQL advisory lock of schema {schema.Name} on {schema.Server}, session {connection.ProcessID}");
            return new PgLease(connection, schema.Name, description, checkInterval);
        }
        catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException or TimeoutException)
        {
            connection.Dispose();
            throw new LedgerStorageException(schema.Describe("coordinator lease"), "asking for the lease", ex);
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _stop.Cancel();
        try
        {
            _monitor.Wait(TimeSpan.FromSeconds(10));
        }
        catch (AggregateException)
        {
        }

        try
        {
            if (!_lost.IsCancellationRequested)
            {
                using var cmd = new NpgsqlCommand(UnlockSql, _connection);
                cmd.Parameters.AddWithValue(_schema);
                cmd.ExecuteNonQuery();
            }
        }
        catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException or TimeoutException)
        {
            // Closing the session below releases it as well.
        }

        _connection.Dispose();
        _lost.Dispose();
        _stop.Dispose();
    }

    private async Task MonitorAsync(TimeSpan interval)
    {
        using var timer = new PeriodicTimer(interval);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
            {
                // Still our session, still holding the lock (an operator's pg_advisory_unlock_all or a terminated backend shows here).
                await using var cmd = new NpgsqlCommand(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted AND objsubid = 2 AND classid = hashtext('nearml-coordinator-lease')::oid AND objid = hashtext($1)::oid",
                    _connection);
                cmd.Parameters.AddWithValue(_schema);
                cmd.CommandTimeout = Math.Max(1, (int)Math.Ceiling(interval.TotalSeconds * 5));
                if ((long)(await cmd.ExecuteScalarAsync(_stop.Token).ConfigureAwait(false))! == 0)
                {
                    await _lost.CancelAsync().ConfigureAwait(false);
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
        catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException or TimeoutException or IOException)
        {
            await _lost.CancelAsync().ConfigureAwait(false);
        }
    }
}
