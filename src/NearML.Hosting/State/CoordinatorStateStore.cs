using System.Globalization;
using Microsoft.Data.Sqlite;
using NearML.Core;

namespace NearML.Hosting.State;

/// <summary>What is wrong with the coordinator's state folder (<see cref="CoordinatorStateException.Problem"/>).</summary>
public enum StateProblem
{
    /// <summary>Another problem (a checkpoint that does not parse, another model's layout).</summary>
    Other = 0,

    /// <summary>The folder holds another job.</summary>
    ForeignJob,

    /// <summary>A file the other files prove existed is missing.</summary>
    Missing,

    /// <summary>A file exists but holds less than the other files prove it held (emptied, truncated, rows deleted).</summary>
    Truncated,

    /// <summary>A file's content was changed: a hash, chain or signature does not verify.</summary>
    Altered,

    /// <summary>The files are from different points in time (for example one restored from an older backup).</summary>
    OutOfStep,

    /// <summary>The receipt-signing key is missing or is not the key that signed the ledger.</summary>
    SigningKey,

    /// <summary>The storage failed (an SQLite or I/O error, for example a full disk).</summary>
    Storage,
}

/// <summary>
/// The coordinator's state folder is inconsistent, belongs to another job, or a file in it cannot be read or written.
/// The message names the file (<see cref="FilePath"/>) and says what the operator can do (docs/operator-guide.md,
/// "State folder").
/// </summary>
public sealed class CoordinatorStateException : NearMLException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="message">What is wrong and what to do.</param>
    /// <param name="innerException">The cause, if any.</param>
    public CoordinatorStateException(string message, Exception? innerException = null) : base(message, innerException)
    {
    }

    /// <summary>Initializes a new instance naming the file concerned.</summary>
    /// <param name="problem">The kind of problem.</param>
    /// <param name="filePath">The file concerned.</param>
    /// <param name="message">What is wrong and what to do (should name the file).</param>
    /// <param name="innerException">The cause, if any.</param>
    public CoordinatorStateException(StateProblem problem, string filePath, string message, Exception? innerException = null) : base(message, innerException)
    {
        Problem = problem;
        FilePath = filePath;
    }

    /// <summary>Gets the kind of problem.</summary>
    public StateProblem Problem { get; }

    /// <summary>Gets the file concerned, when one is.</summary>
    public string? FilePath { get; }

    /// <inheritdoc/>
    public override bool IsTransient =>
        Problem == StateProblem.Storage && InnerException is SqliteException { SqliteErrorCode: 5 or 6 }; // SQLITE_BUSY, SQLITE_LOCKED

    /// <summary>Wraps an SQLite error so that its message names the database file.</summary>
    /// <param name="path">The database file.</param>
    /// <param name="operation">What was being done.</param>
    /// <param name="error">The SQLite error.</param>
    /// <returns>The exception to throw.</returns>
    public static CoordinatorStateException FromSqlite(string path, string operation, SqliteException error)
    {
        ArgumentNullException.ThrowIfNull(error);
        return new CoordinatorStateException(StateProblem.Storage, path, $"{path}: {operation} failed: {error.Message}", error);
    }
}

/// <summary>The ledger head the coordinator recorded with a round: how many entries the ledger held after the round's receipts.</summary>
/// <param name="Round">The round.</param>
/// <param name="Count">The ledger's entry count then.</param>
/// <param name="LastHash">The hash of the ledger's last entry then.</param>
public sealed record LedgerAnchor(long Round, long Count, byte[] LastHash);

/// <summary>A completed round as recorded.</summary>
/// <param name="Round">The round.</param>
/// <param name="ParameterVersion">The parameter version after the round.</param>
/// <param name="Cohort">Workers assigned.</param>
/// <param name="Accepted">Updates accepted.</param>
/// <param name="Rejected">Updates rejected.</param>
/// <param name="MeanLoss">Mean worker loss.</param>
/// <param name="Accuracy">Test accuracy, when evaluated.</param>
/// <param name="UpdateBytes">Accepted payload bytes.</param>
/// <param name="StartedUnixMs">Assignment time.</param>
/// <param name="CompletedUnixMs">Completion time.</param>
public sealed record RoundRecord(long Round, long ParameterVersion, int Cohort, int Accepted, int Rejected, double MeanLoss, double? Accuracy, long UpdateBytes, long StartedUnixMs, long CompletedUnixMs);

