using NearML.Core;

namespace NearML.Ledger;

/// <summary>A NEAR key string or key bytes are malformed or inconsistent. The message never contains secret material.</summary>
public sealed class InvalidNearKeyException : NearMLException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="field">Which input was wrong (for example <c>secretKey</c>).</param>
    /// <param name="message">What is wrong, without the key value.</param>
    public InvalidNearKeyException(string field, string message) : base($"{field}: {message}") => Field = field;

    /// <summary>Gets the name of the offending input.</summary>
    public string Field { get; }
}

/// <summary>A string is not a valid NEAR account id.</summary>
public sealed class InvalidAccountIdException : NearMLException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="field">Which input held the account id.</param>
    /// <param name="accountId">The offending account id.</param>
    /// <param name="reason">Which rule it breaks.</param>
    public InvalidAccountIdException(string field, string accountId, string reason)
        : base($"{field}: '{accountId}' is not a valid NEAR account id: {reason}")
    {
        Field = field;
        AccountId = accountId;
    }

    /// <summary>Gets the name of the offending input.</summary>
    public string Field { get; }

    /// <summary>Gets the offending account id.</summary>
    public string AccountId { get; }
}

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
