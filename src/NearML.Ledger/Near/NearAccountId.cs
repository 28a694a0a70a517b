namespace NearML.Ledger;

/// <summary>
/// NEAR account id rules: 2–64 characters of <c>a-z</c>, <c>0-9</c> and the separators <c>-</c>, <c>_</c>, <c>.</c>;
/// a separator never starts or ends the id and never follows another separator. Implicit accounts are the
/// 64 lowercase hex characters of an ed25519 public key.
/// </summary>
public static class NearAccountId
{
    /// <summary>The shortest valid account id.</summary>
    public const int MinLength = 2;

    /// <summary>The longest valid account id.</summary>
    public const int MaxLength = 64;

    /// <summary>Returns why <paramref name="accountId"/> is invalid, or <see langword="null"/> when it is valid.</summary>
    /// <param name="accountId">The account id.</param>
    /// <returns>The reason, or <see langword="null"/>.</returns>
    public static string? Explain(string? accountId)
    {
        if (accountId is null)
        {
            return "it is null";
        }

        if (accountId.Length is < MinLength or > MaxLength)
        {
            return $"length {accountId.Length} is outside {MinLength}..{MaxLength}";
        }

        bool lastWasSeparator = true; // a leading separator is invalid
        for (int i = 0; i < accountId.Length; i++)
        {
            char c = accountId[i];
            bool separator = c is '-' or '_' or '.';
            if (separator)
            {
                if (lastWasSeparator)
                {
                    return $"separator '{c}' at index {i} starts the id or follows another separator";
                }
            }
            else if (c is not ((>= 'a' and <= 'z') or (>= '0' and <= '9')))
            {
                return $"character '{c}' at index {i} is not a lowercase letter, digit or separator";
            }

            lastWasSeparator = separator;
        }

        return lastWasSeparator ? "the id ends with a separator" : null;
    }

    /// <summary>Returns whether <paramref name="accountId"/> is a valid account id.</summary>
    /// <param name="accountId">The account id.</param>
    /// <returns><see langword="true"/> when valid.</returns>
    public static bool IsValid(string? accountId) => Explain(accountId) is null;

    /// <summary>Throws <see cref="InvalidAccountIdException"/> unless <paramref name="accountId"/> is valid.</summary>
    /// <param name="accountId">The account id.</param>
    /// <param name="field">The name of the input, for the message.</param>
    /// <returns>The account id.</returns>
    public static string Validate(string accountId, string field)
    {
        string? reason = Explain(accountId);
        return reason is null ? accountId : throw new InvalidAccountIdException(field, accountId ?? "<null>", reason);
    }

    /// <summary>Returns whether the id is an implicit account id (64 lowercase hex characters).</summary>
    /// <param name="accountId">The account id.</param>
    /// <returns><see langword="true"/> when implicit.</returns>
    public static bool IsImplicit(string? accountId)
    {
        if (accountId is null || accountId.Length != 64)
        {
            return false;
        }

        foreach (char c in accountId)
        {
            if (c is not ((>= '0' and <= '9') or (>= 'a' and <= 'f')))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Returns the implicit account id of a public key.</summary>
    /// <param name="publicKey">The key.</param>
    /// <returns>64 lowercase hex characters.</returns>
    public static string Implicit(NearPublicKey publicKey)
    {
        ArgumentNullException.ThrowIfNull(publicKey);
        return publicKey.ImplicitAccountId;
    }
}
