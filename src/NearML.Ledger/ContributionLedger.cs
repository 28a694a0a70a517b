using NearML.Core;

namespace NearML.Ledger;

/// <summary>
/// The tamper-evident contribution ledger: appends signed receipts in atomic batches to an <see cref="ILedgerStore"/>,
/// chaining every entry to the one before, computes per-epoch Merkle roots and inclusion proofs, and verifies the
/// whole history, naming the first entry that was altered, removed or reordered.
/// </summary>
public sealed class ContributionLedger : IDisposable
{
    private const int ReorderSearchWindow = 64;
    private readonly ILedgerStore _store;
    private readonly bool _ownsStore;
    private readonly Lock _gate = new();

    /// <summary>Initializes a new ledger over a store.</summary>
    /// <param name="store">The store.</param>
    /// <param name="ownsStore">Whether disposing the ledger disposes the store.</param>
    public ContributionLedger(ILedgerStore store, bool ownsStore = true)
    {
        ArgumentNullException.ThrowIfNull(store);
        _store = store;
        _ownsStore = ownsStore;
    }

    /// <summary>Opens (creating if needed) a ledger in a SQLite file.</summary>
    /// <param name="path">The file path.</param>
    /// <param name="durability">The durability level.</param>
    /// <returns>The ledger.</returns>
    public static ContributionLedger OpenSqlite(string path, LedgerDurability durability = LedgerDurability.Full) =>
        new(new SqliteLedgerStore(path, durability));

    /// <summary>Gets the underlying store.</summary>
    public ILedgerStore Store => _store;

    /// <summary>Reads the current head.</summary>
    /// <returns>The head.</returns>
    public LedgerHead Head => _store.ReadHead();

    /// <summary>Appends signed receipts as one atomic batch in <paramref name="epoch"/>.</summary>
    /// <param name="epoch">The epoch (not below the last entry's epoch).</param>
    /// <param name="receipts">The receipts; each must verify.</param>
    /// <param name="verifySignatures">Whether to check every receipt's signatures before appending.</param>
    /// <returns>The head after the batch.</returns>
    /// <exception cref="LedgerIntegrityException">A receipt does not verify, the epoch goes backwards, or another writer appended concurrently.</exception>
    public LedgerHead AppendBatch(long epoch, IReadOnlyList<SignedReceipt> receipts, bool verifySignatures = true)
    {
        ArgumentNullException.ThrowIfNull(receipts);
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        var payloads = new byte[receipts.Count][];
        var writer = new BorshWriter(512);
        for (int i = 0; i < receipts.Count; i++)
        {
            SignedReceipt r = receipts[i] ?? throw new ArgumentException($"receipts[{i}] is null.", nameof(receipts));
            r.Receipt.Validate();
            if (verifySignatures && !r.Verify())
            {
                throw new LedgerIntegrityException($"receipts[{i}] (job {r.Receipt.JobId}, round {r.Receipt.Round}, worker {r.Receipt.WorkerId}): a signature does not verify; nothing was appended.");
            }

            writer.Clear();
            r.WriteBorsh(writer);
            payloads[i] = writer.ToArray();
        }

        return AppendPayloads(epoch, payloads);
    }

    /// <summary>Appends already-encoded signed receipts as one atomic batch (no signature check).</summary>
    /// <param name="epoch">The epoch.</param>
    /// <param name="payloads">The Borsh bytes of signed receipts.</param>
    /// <returns>The head after the batch.</returns>
    public LedgerHead AppendPayloads(long epoch, IReadOnlyList<byte[]> payloads)
    {
        ArgumentNullException.ThrowIfNull(payloads);
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        lock (_gate)
        {
            LedgerHead head = _store.ReadHead();
            if (epoch < head.LastEpoch)
            {
                throw new LedgerIntegrityException($"epoch {epoch} is before the ledger's last epoch {head.LastEpoch}; epochs never go backwards.", head.Count);
            }

            if (payloads.Count == 0)
            {
                return head;
            }

            var entries = new LedgerEntry[payloads.Count];
            byte[] prev = head.LastHash;
            long seq = head.Count;
            for (int i = 0; i < payloads.Count; i++)
            {
                byte[] hash = LedgerEntry.ComputeHash(seq, epoch, prev, payloads[i]);
                entries[i] = new LedgerEntry(seq, epoch, prev, hash, payloads[i]);
                prev = hash;
                seq++;
            }

            _store.Append(head, entries);
            return new LedgerHead(seq, prev, epoch);
        }
    }

