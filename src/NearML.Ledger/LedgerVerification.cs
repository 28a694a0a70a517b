using NearML.Core;

namespace NearML.Ledger;

/// <summary>What kind of damage <see cref="ContributionLedger.Verify"/> found.</summary>
public enum LedgerProblem
{
    /// <summary>No problem: the chain is intact.</summary>
    None = 0,

    /// <summary>An entry's content or hash was changed (or an entry was replaced/inserted).</summary>
    Altered,

    /// <summary>An entry is missing (deleted, or the ledger is shorter than a trusted head says).</summary>
    Removed,

    /// <summary>An entry sits at a position other than the one it was appended at.</summary>
    Reordered,

    /// <summary>An entry's payload is not a well-formed signed receipt, or a signature does not verify.</summary>
    BadSignature,

    /// <summary>Epochs go backwards along the chain.</summary>
    EpochOrder,
}

/// <summary>The outcome of a ledger verification.</summary>
/// <param name="Problem">The kind of the first problem found, or <see cref="LedgerProblem.None"/>.</param>
/// <param name="FirstBadSequence">The sequence number of the first bad entry, or -1.</param>
/// <param name="EntriesChecked">How many entries were checked.</param>
/// <param name="Message">A human-readable description naming the entry.</param>
public sealed record LedgerVerificationResult(LedgerProblem Problem, long FirstBadSequence, long EntriesChecked, string Message)
{
    /// <summary>Gets a value indicating whether the ledger verified.</summary>
    public bool IsValid => Problem == LedgerProblem.None;

    internal static LedgerVerificationResult Ok(long count) => new(LedgerProblem.None, -1, count, $"{count} entries verified");
}

/// <summary>
/// A self-contained proof that one signed receipt is in a ledger epoch whose Merkle root is known (for example
/// anchored on NEAR). A third party checks it with <see cref="Verify"/> and nothing else.
/// </summary>
/// <param name="Epoch">The epoch.</param>
/// <param name="Sequence">The entry's sequence number.</param>
/// <param name="PreviousHash">The previous entry's hash (part of the entry hash).</param>
/// <param name="Payload">The signed receipt bytes.</param>
/// <param name="LeafIndex">The entry's index within the epoch.</param>
/// <param name="TreeSize">The number of entries in the epoch.</param>
/// <param name="Path">The Merkle audit path.</param>
public sealed record ReceiptInclusionProof(long Epoch, long Sequence, byte[] PreviousHash, byte[] Payload, long LeafIndex, long TreeSize, IReadOnlyList<byte[]> Path)
{
    /// <summary>Gets the entry hash the proof is about.</summary>
    public byte[] EntryHash => LedgerEntry.ComputeHash(Sequence, Epoch, PreviousHash, Payload);

    /// <summary>Parses the signed receipt the proof carries.</summary>
    /// <returns>The signed receipt.</returns>
    public SignedReceipt ReadReceipt() => SignedReceipt.Parse(Payload, $"proof of entry {Sequence}");

    /// <summary>
    /// Checks the proof: the entry hash is recomputed from the payload, the Merkle path must lead to
    /// <paramref name="epochRoot"/>, and the receipt's signatures must verify (and, when given, the coordinator
    /// key must be <paramref name="expectedCoordinator"/>).
    /// </summary>
    /// <param name="epochRoot">The trusted epoch root.</param>
    /// <param name="expectedCoordinator">The coordinator key the verifier trusts, or <see langword="null"/> to skip that check.</param>
    /// <returns><see langword="true"/> when the proof holds.</returns>
    public bool Verify(ReadOnlySpan<byte> epochRoot, NearPublicKey? expectedCoordinator = null)
    {
        if (PreviousHash is null || PreviousHash.Length != LedgerEntry.HashSize || Payload is null || Path is null)
        {
            return false;
        }

        if (!MerkleTree.VerifyProof(epochRoot, EntryHash, LeafIndex, TreeSize, Path))
        {
            return false;
        }

        SignedReceipt receipt;
        try
        {
            receipt = ReadReceipt();
        }
        catch (NearML.Core.InvalidDataFormatException)
        {
            return false;
        }
        catch (InvalidNearKeyException)
        {
            return false;
        }

        return receipt.Verify() && (expectedCoordinator is null || receipt.CoordinatorKey.Equals(expectedCoordinator));
    }
}
