using Microsoft.Data.Sqlite;

namespace NearML.Ledger;

/// <summary>How hard SQLite works to make a committed batch survive.</summary>
public enum LedgerDurability
{
    /// <summary>WAL with <c>synchronous=FULL</c>: a committed batch survives a process kill and a power loss.</summary>
    Full,

    /// <summary>WAL with <c>synchronous=NORMAL</c>: a committed batch survives a process kill; a power loss may drop the last batches (never half of one).</summary>
    Normal,
}

/// <summary>
/// The default <see cref="ILedgerStore"/>: one SQLite file in WAL mode, one transaction per batch, triggers that
/// refuse UPDATE and DELETE on entries, and a small per-epoch index maintained in the same transaction.
/// </summary>
public sealed class SqliteLedgerStore : ILedgerStore
{
    private const int SchemaVersion = 1;
    private readonly SqliteConnection _connection;
    private readonly Lock _gate = new();
    private readonly LedgerDurability _durability;
    private readonly bool _readOnly;
    private bool _disposed;

    /// <summary>Opens (creating if needed) a ledger file.</summary>
    /// <param name="path">The SQLite file path.</param>
    /// <param name="durability">The durability level.</param>
    public SqliteLedgerStore(string path, LedgerDurability durability = LedgerDurability.Full)
        : this(path, durability, readOnly: false)
    {
    }

