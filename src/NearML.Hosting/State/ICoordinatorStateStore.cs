namespace NearML.Hosting.State;

/// <summary>
/// The index of the checkpoints a coordinator wrote (the files themselves live in the state folder's
/// <c>checkpoints/</c>). A path inside <see cref="Folder"/> is stored relative to it, so a moved or restored folder
/// keeps working; paths read back are full paths in the folder the index is opened with.
/// </summary>
public interface ICheckpointIndex
{
    /// <summary>Gets a description of where the state is kept (a file path, or a database and schema), for messages.</summary>
    string Location { get; }

    /// <summary>Gets the state folder: relative checkpoint paths are relative to it.</summary>
    string Folder { get; }

    /// <summary>Indexes a checkpoint that is durably on disk (replacing an entry of the same round).</summary>
    /// <param name="record">The checkpoint.</param>
    /// <param name="nowMs">The time.</param>
    void RecordCheckpoint(CheckpointRecord record, long nowMs);

    /// <summary>Gets the newest checkpoint, if any.</summary>
    /// <returns>The checkpoint or <see langword="null"/>.</returns>
    CheckpointRecord? LatestCheckpoint();

    /// <summary>Lists the indexed checkpoints, oldest first.</summary>
    /// <returns>The checkpoints.</returns>
    IReadOnlyList<CheckpointRecord> ListCheckpoints();

    /// <summary>Removes a checkpoint from the index (its file was deleted).</summary>
    /// <param name="round">The checkpoint's round.</param>
    void ForgetCheckpoint(long round);
}

/// <summary>
/// The coordinator's durable state: the job, completed rounds (each with the ledger head it left), membership events,
/// worker-key bindings, the checkpoint index and the settlement transactions it recorded. Every call is durable when it
/// returns and every storage error surfaces as a <see cref="CoordinatorStateException"/> naming
/// <see cref="ICheckpointIndex.Location"/>. Implementations are thread-safe. <see cref="CoordinatorStateStore"/> (SQLite,
/// <c>coordinator.db</c>) is the embedded default; <c>NearML.PostgreSql</c> adds a PostgreSQL one.
/// </summary>
public interface ICoordinatorStateStore : ICheckpointIndex, IDisposable
{
    /// <summary>Reads the id of the recorded job, if a job was recorded.</summary>
    /// <returns>The job id, or <see langword="null"/> for a store that holds no job (new or emptied).</returns>
    string? ReadJobId();

    /// <summary>Records the job on first start, or checks that the stored job is the same one.</summary>
    /// <param name="jobId">The job id.</param>
    /// <param name="model">The architecture.</param>
    /// <param name="modelConfig">The model configuration JSON.</param>
    /// <param name="datasetRoot">The dataset manifest root (hex).</param>
    /// <param name="settings">A description of the hyper-parameters (informational).</param>
    /// <param name="nowMs">The time.</param>
    /// <exception cref="CoordinatorStateException">The store holds another job.</exception>
    void EnsureJob(string jobId, string model, string modelConfig, string datasetRoot, string settings, long nowMs);

    /// <summary>Reads the recorded job, for status tools.</summary>
    /// <returns>The job, or <see langword="null"/> before the coordinator first started.</returns>
    JobRecord? ReadJob();

    /// <summary>Records a completed round (replacing a record of the same round from a run that did not checkpoint it).</summary>
    /// <param name="record">The round.</param>
    void RecordRound(RoundRecord record);

    /// <summary>Records a completed round together with the ledger head after its receipts.</summary>
    /// <param name="record">The round.</param>
    /// <param name="ledgerCount">The ledger's entry count after the round's receipts, or <see langword="null"/>.</param>
    /// <param name="ledgerHead">The hash of the ledger's last entry then (32 bytes), or <see langword="null"/>.</param>
    void RecordRound(RoundRecord record, long? ledgerCount, byte[]? ledgerHead = null);

    /// <summary>Reads the recorded rounds, in order.</summary>
    /// <returns>The rounds.</returns>
    IReadOnlyList<RoundRecord> ReadRounds();

    /// <summary>Gets the highest recorded round, or -1 when none is.</summary>
    /// <returns>The round.</returns>
    long LastRound();

