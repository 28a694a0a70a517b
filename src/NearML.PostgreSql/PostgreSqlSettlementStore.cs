using System.Globalization;
using Npgsql;
using NearML.Ledger;
using NearML.PostgreSql.Internal;

namespace NearML.PostgreSql;

/// <summary>
/// An <see cref="ISettlementStore"/> in PostgreSQL (tables <c>settlement_intents</c>, <c>settlement_txs</c> of one
/// schema): the same semantics as the SQLite <see cref="SettlementStore"/>. An intent or transaction that exists is never
/// overwritten (the primary keys refuse it, surfacing as <see cref="LedgerStorageException"/>), so a retried settlement
/// re-sends the stored bytes instead of signing again: exactly once across crashes and across coordinator processes.
/// </summary>
public sealed class PostgreSqlSettlementStore : ISettlementStore
{
    private readonly PgSchema _schema;
    private volatile bool _disposed;

    /// <summary>Opens (creating the tables if needed) the settlement state in <paramref name="schema"/>.</summary>
    /// <param name="dataSource">The database (not disposed by the store).</param>
    /// <param name="schema">The schema (one per job).</param>
    /// <exception cref="LedgerStorageException">The database cannot be reached or the tables cannot be created.</exception>
    public PostgreSqlSettlementStore(NpgsqlDataSource dataSource, string schema = PostgreSqlStateOptions.DefaultSchema)
    {
        _schema = new PgSchema(dataSource, schema);
        Location = _schema.Describe("settlement_intents, settlement_txs");
        Run("opening the settlement state", () =>
        {
            _schema.CreateTables("""
                CREATE TABLE IF NOT EXISTS settlement_intents (
                    epoch bigint PRIMARY KEY, root bytea NOT NULL, payouts bytea NOT NULL, dry_run boolean NOT NULL, settled boolean NOT NULL);
                CREATE TABLE IF NOT EXISTS settlement_txs (
                    epoch bigint NOT NULL, slot integer NOT NULL, attempt integer NOT NULL, nonce numeric(20) NOT NULL, hash text NOT NULL,
                    signed bytea NOT NULL, state text NOT NULL, outcome text, PRIMARY KEY (epoch, slot, attempt));
                """);
            return 0;
        });
    }

    /// <inheritdoc/>
    public string Location { get; }

    /// <inheritdoc/>
    public SettlementIntent? GetIntent(long epoch) => Run("reading the intent of epoch " + epoch.ToString(CultureInfo.InvariantCulture), () =>
    {
        using var conn = _schema.DataSource.OpenConnection();
        using var cmd = _schema.Command(conn, "SELECT root, payouts, dry_run, settled FROM {s}.settlement_intents WHERE epoch = $1");
        cmd.Parameters.AddWithValue(epoch);
        using var r = cmd.ExecuteReader();
        return r.Read()
            ? new SettlementIntent(epoch, (byte[])r.GetValue(0), SettlementStore.DecodePayouts((byte[])r.GetValue(1)), r.GetBoolean(2), r.GetBoolean(3))
            : null;
    });

    /// <inheritdoc/>
    public IReadOnlyList<long> ListEpochs() => Run("listing settlement intents", () =>
    {
        using var conn = _schema.DataSource.OpenConnection();
        using var cmd = _schema.Command(conn, "SELECT epoch FROM {s}.settlement_intents ORDER BY epoch");
        using var r = cmd.ExecuteReader();
        var list = new List<long>();
        while (r.Read())
        {
            list.Add(r.GetInt64(0));
        }

        return (IReadOnlyList<long>)list;
    });

    /// <inheritdoc/>
    public void CreateIntent(SettlementIntent intent)
    {
        ArgumentNullException.ThrowIfNull(intent);
        Run("storing the intent of epoch " + intent.Epoch.ToString(CultureInfo.InvariantCulture), () =>
        {
            using var conn = _schema.DataSource.OpenConnection();
            using var cmd = _schema.Command(conn, "INSERT INTO {s}.settlement_intents(epoch, root, payouts, dry_run, settled) VALUES ($1, $2, $3, $4, false)");
            cmd.Parameters.AddWithValue(intent.Epoch);
            cmd.Parameters.AddWithValue(intent.Root);
            cmd.Parameters.AddWithValue(SettlementStore.EncodePayouts(intent.Payouts));
            cmd.Parameters.AddWithValue(intent.DryRun);
            return cmd.ExecuteNonQuery();
        });
    }

