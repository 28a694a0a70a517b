using System.Globalization;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using NearML.Core;
using NearML.Ledger;

namespace NearML.Hosting.State;

/// <summary>
/// Opens the coordinator's state folder and refuses to start when its files disagree, so that durable state is never
/// silently lost: a deleted or emptied <c>coordinator.db</c> next to a ledger or checkpoints, a deleted or emptied
/// <c>ledger.db</c>, a ledger row that was changed or deleted (including the last one), a missing or replaced
/// <c>ledger-signer.key</c>, a <c>settlement.db</c> that no longer matches the ledger. Each refusal is a
/// <see cref="CoordinatorStateException"/> whose one-line message names the file and what to do
/// (docs/operator-guide.md, "State folder"). A genuinely new folder (no job, no ledger entries, no checkpoints, no
/// settlements) starts fresh.
/// </summary>
/// <remarks>
/// The anchor: with every round <c>coordinator.db</c> records the ledger head (entry count and last hash) after the
/// round's receipts. The ledger is appended before the round is recorded, so at start the ledger must hold at least the
/// anchored entries, with the anchored hash at the anchored position (checked by the ledger's own
/// <see cref="ContributionLedger.Verify"/> with the anchor as trusted head); beyond it only the receipts of one round
/// after the last recorded round may follow (a crash between the two writes). Every receipt's signatures are then
/// verified against <c>ledger-signer.key</c>.
/// </remarks>
public sealed class CoordinatorStateFolder : IDisposable
{
    /// <summary>The coordinator's SQLite state.</summary>
    public const string StateFileName = "coordinator.db";

    /// <summary>The contribution ledger.</summary>
    public const string LedgerFileName = "ledger.db";

    /// <summary>The receipt (and dry-run settlement) signing key.</summary>
    public const string SignerKeyFileName = "ledger-signer.key";

    /// <summary>The exactly-once settlement state (real settlement only).</summary>
    public const string SettlementFileName = "settlement.db";

    private CoordinatorStateFolder(string directory, ICoordinatorStateStore state, ContributionLedger ledger, NearKeyPair signer, bool isNew, long lastRound, IReadOnlyList<string> removed)
    {
        Directory = directory;
        State = state;
        Ledger = ledger;
        Signer = signer;
        IsNew = isNew;
        LastRound = lastRound;
        RemovedTemporaryFiles = removed;
    }

    /// <summary>Gets the state folder (full path).</summary>
    public string Directory { get; }

    /// <summary>Gets the coordinator's state (SQLite: <c>coordinator.db</c>).</summary>
    public ICoordinatorStateStore State { get; }

    /// <summary>Gets the contribution ledger (<c>ledger.db</c>).</summary>
    public ContributionLedger Ledger { get; }

    /// <summary>Gets the receipt-signing key (<c>ledger-signer.key</c>).</summary>
    public NearKeyPair Signer { get; }

    /// <summary>Gets a value indicating whether the folder held no job (a fresh start).</summary>
    public bool IsNew { get; }

    /// <summary>Gets the highest recorded round, or -1.</summary>
    public long LastRound { get; }

    /// <summary>Gets the temporary files of interrupted writes that were removed.</summary>
    public IReadOnlyList<string> RemovedTemporaryFiles { get; }

    /// <summary>Opens the folder, cross-checks its files and verifies the ledger; creates what a new folder lacks.</summary>
    /// <param name="directory">The state folder.</param>
    /// <param name="jobId">The job the coordinator runs (for the log; that the folder holds this job is checked by <see cref="CoordinatorStateStore.EnsureJob"/>).</param>
    /// <param name="logger">Told what was checked, removed or created.</param>
    /// <param name="cancellationToken">Stops the verification.</param>
    /// <returns>The open folder; dispose it to close every store.</returns>
    /// <exception cref="CoordinatorStateException">The files disagree, one does not verify, or one cannot be read.</exception>
    public static CoordinatorStateFolder Open(string directory, string jobId, ILogger? logger = null, CancellationToken cancellationToken = default) =>
        Open(directory, SqliteStateBackend.Instance, jobId, logger, cancellationToken);

