using System.Globalization;
using Microsoft.Data.Sqlite;
using NearML.Core;

namespace NearML.Hosting.State;

/// <summary>The coordinator's state does not belong to this job, or a checkpoint it points to is missing or corrupt.</summary>
public sealed class CoordinatorStateException : NearMLException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="message">What is wrong and what to do.</param>
    /// <param name="innerException">The cause, if any.</param>
    public CoordinatorStateException(string message, Exception? innerException = null) : base(message, innerException)
    {
    }
}

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
/// The coordinator's durable state in SQLite (<c>coordinator.db</c>, WAL, synchronous=FULL): the job, completed rounds,
/// membership events, the checkpoint index and settlement transactions. Thread-safe (one connection behind a lock).
/// </summary>
public sealed class CoordinatorStateStore : IDisposable
{
    private readonly SqliteConnection _connection;
    private readonly Lock _gate = new();

    /// <summary>Opens or creates the database.</summary>
    /// <param name="path">The file.</param>
    public CoordinatorStateStore(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Path = System.IO.Path.GetFullPath(path);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(Path)!);
        _connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path, Pooling = false }.ToString());
        _connection.Open();
        Execute("PRAGMA journal_mode=WAL;");
        Execute("PRAGMA synchronous=FULL;");
        Execute("""
            CREATE TABLE IF NOT EXISTS job (
              id TEXT PRIMARY KEY, model TEXT NOT NULL, model_config TEXT NOT NULL, dataset_root TEXT NOT NULL,
              settings TEXT NOT NULL, created_ms INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS rounds (
              round INTEGER PRIMARY KEY, parameter_version INTEGER NOT NULL, cohort INTEGER NOT NULL, accepted INTEGER NOT NULL,
              rejected INTEGER NOT NULL, mean_loss REAL, accuracy REAL, update_bytes INTEGER NOT NULL,
              started_ms INTEGER NOT NULL, completed_ms INTEGER NOT NULL);
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
    }

    /// <summary>Gets the database file.</summary>
    public string Path { get; }

    /// <summary>Records the job on first start, or checks that the stored job is the same one.</summary>
    /// <param name="jobId">The job id.</param>
    /// <param name="model">The architecture.</param>
    /// <param name="modelConfig">The model configuration JSON.</param>
    /// <param name="datasetRoot">The dataset manifest root (hex).</param>
    /// <param name="settings">A description of the hyper-parameters (informational).</param>
    /// <param name="nowMs">The time.</param>
    /// <exception cref="CoordinatorStateException">The folder holds another job.</exception>
    public void EnsureJob(string jobId, string model, string modelConfig, string datasetRoot, string settings, long nowMs)
    {
        lock (_gate)
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
                            $"{Path} belongs to job '{id}' (model {m} {mc}, dataset root {root}), not to job '{jobId}' (model {model} {modelConfig}, dataset root {datasetRoot}). Use another DataDirectory for a new job.");
                    }

                    return;
                }
            }

            using var insert = Command("INSERT INTO job VALUES ($id, $m, $mc, $root, $s, $t)");
            insert.Parameters.AddWithValue("$id", jobId);
            insert.Parameters.AddWithValue("$m", model);
            insert.Parameters.AddWithValue("$mc", modelConfig);
            insert.Parameters.AddWithValue("$root", datasetRoot);
            insert.Parameters.AddWithValue("$s", settings);
            insert.Parameters.AddWithValue("$t", nowMs);
            insert.ExecuteNonQuery();
        }
    }

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
    public void RecordRound(RoundRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        lock (_gate)
        {
            using var c = Command("INSERT OR REPLACE INTO rounds VALUES ($r, $v, $c, $a, $j, $l, $acc, $b, $s, $e)");
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
            c.ExecuteNonQuery();
        }
    }

    /// <summary>Reads the recorded rounds, in order.</summary>
    /// <returns>The rounds.</returns>
    public IReadOnlyList<RoundRecord> ReadRounds()
    {
        lock (_gate)
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
        }
    }

    /// <summary>Appends a membership event (join, leave, drop, refuse).</summary>
    /// <param name="nowMs">The time.</param>
    /// <param name="workerId">The worker.</param>
    /// <param name="publicKeyHex">Its identity key (hex), or empty.</param>
    /// <param name="kind">The event.</param>
    /// <param name="round">The coordinator's round at the time.</param>
    /// <param name="detail">Why.</param>
    public void RecordMembership(long nowMs, string workerId, string publicKeyHex, string kind, long round, string detail)
    {
        lock (_gate)
        {
            using var c = Command("INSERT INTO membership (at_ms, worker_id, public_key, event, round, detail) VALUES ($t, $w, $k, $e, $r, $d)");
            c.Parameters.AddWithValue("$t", nowMs);
            c.Parameters.AddWithValue("$w", workerId);
            c.Parameters.AddWithValue("$k", publicKeyHex);
            c.Parameters.AddWithValue("$e", kind);
            c.Parameters.AddWithValue("$r", round);
            c.Parameters.AddWithValue("$d", detail);
            c.ExecuteNonQuery();
        }
    }

    /// <summary>Reads the membership events, oldest first.</summary>
    /// <returns>(worker, event, round, detail) tuples.</returns>
    public IReadOnlyList<(string WorkerId, string Event, long Round, string Detail)> ReadMembership()
    {
        lock (_gate)
        {
            using var c = Command("SELECT worker_id, event, round, detail FROM membership ORDER BY id");
            using var r = c.ExecuteReader();
            var list = new List<(string, string, long, string)>();
            while (r.Read())
            {
                list.Add((r.GetString(0), r.GetString(1), r.GetInt64(2), r.GetString(3)));
            }

            return list;
        }
    }

    /// <summary>Indexes a checkpoint that is durably on disk.</summary>
    /// <param name="record">The checkpoint.</param>
    /// <param name="nowMs">The time.</param>
    public void RecordCheckpoint(CheckpointRecord record, long nowMs)
    {
        ArgumentNullException.ThrowIfNull(record);
        lock (_gate)
        {
            using var c = Command("INSERT OR REPLACE INTO checkpoints VALUES ($r, $v, $p, $h, $b, $t)");
            c.Parameters.AddWithValue("$r", record.Round);
            c.Parameters.AddWithValue("$v", record.ParameterVersion);
            c.Parameters.AddWithValue("$p", record.Path);
            c.Parameters.AddWithValue("$h", record.FileSha256);
            c.Parameters.AddWithValue("$b", record.Bytes);
            c.Parameters.AddWithValue("$t", nowMs);
            c.ExecuteNonQuery();
        }
    }

    /// <summary>Gets the newest checkpoint, if any.</summary>
    /// <returns>The checkpoint or <see langword="null"/>.</returns>
    public CheckpointRecord? LatestCheckpoint()
    {
        lock (_gate)
        {
            using var c = Command("SELECT round, parameter_version, path, file_sha256, bytes FROM checkpoints ORDER BY round DESC LIMIT 1");
            using var r = c.ExecuteReader();
            return r.Read() ? new CheckpointRecord(r.GetInt64(0), r.GetInt64(1), r.GetString(2), r.GetString(3), r.GetInt64(4)) : null;
        }
    }

    /// <summary>Lists the indexed checkpoints, oldest first.</summary>
    /// <returns>The checkpoints.</returns>
    public IReadOnlyList<CheckpointRecord> ListCheckpoints()
    {
        lock (_gate)
        {
            using var c = Command("SELECT round, parameter_version, path, file_sha256, bytes FROM checkpoints ORDER BY round");
            using var r = c.ExecuteReader();
            var list = new List<CheckpointRecord>();
            while (r.Read())
            {
                list.Add(new CheckpointRecord(r.GetInt64(0), r.GetInt64(1), r.GetString(2), r.GetString(3), r.GetInt64(4)));
            }

            return list;
        }
    }

    /// <summary>Removes a checkpoint from the index (its file was deleted).</summary>
    /// <param name="round">The checkpoint's round.</param>
    public void ForgetCheckpoint(long round)
    {
        lock (_gate)
        {
            using var c = Command("DELETE FROM checkpoints WHERE round = $r");
            c.Parameters.AddWithValue("$r", round);
            c.ExecuteNonQuery();
        }
    }

    /// <summary>Stores the signed transactions of an epoch's settlement in one transaction.</summary>
    /// <param name="records">The transactions.</param>
    public void RecordSettlement(IReadOnlyList<SettlementRecord> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        lock (_gate)
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
        }
    }

    /// <summary>Reads every stored settlement transaction, by epoch and slot.</summary>
    /// <returns>The transactions.</returns>
    public IReadOnlyList<SettlementRecord> ReadSettlements()
    {
        lock (_gate)
        {
            using var c = Command("SELECT epoch, slot, nonce, hash, receiver, amount, dry_run FROM settlements ORDER BY epoch, slot");
            using var r = c.ExecuteReader();
            var list = new List<SettlementRecord>();
            while (r.Read())
            {
                list.Add(new SettlementRecord(r.GetInt64(0), r.GetInt32(1), (ulong)r.GetInt64(2), r.GetString(3), r.GetString(4), r.GetString(5), r.GetInt32(6) != 0));
            }

            return list;
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (_gate)
        {
            _connection.Dispose();
        }
    }

    internal static string Format(long value) => value.ToString(CultureInfo.InvariantCulture);

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