    /// <inheritdoc/>
    public void MarkSettled(long epoch) => Run("marking epoch " + epoch.ToString(CultureInfo.InvariantCulture) + " settled", () =>
    {
        using var conn = _schema.DataSource.OpenConnection();
        using var cmd = _schema.Command(conn, "UPDATE {s}.settlement_intents SET settled = true WHERE epoch = $1");
        cmd.Parameters.AddWithValue(epoch);
        return cmd.ExecuteNonQuery();
    });

    /// <inheritdoc/>
    public IReadOnlyList<SettlementTransaction> GetTransactions(long epoch) => Run("reading settlement transactions", () =>
    {
        using var conn = _schema.DataSource.OpenConnection();
        using var cmd = _schema.Command(conn, "SELECT slot, attempt, nonce::text, hash, signed, state, outcome FROM {s}.settlement_txs WHERE epoch = $1 ORDER BY slot, attempt");
        cmd.Parameters.AddWithValue(epoch);
        using var r = cmd.ExecuteReader();
        var list = new List<SettlementTransaction>();
        while (r.Read())
        {
            list.Add(new SettlementTransaction(epoch, r.GetInt32(0), r.GetInt32(1), ulong.Parse(r.GetString(2), CultureInfo.InvariantCulture),
                r.GetString(3), (byte[])r.GetValue(4), Enum.Parse<SettlementTxState>(r.GetString(5)), r.IsDBNull(6) ? null : r.GetString(6)));
        }

        return (IReadOnlyList<SettlementTransaction>)list;
    });

    /// <inheritdoc/>
    public void AddTransaction(SettlementTransaction tx)
    {
        ArgumentNullException.ThrowIfNull(tx);
        Run("storing a signed settlement transaction", () =>
        {
            using var conn = _schema.DataSource.OpenConnection();
            using var cmd = _schema.Command(conn, "INSERT INTO {s}.settlement_txs(epoch, slot, attempt, nonce, hash, signed, state, outcome) VALUES ($1, $2, $3, $4::numeric, $5, $6, $7, $8)");
            cmd.Parameters.AddWithValue(tx.Epoch);
            cmd.Parameters.AddWithValue(tx.Slot);
            cmd.Parameters.AddWithValue(tx.Attempt);
            cmd.Parameters.AddWithValue(tx.Nonce.ToString(CultureInfo.InvariantCulture));
            cmd.Parameters.AddWithValue(tx.Hash);
            cmd.Parameters.AddWithValue(tx.SignedBytes);
            cmd.Parameters.AddWithValue(tx.State.ToString());
            cmd.Parameters.Add(new NpgsqlParameter { Value = (object?)tx.Outcome ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
            return cmd.ExecuteNonQuery();
        });
    }

    /// <inheritdoc/>
    public void SetState(long epoch, int slot, int attempt, SettlementTxState state, string? outcome) => Run("updating a settlement transaction", () =>
    {
        using var conn = _schema.DataSource.OpenConnection();
        using var cmd = _schema.Command(conn, "UPDATE {s}.settlement_txs SET state = $1, outcome = $2 WHERE epoch = $3 AND slot = $4 AND attempt = $5");
        cmd.Parameters.AddWithValue(state.ToString());
        cmd.Parameters.Add(new NpgsqlParameter { Value = (object?)outcome ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        cmd.Parameters.AddWithValue(epoch);
        cmd.Parameters.AddWithValue(slot);
        cmd.Parameters.AddWithValue(attempt);
        return cmd.ExecuteNonQuery();
    });

    /// <inheritdoc/>
    public void Dispose() => _disposed = true;

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