    /// <summary>
    /// Opens the folder with the stores of <paramref name="backend"/>, cross-checks them and verifies the ledger; creates
    /// what a new folder lacks. The signing key and the checkpoint files are in the folder with every backend.
    /// </summary>
    /// <param name="directory">The state folder.</param>
    /// <param name="backend">Where the coordinator state, ledger and settlement stores are kept.</param>
    /// <param name="jobId">The job the coordinator runs (for the log).</param>
    /// <param name="logger">Told what was checked, removed or created.</param>
    /// <param name="cancellationToken">Stops the verification.</param>
    /// <returns>The open folder; dispose it to close every store.</returns>
    /// <exception cref="CoordinatorStateException">The stores disagree, one does not verify, or one cannot be read.</exception>
    public static CoordinatorStateFolder Open(string directory, ICoordinatorStateBackend backend, string jobId, ILogger? logger = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentException.ThrowIfNullOrEmpty(jobId);
        logger ??= NullLogger.Instance;
        var dir = System.IO.Directory.CreateDirectory(directory).FullName;
        var files = new Files(dir, backend);

        var removed = new List<string>(CheckpointStore.RemoveTemporaryFiles(files.Checkpoints));
        if (File.Exists(files.SignerKey + CheckpointStore.TemporarySuffix))
        {
            File.Delete(files.SignerKey + CheckpointStore.TemporarySuffix);
            removed.Add(files.SignerKey + CheckpointStore.TemporarySuffix);
        }

        foreach (var f in removed)
        {
            StateLog.TemporaryFileRemoved(logger, f);
        }

        var stateStatus = files.Probe(StateStoreKind.State);
        var checkpointFiles = ListCheckpointFiles(files.Checkpoints);
        ICoordinatorStateStore? state = null;
        ContributionLedger? ledger = null;
        NearKeyPair? signer = null;
        try
        {
            state = OpenState(files);
            if (files.Probe(StateStoreKind.Ledger) != StoreStatus.Missing)
            {
                ledger = OpenLedger(files);
            }

            var head = ledger is null ? LedgerHead.Empty : ReadHead(ledger, files.Ledger);
            var settlementEpochs = files.Probe(StateStoreKind.Settlement) != StoreStatus.Missing ? ReadSettlementIntents(files) : [];
            var storedJob = state.ReadJobId();
            var isNew = storedJob is null;
            var lastRound = state.LastRound();
            if (isNew)
            {
                CheckNewFolder(files, state, stateStatus, head, checkpointFiles, settlementEpochs);
            }
            else
            {
                // The ledger goes with the job coordinator.db holds (a different configured job is refused by EnsureJob).
                CheckRecordedFolder(files, state, ledger, head, storedJob!, lastRound, checkpointFiles, settlementEpochs, cancellationToken);
            }

            ledger ??= OpenLedger(files);
            signer = LoadSigner(files, head, state.ReadSettlements().Count + settlementEpochs.Count, logger);
            if (head.Count > 0)
            {
                VerifySignatures(files, ledger, head, signer, cancellationToken);
            }

            if (isNew)
            {
                StateLog.NewFolder(logger, dir, jobId);
            }
            else
            {
                var anchorRound = state.LatestLedgerAnchor()?.Round ?? -1;
                StateLog.Verified(logger, dir, head.Count, lastRound, anchorRound);
            }

            return new CoordinatorStateFolder(dir, state, ledger, signer, isNew, lastRound, removed);
        }
        catch
        {
            signer?.Dispose();
            ledger?.Dispose();
            state?.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Signer.Dispose();
        Ledger.Dispose();
        State.Dispose();
    }

    /// <summary>A folder whose <c>coordinator.db</c> holds no job must hold nothing else of value.</summary>
    private static void CheckNewFolder(Files files, ICoordinatorStateStore state, StoreStatus stateStatus, LedgerHead head, List<(long Round, string Path)> checkpointFiles, List<long> settlementEpochs)
    {
        var what = stateStatus switch { StoreStatus.Missing => "is missing", StoreStatus.Empty => "is empty", _ => "holds no job" };
        var problem = stateStatus != StoreStatus.Missing ? StateProblem.Truncated : StateProblem.Missing;
        const string Advice = "Restore it from a backup (with the other files of the same backup); to start the job over, move the whole folder away instead.";
        if (head.Count > 0)
        {
            throw new CoordinatorStateException(problem, files.State,
                $"{files.State} {what} but {files.Ledger} holds {head.Count} receipt(s) (last epoch {head.LastEpoch}): starting over would redo credited rounds and settle epochs again. {Advice}");
        }

        if (checkpointFiles.Count > 0)
        {
            throw new CoordinatorStateException(problem, files.State,
                $"{files.State} {what} but {files.Checkpoints} holds {checkpointFiles.Count} checkpoint(s) (newest {Path.GetFileName(checkpointFiles[^1].Path)}). {Advice}");
        }

        if (settlementEpochs.Count > 0)
        {
            throw new CoordinatorStateException(problem, files.State,
                $"{files.State} {what} but {files.Settlement} records the settlement of epoch(s) {string.Join(", ", settlementEpochs)}. {Advice}");
        }

        if (state.LastRound() >= 0 || state.LatestCheckpoint() is not null || state.ReadSettlements().Count > 0)
        {
            throw new CoordinatorStateException(StateProblem.Truncated, files.State,
                $"{files.State} records rounds, checkpoints or settlements but no job: its job row was deleted. {Advice}");
        }
    }

    private static void CheckRecordedFolder(
        Files files, ICoordinatorStateStore state, ContributionLedger? ledger, LedgerHead head, string jobId, long lastRound,
        List<(long Round, string Path)> checkpointFiles, List<long> settlementEpochs, CancellationToken cancellationToken)
    {
        var anchor = state.LatestLedgerAnchor();
        var anchored = anchor?.Count ?? 0;
        const string RestoreLedger = "Receipts cannot be re-created: restore ledger.db from a backup taken no earlier than coordinator.db's.";
        if (ledger is null && anchored > 0)
        {
            throw new CoordinatorStateException(StateProblem.Missing, files.Ledger,
                $"{files.Ledger} is missing but {files.State} recorded {anchored} ledger entries after round {anchor!.Round}. {RestoreLedger}");
        }

        if (head.Count < anchored)
        {
            var detail = head.Count == 0 ? "holds no entries: it was emptied or replaced" : $"holds {head.Count} entries: entries {head.Count}..{anchored - 1} were deleted";
            throw new CoordinatorStateException(StateProblem.Truncated, files.Ledger,
                $"{files.Ledger} {detail}, but {files.State} recorded {anchored} after round {anchor!.Round}. {RestoreLedger}");
        }

        if (ledger is not null)
        {
            // The ledger's own verification, with the anchor as trusted head: links, hashes, positions, epoch order.
            var trusted = anchor is null ? null : new LedgerHead(anchor.Count, anchor.LastHash, -1);
            var result = Guard(files.Ledger, "verifying the ledger", () => ledger.Verify(trusted, cancellationToken));
            if (!result.IsValid)
            {
                throw new CoordinatorStateException(StateProblem.Altered, files.Ledger,
                    $"{files.Ledger} does not verify ({result.Problem}): {result.Message}. {RestoreLedger}");
            }

            if (anchor is { Count: > 0 } && head.Count > anchored)
            {
                var at = Guard(files.Ledger, "reading the ledger", () => ledger.Store.Read(anchored - 1, 1).Single());
                if (!at.Hash.AsSpan().SequenceEqual(anchor.LastHash))
                {
                    throw new CoordinatorStateException(StateProblem.Altered, files.Ledger,
                        $"{files.Ledger} was rewritten: entry {anchored - 1} is not the entry {files.State} recorded after round {anchor.Round}. {RestoreLedger}");
                }
            }

            CheckUnanchoredTail(files, ledger, jobId, lastRound, anchor, head);
            CheckSettlements(files, state, ledger, settlementEpochs);
        }

        if (state.LatestCheckpoint() is { } latest && latest.Round > lastRound)
        {
            throw new CoordinatorStateException(StateProblem.Truncated, files.State,
                $"{files.State} indexes the checkpoint of round {latest.Round} but records rounds only up to {lastRound}: rows of its round table were deleted. Restore coordinator.db from a backup.");
        }

        // A checkpoint is written only after its round is recorded, so no checkpoint file can be newer than the last round.
        if (checkpointFiles.Count > 0 && checkpointFiles[^1].Round > lastRound)
        {
            throw new CoordinatorStateException(StateProblem.OutOfStep, files.State,
                $"{files.State} records rounds only up to {lastRound} but {checkpointFiles[^1].Path} exists: coordinator.db is older than the checkpoints (restored from an older backup?). Restore the coordinator.db that goes with them.");
        }
    }

    /// <summary>Beyond the anchored head only the receipts of one round after the last recorded round may follow.</summary>
    private static void CheckUnanchoredTail(Files files, ContributionLedger ledger, string jobId, long lastRound, LedgerAnchor? anchor, LedgerHead head)
    {
        var from = anchor?.Count ?? 0;
        if (head.Count <= from)
        {
            return;
        }

        long? tailRound = null;
        foreach (var entry in Guard(files.Ledger, "reading the ledger", () => ledger.Store.Read(from).ToList()))
        {
            var receipt = ParseReceipt(files, entry).Receipt;
            if (receipt.JobId != jobId)
            {
                throw new CoordinatorStateException(StateProblem.OutOfStep, files.Ledger,
                    $"{files.Ledger} entry {entry.Sequence} is a receipt of job '{receipt.JobId}', not of job '{jobId}' that {files.State} holds: the ledger belongs to another state folder. Put back this folder's own ledger.db.");
            }

            // With an anchor the tail is one batch (one round); without (rounds recorded by an older version) the
            // ledger may hold every recorded round, plus one.
            var ok = anchor is null
                ? receipt.Round <= lastRound + 1
                : receipt.Round > lastRound && (tailRound ?? receipt.Round) == receipt.Round;
            if (!ok)
            {
                var recorded = anchor is null ? $"records rounds only up to {lastRound}" : $"recorded {from} ledger entries after round {anchor.Round} (last round {lastRound})";
                throw new CoordinatorStateException(StateProblem.OutOfStep, files.State,
                    $"{files.State} is behind {files.Ledger}: it {recorded} but ledger entry {entry.Sequence} credits round {receipt.Round}. Was coordinator.db restored from an older backup, or its rounds deleted? Restore the coordinator.db that goes with this ledger.db (or both from the same backup): starting from here would settle epochs twice.");
            }

            tailRound = receipt.Round;
        }
    }

    private static void CheckSettlements(Files files, ICoordinatorStateStore state, ContributionLedger ledger, List<long> settlementEpochs)
    {
        var records = state.ReadSettlements();
        foreach (var epoch in records.Select(r => r.Epoch).Distinct())
        {
            if (Guard(files.Ledger, "reading the ledger", () => ledger.Store.GetEpochRange(epoch)) is null)
            {
                throw new CoordinatorStateException(StateProblem.Truncated, files.Ledger,
                    $"{files.State} records the settlement of epoch {epoch} but {files.Ledger} holds no receipt of that epoch: the ledger was emptied or replaced. Restore ledger.db from a backup.");
            }
        }

        var sent = records.Where(r => !r.DryRun).Select(r => r.Epoch).Distinct().ToList();
        var missing = sent.Except(settlementEpochs).ToList();
        if (missing.Count > 0)
        {
            var exists = files.Probe(StateStoreKind.Settlement) != StoreStatus.Missing;
            var what = exists ? "has no record of" : "is missing, yet";
            throw new CoordinatorStateException(exists ? StateProblem.Truncated : StateProblem.Missing, files.Settlement,
                $"{files.Settlement} {what} epoch(s) {string.Join(", ", missing)} that {files.State} records as sent on chain: without it a retry could pay twice. Restore settlement.db from a backup.");
        }

        if (settlementEpochs.Count == 0)
        {
            return;
        }

        using var store = OpenSettlement(files);
        foreach (var epoch in settlementEpochs)
        {
            var intent = store.GetIntent(epoch)!;
            var root = Guard(files.Ledger, "computing an epoch root", () => ledger.ComputeEpochRoot(epoch));
            if (!root.AsSpan().SequenceEqual(intent.Root))
            {
                throw new CoordinatorStateException(StateProblem.Altered, files.Ledger,
                    $"{files.Ledger} no longer matches {files.Settlement}: epoch {epoch} was settled with ledger root {Convert.ToHexStringLower(intent.Root)} but the ledger now gives {Convert.ToHexStringLower(root)}. Restore ledger.db from a backup.");
            }
        }
    }

    private static NearKeyPair LoadSigner(Files files, LedgerHead head, int settlements, ILogger logger)
    {
        if (File.Exists(files.SignerKey))
        {
            try
            {
                return NearKeyPair.Parse(File.ReadAllText(files.SignerKey).Trim());
            }
            catch (Exception ex) when (ex is InvalidNearKeyException or IOException or UnauthorizedAccessException or FormatException)
            {
                throw new CoordinatorStateException(StateProblem.SigningKey, files.SignerKey,
                    $"{files.SignerKey} cannot be read as a NEAR ed25519 secret key: {ex.Message}. Restore it from a backup.", ex);
            }
        }

        if (head.Count > 0 || settlements > 0)
        {
            var what = head.Count > 0 ? $"{files.Ledger} holds {head.Count} receipt(s) signed with it" : $"settlements were signed with it";
            throw new CoordinatorStateException(StateProblem.SigningKey, files.SignerKey,
                $"{files.SignerKey} is missing but {what}: a new key would make every worker refuse the new receipts. Restore ledger-signer.key from a backup.");
        }

        NearKeyPair key;
        try
        {
            key = SecretKeyFile.CreateNew(files.SignerKey);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CoordinatorStateException(StateProblem.Storage, files.SignerKey, $"{files.SignerKey} cannot be written: {ex.Message}", ex);
        }

        if (logger.IsEnabled(LogLevel.Information))
        {
            var publicKey = key.PublicKey.ToString();
            StateLog.SignerCreated(logger, files.SignerKey, publicKey);
        }
        return key;
    }

    private static void VerifySignatures(Files files, ContributionLedger ledger, LedgerHead head, NearKeyPair signer, CancellationToken cancellationToken)
    {
        var last = Guard(files.Ledger, "reading the ledger", () => ledger.Store.Read(head.Count - 1, 1).Single());
        var lastKey = ParseReceipt(files, last).CoordinatorKey;
        if (!lastKey.Equals(signer.PublicKey))
        {
            throw new CoordinatorStateException(StateProblem.SigningKey, files.SignerKey,
                $"{files.SignerKey} holds {signer.PublicKey} but {files.Ledger}'s receipts are signed by {lastKey}: it was replaced, and workers would refuse receipts signed by it. Restore the original ledger-signer.key.");
        }

        var result = Guard(files.Ledger, "verifying receipt signatures", () => ledger.VerifySignatures(signer.PublicKey, cancellationToken: cancellationToken));
        if (!result.IsValid)
        {
            throw new CoordinatorStateException(StateProblem.Altered, files.Ledger,
                $"{files.Ledger} does not verify ({result.Problem}): {result.Message}. Restore ledger.db from a backup.");
        }
    }

    private static SignedReceipt ParseReceipt(Files files, LedgerEntry entry)
    {
        try
        {
            return SignedReceipt.Parse(entry.Payload, $"ledger entry {entry.Sequence}");
        }
        catch (Exception ex) when (ex is InvalidDataFormatException or InvalidNearKeyException)
        {
            throw new CoordinatorStateException(StateProblem.Altered, files.Ledger,
                $"{files.Ledger} entry {entry.Sequence} is not a signed receipt: {ex.Message}. Restore ledger.db from a backup.", ex);
        }
    }

    private static ICoordinatorStateStore OpenState(Files files)
    {
        try
        {
            return files.Backend.OpenState(files.Directory);
        }
        catch (LedgerStorageException ex)
        {
            throw new CoordinatorStateException(StateProblem.Storage, files.State, ex.Message, ex);
        }
    }

    private static ContributionLedger OpenLedger(Files files)
    {
        var path = files.Ledger;
        try
        {
            return new ContributionLedger(files.Backend.OpenLedger(files.Directory));
        }
        catch (LedgerStorageException ex)
        {
            throw new CoordinatorStateException(StateProblem.Storage, path, ex.Message, ex);
        }
        catch (LedgerIntegrityException ex)
        {
            throw new CoordinatorStateException(StateProblem.Altered, path, ex.Message, ex);
        }
    }

    private static LedgerHead ReadHead(ContributionLedger ledger, string path) => Guard(path, "reading the ledger head", () => ledger.Head);

    private static ISettlementStore OpenSettlement(Files files)
    {
        try
        {
            return files.Backend.OpenSettlement(files.Directory);
        }
        catch (SqliteException ex)
        {
            throw CoordinatorStateException.FromSqlite(files.Settlement, "opening the settlement state", ex);
        }
        catch (LedgerStorageException ex)
        {
            throw new CoordinatorStateException(StateProblem.Storage, files.Settlement, ex.Message, ex);
        }
    }

    private static List<long> ReadSettlementIntents(Files files)
    {
        using var store = OpenSettlement(files);
        return [.. Guard(files.Settlement, "reading settlement intents", store.ListEpochs)];
    }

    private static List<(long Round, string Path)> ListCheckpointFiles(string folder)
    {
        var list = new List<(long, string)>();
        if (!System.IO.Directory.Exists(folder))
        {
            return list;
        }

        foreach (var file in System.IO.Directory.EnumerateFiles(folder, "round-*.safetensors"))
        {
            var name = Path.GetFileNameWithoutExtension(file);
            if (long.TryParse(name.AsSpan("round-".Length), NumberStyles.None, CultureInfo.InvariantCulture, out var round))
            {
                list.Add((round, file));
            }
        }

        list.Sort((a, b) => a.Item1.CompareTo(b.Item1));
        return list;
    }

    private static T Guard<T>(string path, string operation, Func<T> action)
    {
        try
        {
            return action();
        }
        catch (SqliteException ex)
        {
            throw CoordinatorStateException.FromSqlite(path, operation, ex);
        }
        catch (LedgerStorageException ex)
        {
            throw new CoordinatorStateException(StateProblem.Storage, path, ex.Message, ex);
        }
        catch (LedgerIntegrityException ex)
        {
            throw new CoordinatorStateException(StateProblem.Altered, path, $"{path}: {ex.Message}", ex);
        }
    }

    private sealed class Files(string dir, ICoordinatorStateBackend backend)
    {
        public string Directory { get; } = dir;

        public ICoordinatorStateBackend Backend { get; } = backend;

        public string State { get; } = backend.Describe(dir, StateStoreKind.State);

        public string Ledger { get; } = backend.Describe(dir, StateStoreKind.Ledger);

        public string SignerKey { get; } = Path.Combine(dir, SignerKeyFileName);

        public string Settlement { get; } = backend.Describe(dir, StateStoreKind.Settlement);

        public string Checkpoints { get; } = Path.Combine(dir, CheckpointStore.FolderName);

        public StoreStatus Probe(StateStoreKind kind)
        {
            try
            {
                return Backend.Probe(Directory, kind);
            }
            catch (LedgerStorageException ex)
            {
                throw new CoordinatorStateException(StateProblem.Storage, Backend.Describe(Directory, kind), ex.Message, ex);
            }
        }
    }
}
