namespace NearML.Hosting.State;

/// <summary>The durable binding of a worker id to the identity key first admitted under it.</summary>
/// <param name="WorkerId">The worker id.</param>
/// <param name="PublicKeyHex">The bound ed25519 public key (hex).</param>
/// <param name="BoundUnixMs">When the id was bound (or last rotated).</param>
/// <param name="Rotations">How many signed rotations moved it since it was first bound.</param>
public sealed record WorkerKeyBinding(string WorkerId, string PublicKeyHex, long BoundUnixMs, long Rotations);

/// <summary>Worker-id bindings (table <c>worker_keys</c>): an id belongs to the first key admitted under it, for good.</summary>
public sealed partial class CoordinatorStateStore
{
    private bool _workerKeysReady;

    /// <summary>Reads the key <paramref name="workerId"/> is bound to.</summary>
    /// <param name="workerId">The worker id.</param>
    /// <returns>The binding, or <see langword="null"/> when the id was never admitted.</returns>
    public WorkerKeyBinding? ReadWorkerKey(string workerId)
    {
        ArgumentNullException.ThrowIfNull(workerId);
        lock (_gate)
        {
            EnsureWorkerKeys();
            return ReadWorkerKeyLocked(workerId);
        }
    }

    /// <summary>Binds <paramref name="workerId"/> to <paramref name="publicKeyHex"/> unless it is bound already (atomic).</summary>
    /// <param name="workerId">The worker id.</param>
    /// <param name="publicKeyHex">The key (hex).</param>
    /// <param name="nowMs">The time.</param>
    /// <returns>The binding in force afterwards: the given key when the id was free or already bound to it, otherwise the other key.</returns>
    public WorkerKeyBinding BindWorkerKey(string workerId, string publicKeyHex, long nowMs)
    {
        ArgumentException.ThrowIfNullOrEmpty(workerId);
        ArgumentException.ThrowIfNullOrEmpty(publicKeyHex);
        lock (_gate)
        {
            EnsureWorkerKeys();
            using (var c = Command("INSERT OR IGNORE INTO worker_keys (worker_id, public_key, bound_ms, rotations) VALUES ($w, $k, $t, 0)"))
            {
                c.Parameters.AddWithValue("$w", workerId);
                c.Parameters.AddWithValue("$k", publicKeyHex);
                c.Parameters.AddWithValue("$t", nowMs);
                c.ExecuteNonQuery();
            }

            return ReadWorkerKeyLocked(workerId)!;
        }
    }

    /// <summary>Moves <paramref name="workerId"/> from <paramref name="previousKeyHex"/> to <paramref name="newKeyHex"/> (atomic compare-and-set).</summary>
    /// <param name="workerId">The worker id.</param>
    /// <param name="previousKeyHex">The key it must be bound to now (the caller verified its signature over the new key).</param>
    /// <param name="newKeyHex">The new key.</param>
    /// <param name="nowMs">The time.</param>
    /// <returns><see langword="true"/> when the binding moved; <see langword="false"/> when the id is not bound to <paramref name="previousKeyHex"/>.</returns>
    public bool RotateWorkerKey(string workerId, string previousKeyHex, string newKeyHex, long nowMs)
    {
        ArgumentException.ThrowIfNullOrEmpty(workerId);
        ArgumentException.ThrowIfNullOrEmpty(previousKeyHex);
        ArgumentException.ThrowIfNullOrEmpty(newKeyHex);
        lock (_gate)
        {
            EnsureWorkerKeys();
            using var c = Command("UPDATE worker_keys SET public_key = $n, bound_ms = $t, rotations = rotations + 1 WHERE worker_id = $w AND public_key = $p");
            c.Parameters.AddWithValue("$w", workerId);
            c.Parameters.AddWithValue("$p", previousKeyHex);
            c.Parameters.AddWithValue("$n", newKeyHex);
            c.Parameters.AddWithValue("$t", nowMs);
            return c.ExecuteNonQuery() == 1;
        }
    }

    private WorkerKeyBinding? ReadWorkerKeyLocked(string workerId)
    {
        using var c = Command("SELECT public_key, bound_ms, rotations FROM worker_keys WHERE worker_id = $w");
        c.Parameters.AddWithValue("$w", workerId);
        using var r = c.ExecuteReader();
        return r.Read() ? new WorkerKeyBinding(workerId, r.GetString(0), r.GetInt64(1), r.GetInt64(2)) : null;
    }

    private void EnsureWorkerKeys()
    {
        if (_workerKeysReady)
        {
            return;
        }

        Execute("""
            CREATE TABLE IF NOT EXISTS worker_keys (
              worker_id TEXT PRIMARY KEY, public_key TEXT NOT NULL, bound_ms INTEGER NOT NULL, rotations INTEGER NOT NULL);
            """);
        _workerKeysReady = true;
    }
}
