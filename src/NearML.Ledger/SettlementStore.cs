using Microsoft.Data.Sqlite;

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

/// <summary>SQLite persistence of settlement intents and signed transactions (WAL, synchronous=FULL).</summary>
public sealed class SettlementStore : IDisposable
{
    private readonly SqliteConnection _connection;
    private readonly Lock _gate = new();

    /// <summary>Opens (creating if needed) a settlement store.</summary>
    /// <param name="path">The SQLite file.</param>
    public SettlementStore(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Path = System.IO.Path.GetFullPath(path);
        _connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path, Pooling = false }.ToString());
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

    /// <summary>Gets the file path.</summary>
    public string Path { get; }

    /// <summary>Reads an intent.</summary>
    /// <param name="epoch">The epoch.</param>
    /// <returns>The intent, or <see langword="null"/>.</returns>
    public SettlementIntent? GetIntent(long epoch)
    {
        lock (_gate)
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
        }
    }

    /// <summary>Lists the epochs that have an intent, ascending (for the cross-checks a coordinator runs at start).</summary>
    /// <returns>The epochs.</returns>
    public IReadOnlyList<long> ListEpochs()
    {
        lock (_gate)
        {
            using SqliteCommand cmd = _connection.CreateCommand();
            cmd.CommandText = "SELECT epoch FROM intents ORDER BY epoch";
            using SqliteDataReader r = cmd.ExecuteReader();
            var list = new List<long>();
            while (r.Read())
            {
                list.Add(r.GetInt64(0));
            }

            return list;
        }
    }

    /// <summary>Stores an intent (durably, before anything is signed).</summary>
    /// <param name="intent">The intent.</param>
    public void CreateIntent(SettlementIntent intent)
    {
        ArgumentNullException.ThrowIfNull(intent);
        lock (_gate)
        {
            using SqliteCommand cmd = _connection.CreateCommand();
            cmd.CommandText = "INSERT INTO intents(epoch, root, payouts, dry_run, settled) VALUES ($e, $r, $p, $d, 0)";
            cmd.Parameters.AddWithValue("$e", intent.Epoch);
            cmd.Parameters.AddWithValue("$r", intent.Root);
            cmd.Parameters.AddWithValue("$p", EncodePayouts(intent.Payouts));
            cmd.Parameters.AddWithValue("$d", intent.DryRun ? 1 : 0);
            cmd.ExecuteNonQuery();
        }
    }

    /// <summary>Marks an intent settled.</summary>
    /// <param name="epoch">The epoch.</param>
    public void MarkSettled(long epoch)
    {
        lock (_gate)
        {
            using SqliteCommand cmd = _connection.CreateCommand();
            cmd.CommandText = "UPDATE intents SET settled = 1 WHERE epoch = $e";
            cmd.Parameters.AddWithValue("$e", epoch);
            cmd.ExecuteNonQuery();
        }
    }

    /// <summary>Returns every stored transaction of an epoch, by slot then attempt.</summary>
    /// <param name="epoch">The epoch.</param>
    /// <returns>The transactions.</returns>
    public IReadOnlyList<SettlementTransaction> GetTransactions(long epoch)
    {
        lock (_gate)
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

            return list;
        }
    }

    /// <summary>Stores a newly signed transaction (durably, before it is sent).</summary>
    /// <param name="tx">The transaction.</param>
    public void AddTransaction(SettlementTransaction tx)
    {
        ArgumentNullException.ThrowIfNull(tx);
        lock (_gate)
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
            cmd.ExecuteNonQuery();
        }
    }

    /// <summary>Updates a transaction's state and outcome.</summary>
    /// <param name="epoch">The epoch.</param>
    /// <param name="slot">The slot.</param>
    /// <param name="attempt">The attempt.</param>
    /// <param name="state">The new state.</param>
    /// <param name="outcome">The outcome JSON, if any.</param>
    public void SetState(long epoch, int slot, int attempt, SettlementTxState state, string? outcome)
    {
        lock (_gate)
        {
            using SqliteCommand cmd = _connection.CreateCommand();
            cmd.CommandText = "UPDATE txs SET state = $st, outcome = $o WHERE epoch = $e AND slot = $s AND attempt = $a";
            cmd.Parameters.AddWithValue("$e", epoch);
            cmd.Parameters.AddWithValue("$s", slot);
            cmd.Parameters.AddWithValue("$a", attempt);
            cmd.Parameters.AddWithValue("$st", state.ToString());
            cmd.Parameters.AddWithValue("$o", (object?)outcome ?? DBNull.Value);
            cmd.ExecuteNonQuery();
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _connection.Dispose();

    internal static byte[] EncodePayouts(IReadOnlyList<WorkerPayout> payouts)
    {
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

    private static List<WorkerPayout> DecodePayouts(byte[] bytes)
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

    private void Execute(string sql)
    {
        using SqliteCommand cmd = _connection.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }
}