    private SqliteLedgerStore(string path, LedgerDurability durability, bool readOnly)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Path = System.IO.Path.GetFullPath(path);
        _durability = durability;
        _readOnly = readOnly;
        var csb = new SqliteConnectionStringBuilder { DataSource = Path, Mode = readOnly ? SqliteOpenMode.ReadOnly : SqliteOpenMode.ReadWriteCreate, Pooling = false };
        _connection = new SqliteConnection(csb.ToString());
        try
        {
            Initialize();
        }
        catch (SqliteException ex)
        {
            _connection.Dispose();
            throw new LedgerStorageException(Path, "opening the ledger", ex);
        }
        catch (LedgerIntegrityException)
        {
            _connection.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Opens an existing ledger file for reading only (verification, inspection beside a running writer): nothing is
    /// created, migrated or checkpointed, and <see cref="Append"/> throws <see cref="InvalidOperationException"/>.
    /// </summary>
    /// <param name="path">The SQLite file path.</param>
    /// <returns>The store.</returns>
    /// <exception cref="LedgerStorageException">The file is missing or is not a ledger.</exception>
    public static SqliteLedgerStore OpenReadOnly(string path) => new(path, LedgerDurability.Full, readOnly: true);

    /// <summary>Gets the full path of the SQLite file.</summary>
    public string Path { get; }

    /// <inheritdoc/>
    public string Location => Path;

    /// <inheritdoc/>
    public LedgerHead ReadHead()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            try
            {
                return ReadHeadCore(null);
            }
            catch (SqliteException ex)
            {
                throw new LedgerStorageException(Path, "reading the ledger head", ex);
            }
        }
    }

    /// <inheritdoc/>
    public void Append(LedgerHead expectedHead, IReadOnlyList<LedgerEntry> entries)
    {
        ArgumentNullException.ThrowIfNull(expectedHead);
        ArgumentNullException.ThrowIfNull(entries);
        if (entries.Count == 0)
        {
            return;
        }

        if (_readOnly)
        {
            throw new InvalidOperationException($"{Path} was opened read-only; nothing was appended.");
        }

        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            try
            {
                AppendCore(expectedHead, entries);
            }
            catch (SqliteException ex)
            {
                throw new LedgerStorageException(Path, $"appending {entries.Count} entries", ex);
            }
        }
    }

    private void AppendCore(LedgerHead expectedHead, IReadOnlyList<LedgerEntry> entries)
    {
        {
            using SqliteTransaction tx = _connection.BeginTransaction(deferred: false);
            LedgerHead actual = ReadHeadCore(tx);
            if (!actual.SameAs(expectedHead))
            {
                throw new LedgerIntegrityException(
                    $"{Path}: the ledger head moved (expected {expectedHead.Count} entries, found {actual.Count}); another writer appended concurrently.",
                    actual.Count);
            }

            using SqliteCommand insert = _connection.CreateCommand();
            insert.Transaction = tx;
            insert.CommandText = "INSERT INTO entries(seq, epoch, prev_hash, entry_hash, payload) VALUES ($s, $e, $p, $h, $d)";
            SqliteParameter ps = insert.Parameters.Add("$s", SqliteType.Integer);
            SqliteParameter pe = insert.Parameters.Add("$e", SqliteType.Integer);
            SqliteParameter pp = insert.Parameters.Add("$p", SqliteType.Blob);
            SqliteParameter ph = insert.Parameters.Add("$h", SqliteType.Blob);
            SqliteParameter pd = insert.Parameters.Add("$d", SqliteType.Blob);
            insert.Prepare();

            using SqliteCommand epochCmd = _connection.CreateCommand();
            epochCmd.Transaction = tx;
            epochCmd.CommandText = "INSERT INTO epochs(epoch, first_seq, count) VALUES ($e, $f, $c) ON CONFLICT(epoch) DO UPDATE SET count = count + $c";
            SqliteParameter ee = epochCmd.Parameters.Add("$e", SqliteType.Integer);
            SqliteParameter ef = epochCmd.Parameters.Add("$f", SqliteType.Integer);
            SqliteParameter ec = epochCmd.Parameters.Add("$c", SqliteType.Integer);

            long runEpoch = entries[0].Epoch;
            long runFirst = entries[0].Sequence;
            long runCount = 0;
            foreach (LedgerEntry e in entries)
            {
                if (e.Epoch != runEpoch)
                {
                    FlushEpoch(epochCmd, ee, ef, ec, runEpoch, runFirst, runCount);
                    runEpoch = e.Epoch;
                    runFirst = e.Sequence;
                    runCount = 0;
                }

                ps.Value = e.Sequence;
                pe.Value = e.Epoch;
                pp.Value = e.PreviousHash;
                ph.Value = e.Hash;
                pd.Value = e.Payload;
                insert.ExecuteNonQuery();
                runCount++;
            }

            FlushEpoch(epochCmd, ee, ef, ec, runEpoch, runFirst, runCount);
            tx.Commit();
        }
    }

    /// <inheritdoc/>
    public IEnumerable<LedgerEntry> Read(long fromSequence, long maxCount = -1)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fromSequence);
        ObjectDisposedException.ThrowIf(_disposed, this);
        return ReadIterator(fromSequence, maxCount);
    }

    /// <inheritdoc/>
    public (long FirstSequence, long Count)? GetEpochRange(long epoch)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            try
            {
                using SqliteCommand cmd = _connection.CreateCommand();
                cmd.CommandText = "SELECT first_seq, count FROM epochs WHERE epoch = $e";
                cmd.Parameters.AddWithValue("$e", epoch);
                using SqliteDataReader r = cmd.ExecuteReader();
                return r.Read() ? (r.GetInt64(0), r.GetInt64(1)) : null;
            }
            catch (SqliteException ex)
            {
                throw new LedgerStorageException(Path, "reading the epoch index", ex);
            }
        }
    }

    /// <inheritdoc/>
    public IReadOnlyList<long> ListEpochs()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            try
            {
                using SqliteCommand cmd = _connection.CreateCommand();
                cmd.CommandText = "SELECT epoch FROM epochs ORDER BY epoch";
                using SqliteDataReader r = cmd.ExecuteReader();
                var list = new List<long>();
                while (r.Read())
                {
                    list.Add(r.GetInt64(0));
                }

                return list;
            }
            catch (SqliteException ex)
            {
                throw new LedgerStorageException(Path, "reading the epoch index", ex);
            }
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _connection.Dispose();
        }
    }

    private IEnumerable<LedgerEntry> ReadIterator(long fromSequence, long maxCount)
    {
        // A separate read-only connection: WAL lets it read a consistent snapshot while the writer appends.
        var csb = new SqliteConnectionStringBuilder { DataSource = Path, Mode = SqliteOpenMode.ReadOnly, Pooling = false };
        using var conn = new SqliteConnection(csb.ToString());
        using SqliteCommand cmd = conn.CreateCommand();
        cmd.CommandText = maxCount < 0
            ? "SELECT seq, epoch, prev_hash, entry_hash, payload FROM entries WHERE seq >= $f ORDER BY seq"
            : "SELECT seq, epoch, prev_hash, entry_hash, payload FROM entries WHERE seq >= $f ORDER BY seq LIMIT $n";
        cmd.Parameters.AddWithValue("$f", fromSequence);
        if (maxCount >= 0)
        {
            cmd.Parameters.AddWithValue("$n", maxCount);
        }

        SqliteDataReader r;
        try
        {
            conn.Open();
            r = cmd.ExecuteReader();
        }
        catch (SqliteException ex)
        {
            throw new LedgerStorageException(Path, "reading entries", ex);
        }

        using (r)
        {
            while (true)
            {
                LedgerEntry entry;
                try
                {
                    if (!r.Read())
                    {
                        yield break;
                    }

                    entry = new LedgerEntry(r.GetInt64(0), r.GetInt64(1), (byte[])r.GetValue(2), (byte[])r.GetValue(3), (byte[])r.GetValue(4));
                }
                catch (SqliteException ex)
                {
                    throw new LedgerStorageException(Path, "reading entries", ex);
                }

                yield return entry;
            }
        }
    }

    private static void FlushEpoch(SqliteCommand cmd, SqliteParameter e, SqliteParameter f, SqliteParameter c, long epoch, long first, long count)
    {
        e.Value = epoch;
        f.Value = first;
        c.Value = count;
        cmd.ExecuteNonQuery();
    }

    private LedgerHead ReadHeadCore(SqliteTransaction? tx)
    {
        using SqliteCommand cmd = _connection.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "SELECT seq, entry_hash, epoch FROM entries ORDER BY seq DESC LIMIT 1";
        using SqliteDataReader r = cmd.ExecuteReader();
        return r.Read() ? new LedgerHead(r.GetInt64(0) + 1, (byte[])r.GetValue(1), r.GetInt64(2)) : LedgerHead.Empty;
    }

    private void Initialize()
    {
        _connection.Open();
        if (_readOnly)
        {
            Execute("PRAGMA busy_timeout=10000;");
            CheckSchemaVersion();
            return;
        }

        Execute("PRAGMA journal_mode=WAL;");
        Execute(_durability == LedgerDurability.Full ? "PRAGMA synchronous=FULL;" : "PRAGMA synchronous=NORMAL;");
        Execute("PRAGMA busy_timeout=10000;");
        Execute("""
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
            CREATE TABLE IF NOT EXISTS entries (
                seq INTEGER PRIMARY KEY,
                epoch INTEGER NOT NULL,
                prev_hash BLOB NOT NULL,
                entry_hash BLOB NOT NULL,
                payload BLOB NOT NULL) STRICT;
            CREATE TABLE IF NOT EXISTS epochs (
                epoch INTEGER PRIMARY KEY,
                first_seq INTEGER NOT NULL,
                count INTEGER NOT NULL) STRICT;
            CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries
                BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
            CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
                BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
            INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', '1');
            """);
        CheckSchemaVersion();
    }

    private void CheckSchemaVersion()
    {
        using SqliteCommand check = _connection.CreateCommand();
        check.CommandText = "SELECT value FROM meta WHERE key = 'schema_version'";
        string? version = check.ExecuteScalar() as string;
        if (version != SchemaVersion.ToString(System.Globalization.CultureInfo.InvariantCulture))
        {
            throw new LedgerIntegrityException($"{Path}: ledger schema version '{version}' is not supported (expected {SchemaVersion}).");
        }
    }

    private void Execute(string sql)
    {
        using SqliteCommand cmd = _connection.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }
}
