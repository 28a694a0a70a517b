using NearML.Ledger;

namespace NearML.Hosting.State;

/// <summary>The three databases of a coordinator's state.</summary>
public enum StateStoreKind
{
    /// <summary>The coordinator state (<see cref="ICoordinatorStateStore"/>; SQLite: <c>coordinator.db</c>).</summary>
    State,

    /// <summary>The contribution ledger (<see cref="ILedgerStore"/>; SQLite: <c>ledger.db</c>).</summary>
    Ledger,

    /// <summary>The exactly-once settlement state (<see cref="ISettlementStore"/>; SQLite: <c>settlement.db</c>).</summary>
    Settlement,
}

/// <summary>What a backend holds for one of the stores before it is opened.</summary>
public enum StoreStatus
{
    /// <summary>Nothing: the store was never created (or its file/tables were removed).</summary>
    Missing,

    /// <summary>The store exists but holds no bytes at all (an emptied file).</summary>
    Empty,

    /// <summary>The store exists.</summary>
    Present,
}

/// <summary>
/// Where a coordinator keeps its state: opens the coordinator state store, the ledger store and the settlement store
/// for a state folder. <see cref="CoordinatorStateFolder"/> cross-checks what they hold before the coordinator starts.
/// The default, <see cref="SqliteStateBackend"/>, keeps three SQLite files in the folder; <c>NearML.PostgreSql</c>'s
/// <c>UsePostgreSql(…)</c> registers a PostgreSQL one. The signing key and checkpoint files stay in the folder with
/// every backend. Register one as a singleton to replace the default.
/// </summary>
public interface ICoordinatorStateBackend
{
    /// <summary>Gets the backend's name for logs ("SQLite", "PostgreSQL").</summary>
    string Name { get; }

    /// <summary>Describes where a store is kept (a file path, or a database, schema and table), for messages.</summary>
    /// <param name="directory">The state folder (full path).</param>
    /// <param name="kind">The store.</param>
    /// <returns>The description.</returns>
    string Describe(string directory, StateStoreKind kind);

    /// <summary>Tells whether a store exists, without creating it.</summary>
    /// <param name="directory">The state folder (full path).</param>
    /// <param name="kind">The store.</param>
    /// <returns>Its status.</returns>
    StoreStatus Probe(string directory, StateStoreKind kind);

    /// <summary>Opens (creating if needed) the coordinator state store.</summary>
    /// <param name="directory">The state folder (full path): checkpoint paths are relative to it.</param>
    /// <returns>The store.</returns>
    /// <exception cref="CoordinatorStateException">The store cannot be opened.</exception>
    ICoordinatorStateStore OpenState(string directory);

    /// <summary>Opens (creating if needed) the ledger store.</summary>
    /// <param name="directory">The state folder (full path).</param>
    /// <returns>The store.</returns>
    /// <exception cref="LedgerStorageException">The store cannot be opened.</exception>
    /// <exception cref="LedgerIntegrityException">The store holds an unsupported schema.</exception>
    ILedgerStore OpenLedger(string directory);

    /// <summary>Opens (creating if needed) the settlement store.</summary>
    /// <param name="directory">The state folder (full path).</param>
    /// <returns>The store.</returns>
    /// <exception cref="LedgerStorageException">The store cannot be opened.</exception>
    ISettlementStore OpenSettlement(string directory);

    /// <summary>
    /// Tries once, without waiting, to take the lease that lets this process serve the state (before any store is opened).
    /// A backend that several coordinator processes can share (PostgreSQL) grants it to one of them at a time; the others
    /// wait as standby and try again. A backend owned by one process (SQLite) always grants it.
    /// </summary>
    /// <param name="directory">The state folder (full path).</param>
    /// <param name="jobId">The job (for the lease's description).</param>
    /// <returns>The lease (dispose it to release it), or <see langword="null"/> when another process holds it.</returns>
    /// <exception cref="LedgerStorageException">The database cannot be reached (a standby logs it and tries again).</exception>
    ICoordinatorLease? TryAcquireLease(string directory, string jobId);

    /// <summary>
    /// Checks that the backend can serve the state now; the coordinator's health check calls it while the coordinator
    /// listens, so that a database that went away while no round was writing is reported before the next round fails on
    /// it. The default reports nothing: a backend kept in the state folder (SQLite) is covered by the check's own probe
    /// that the folder is writable.
    /// </summary>
    /// <param name="directory">The state folder (full path).</param>
    /// <param name="cancellationToken">Cancels the check.</param>
    /// <returns>Why the backend cannot serve (for the health report), or <see langword="null"/> when it can.</returns>
    Task<string?> CheckHealthAsync(string directory, CancellationToken cancellationToken) => Task.FromResult<string?>(null);
}

/// <summary>The embedded default backend: <c>coordinator.db</c>, <c>ledger.db</c> and <c>settlement.db</c> (SQLite, WAL, synchronous=FULL) in the state folder.</summary>
public sealed class SqliteStateBackend : ICoordinatorStateBackend
{
    private SqliteStateBackend()
    {
    }

    /// <summary>Gets the instance.</summary>
    public static SqliteStateBackend Instance { get; } = new();

    /// <inheritdoc/>
    public string Name => "SQLite";

    /// <inheritdoc/>
    public string Describe(string directory, StateStoreKind kind) => Path.Combine(directory, kind switch
    {
        StateStoreKind.State => CoordinatorStateFolder.StateFileName,
        StateStoreKind.Ledger => CoordinatorStateFolder.LedgerFileName,
        StateStoreKind.Settlement => CoordinatorStateFolder.SettlementFileName,
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    });

    /// <inheritdoc/>
    public StoreStatus Probe(string directory, StateStoreKind kind)
    {
        var file = new FileInfo(Describe(directory, kind));
        return !file.Exists ? StoreStatus.Missing : file.Length == 0 ? StoreStatus.Empty : StoreStatus.Present;
    }

    /// <inheritdoc/>
    public ICoordinatorStateStore OpenState(string directory) => new CoordinatorStateStore(Describe(directory, StateStoreKind.State));

    /// <inheritdoc/>
    public ILedgerStore OpenLedger(string directory) => new SqliteLedgerStore(Describe(directory, StateStoreKind.Ledger));

    /// <inheritdoc/>
    public ISettlementStore OpenSettlement(string directory) => new SettlementStore(Describe(directory, StateStoreKind.Settlement));

    /// <inheritdoc/>
    /// <remarks>The state folder belongs to one process: always <see cref="CoordinatorLease.Unshared"/>.</remarks>
    public ICoordinatorLease? TryAcquireLease(string directory, string jobId) => CoordinatorLease.Unshared;
}
