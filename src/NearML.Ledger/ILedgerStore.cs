namespace NearML.Ledger;

/// <summary>
/// Durable, append-only storage of ledger entries. Implementations append a batch atomically (all or nothing),
/// check the expected head inside the same transaction so two writers cannot interleave, and never update or
/// delete entries.
/// </summary>
public interface ILedgerStore : IDisposable
{
    /// <summary>Gets a description of where the entries are kept (a file path, or a database and schema), for messages.</summary>
    string Location { get; }

    /// <summary>Reads the current head.</summary>
    /// <returns>The head.</returns>
    LedgerHead ReadHead();

    /// <summary>Appends a batch atomically.</summary>
    /// <param name="expectedHead">The head the batch was chained onto; the append fails if the store's head differs.</param>
    /// <param name="entries">The entries, consecutive from <paramref name="expectedHead"/>'s count.</param>
    /// <exception cref="LedgerIntegrityException">The store's head is not <paramref name="expectedHead"/>.</exception>
    void Append(LedgerHead expectedHead, IReadOnlyList<LedgerEntry> entries);

    /// <summary>Reads entries in sequence order starting at <paramref name="fromSequence"/>.</summary>
    /// <param name="fromSequence">The first sequence number.</param>
    /// <param name="maxCount">The maximum number of entries, or -1 for all.</param>
    /// <returns>The entries as stored (not verified).</returns>
    IEnumerable<LedgerEntry> Read(long fromSequence, long maxCount = -1);

    /// <summary>Returns the first sequence number and the entry count of an epoch, or <see langword="null"/> if it has none.</summary>
    /// <param name="epoch">The epoch.</param>
    /// <returns>The range, or <see langword="null"/>.</returns>
    (long FirstSequence, long Count)? GetEpochRange(long epoch);

    /// <summary>Lists the epochs that hold entries, ascending.</summary>
    /// <returns>The epochs.</returns>
    IReadOnlyList<long> ListEpochs();
}