/// <summary>A checkpoint as indexed.</summary>
/// <param name="Round">The last round it includes.</param>
/// <param name="ParameterVersion">The parameter version it holds.</param>
/// <param name="Path">The file.</param>
/// <param name="FileSha256">SHA-256 of the whole file (hex).</param>
/// <param name="Bytes">File size.</param>
public sealed record CheckpointRecord(long Round, long ParameterVersion, string Path, string FileSha256, long Bytes);

/// <summary>A stored settlement transaction.</summary>
/// <param name="Epoch">The ledger epoch.</param>
/// <param name="Slot">The transaction's slot within the epoch.</param>
/// <param name="Nonce">The access-key nonce.</param>
/// <param name="Hash">The transaction hash (base58).</param>
/// <param name="Receiver">The receiver account.</param>
/// <param name="Amount">The amount (yoctoNEAR, decimal).</param>
/// <param name="DryRun">Whether it was only signed.</param>
public sealed record SettlementRecord(long Epoch, int Slot, ulong Nonce, string Hash, string Receiver, string Amount, bool DryRun);

/// <summary>The job a coordinator data folder belongs to.</summary>
/// <param name="JobId">The job id.</param>
/// <param name="Model">The architecture.</param>
/// <param name="ModelConfig">The model configuration JSON.</param>
/// <param name="DatasetRoot">The dataset manifest root (hex).</param>
/// <param name="Settings">The hyper-parameters as recorded at first start (informational, <c>rounds=10 H=100 …</c>).</param>
/// <param name="CreatedUnixMs">When the job was first started.</param>
public sealed record JobRecord(string JobId, string Model, string ModelConfig, string DatasetRoot, string Settings, long CreatedUnixMs);

/// <summary>
/// The coordinator's durable state in SQLite (<c>coordinator.db</c>, WAL, synchronous=FULL): the job, completed rounds
/// (each with the ledger head it left: the anchor that makes a deleted or rewritten ledger detectable), membership
/// events, the checkpoint index (paths relative to the state folder, so a moved folder keeps working) and settlement
/// transactions. Thread-safe (one connection behind a lock). Every SQLite error surfaces as a
/// <see cref="CoordinatorStateException"/> whose message names this file.
/// </summary>
public sealed partial class CoordinatorStateStore : ICoordinatorStateStore
{
    private readonly SqliteConnection _connection;
    private readonly Lock _gate = new();

