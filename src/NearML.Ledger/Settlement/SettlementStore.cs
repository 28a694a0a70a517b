using Microsoft.Data.Sqlite;
using NearML.Core;

namespace NearML.Ledger;

/// <summary>The state of a stored settlement transaction.</summary>
public enum SettlementTxState
{
    /// <summary>Signed and stored; may or may not have been sent. Re-send the same bytes until final.</summary>
    Signed,

    /// <summary>Final and successful.</summary>
    Succeeded,

    /// <summary>Final and failed during execution (for example an ft_transfer to an unregistered account). Never re-sent.</summary>
    Failed,

    /// <summary>
    /// Proven unable to land: its nonce is consumed in a final block by a transaction that is not one of this slot's attempts
    /// (or another attempt of the slot landed). A later attempt may use a new nonce.
    /// </summary>
    Superseded,

    /// <summary>
    /// Its block hash expired while the chain did not know it. It is not proven dead (it may still wait in a pool), so its
    /// successor is signed with <b>the same nonce</b>: at most one of the two can ever execute, and both are watched.
    /// </summary>
    Replaced,
}

/// <summary>One stored settlement transaction.</summary>
/// <param name="Epoch">The epoch.</param>
/// <param name="Slot">The transaction's position in the settlement plan.</param>
/// <param name="Attempt">0 for the first signature; higher after a proven-dead attempt was superseded.</param>
/// <param name="Nonce">The nonce.</param>
/// <param name="Hash">The transaction hash (base58).</param>
/// <param name="SignedBytes">The exact Borsh bytes that are (re-)sent.</param>
/// <param name="State">The state.</param>
/// <param name="Outcome">The final outcome JSON, if known.</param>
public sealed record SettlementTransaction(long Epoch, int Slot, int Attempt, ulong Nonce, string Hash, byte[] SignedBytes, SettlementTxState State, string? Outcome);

/// <summary>A persisted settlement intent: what will be paid for an epoch and the ledger root it commits to.</summary>
/// <param name="Epoch">The epoch.</param>
/// <param name="Root">The epoch's ledger Merkle root.</param>
/// <param name="Payouts">The payouts.</param>
/// <param name="DryRun">Whether the intent was created by a dry run (such an intent is never sent).</param>
/// <param name="Settled">Whether every transaction is final.</param>
public sealed record SettlementIntent(long Epoch, byte[] Root, IReadOnlyList<WorkerPayout> Payouts, bool DryRun, bool Settled);

/// <summary>
/// Durable settlement bookkeeping: the intent of each epoch (created once, before anything is signed) and every signed
/// transaction (stored before it is sent). <see cref="NearSettler"/> relies on these rules, which every implementation
/// keeps: <see cref="CreateIntent"/> and <see cref="AddTransaction"/> refuse a duplicate key (the same epoch; the same
/// epoch, slot and attempt) with a <see cref="LedgerStorageException"/> instead of overwriting it, every call is durable when
/// it returns, and nothing is ever deleted. <see cref="SettlementStore"/> (SQLite) is the embedded default.
/// </summary>
public interface ISettlementStore : IDisposable
{
    /// <summary>Gets a description of where the state is kept (a file path, or a database and schema), for messages.</summary>
    string Location { get; }

    /// <summary>Reads an intent.</summary>
    /// <param name="epoch">The epoch.</param>
    /// <returns>The intent, or <see langword="null"/>.</returns>
    SettlementIntent? GetIntent(long epoch);

    /// <summary>Lists the epochs that have an intent, ascending.</summary>
    /// <returns>The epochs.</returns>
    IReadOnlyList<long> ListEpochs();

    /// <summary>Stores an intent (durably, before anything is signed).</summary>
    /// <param name="intent">The intent.</param>
    /// <exception cref="LedgerStorageException">An intent of that epoch exists, or the storage failed.</exception>
    void CreateIntent(SettlementIntent intent);

    /// <summary>Marks an intent settled.</summary>
    /// <param name="epoch">The epoch.</param>
    void MarkSettled(long epoch);

    /// <summary>Returns every stored transaction of an epoch, by slot then attempt.</summary>
    /// <param name="epoch">The epoch.</param>
    /// <returns>The transactions.</returns>
    IReadOnlyList<SettlementTransaction> GetTransactions(long epoch);

    /// <summary>Stores a newly signed transaction (durably, before it is sent).</summary>
    /// <param name="tx">The transaction.</param>
    /// <exception cref="LedgerStorageException">A transaction with the same epoch, slot and attempt exists, or the storage failed.</exception>
    void AddTransaction(SettlementTransaction tx);

