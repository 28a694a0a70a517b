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