    /// <summary>
    /// Walks the whole chain (hashes and links, not signatures) and reports the first entry that was altered,
    /// removed or reordered. Pass a trusted head (for example one anchored on NEAR) to also detect a truncated tail.
    /// </summary>
    /// <param name="trustedHead">A head known to be genuine, or <see langword="null"/>.</param>
    /// <param name="cancellationToken">A token to stop early.</param>
    /// <returns>The result.</returns>
    public LedgerVerificationResult Verify(LedgerHead? trustedHead = null, CancellationToken cancellationToken = default)
    {
        long expected = 0;
        byte[] lastHash = new byte[LedgerEntry.HashSize];
        long lastEpoch = -1;
        Span<byte> computed = stackalloc byte[LedgerEntry.HashSize];
        foreach (LedgerEntry e in _store.Read(0))
        {
            if ((expected & 0xFFFF) == 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
            }

            if (e.Sequence != expected)
            {
                return new LedgerVerificationResult(LedgerProblem.Removed, expected, expected,
                    $"entry {expected} is missing (the next stored entry is {e.Sequence})");
            }

            LedgerEntry.ComputeHash(e.Sequence, e.Epoch, e.PreviousHash, e.Payload, computed);
            if (!computed.SequenceEqual(e.Hash))
            {
                return ClassifyMismatch(e, lastHash);
            }

            if (!e.PreviousHash.AsSpan().SequenceEqual(lastHash))
            {
                // The entry is consistent with itself but not with its predecessor.
                return ClassifyBrokenLink(e, expected);
            }

            if (e.Epoch < lastEpoch)
            {
                return new LedgerVerificationResult(LedgerProblem.EpochOrder, e.Sequence, expected, $"entry {e.Sequence} has epoch {e.Epoch} after epoch {lastEpoch}");
            }

            lastHash = e.Hash;
            lastEpoch = e.Epoch;
            expected++;
        }

        if (trustedHead is not null)
        {
            if (expected < trustedHead.Count)
            {
                return new LedgerVerificationResult(LedgerProblem.Removed, expected, expected,
                    $"entry {expected} is missing: the trusted head has {trustedHead.Count} entries, the ledger {expected}");
            }

            if (expected == trustedHead.Count && !lastHash.AsSpan().SequenceEqual(trustedHead.LastHash))
            {
                return new LedgerVerificationResult(LedgerProblem.Altered, expected - 1, expected,
                    $"the chain was rewritten: entry {expected - 1}'s hash differs from the trusted head");
            }
        }

        return LedgerVerificationResult.Ok(expected);
    }

    /// <summary>
    /// Checks every entry's payload parses as a signed receipt and its signatures verify, in parallel. This is
    /// separate from <see cref="Verify"/> because ed25519 verification is ~100× slower than the hash chain.
    /// </summary>
    /// <param name="trustedCoordinator">The coordinator key every receipt must carry, or <see langword="null"/> for any.</param>
    /// <param name="maxDegreeOfParallelism">The number of threads, or -1 for all cores.</param>
    /// <param name="cancellationToken">A token to stop early.</param>
    /// <returns>The result naming the lowest bad sequence.</returns>
    public LedgerVerificationResult VerifySignatures(NearPublicKey? trustedCoordinator = null, int maxDegreeOfParallelism = -1, CancellationToken cancellationToken = default)
    {
        long firstBad = long.MaxValue;
        string? message = null;
        long count = 0;
        var gate = new Lock();
        var options = new ParallelOptions { MaxDegreeOfParallelism = maxDegreeOfParallelism, CancellationToken = cancellationToken };
        const int chunk = 4096;
        IEnumerable<LedgerEntry[]> chunks = _store.Read(0).Chunk(chunk);
        Parallel.ForEach(chunks, options, block =>
        {
            foreach (LedgerEntry e in block)
            {
                string? problem = CheckSignature(e, trustedCoordinator);
                if (problem is not null)
                {
                    lock (gate)
                    {
                        if (e.Sequence < firstBad)
                        {
                            firstBad = e.Sequence;
                            message = problem;
                        }
                    }

                    break;
                }
            }

            Interlocked.Add(ref count, block.Length);
        });

        return message is null
            ? LedgerVerificationResult.Ok(count)
            : new LedgerVerificationResult(LedgerProblem.BadSignature, firstBad, count, message);
    }

    /// <summary>Computes the Merkle root of an epoch's entries.</summary>
    /// <param name="epoch">The epoch.</param>
    /// <returns>The 32-byte root (the empty-tree root if the epoch has no entries).</returns>
    public byte[] ComputeEpochRoot(long epoch) => MerkleTree.ComputeRoot(ReadEpochHashes(epoch, out _));

