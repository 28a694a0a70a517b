namespace NearML.Ledger.Internal;

/// <summary>Parsing of NEAR's <c>ed25519:&lt;base58&gt;</c> strings without echoing their content.</summary>
internal static class KeyText
{
    public static byte[] DecodeBase58Body(string text, string field)
    {
        string body = text;
        int colon = text.IndexOf(':', StringComparison.Ordinal);
        if (colon >= 0)
        {
            string type = text[..colon];
            if (!string.Equals(type, "ed25519", StringComparison.OrdinalIgnoreCase))
            {
                throw new InvalidNearKeyException(field, $"key type '{(type.Length <= 16 ? type : type[..16])}' is not supported (only ed25519)");
            }

            body = text[(colon + 1)..];
        }

        if (body.Length == 0)
        {
            throw new InvalidNearKeyException(field, "the base58 part is empty");
        }

        try
        {
            return SimpleBase.Base58.Bitcoin.Decode(body);
        }
        catch (ArgumentException)
        {
            // Deliberately no inner exception and no text: the text may be a secret key.
            throw new InvalidNearKeyException(field, "the key is not valid base58");
        }
        catch (FormatException)
        {
            throw new InvalidNearKeyException(field, "the key is not valid base58");
        }
    }
}
