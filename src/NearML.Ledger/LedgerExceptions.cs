using NearML.Core;

namespace NearML.Ledger;

/// <summary>The ledger's durable state does not verify, or an append would break its rules.</summary>
public sealed class LedgerIntegrityException : NearMLException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="message">What is wrong, naming the entry.</param>
    /// <param name="sequence">The sequence number of the offending entry, or -1.</param>
    public LedgerIntegrityException(string message, long sequence = -1) : base(message) => Sequence = sequence;

    /// <summary>Gets the sequence number of the offending entry, or -1 if none applies.</summary>
    public long Sequence { get; }
}

/// <summary>The ledger's storage failed (for example an SQLite error: a full disk, a file that is not a database). The message names the file.</summary>
public sealed class LedgerStorageException : NearMLException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="path">The storage file.</param>
    /// <param name="operation">What was being done.</param>
    /// <param name="innerException">The storage error.</param>
    public LedgerStorageException(string path, string operation, Exception innerException)
        : base($"{path}: {operation} failed: {innerException?.Message}", innerException) => Path = path;

    /// <summary>Gets the storage file.</summary>
    public string Path { get; }
}
