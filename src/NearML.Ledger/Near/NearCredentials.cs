using System.Text.Json;

namespace NearML.Ledger;

/// <summary>
/// An account id and its signing key. Loads from NEAR CLI credential files
/// (<c>~/.near-credentials/&lt;network&gt;/&lt;account&gt;.json</c> with <c>account_id</c>, <c>public_key</c>,
/// <c>private_key</c>), from configuration values, or from an environment variable. Error messages never contain
/// the secret key.
/// </summary>
public sealed class NearCredentials : IDisposable
{
    private NearCredentials(string accountId, NearKeyPair key)
    {
        AccountId = accountId;
        Key = key;
    }

    /// <summary>Gets the account id.</summary>
    public string AccountId { get; }

    /// <summary>Gets the signing key.</summary>
    public NearKeyPair Key { get; }

    /// <summary>Creates credentials from an account id and a secret key text (for example two configuration values).</summary>
    /// <param name="accountId">The account.</param>
    /// <param name="secretKey">The secret key in <c>ed25519:&lt;base58&gt;</c> form.</param>
    /// <returns>The credentials.</returns>
    public static NearCredentials FromSecretKey(string accountId, string secretKey)
    {
        NearAccountId.Validate(accountId, nameof(accountId));
        ArgumentException.ThrowIfNullOrEmpty(secretKey);
        return new NearCredentials(accountId, NearKeyPair.Parse(secretKey));
    }

    /// <summary>Loads credentials whose secret key is in an environment variable.</summary>
    /// <param name="accountId">The account.</param>
    /// <param name="variable">The variable name.</param>
    /// <returns>The credentials.</returns>
    /// <exception cref="InvalidNearKeyException">The variable is missing or malformed.</exception>
    public static NearCredentials FromEnvironment(string accountId, string variable = "NEAR_PRIVATE_KEY")
    {
        ArgumentException.ThrowIfNullOrEmpty(variable);
        string? value = Environment.GetEnvironmentVariable(variable);
        if (string.IsNullOrWhiteSpace(value))
        {
            throw new InvalidNearKeyException(variable, "the environment variable is not set");
        }

        return FromSecretKey(accountId, value);
    }

    /// <summary>Loads a NEAR CLI credential file.</summary>
    /// <param name="path">The JSON file.</param>
    /// <returns>The credentials.</returns>
    /// <exception cref="InvalidNearKeyException">The file is malformed, or its public key does not match its private key.</exception>
    public static NearCredentials FromFile(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(path));
        }
        catch (JsonException)
        {
            throw new InvalidNearKeyException(path, "the credential file is not valid JSON");
        }

        using (doc)
        {
            JsonElement r = doc.RootElement;
            string? account = r.TryGetProperty("account_id", out JsonElement a) ? a.GetString() : null;
            string? secret = r.TryGetProperty("private_key", out JsonElement p) ? p.GetString()
                : r.TryGetProperty("secret_key", out JsonElement s) ? s.GetString() : null;
            if (string.IsNullOrEmpty(account) || string.IsNullOrEmpty(secret))
            {
                throw new InvalidNearKeyException(path, "the credential file needs account_id and private_key");
            }

            NearAccountId.Validate(account, $"{path}: account_id");
            NearKeyPair key = NearKeyPair.Parse(secret);
            if (r.TryGetProperty("public_key", out JsonElement pub) && pub.GetString() is { } pubText && !NearPublicKey.Parse(pubText).Equals(key.PublicKey))
            {
                key.Dispose();
                throw new InvalidNearKeyException(path, "public_key does not match private_key");
            }

            return new NearCredentials(account, key);
        }
    }

    /// <summary>Loads <c>&lt;home&gt;/.near-credentials/&lt;network&gt;/&lt;account&gt;.json</c>.</summary>
    /// <param name="network">The network (for example <c>testnet</c>).</param>
    /// <param name="accountId">The account.</param>
    /// <param name="homeDirectory">The home directory, or <see langword="null"/> for the user's.</param>
    /// <returns>The credentials.</returns>
    public static NearCredentials FromCredentialsDirectory(string network, string accountId, string? homeDirectory = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(network);
        NearAccountId.Validate(accountId, nameof(accountId));
        string home = homeDirectory ?? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        NearCredentials c = FromFile(Path.Combine(home, ".near-credentials", network, accountId + ".json"));
        if (c.AccountId != accountId)
        {
            c.Dispose();
            throw new InvalidNearKeyException("account_id", $"the credential file for {accountId} names account {c.AccountId}");
        }

        return c;
    }

    /// <summary>Returns the account and public key only.</summary>
    /// <returns>The description.</returns>
    public override string ToString() => $"{AccountId} ({Key.PublicKey})";

    /// <inheritdoc/>
    public void Dispose() => Key.Dispose();
}