    /// <summary>Opens or creates the database.</summary>
    /// <param name="path">The file.</param>
    /// <exception cref="CoordinatorStateException">The file cannot be opened or is not a coordinator database.</exception>
    public CoordinatorStateStore(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Path = System.IO.Path.GetFullPath(path);
        Folder = System.IO.Path.GetDirectoryName(Path)!;
        Directory.CreateDirectory(Folder);
        _connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path, Pooling = false }.ToString());
        try
        {
            _connection.Open();
            Execute("PRAGMA journal_mode=WAL;");
            Execute("PRAGMA synchronous=FULL;");
            Execute("PRAGMA busy_timeout=10000;");
            Execute("""
                CREATE TABLE IF NOT EXISTS job (
                  id TEXT PRIMARY KEY, model TEXT NOT NULL, model_config TEXT NOT NULL, dataset_root TEXT NOT NULL,
                  settings TEXT NOT NULL, created_ms INTEGER NOT NULL);
                CREATE TABLE IF NOT EXISTS rounds (
                  round INTEGER PRIMARY KEY, parameter_version INTEGER NOT NULL, cohort INTEGER NOT NULL, accepted INTEGER NOT NULL,
                  rejected INTEGER NOT NULL, mean_loss REAL, accuracy REAL, update_bytes INTEGER NOT NULL,
                  started_ms INTEGER NOT NULL, completed_ms INTEGER NOT NULL, ledger_count INTEGER, ledger_head BLOB);
                CREATE TABLE IF NOT EXISTS membership (
                  id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, worker_id TEXT NOT NULL, public_key TEXT NOT NULL,
                  event TEXT NOT NULL, round INTEGER NOT NULL, detail TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS checkpoints (
                  round INTEGER PRIMARY KEY, parameter_version INTEGER NOT NULL, path TEXT NOT NULL, file_sha256 TEXT NOT NULL,
                  bytes INTEGER NOT NULL, written_ms INTEGER NOT NULL);
                CREATE TABLE IF NOT EXISTS settlements (
                  epoch INTEGER NOT NULL, slot INTEGER NOT NULL, nonce INTEGER NOT NULL, hash TEXT NOT NULL, receiver TEXT NOT NULL,
                  amount TEXT NOT NULL, dry_run INTEGER NOT NULL, PRIMARY KEY (epoch, slot));
                """);
            Migrate();
        }
        catch (SqliteException ex)
        {
            _connection.Dispose();
            throw CoordinatorStateException.FromSqlite(Path, "opening the coordinator state", ex);
        }
    }

    /// <summary>Gets the database file.</summary>
    public string Path { get; }

    /// <inheritdoc/>
    public string Location => Path;

    /// <summary>Gets the state folder (the database's folder): relative checkpoint paths are relative to it.</summary>
    public string Folder { get; }

    /// <summary>Reads the id of the recorded job, if a job was recorded.</summary>
    /// <returns>The job id, or <see langword="null"/> for a database that holds no job (new or emptied).</returns>
    public string? ReadJobId() => Locked("reading the job", () =>
    {
        using var c = Command("SELECT id FROM job LIMIT 1");
        return c.ExecuteScalar() as string;
    });

    /// <summary>Records the job on first start, or checks that the stored job is the same one.</summary>
    /// <param name="jobId">The job id.</param>
    /// <param name="model">The architecture.</param>
    /// <param name="modelConfig">The model configuration JSON.</param>
    /// <param name="datasetRoot">The dataset manifest root (hex).</param>
    /// <param name="settings">A description of the hyper-parameters (informational).</param>
    /// <param name="nowMs">The time.</param>
    /// <exception cref="CoordinatorStateException">The folder holds another job.</exception>
    public void EnsureJob(string jobId, string model, string modelConfig, string datasetRoot, string settings, long nowMs) => Locked("recording the job", () =>
    {
        using var read = Command("SELECT id, model, model_config, dataset_root FROM job LIMIT 1");
        using (var r = read.ExecuteReader())
        {
            if (r.Read())
            {
                var (id, m, mc, root) = (r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3));
                if (id != jobId || m != model || mc != modelConfig || root != datasetRoot)
                {
                    throw new CoordinatorStateException(
                        StateProblem.ForeignJob,
                        Path,
                        $"{Path} belongs to job '{id}' (model {m} {mc}, dataset root {root}), not to job '{jobId}' (model {model} {modelConfig}, dataset root {datasetRoot}). Use another DataDirectory for a new job.");
                }

                return 0;
            }
        }

        using var insert = Command("INSERT INTO job VALUES ($id, $m, $mc, $root, $s, $t)");
        insert.Parameters.AddWithValue("$id", jobId);
        insert.Parameters.AddWithValue("$m", model);
        insert.Parameters.AddWithValue("$mc", modelConfig);
        insert.Parameters.AddWithValue("$root", datasetRoot);
        insert.Parameters.AddWithValue("$s", settings);
        insert.Parameters.AddWithValue("$t", nowMs);
        return insert.ExecuteNonQuery();
    });

    /// <summary>Reads the job this folder belongs to (recorded by <see cref="EnsureJob"/>), for status tools.</summary>
    /// <returns>The job, or <see langword="null"/> before the coordinator first started.</returns>
    public JobRecord? ReadJob()
    {
        lock (_gate)
        {
            using var c = Command("SELECT id, model, model_config, dataset_root, settings, created_ms FROM job LIMIT 1");
            using var r = c.ExecuteReader();
            return r.Read() ? new JobRecord(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetInt64(5)) : null;
        }
    }

    /// <summary>Records a completed round (replacing a record of the same round from a run that did not checkpoint it).</summary>
    /// <param name="record">The round.</param>
    public void RecordRound(RoundRecord record) => RecordRound(record, null);

    /// <summary>
    /// Records a completed round together with the ledger head after its receipts (the anchor the next start checks the
    /// ledger against), replacing a record of the same round from a run that did not checkpoint it.
    /// </summary>
    /// <param name="record">The round.</param>
    /// <param name="ledgerCount">The ledger's entry count after the round's receipts, or <see langword="null"/>.</param>
    /// <param name="ledgerHead">The hash of the ledger's last entry then (32 bytes), or <see langword="null"/>.</param>
    public void RecordRound(RoundRecord record, long? ledgerCount, byte[]? ledgerHead = null)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (ledgerCount is not null)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(ledgerCount.Value, nameof(ledgerCount));
            ArgumentNullException.ThrowIfNull(ledgerHead);
        }

        Locked("recording round " + Format(record.Round), () =>
        {
            using var c = Command("INSERT OR REPLACE INTO rounds VALUES ($r, $v, $c, $a, $j, $l, $acc, $b, $s, $e, $lc, $lh)");
            c.Parameters.AddWithValue("$r", record.Round);
            c.Parameters.AddWithValue("$v", record.ParameterVersion);
            c.Parameters.AddWithValue("$c", record.Cohort);
            c.Parameters.AddWithValue("$a", record.Accepted);
            c.Parameters.AddWithValue("$j", record.Rejected);
            c.Parameters.AddWithValue("$l", double.IsFinite(record.MeanLoss) ? record.MeanLoss : DBNull.Value);
            c.Parameters.AddWithValue("$acc", record.Accuracy is { } a ? a : DBNull.Value);
            c.Parameters.AddWithValue("$b", record.UpdateBytes);
            c.Parameters.AddWithValue("$s", record.StartedUnixMs);
            c.Parameters.AddWithValue("$e", record.CompletedUnixMs);
            c.Parameters.AddWithValue("$lc", ledgerCount is { } n ? n : DBNull.Value);
            c.Parameters.AddWithValue("$lh", ledgerCount is not null ? ledgerHead! : DBNull.Value);
            return c.ExecuteNonQuery();
        });
    }

    /// <summary>Reads the recorded rounds, in order.</summary>
    /// <returns>The rounds.</returns>
    public IReadOnlyList<RoundRecord> ReadRounds() => Locked("reading rounds", () =>
    {
        using var c = Command("SELECT round, parameter_version, cohort, accepted, rejected, mean_loss, accuracy, update_bytes, started_ms, completed_ms FROM rounds ORDER BY round");
        using var r = c.ExecuteReader();
        var list = new List<RoundRecord>();
        while (r.Read())
        {
            list.Add(new RoundRecord(
                r.GetInt64(0), r.GetInt64(1), r.GetInt32(2), r.GetInt32(3), r.GetInt32(4),
                r.IsDBNull(5) ? double.NaN : r.GetDouble(5), r.IsDBNull(6) ? null : r.GetDouble(6), r.GetInt64(7), r.GetInt64(8), r.GetInt64(9)));
        }

        return list;
    });

    /// <summary>Gets the highest recorded round, or -1 when none is.</summary>
    /// <returns>The round.</returns>
    public long LastRound() => Locked("reading rounds", () =>
    {
        using var c = Command("SELECT MAX(round) FROM rounds");
        return c.ExecuteScalar() is long l ? l : -1L;
    });

    /// <summary>
    /// Gets the newest ledger anchor: the recorded round whose ledger head is the largest (the ledger only grows, so this
    /// is the one recorded last).
    /// </summary>
    /// <returns>The anchor, or <see langword="null"/> when no round carries one (a new job, or rounds recorded by an older version).</returns>
    public LedgerAnchor? LatestLedgerAnchor() => Locked("reading the ledger anchor", () =>
    {
        using var c = Command("SELECT round, ledger_count, ledger_head FROM rounds WHERE ledger_count IS NOT NULL ORDER BY ledger_count DESC, round DESC LIMIT 1");
        using var r = c.ExecuteReader();
        return r.Read() ? new LedgerAnchor(r.GetInt64(0), r.GetInt64(1), (byte[])r.GetValue(2)) : null;
    });

    /// <summary>Appends a membership event (join, leave, drop, refuse).</summary>
    /// <param name="nowMs">The time.</param>
    /// <param name="workerId">The worker.</param>
    /// <param name="publicKeyHex">Its identity key (hex), or empty.</param>
    /// <param name="kind">The event.</param>
    /// <param name="round">The coordinator's round at the time.</param>
    /// <param name="detail">Why.</param>
    public void RecordMembership(long nowMs, string workerId, string publicKeyHex, string kind, long round, string detail) => Locked("recording a membership event", () =>
    {
        using var c = Command("INSERT INTO membership (at_ms, worker_id, public_key, event, round, detail) VALUES ($t, $w, $k, $e, $r, $d)");
        c.Parameters.AddWithValue("$t", nowMs);
        c.Parameters.AddWithValue("$w", workerId);
        c.Parameters.AddWithValue("$k", publicKeyHex);
        c.Parameters.AddWithValue("$e", kind);
        c.Parameters.AddWithValue("$r", round);
        c.Parameters.AddWithValue("$d", detail);
        return c.ExecuteNonQuery();
    });

    /// <summary>Reads the membership events, oldest first.</summary>
    /// <returns>(worker, event, round, detail) tuples.</returns>
    public IReadOnlyList<(string WorkerId, string Event, long Round, string Detail)> ReadMembership() => Locked("reading membership events", () =>
    {
        using var c = Command("SELECT worker_id, event, round, detail FROM membership ORDER BY id");
        using var r = c.ExecuteReader();
        var list = new List<(string, string, long, string)>();
        while (r.Read())
        {
            list.Add((r.GetString(0), r.GetString(1), r.GetInt64(2), r.GetString(3)));
        }

        return (IReadOnlyList<(string, string, long, string)>)list;
    });

    /// <summary>
    /// Indexes a checkpoint that is durably on disk. A file inside the state folder is stored relative to it (so the
    /// folder can be moved or restored elsewhere); <see cref="CheckpointRecord.Path"/> of the records read back is the
    /// full path in the folder where the database is now.
    /// </summary>
    /// <param name="record">The checkpoint.</param>
    /// <param name="nowMs">The time.</param>
    public void RecordCheckpoint(CheckpointRecord record, long nowMs)
    {
        ArgumentNullException.ThrowIfNull(record);
        Locked("indexing checkpoint of round " + Format(record.Round), () =>
        {
            using var c = Command("INSERT OR REPLACE INTO checkpoints VALUES ($r, $v, $p, $h, $b, $t)");
            c.Parameters.AddWithValue("$r", record.Round);
            c.Parameters.AddWithValue("$v", record.ParameterVersion);
            c.Parameters.AddWithValue("$p", ToStored(record.Path));
            c.Parameters.AddWithValue("$h", record.FileSha256);
            c.Parameters.AddWithValue("$b", record.Bytes);
            c.Parameters.AddWithValue("$t", nowMs);
            return c.ExecuteNonQuery();
        });
    }

    /// <summary>Gets the newest checkpoint, if any.</summary>
    /// <returns>The checkpoint or <see langword="null"/>.</returns>
    public CheckpointRecord? LatestCheckpoint() => Locked("reading the checkpoint index", () =>
    {
        using var c = Command("SELECT round, parameter_version, path, file_sha256, bytes FROM checkpoints ORDER BY round DESC LIMIT 1");
        using var r = c.ExecuteReader();
        return r.Read() ? ReadCheckpoint(r) : null;
    });

    /// <summary>Lists the indexed checkpoints, oldest first.</summary>
    /// <returns>The checkpoints.</returns>
    public IReadOnlyList<CheckpointRecord> ListCheckpoints() => Locked("reading the checkpoint index", () =>
    {
        using var c = Command("SELECT round, parameter_version, path, file_sha256, bytes FROM checkpoints ORDER BY round");
        using var r = c.ExecuteReader();
        var list = new List<CheckpointRecord>();
        while (r.Read())
        {
            list.Add(ReadCheckpoint(r));
        }

        return (IReadOnlyList<CheckpointRecord>)list;
    });

    /// <summary>Removes a checkpoint from the index (its file was deleted).</summary>
    /// <param name="round">The checkpoint's round.</param>
    public void ForgetCheckpoint(long round) => Locked("removing checkpoint of round " + Format(round) + " from the index", () =>
    {
        using var c = Command("DELETE FROM checkpoints WHERE round = $r");
        c.Parameters.AddWithValue("$r", round);
        return c.ExecuteNonQuery();
    });

    /// <summary>Stores the signed transactions of an epoch's settlement in one transaction.</summary>
    /// <param name="records">The transactions.</param>
    public void RecordSettlement(IReadOnlyList<SettlementRecord> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        Locked("recording a settlement", () =>
        {
            using var tx = _connection.BeginTransaction();
            foreach (var s in records)
            {
                using var c = Command("INSERT INTO settlements VALUES ($e, $s, $n, $h, $r, $a, $d)");
                c.Transaction = tx;
                c.Parameters.AddWithValue("$e", s.Epoch);
                c.Parameters.AddWithValue("$s", s.Slot);
                c.Parameters.AddWithValue("$n", (long)s.Nonce);
                c.Parameters.AddWithValue("$h", s.Hash);
                c.Parameters.AddWithValue("$r", s.Receiver);
                c.Parameters.AddWithValue("$a", s.Amount);
                c.Parameters.AddWithValue("$d", s.DryRun ? 1 : 0);
                c.ExecuteNonQuery();
            }

            tx.Commit();
            return records.Count;
        });
    }

    /// <summary>Reads every stored settlement transaction, by epoch and slot.</summary>
    /// <returns>The transactions.</returns>
    public IReadOnlyList<SettlementRecord> ReadSettlements() => Locked("reading settlements", () =>
    {
        using var c = Command("SELECT epoch, slot, nonce, hash, receiver, amount, dry_run FROM settlements ORDER BY epoch, slot");
        using var r = c.ExecuteReader();
        var list = new List<SettlementRecord>();
        while (r.Read())
        {
            list.Add(new SettlementRecord(r.GetInt64(0), r.GetInt32(1), (ulong)r.GetInt64(2), r.GetString(3), r.GetString(4), r.GetString(5), r.GetInt32(6) != 0));
        }

        return (IReadOnlyList<SettlementRecord>)list;
    });

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (_gate)
        {
            _connection.Dispose();
        }
    }

    internal static string Format(long value) => value.ToString(CultureInfo.InvariantCulture);

    private string ToStored(string path) => CheckpointPaths.ToStored(Folder, path);

    private CheckpointRecord ReadCheckpoint(SqliteDataReader r) =>
        new(r.GetInt64(0), r.GetInt64(1), CheckpointPaths.FromStored(Folder, r.GetString(2)), r.GetString(3), r.GetInt64(4));

    /// <summary>
    /// Brings a database written by an older version up to date: adds the ledger anchor columns, and rewrites absolute
    /// checkpoint paths as paths relative to the state folder — paths inside it, and the paths the checkpoint store wrote
    /// into a folder this one was moved or restored from (<c>…/checkpoints/round-000123.safetensors</c> of the same round).
    /// </summary>
    private void Migrate()
    {
        var columns = new HashSet<string>(StringComparer.Ordinal);
        using (var info = Command("PRAGMA table_info(rounds)"))
        using (var r = info.ExecuteReader())
        {
            while (r.Read())
            {
                columns.Add(r.GetString(1));
            }
        }

        if (!columns.Contains("ledger_count"))
        {
            Execute("ALTER TABLE rounds ADD COLUMN ledger_count INTEGER;");
            Execute("ALTER TABLE rounds ADD COLUMN ledger_head BLOB;");
        }

        var rewrites = new List<(long Round, string Path)>();
        using (var c = Command("SELECT round, path FROM checkpoints"))
        using (var r = c.ExecuteReader())
        {
            while (r.Read())
            {
                var (round, stored) = (r.GetInt64(0), r.GetString(1));
                if (!System.IO.Path.IsPathRooted(stored))
                {
                    continue;
                }

                var relative = ToStored(stored);
                if (System.IO.Path.IsPathRooted(relative)
                    && System.IO.Path.GetFileName(stored) == CheckpointStore.FileName(round)
                    && System.IO.Path.GetFileName(System.IO.Path.GetDirectoryName(stored)) == CheckpointStore.FolderName)
                {
                    relative = System.IO.Path.Combine(CheckpointStore.FolderName, CheckpointStore.FileName(round));
                }

                if (relative != stored)
                {
                    rewrites.Add((round, relative));
                }
            }
        }

        foreach (var (round, relative) in rewrites)
        {
            using var u = Command("UPDATE checkpoints SET path = $p WHERE round = $r");
            u.Parameters.AddWithValue("$p", relative);
            u.Parameters.AddWithValue("$r", round);
            u.ExecuteNonQuery();
        }
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
                throw CoordinatorStateException.FromSqlite(Path, operation, ex);
            }
        }
    }

    private void Execute(string sql)
    {
        using var c = Command(sql);
        c.ExecuteNonQuery();
    }

    private SqliteCommand Command(string sql)
    {
        var c = _connection.CreateCommand();
        c.CommandText = sql;
        return c;
    }
}
