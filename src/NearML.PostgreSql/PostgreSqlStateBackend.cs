using Npgsql;
using NearML.Hosting.State;
using NearML.Ledger;
using NearML.PostgreSql.Internal;

namespace NearML.PostgreSql;

/// <summary>
/// The PostgreSQL <see cref="ICoordinatorStateBackend"/>: the coordinator state, ledger and settlement stores as tables of
/// one schema (<see cref="PostgreSqlStateOptions.Schema"/>) of one database. The signing key and checkpoint files stay in
/// the coordinator's <c>DataDirectory</c>. Owns its <see cref="NpgsqlDataSource"/> (one connection pool).
/// </summary>
public sealed class PostgreSqlStateBackend : ICoordinatorStateBackend, IDisposable
{
    private readonly PgSchema _schema;
    private readonly string _connectionString;
    private readonly TimeSpan _leaseCheckInterval;

    /// <summary>Initializes a new instance.</summary>
    /// <param name="options">The connection string and schema.</param>
    /// <exception cref="ArgumentException">The connection string is missing or invalid, or the schema name is invalid.</exception>
    public PostgreSqlStateBackend(PostgreSqlStateOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(options.ConnectionString))
        {
            throw new ArgumentException("PostgreSqlStateOptions.ConnectionString is required (NearML:Coordinator:PostgreSql:ConnectionString).", nameof(options));
        }

        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.LeaseCheckInterval, TimeSpan.Zero, nameof(options));
        _connectionString = options.ConnectionString;
        _leaseCheckInterval = options.LeaseCheckInterval;
        var dataSource = NpgsqlDataSource.Create(options.ConnectionString);
        try
        {
            _schema = new PgSchema(dataSource, options.Schema);
        }
        catch
        {
            dataSource.Dispose();
            throw;
        }
    }

    /// <summary>Gets the schema.</summary>
    public string Schema => _schema.Name;

    /// <summary>Gets the data source (the connection pool every store of this backend uses).</summary>
    public NpgsqlDataSource DataSource => _schema.DataSource;

    /// <inheritdoc/>
    public string Name => "PostgreSQL";

    /// <inheritdoc/>
    public string Describe(string directory, StateStoreKind kind) => _schema.Describe(kind switch
    {
        StateStoreKind.State => "coordinator state, coord_* tables",
        StateStoreKind.Ledger => "ledger, ledger_* tables",
        StateStoreKind.Settlement => "settlement, settlement_* tables",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    });

    /// <inheritdoc/>
    public StoreStatus Probe(string directory, StateStoreKind kind)
    {
        var table = kind switch
        {
            StateStoreKind.State => "coord_job",
            StateStoreKind.Ledger => "ledger_entries",
            StateStoreKind.Settlement => "settlement_intents",
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };
        try
        {
            return _schema.TableExists(table) ? StoreStatus.Present : StoreStatus.Missing;
        }
        catch (NpgsqlException ex)
        {
            throw new LedgerStorageException(Describe(directory, kind), "looking for table " + table, ex);
        }
    }

    /// <inheritdoc/>
    public ICoordinatorStateStore OpenState(string directory) => new PostgreSqlCoordinatorStateStore(_schema.DataSource, directory, _schema.Name);

    /// <inheritdoc/>
    public ILedgerStore OpenLedger(string directory) => new PostgreSqlLedgerStore(_schema.DataSource, _schema.Name);

    /// <inheritdoc/>
    public ISettlementStore OpenSettlement(string directory) => new PostgreSqlSettlementStore(_schema.DataSource, _schema.Name);

    /// <inheritdoc/>
    /// <remarks>
    /// A session-level advisory lock keyed by the schema (<c>pg_try_advisory_lock</c>), on a dedicated connection outside
    /// the pool that stays open for the lease's life. PostgreSQL releases it when the session ends, so when the holder
    /// dies — even by SIGKILL — a standby's next call gets it. The holder checks its session every
    /// <see cref="PostgreSqlStateOptions.LeaseCheckInterval"/> and the lease's <see cref="ICoordinatorLease.Lost"/> fires
    /// when the check fails.
    /// </remarks>
    public ICoordinatorLease? TryAcquireLease(string directory, string jobId) => PgLease.TryAcquire(_connectionString, _schema, _leaseCheckInterval);

    /// <inheritdoc/>
    /// <remarks>
    /// Takes a connection from the pool and runs <c>SELECT 1</c>, within <see cref="HealthProbeTimeout"/>. A pooled
    /// connection that the server dropped (restart, failover) fails here and is discarded, so the next check opens a fresh
    /// one and reports healthy again once the server is back.
    /// </remarks>
    public async Task<string?> CheckHealthAsync(string directory, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(HealthProbeTimeout);
        try
        {
            await using var connection = await _schema.DataSource.OpenConnectionAsync(timeout.Token).ConfigureAwait(false);
            await using var command = new NpgsqlCommand("SELECT 1", connection);
            await command.ExecuteScalarAsync(timeout.Token).ConfigureAwait(false);
            return null;
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or System.Net.Sockets.SocketException
            || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            var reason = ex is OperationCanceledException ? $"no answer within {HealthProbeTimeout.TotalSeconds:0} s" : ex.Message;
            return $"the PostgreSQL state database cannot be reached ({Describe(directory, StateStoreKind.State)}): {reason}";
        }
    }

    /// <summary>Gets how long <see cref="CheckHealthAsync"/> waits for the database before it reports it unreachable.</summary>
    public static TimeSpan HealthProbeTimeout { get; } = TimeSpan.FromSeconds(5);

    /// <inheritdoc/>
    public void Dispose() => _schema.DataSource.Dispose();
}