    /// <summary>Builds an inclusion proof for the entry at <paramref name="sequence"/> against its epoch's root.</summary>
    /// <param name="sequence">The entry's sequence number.</param>
    /// <returns>The proof.</returns>
    /// <exception cref="ArgumentOutOfRangeException">No entry has that sequence number.</exception>
    public ReceiptInclusionProof CreateInclusionProof(long sequence)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(sequence);
        LedgerEntry entry = _store.Read(sequence, 1).FirstOrDefault(e => e.Sequence == sequence)
            ?? throw new ArgumentOutOfRangeException(nameof(sequence), sequence, "No ledger entry has this sequence number.");
        List<byte[]> hashes = ReadEpochHashes(entry.Epoch, out long first);
        int index = checked((int)(sequence - first));
        return new ReceiptInclusionProof(entry.Epoch, sequence, entry.PreviousHash, entry.Payload, index, hashes.Count, MerkleTree.GetProof(hashes, index));
    }

    /// <summary>Reads and parses the signed receipts of an epoch, in ledger order.</summary>
    /// <param name="epoch">The epoch.</param>
    /// <returns>The receipts.</returns>
    public IReadOnlyList<SignedReceipt> ReadEpochReceipts(long epoch)
    {
        if (_store.GetEpochRange(epoch) is not { } range)
        {
            return [];
        }

        return _store.Read(range.FirstSequence, range.Count)
            .Select(e => SignedReceipt.Parse(e.Payload, $"ledger entry {e.Sequence}"))
            .ToList();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_ownsStore)
        {
            _store.Dispose();
        }
    }

    private List<byte[]> ReadEpochHashes(long epoch, out long firstSequence)
    {
        if (_store.GetEpochRange(epoch) is not { } range)
        {
            firstSequence = -1;
            return [];
        }

        firstSequence = range.FirstSequence;
        var hashes = new List<byte[]>(checked((int)range.Count));
        foreach (LedgerEntry e in _store.Read(range.FirstSequence, range.Count))
        {
            if (e.Epoch != epoch)
            {
                throw new LedgerIntegrityException($"entry {e.Sequence} is in epoch {e.Epoch} but the epoch index places it in epoch {epoch}; run Verify().", e.Sequence);
            }

            hashes.Add(e.Hash);
        }

        if (hashes.Count != range.Count)
        {
            throw new LedgerIntegrityException($"epoch {epoch} should hold {range.Count} entries from {range.FirstSequence} but {hashes.Count} were found; run Verify().", range.FirstSequence);
        }

        return hashes;
    }

    private static string? CheckSignature(LedgerEntry e, NearPublicKey? trustedCoordinator)
    {
        SignedReceipt r;
        try
        {
            r = SignedReceipt.Parse(e.Payload, $"ledger entry {e.Sequence}");
        }
        catch (InvalidDataFormatException ex)
        {
            return $"entry {e.Sequence}: payload is not a signed receipt: {ex.Message}";
        }
        catch (InvalidNearKeyException ex)
        {
            return $"entry {e.Sequence}: payload is not a signed receipt: {ex.Message}";
        }

        if (trustedCoordinator is not null && !r.CoordinatorKey.Equals(trustedCoordinator))
        {
            return $"entry {e.Sequence}: signed by {r.CoordinatorKey}, not the trusted coordinator {trustedCoordinator}";
        }

        return r.Verify() ? null : $"entry {e.Sequence}: a receipt signature does not verify";
    }

    private LedgerVerificationResult ClassifyMismatch(LedgerEntry e, byte[] lastHash)
    {
        // Was this entry appended at another position? Its stored hash then matches a nearby sequence number.
        for (long s = Math.Max(0, e.Sequence - ReorderSearchWindow); s <= e.Sequence + ReorderSearchWindow; s++)
        {
            if (s == e.Sequence)
            {
                continue;
            }

            if (LedgerEntry.ComputeHash(s, e.Epoch, e.PreviousHash, e.Payload).AsSpan().SequenceEqual(e.Hash))
            {
                if (s > e.Sequence && !OriginalAppearsLater(e.Sequence, s))
                {
                    return new LedgerVerificationResult(LedgerProblem.Removed, e.Sequence, e.Sequence,
                        $"entry {e.Sequence} is missing: the entry stored there was appended as entry {s} and later entries were renumbered");
                }

                return new LedgerVerificationResult(LedgerProblem.Reordered, e.Sequence, e.Sequence,
                    $"entry {e.Sequence} was reordered: the entry stored there was appended as entry {s}");
            }
        }

        string detail = e.PreviousHash.AsSpan().SequenceEqual(lastHash) ? "its content or hash was changed" : "its content, hash and link were changed";
        return new LedgerVerificationResult(LedgerProblem.Altered, e.Sequence, e.Sequence, $"entry {e.Sequence} was altered: {detail}");
    }

    private bool OriginalAppearsLater(long position, long originalSeq)
    {
        // Look ahead: in a swap, the entry originally appended at 'position' shows up later; after a removal it does not.
        foreach (LedgerEntry later in _store.Read(position + 1, 2 * ReorderSearchWindow))
        {
            if (LedgerEntry.ComputeHash(position, later.Epoch, later.PreviousHash, later.Payload).AsSpan().SequenceEqual(later.Hash))
            {
                return true;
            }
        }

        return originalSeq < position;
    }

    private static LedgerVerificationResult ClassifyBrokenLink(LedgerEntry e, long checkedCount)
    {
        long bad = Math.Max(0, e.Sequence - 1);
        return new LedgerVerificationResult(LedgerProblem.Altered, bad, checkedCount,
            $"entry {bad} was altered or replaced: entry {e.Sequence} commits to a different previous hash");
    }
}
