using System.Globalization;
using Npgsql;
using NpgsqlTypes;
using NearML.Hosting.State;
using NearML.PostgreSql.Internal;

namespace NearML.PostgreSql;

/// <summary>
/// An <see cref="ICoordinatorStateStore"/> in PostgreSQL (tables <c>coord_*</c> of one schema): the same rows and rules
/// as the SQLite <see cref="CoordinatorStateStore"/> — one job per schema, rounds with their ledger anchor, membership
/// events, worker-key bindings (atomic bind and compare-and-set rotation), the checkpoint index (paths relative to the
/// state folder) and settlement records (a batch is one transaction). Every PostgreSQL error surfaces as a
/// <see cref="CoordinatorStateException"/> (<see cref="StateProblem.Storage"/>) naming the server and schema.
/// Thread-safe: every call takes a pooled connection.
/// </summary>
public sealed class PostgreSqlCoordinatorStateStore : ICoordinatorStateStore
{
    private const string Columns = "round, parameter_version, path, file_sha256, bytes";
    private readonly PgSchema _schema;
    private volatile bool _disposed;

    /// <summary>Opens (creating the tables if needed) the coordinator state in <paramref name="schema"/>.</summary>
    /// <param name="dataSource">The database (not disposed by the store).</param>
    /// <param name="folder">The state folder: checkpoint files and the signing key are there; indexed paths are relative to it.</param>
    /// <param name="schema">The schema (one per job).</param>
    /// <exception cref="CoordinatorStateException">The database cannot be reached or the tables cannot be created.</exception>
    public PostgreSqlCoordinatorStateStore(NpgsqlDataSource dataSource, string folder, string schema = PostgreSqlStateOptions.DefaultSchema)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        _schema = new PgSchema(dataSource, schema);
        Folder = Path.GetFullPath(folder);
        Location = _schema.Describe("coord_job, coord_rounds, …");
        Run("opening the coordinator state", () =>
        {
            _schema.CreateTables("""
                CREATE TABLE IF NOT EXISTS coord_job (
                  id text PRIMARY KEY, model text NOT NULL, model_config text NOT NULL, dataset_root text NOT NULL,
                  settings text NOT NULL, created_ms bigint NOT NULL, one boolean NOT NULL DEFAULT true UNIQUE CHECK (one));
                CREATE TABLE IF NOT EXISTS coord_rounds (
                  round bigint PRIMARY KEY, parameter_version bigint NOT NULL, cohort integer NOT NULL, accepted integer NOT NULL,
                  rejected integer NOT NULL, mean_loss double precision, accuracy double precision, update_bytes bigint NOT NULL,
                  started_ms bigint NOT NULL, completed_ms bigint NOT NULL, ledger_count bigint, ledger_head bytea);
                CREATE TABLE IF NOT EXISTS coord_membership (
                  id bigserial PRIMARY KEY, at_ms bigint NOT NULL, worker_id text NOT NULL, public_key text NOT NULL,
                  event text NOT NULL, round bigint NOT NULL, detail text NOT NULL);
                CREATE TABLE IF NOT EXISTS coord_checkpoints (
                  round bigint PRIMARY KEY, parameter_version bigint NOT NULL, path text NOT NULL, file_sha256 text NOT NULL,
                  bytes bigint NOT NULL, written_ms bigint NOT NULL);
                CREATE TABLE IF NOT EXISTS coord_settlements (
                  epoch bigint NOT NULL, slot integer NOT NULL, nonce bigint NOT NULL, hash text NOT NULL, receiver text NOT NULL,
                  amount text NOT NULL, dry_run boolean NOT NULL, PRIMARY KEY (epoch, slot));
                CREATE TABLE IF NOT EXISTS coord_worker_keys (
                  worker_id text PRIMARY KEY, public_key text NOT NULL, bound_ms bigint NOT NULL, rotations bigint NOT NULL);
                """);
            return 0;
        });
    }

    /// <inheritdoc/>
    public string Location { get; }

    /// <inheritdoc/>
    public string Folder { get; }

    /// <inheritdoc/>
    public string? ReadJobId() => Run("reading the job", () => Scalar("SELECT id FROM {s}.coord_job LIMIT 1") as string);

    /// <inheritdoc/>
    public void EnsureJob(string jobId, string model, string modelConfig, string datasetRoot, string settings, long nowMs)
    {
        ArgumentNullException.ThrowIfNull(jobId);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(modelConfig);
        ArgumentNullException.ThrowIfNull(datasetRoot);
        ArgumentNullException.ThrowIfNull(settings);
        Run("recording the job", () =>
        {
            using var conn = _schema.DataSource.OpenConnection();

            // Two coordinators starting at once: the single-row constraint lets one insert win; both then compare.
            using (var insert = _schema.Command(conn, "INSERT INTO {s}.coord_job (id, model, model_config, dataset_root, settings, created_ms) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"))
            {
                insert.Parameters.AddWithValue(jobId);
                insert.Parameters.AddWithValue(model);
                insert.Parameters.AddWithValue(modelConfig);
                insert.Parameters.AddWithValue(datasetRoot);
                insert.Parameters.AddWithValue(settings);
                insert.Parameters.AddWithValue(nowMs);
                insert.ExecuteNonQuery();
            }

            using var read = _schema.Command(conn, "SELECT id, model, model_config, dataset_root FROM {s}.coord_job LIMIT 1");
            using var r = read.ExecuteReader();
            r.Read();
            var (id, m, mc, root) = (r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3));
            if (id != jobId || m != model || mc != modelConfig || root != datasetRoot)
            {
                throw new CoordinatorStateException(
                    StateProblem.ForeignJob,
                    Location,
                    $"{Location} belongs to job '{id}' (model {m} {mc}, dataset root {root}), not to job '{jobId}' (model {model} {modelConfig}, dataset root {datasetRoot}). Use another schema for a new job.");
            }

            return 0;
        });
    }

    /// <inheritdoc/>
    public JobRecord? ReadJob() => Run("reading the job", () =>
    {
        using var conn = _schema.DataSource.OpenConnection();
        using var c = _schema.Command(conn, "SELECT id, model, model_config, dataset_root, settings, created_ms FROM {s}.coord_job LIMIT 1");
        using var r = c.ExecuteReader();
        return r.Read() ? new JobRecord(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetInt64(5)) : null;
    });

    /// <inheritdoc/>
    public void RecordRound(RoundRecord record) => RecordRound(record, null);

    /// <inheritdoc/>
    public void RecordRound(RoundRecord record, long? ledgerCount, byte[]? ledgerHead = null)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (ledgerCount is not null)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(ledgerCount.Value, nameof(ledgerCount));
            ArgumentNullException.ThrowIfNull(ledgerHead);
        }

        Run("recording round " + Format(record.Round), () =>
        {
            using var conn = _schema.DataSource.OpenConnection();
            using var c = _schema.Command(conn, """
                INSERT INTO {s}.coord_rounds VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                ON CONFLICT (round) DO UPDATE SET parameter_version = EXCLUDED.parameter_version, cohort = EXCLUDED.cohort,
                  accepted = EXCLUDED.accepted, rejected = EXCLUDED.rejected, mean_loss = EXCLUDED.mean_loss, accuracy = EXCLUDED.accuracy,
                  update_bytes = EXCLUDED.update_bytes, started_ms = EXCLUDED.started_ms, completed_ms = EXCLUDED.completed_ms,
                  ledger_count = EXCLUDED.ledger_count, ledger_head = EXCLUDED.ledger_head
                """);
            c.Parameters.AddWithValue(record.Round);
            c.Parameters.AddWithValue(record.ParameterVersion);
            c.Parameters.AddWithValue(record.Cohort);
            c.Parameters.AddWithValue(record.Accepted);
            c.Parameters.AddWithValue(record.Rejected);
            c.Parameters.Add(Nullable(double.IsFinite(record.MeanLoss) ? record.MeanLoss : null, NpgsqlDbType.Double));
            c.Parameters.Add(Nullable(record.Accuracy, NpgsqlDbType.Double));
            c.Parameters.AddWithValue(record.UpdateBytes);
            c.Parameters.AddWithValue(record.StartedUnixMs);
            c.Parameters.AddWithValue(record.CompletedUnixMs);
            c.Parameters.Add(Nullable(ledgerCount, NpgsqlDbType.Bigint));
            c.Parameters.Add(Nullable(ledgerCount is not null ? ledgerHead : null, NpgsqlDbType.Bytea));
            return c.ExecuteNonQuery();
        });
    }

    /// <inheritdoc/>
    public IReadOnlyList<RoundRecord> ReadRounds() => Run("reading rounds", () =>
    {
        using var conn = _schema.DataSource.OpenConnection();
        using var c = _schema.Command(conn, "SELECT round, parameter_version, cohort, accepted, rejected, mean_loss, accuracy, update_bytes, started_ms, completed_ms FROM {s}.coord_rounds ORDER BY round");
        using var r = c.ExecuteReader();
        var list = new List<RoundRecord>();
        while (r.Read())
        {
            list.Add(new RoundRecord(
                r.GetInt64(0), r.GetInt64(1), r.GetInt32(2), r.GetInt32(3), r.GetInt32(4),
                r.IsDBNull(5) ? double.NaN : r.GetDouble(5), r.IsDBNull(6) ? null : r.GetDouble(6), r.GetInt64(7), r.GetInt64(8), r.GetInt64(9)));
        }

        return (IReadOnlyList<RoundRecord>)list;
    });

    /// <inheritdoc/>
    public long LastRound() => Run("reading rounds", () => Scalar("SELECT MAX(round) FROM {s}.coord_rounds") is long l ? l : -1L);

    /// <inheritdoc/>
    public LedgerAnchor? LatestLedgerAnchor() => Run("reading the ledger anchor", () =>
    {
        using var conn = _schema.DataSource.OpenConnection();
        using var c = _schema.Command(conn, "SELECT round, ledger_count, ledger_head FROM {s}.coord_rounds WHERE ledger_count IS NOT NULL ORDER BY ledger_count DESC, round DESC LIMIT 1");
        using var r = c.ExecuteReader();
        return r.Read() ? new LedgerAnchor(r.GetInt64(0), r.GetInt64(1), (byte[])r.GetValue(2)) : null;
    });

    /// <inheritdoc/>
    public void RecordMembership(long nowMs, string workerId, string publicKeyHex, string kind, long round, string detail)
    {
        ArgumentNullException.ThrowIfNull(workerId);
        ArgumentNullException.ThrowIfNull(publicKeyHex);
        ArgumentNullException.ThrowIfNull(kind);
        ArgumentNullException.ThrowIfNull(detail);
        Run("recording a membership event", () =>
        {
            using var conn = _schema.DataSource.OpenConnection();
            using var c = _schema.Command(conn, "INSERT INTO {s}.coord_membership (at_ms, worker_id, public_key, event, round, detail) VALUES ($1, $2, $3, $4, $5, $6)");
            c.Parameters.AddWithValue(nowMs);
            c.Parameters.AddWithValue(workerId);
            c.Parameters.AddWithValue(publicKeyHex);
            c.Parameters.AddWithValue(kind);
            c.Parameters.AddWithValue(round);
            c.Parameters.AddWithValue(detail);
            return c.ExecuteNonQuery();
        });
    }

    /// <inheritdoc/>
    public IReadOnlyList<(string WorkerId, string Event, long Round, string Detail)> ReadMembership() => Run("reading membership events", () =>
    {
        using var conn = _schema.DataSource.OpenConnection();
        using var c = _schema.Command(conn, "SELECT worker_id, event, round, detail FROM {s}.coord_membership ORDER BY id");
        using var r = c.ExecuteReader();
        var list = new List<(string, string, long, string)>();
        while (r.Read())
        {
            list.Add((r.GetString(0), r.GetString(1), r.GetInt64(2), r.GetString(3)));
        }

        return (IReadOnlyList<(string, string, long, string)>)list;
    });

    /// <inheritdoc/>
    public void RecordCheckpoint(CheckpointRecord record, long nowMs)
    {
        ArgumentNullException.ThrowIfNull(record);
        Run("indexing checkpoint of round " + Format(record.Round), () =>
        {
            using var conn = _schema.DataSource.OpenConnection();
            using var c = _schema.Command(conn, """
                INSERT INTO {s}.coord_checkpoints VALUES ($1, $2, $3, $4, $5, $6)
                ON CONFLICT (round) DO UPDATE SET parameter_version = EXCLUDED.parameter_version, path = EXCLUDED.path,
                  file_sha256 = EXCLUDED.file_sha256, bytes = EXCLUDED.bytes, written_ms = EXCLUDED.written_ms
                """);
            c.Parameters.AddWithValue(record.Round);
            c.Parameters.AddWithValue(record.ParameterVersion);
            c.Parameters.AddWithValue(CheckpointPaths.ToStored(Folder, record.Path));
            c.Parameters.AddWithValue(record.FileSha256);
            c.Parameters.AddWithValue(record.Bytes);
            c.Parameters.AddWithValue(nowMs);
            return c.ExecuteNonQuery();
        });
    }

    /// <inheritdoc/>
    public CheckpointRecord? LatestCheckpoint() => Run("reading the checkpoint index", () =>
        ReadCheckpoints($"SELECT {Columns} FROM {{s}}.coord_checkpoints ORDER BY round DESC LIMIT 1") is [var latest] ? latest : null);

    /// <inheritdoc/>
    public IReadOnlyList<CheckpointRecord> ListCheckpoints() => Run("reading the checkpoint index", () =>
        (IReadOnlyList<CheckpointRecord>)ReadCheckpoints($"SELECT {Columns} FROM {{s}}.coord_checkpoints ORDER BY round"));

    /// <inheritdoc/>
    public void ForgetCheckpoint(long round) => Run("removing checkpoint of round " + Format(round) + " from the index", () =>
    {
        using var conn = _schema.DataSource.OpenConnection();
        using var c = _schema.Command(conn, "DELETE FROM {s}.coord_checkpoints WHERE round = $1");
        c.Parameters.AddWithValue(round);
        return c.ExecuteNonQuery();
    });

    /// <inheritdoc/>
    public void RecordSettlement(IReadOnlyList<SettlementRecord> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        Run("recording a settlement", () =>
        {
            using var conn = _schema.DataSource.OpenConnection();
            using var tx = conn.BeginTransaction();
            foreach (var s in records)
            {
                using var c = _schema.Command(conn, "INSERT INTO {s}.coord_settlements VALUES ($1, $2, $3, $4, $5, $6, $7)", tx);
                c.Parameters.AddWithValue(s.Epoch);
                c.Parameters.AddWithValue(s.Slot);
                c.Parameters.AddWithValue(unchecked((long)s.Nonce));
                c.Parameters.AddWithValue(s.Hash);
                c.Parameters.AddWithValue(s.Receiver);
                c.Parameters.AddWithValue(s.Amount);
                c.Parameters.AddWithValue(s.DryRun);
                c.ExecuteNonQuery();
            }

            tx.Commit();
            return records.Count;
        });
    }

    /// <inheritdoc/>
    public IReadOnlyList<SettlementRecord> ReadSettlements() => Run("reading settlements", () =>
    {
        using var conn = _schema.DataSource.OpenConnection();
        using var c = _schema.Command(conn, "SELECT epoch, slot, nonce, hash, receiver, amount, dry_run FROM {s}.coord_settlements ORDER BY epoch, slot");
        using var r = c.ExecuteReader();
        var list = new List<SettlementRecord>();
        while (r.Read())
        {
            list.Add(new SettlementRecord(r.GetInt64(0), r.GetInt32(1), unchecked((ulong)r.GetInt64(2)), r.GetString(3), r.GetString(4), r.GetString(5), r.GetBoolean(6)));
        }

        return (IReadOnlyList<SettlementRecord>)list;
    });

    /// <inheritdoc/>
    public WorkerKeyBinding? ReadWorkerKey(string workerId)
    {
        ArgumentNullException.ThrowIfNull(workerId);
        return Run("reading a worker key", () =>
        {
            using var conn = _schema.DataSource.OpenConnection();
            return ReadWorkerKey(conn, workerId);
        });
    }

    /// <inheritdoc/>
    public WorkerKeyBinding BindWorkerKey(string workerId, string publicKeyHex, long nowMs)
    {
        ArgumentException.ThrowIfNullOrEmpty(workerId);
        ArgumentException.ThrowIfNullOrEmpty(publicKeyHex);
        return Run("binding a worker key", () =>
        {
            using var conn = _schema.DataSource.OpenConnection();
            using (var c = _schema.Command(conn, "INSERT INTO {s}.coord_worker_keys (worker_id, public_key, bound_ms, rotations) VALUES ($1, $2, $3, 0) ON CONFLICT (worker_id) DO NOTHING"))
            {
                c.Parameters.AddWithValue(workerId);
                c.Parameters.AddWithValue(publicKeyHex);
                c.Parameters.AddWithValue(nowMs);
                c.ExecuteNonQuery();
            }

            return ReadWorkerKey(conn, workerId)!;
        });
    }

    /// <inheritdoc/>
    public bool RotateWorkerKey(string workerId, string previousKeyHex, string newKeyHex, long nowMs)
    {
        ArgumentException.ThrowIfNullOrEmpty(workerId);
        ArgumentException.ThrowIfNullOrEmpty(previousKeyHex);
        ArgumentException.ThrowIfNullOrEmpty(newKeyHex);
        return Run("rotating a worker key", () =>
        {
            using var conn = _schema.DataSource.OpenConnection();
            using var c = _schema.Command(conn, "UPDATE {s}.coord_worker_keys SET public_key = $1, bound_ms = $2, rotations = rotations + 1 WHERE worker_id = $3 AND public_key = $4");
            c.Parameters.AddWithValue(newKeyHex);
            c.Parameters.AddWithValue(nowMs);
            c.Parameters.AddWithValue(workerId);
            c.Parameters.AddWithValue(previousKeyHex);
            return c.ExecuteNonQuery() == 1;
        });
    }

    /// <inheritdoc/>
    public void Dispose() => _disposed = true;

    private static string Format(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static NpgsqlParameter Nullable(object? value, NpgsqlDbType type) => new() { Value = value ?? DBNull.Value, NpgsqlDbType = type };

    private WorkerKeyBinding? ReadWorkerKey(NpgsqlConnection conn, string workerId)
    {
        using var c = _schema.Command(conn, "SELECT public_key, bound_ms, rotations FROM {s}.coord_worker_keys WHERE worker_id = $1");
        c.Parameters.AddWithValue(workerId);
        using var r = c.ExecuteReader();
        return r.Read() ? new WorkerKeyBinding(workerId, r.GetString(0), r.GetInt64(1), r.GetInt64(2)) : null;
    }

    private List<CheckpointRecord> ReadCheckpoints(string sql)
    {
        using var conn = _schema.DataSource.OpenConnection();
        using var c = _schema.Command(conn, sql);
        using var r = c.ExecuteReader();
        var list = new List<CheckpointRecord>();
        while (r.Read())
        {
            list.Add(new CheckpointRecord(r.GetInt64(0), r.GetInt64(1), CheckpointPaths.FromStored(Folder, r.GetString(2)), r.GetString(3), r.GetInt64(4)));
        }

        return list;
    }

    private object? Scalar(string sql)
    {
        using var conn = _schema.DataSource.OpenConnection();
        using var c = _schema.Command(conn, sql);
        var v = c.ExecuteScalar();
        return v is DBNull ? null : v;
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
            throw new CoordinatorStateException(StateProblem.Storage, Location, $"{Location}: {operation} failed: {ex.Message}", ex);
        }
    }
}