    /// <summary>Updates a transaction's state and outcome.</summary>
    /// <param name="epoch">The epoch.</param>
    /// <param name="slot">The slot.</param>
    /// <param name="attempt">The attempt.</param>
    /// <param name="state">The new state.</param>
    /// <param name="outcome">The outcome JSON, if any.</param>
    void SetState(long epoch, int slot, int attempt, SettlementTxState state, string? outcome);
}

/// <summary>
/// The default <see cref="ISettlementStore"/>: SQLite persistence of settlement intents and signed transactions (WAL,
/// synchronous=FULL). Every SQLite error surfaces as a <see cref="LedgerStorageException"/> naming the file.
/// </summary>
public sealed class SettlementStore : ISettlementStore
{
    private readonly SqliteConnection _connection;
    private readonly Lock _gate = new();

    /// <summary>Opens (creating if needed) a settlement store.</summary>
    /// <param name="path">The SQLite file.</param>
    /// <exception cref="LedgerStorageException">The file cannot be opened or is not a database.</exception>
    public SettlementStore(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Path = System.IO.Path.GetFullPath(path);
        _connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path, Pooling = false }.ToString());
        try
        {
            _connection.Open();
            Execute("""
                PRAGMA journal_mode=WAL;
                PRAGMA synchronous=FULL;
                PRAGMA busy_timeout=10000;
                CREATE TABLE IF NOT EXISTS intents (
                    epoch INTEGER PRIMARY KEY, root BLOB NOT NULL, payouts BLOB NOT NULL, dry_run INTEGER NOT NULL, settled INTEGER NOT NULL) STRICT;
                CREATE TABLE IF NOT EXISTS txs (
                    epoch INTEGER NOT NULL, slot INTEGER NOT NULL, attempt INTEGER NOT NULL, nonce TEXT NOT NULL, hash TEXT NOT NULL,
                    signed BLOB NOT NULL, state TEXT NOT NULL, outcome TEXT, PRIMARY KEY (epoch, slot, attempt)) STRICT;
                """);
        }
        catch (SqliteException ex)
        {
            _connection.Dispose();
            throw new LedgerStorageException(Path, "opening the settlement state", ex);
        }
    }

    /// <summary>Gets the file path.</summary>
    public string Path { get; }

    /// <inheritdoc/>
    public string Location => Path;

    /// <inheritdoc/>
    public SettlementIntent? GetIntent(long epoch) => Locked("reading the intent of epoch " + epoch.ToString(System.Globalization.CultureInfo.InvariantCulture), () =>
    {
        using SqliteCommand cmd = _connection.CreateCommand();
        cmd.CommandText = "SELECT root, payouts, dry_run, settled FROM intents WHERE epoch = $e";
        cmd.Parameters.AddWithValue("$e", epoch);
        using SqliteDataReader r = cmd.ExecuteReader();
        if (!r.Read())
        {
            return null;
        }

        return new SettlementIntent(epoch, (byte[])r.GetValue(0), DecodePayouts((byte[])r.GetValue(1)), r.GetInt64(2) != 0, r.GetInt64(3) != 0);
    });

    /// <inheritdoc/>
    public IReadOnlyList<long> ListEpochs() => Locked("listing settlement intents", () =>
    {
        using SqliteCommand cmd = _connection.CreateCommand();
        cmd.CommandText = "SELECT epoch FROM intents ORDER BY epoch";
        using SqliteDataReader r = cmd.ExecuteReader();
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
        Locked("storing the intent of epoch " + intent.Epoch.ToString(System.Globalization.CultureInfo.InvariantCulture), () =>
        {
            using SqliteCommand cmd = _connection.CreateCommand();
            cmd.CommandText = "INSERT INTO intents(epoch, root, payouts, dry_run, settled) VALUES ($e, $r, $p, $d, 0)";
            cmd.Parameters.AddWithValue("$e", intent.Epoch);
            cmd.Parameters.AddWithValue("$r", intent.Root);
            cmd.Parameters.AddWithValue("$p", EncodePayouts(intent.Payouts));
            cmd.Parameters.AddWithValue("$d", intent.DryRun ? 1 : 0);
            return cmd.ExecuteNonQuery();
        });
    }

    /// <inheritdoc/>
    public void MarkSettled(long epoch) => Locked("marking epoch " + epoch.ToString(System.Globalization.CultureInfo.InvariantCulture) + " settled", () =>
    {
        using SqliteCommand cmd = _connection.CreateCommand();
        cmd.CommandText = "UPDATE intents SET settled = 1 WHERE epoch = $e";
        cmd.Parameters.AddWithValue("$e", epoch);
        return cmd.ExecuteNonQuery();
    });

    /// <inheritdoc/>
    public IReadOnlyList<SettlementTransaction> GetTransactions(long epoch) => Locked("reading settlement transactions", () =>
    {
        using SqliteCommand cmd = _connection.CreateCommand();
        cmd.CommandText = "SELECT slot, attempt, nonce, hash, signed, state, outcome FROM txs WHERE epoch = $e ORDER BY slot, attempt";
        cmd.Parameters.AddWithValue("$e", epoch);
        using SqliteDataReader r = cmd.ExecuteReader();
        var list = new List<SettlementTransaction>();
        while (r.Read())
        {
            list.Add(new SettlementTransaction(epoch, r.GetInt32(0), r.GetInt32(1), ulong.Parse(r.GetString(2), System.Globalization.CultureInfo.InvariantCulture),
                r.GetString(3), (byte[])r.GetValue(4), Enum.Parse<SettlementTxState>(r.GetString(5)), r.IsDBNull(6) ? null : r.GetString(6)));
        }

        return (IReadOnlyList<SettlementTransaction>)list;
    });

    /// <inheritdoc/>
    public void AddTransaction(SettlementTransaction tx)
    {
        ArgumentNullException.ThrowIfNull(tx);
        Locked("storing a signed settlement transaction", () =>
        {
            using SqliteCommand cmd = _connection.CreateCommand();
            cmd.CommandText = "INSERT INTO txs(epoch, slot, attempt, nonce, hash, signed, state, outcome) VALUES ($e, $s, $a, $n, $h, $b, $st, $o)";
            cmd.Parameters.AddWithValue("$e", tx.Epoch);
            cmd.Parameters.AddWithValue("$s", tx.Slot);
            cmd.Parameters.AddWithValue("$a", tx.Attempt);
            cmd.Parameters.AddWithValue("$n", tx.Nonce.ToString(System.Globalization.CultureInfo.InvariantCulture));
            cmd.Parameters.AddWithValue("$h", tx.Hash);
            cmd.Parameters.AddWithValue("$b", tx.SignedBytes);
            cmd.Parameters.AddWithValue("$st", tx.State.ToString());
            cmd.Parameters.AddWithValue("$o", (object?)tx.Outcome ?? DBNull.Value);
            return cmd.ExecuteNonQuery();
        });
    }

    /// <inheritdoc/>
    public void SetState(long epoch, int slot, int attempt, SettlementTxState state, string? outcome) => Locked("updating a settlement transaction", () =>
    {
        using SqliteCommand cmd = _connection.CreateCommand();
        cmd.CommandText = "UPDATE txs SET state = $st, outcome = $o WHERE epoch = $e AND slot = $s AND attempt = $a";
        cmd.Parameters.AddWithValue("$e", epoch);
        cmd.Parameters.AddWithValue("$s", slot);
        cmd.Parameters.AddWithValue("$a", attempt);
        cmd.Parameters.AddWithValue("$st", state.ToString());
        cmd.Parameters.AddWithValue("$o", (object?)outcome ?? DBNull.Value);
        return cmd.ExecuteNonQuery();
    });

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (_gate)
        {
            _connection.Dispose();
        }
    }

    /// <summary>Encodes payouts as stored with an intent (Borsh: count, then worker id, work, amount), the form every backend stores.</summary>
    /// <param name="payouts">The payouts.</param>
    /// <returns>The bytes.</returns>
    public static byte[] EncodePayouts(IReadOnlyList<WorkerPayout> payouts)
    {
        ArgumentNullException.ThrowIfNull(payouts);
        var w = new BorshWriter();
        w.WriteU32((uint)payouts.Count);
        foreach (WorkerPayout p in payouts)
        {
            w.WriteString(p.WorkerId);
            w.WriteU128(p.Work);
            w.WriteU128(p.Amount);
        }

        return w.ToArray();
    }

    /// <summary>Decodes payouts stored by <see cref="EncodePayouts"/>.</summary>
    /// <param name="bytes">The bytes.</param>
    /// <returns>The payouts.</returns>
    /// <exception cref="InvalidDataFormatException">The bytes are not encoded payouts.</exception>
    public static List<WorkerPayout> DecodePayouts(byte[] bytes)
    {
        var r = new BorshReader(bytes, "settlement payouts");
        int n = r.ReadLength("payouts", 36);
        var list = new List<WorkerPayout>(n);
        for (int i = 0; i < n; i++)
        {
            list.Add(new WorkerPayout(r.ReadString(), r.ReadU128(), r.ReadU128()));
        }

        r.EnsureEnd();
        return list;
    }

    private T Locked<T>(string operation, Func<T> action)
    {
        lock (_gate)
        {
            try
            {
                return action();
            }
            catch (SqliteException ex)
            {
                throw new LedgerStorageException(Path, operation, ex);
            }
        }
    }

    private void Execute(string sql)
    {
        using SqliteCommand cmd = _connection.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }
}