    /// <summary>Gets the newest ledger anchor (the recorded round whose ledger head is the largest).</summary>
    /// <returns>The anchor, or <see langword="null"/> when no round carries one.</returns>
    LedgerAnchor? LatestLedgerAnchor();

    /// <summary>Appends a membership event (join, leave, drop, refuse).</summary>
    /// <param name="nowMs">The time.</param>
    /// <param name="workerId">The worker.</param>
    /// <param name="publicKeyHex">Its identity key (hex), or empty.</param>
    /// <param name="kind">The event.</param>
    /// <param name="round">The coordinator's round at the time.</param>
    /// <param name="detail">Why.</param>
    void RecordMembership(long nowMs, string workerId, string publicKeyHex, string kind, long round, string detail);

    /// <summary>Reads the membership events, oldest first.</summary>
    /// <returns>(worker, event, round, detail) tuples.</returns>
    IReadOnlyList<(string WorkerId, string Event, long Round, string Detail)> ReadMembership();

    /// <summary>Stores the signed transactions of an epoch's settlement in one transaction (a duplicate (epoch, slot) fails the whole batch).</summary>
    /// <param name="records">The transactions.</param>
    void RecordSettlement(IReadOnlyList<SettlementRecord> records);

    /// <summary>Reads every stored settlement transaction, by epoch and slot.</summary>
    /// <returns>The transactions.</returns>
    IReadOnlyList<SettlementRecord> ReadSettlements();

    /// <summary>Reads the key <paramref name="workerId"/> is bound to.</summary>
    /// <param name="workerId">The worker id.</param>
    /// <returns>The binding, or <see langword="null"/> when the id was never admitted.</returns>
    WorkerKeyBinding? ReadWorkerKey(string workerId);

    /// <summary>Binds <paramref name="workerId"/> to <paramref name="publicKeyHex"/> unless it is bound already (atomic).</summary>
    /// <param name="workerId">The worker id.</param>
    /// <param name="publicKeyHex">The key (hex).</param>
    /// <param name="nowMs">The time.</param>
    /// <returns>The binding in force afterwards.</returns>
    WorkerKeyBinding BindWorkerKey(string workerId, string publicKeyHex, long nowMs);

    /// <summary>Moves <paramref name="workerId"/> from <paramref name="previousKeyHex"/> to <paramref name="newKeyHex"/> (atomic compare-and-set).</summary>
    /// <param name="workerId">The worker id.</param>
    /// <param name="previousKeyHex">The key it must be bound to now.</param>
    /// <param name="newKeyHex">The new key.</param>
    /// <param name="nowMs">The time.</param>
    /// <returns><see langword="true"/> when the binding moved.</returns>
    bool RotateWorkerKey(string workerId, string previousKeyHex, string newKeyHex, long nowMs);
}

/// <summary>How every <see cref="ICheckpointIndex"/> stores checkpoint paths: relative to the state folder when inside it.</summary>
public static class CheckpointPaths
{
    /// <summary>The stored form of a checkpoint path: relative to <paramref name="folder"/> when inside it, else the full path.</summary>
    /// <param name="folder">The state folder (full path).</param>
    /// <param name="path">The checkpoint file (full, or relative to <paramref name="folder"/>).</param>
    /// <returns>The stored form.</returns>
    public static string ToStored(string folder, string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        ArgumentException.ThrowIfNullOrEmpty(path);
        var full = Path.GetFullPath(path, folder);
        var relative = Path.GetRelativePath(folder, full);
        return relative == ".." || relative.StartsWith(".." + Path.DirectorySeparatorChar, StringComparison.Ordinal) || Path.IsPathRooted(relative)
            ? full
            : relative;
    }

    /// <summary>The full path of a stored checkpoint path in <paramref name="folder"/>.</summary>
    /// <param name="folder">The state folder (full path).</param>
    /// <param name="stored">The stored form.</param>
    /// <returns>The full path.</returns>
    public static string FromStored(string folder, string stored)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        ArgumentNullException.ThrowIfNull(stored);
        return Path.GetFullPath(stored, folder);
    }
}
