using Npgsql;
using NpgsqlTypes;
using NearML.Ledger;
using NearML.PostgreSql.Internal;

namespace NearML.PostgreSql;

/// <summary>
/// An <see cref="ILedgerStore"/> in PostgreSQL (tables <c>ledger_entries</c>, <c>ledger_epochs</c>, <c>ledger_meta</c>
/// of one schema): the same semantics as <see cref="SqliteLedgerStore"/>. A batch is one transaction that takes an
/// exclusive lock on the entries table, checks the expected head and inserts the batch and its epoch index, so two
/// writers (two coordinator processes) cannot interleave; triggers refuse UPDATE and DELETE of entries. Commits are
/// durable when the server's <c>synchronous_commit</c> is on (PostgreSQL's default). Thread-safe: every call takes a
/// pooled connection from the data source.
/// </summary>
public sealed class PostgreSqlLedgerStore : ILedgerStore
{
    private const int SchemaVersion = 1;
    private readonly PgSchema _schema;
    private volatile bool _disposed;

    /// <summary>Opens (creating the tables if needed) the ledger in <paramref name="schema"/>.</summary>
    /// <param name="dataSource">The database (not disposed by the store).</param>
    /// <param name="schema">The schema (one per job): lowercase letters, digits, underscores.</param>
    /// <exception cref="LedgerStorageException">The database cannot be reached or the tables cannot be created.</exception>
    /// <exception cref="LedgerIntegrityException">The schema holds another ledger schema version.</exception>
    public PostgreSqlLedgerStore(NpgsqlDataSource dataSource, string schema = PostgreSqlStateOptions.DefaultSchema)
    {
        _schema = new PgSchema(dataSource, schema);
        Location = _schema.Describe("ledger_entries");
        try
        {
            _schema.CreateTables($"""
                CREATE TABLE IF NOT EXISTS ledger_meta (key text PRIMARY KEY, value text NOT NULL);
                CREATE TABLE IF NOT EXISTS ledger_entries (
                    seq bigint PRIMARY KEY CHECK (seq >= 0), epoch bigint NOT NULL, prev_hash bytea NOT NULL,
                    entry_hash bytea NOT NULL, payload bytea NOT NULL);
                CREATE TABLE IF NOT EXISTS ledger_epochs (epoch bigint PRIMARY KEY, first_seq bigint NOT NULL, count bigint NOT NULL);
                CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS
                    $f$ BEGIN RAISE EXCEPTION 'ledger entries are append-only'; END $f$;
                DROP TRIGGER IF EXISTS ledger_entries_append_only ON ledger_entries;
                CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger_entries
                    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
                INSERT INTO ledger_meta(key, value) VALUES ('schema_version', '{SchemaVersion}') ON CONFLICT (key) DO NOTHING;
                """);
            using var conn = _schema.DataSource.OpenConnection();
            using var check = _schema.Command(conn, "SELECT value FROM {s}.ledger_meta WHERE key = 'schema_version'");
            var version = check.ExecuteScalar() as string;
            if (version != SchemaVersion.ToString(System.Globalization.CultureInfo.InvariantCulture))
            {
                throw new LedgerIntegrityException($"{Location}: ledger schema version '{version}' is not supported (expected {SchemaVersion}).");
            }
        }
        catch (NpgsqlException ex)
        {
            throw new LedgerStorageException(Location, "opening the ledger", ex);
        }
    }

    /// <inheritdoc/>
    public string Location { get; }

    /// <inheritdoc/>
    public LedgerHead ReadHead() => Run("reading the ledger head", () =>
    {
        using var conn = _schema.DataSource.OpenConnection();
        return ReadHeadCore(conn, null);
    });

    /// <inheritdoc/>
    public void Append(LedgerHead expectedHead, IReadOnlyList<LedgerEntry> entries)
    {
        ArgumentNullException.ThrowIfNull(expectedHead);
        ArgumentNullException.ThrowIfNull(entries);
        if (entries.Count == 0)
        {
            return;
        }

        Run($"appending {entries.Count} entries", () =>
        {
            using var conn = _schema.DataSource.OpenConnection();
            using var tx = conn.BeginTransaction();
            using (var lockCmd = _schema.Command(conn, "LOCK TABLE {s}.ledger_entries IN EXCLUSIVE MODE", tx))
            {
                lockCmd.ExecuteNonQuery();
            }

            var actual = ReadHeadCore(conn, tx);
            if (!actual.SameAs(expectedHead))
            {
                throw new LedgerIntegrityException(
                    $"{Location}: the ledger head moved (expected {expectedHead.Count} entries, found {actual.Count}); another writer appended concurrently.",
                    actual.Count);
            }

            var n = entries.Count;
            var seq = new long[n];
            var epoch = new long[n];
            var prev = new byte[n][];
            var hash = new byte[n][];
            var payload = new byte[n][];
            for (var i = 0; i < n; i++)
            {
                var e = entries[i];
                (seq[i], epoch[i], prev[i], hash[i], payload[i]) = (e.Sequence, e.Epoch, e.PreviousHash, e.Hash, e.Payload);
            }

            using (var insert = _schema.Command(conn, "INSERT INTO {s}.ledger_entries(seq, epoch, prev_hash, entry_hash, payload) SELECT * FROM unnest($1, $2, $3, $4, $5)", tx))
            {
                insert.Parameters.Add(new NpgsqlParameter { Value = seq, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
                insert.Parameters.Add(new NpgsqlParameter { Value = epoch, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
                insert.Parameters.Add(new NpgsqlParameter { Value = prev, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bytea });
                insert.Parameters.Add(new NpgsqlParameter { Value = hash, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bytea });
                insert.Parameters.Add(new NpgsqlParameter { Value = payload, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bytea });
                insert.ExecuteNonQuery();
            }

            using var epochCmd = _schema.Command(conn,
                "INSERT INTO {s}.ledger_epochs(epoch, first_seq, count) VALUES ($1, $2, $3) ON CONFLICT (epoch) DO UPDATE SET count = {s}.ledger_epochs.count + EXCLUDED.count", tx);
            var pe = epochCmd.Parameters.Add(new NpgsqlParameter<long>());
            var pf = epochCmd.Parameters.Add(new NpgsqlParameter<long>());
            var pc = epochCmd.Parameters.Add(new NpgsqlParameter<long>());
            var runStart = 0;
            for (var i = 1; i <= n; i++)
            {
                if (i == n || entries[i].Epoch != entries[runStart].Epoch)
                {
                    pe.Value = entries[runStart].Epoch;
                    pf.Value = entries[runStart].Sequence;
                    pc.Value = (long)(i - runStart);
                    epochCmd.ExecuteNonQuery();
                    runStart = i;
                }
            }

            tx.Commit();
            return 0;
        });
    }

    /// <inheritdoc/>
    public IEnumerable<LedgerEntry> Read(long fromSequence, long maxCount = -1)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fromSequence);
        ObjectDisposedException.ThrowIf(_disposed, this);
        return ReadIterator(fromSequence, maxCount);
    }

    /// <inheritdoc/>
    public (long FirstSequence, long Count)? GetEpochRange(long epoch) => Run("reading the epoch index", () =>
    {
        using var conn = _schema.DataSource.OpenConnection();
        using var cmd = _schema.Command(conn, "SELECT first_seq, count FROM {s}.ledger_epochs WHERE epoch = $1");
        cmd.Parameters.AddWithValue(epoch);
        using var r = cmd.ExecuteReader();
        return r.Read() ? (r.GetInt64(0), r.GetInt64(1)) : ((long, long)?)null;
    });

    /// <inheritdoc/>
    public IReadOnlyList<long> ListEpochs() => Run("reading the epoch index", () =>
    {
        using var conn = _schema.DataSource.OpenConnection();
        using var cmd = _schema.Command(conn, "SELECT epoch FROM {s}.ledger_epochs ORDER BY epoch");
        using var r = cmd.ExecuteReader();
        var list = new List<long>();
        while (r.Read())
        {
            list.Add(r.GetInt64(0));
        }

        return (IReadOnlyList<long>)list;
    });

    /// <inheritdoc/>
    public void Dispose() => _disposed = true;

    private static LedgerHead ReadHeadCore(NpgsqlConnection conn, NpgsqlTransaction? tx, PgSchema schema)
    {
        using var cmd = schema.Command(conn, "SELECT seq, entry_hash, epoch FROM {s}.ledger_entries ORDER BY seq DESC LIMIT 1", tx);
        using var r = cmd.ExecuteReader();
        return r.Read() ? new LedgerHead(r.GetInt64(0) + 1, (byte[])r.GetValue(1), r.GetInt64(2)) : LedgerHead.Empty;
    }

    private LedgerHead ReadHeadCore(NpgsqlConnection conn, NpgsqlTransaction? tx) => ReadHeadCore(conn, tx, _schema);

    private IEnumerable<LedgerEntry> ReadIterator(long fromSequence, long maxCount)
    {
        NpgsqlConnection conn;
        NpgsqlCommand cmd;
        NpgsqlDataReader r;
        try
        {
            conn = _schema.DataSource.OpenConnection();
            cmd = _schema.Command(conn, maxCount < 0
                ? "SELECT seq, epoch, prev_hash, entry_hash, payload FROM {s}.ledger_entries WHERE seq >= $1 ORDER BY seq"
                : "SELECT seq, epoch, prev_hash, entry_hash, payload FROM {s}.ledger_entries WHERE seq >= $1 ORDER BY seq LIMIT $2");
            cmd.Parameters.AddWithValue(fromSequence);
            if (maxCount >= 0)
            {
                cmd.Parameters.AddWithValue(maxCount);
            }

            r = cmd.ExecuteReader();
        }
        catch (NpgsqlException ex)
        {
            throw new LedgerStorageException(Location, "reading entries", ex);
        }

        using (conn)
        using (cmd)
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
                catch (NpgsqlException ex)
                {
                    throw new LedgerStorageException(Location, "reading entries", ex);
                }

                yield return entry;
            }
        }
    }

    private T Run<T>(string operation, Func<T> action)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        try
        {
            return action();
        }
        catch (NpgsqlException ex)
        {
            throw new LedgerStorageException(Location, operation, ex);
        }
    }
}
