using System.Globalization;
using System.Text.Json;

namespace NearML.Enclave.Internal;

internal static class Json
{
    /// <summary>
    /// Returns the exact bytes of the value of a top-level property (what Intel signs for tcbInfo/enclaveIdentity). The
    /// whole document is read: it must be one JSON object with that property exactly once and nothing after it but
    /// whitespace, so bytes outside the signed value cannot carry anything unchecked.
    /// </summary>
    public static ReadOnlyMemory<byte> RawTopLevelValue(ReadOnlyMemory<byte> json, string property, string what)
    {
        var r = new Utf8JsonReader(json.Span, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow });
        ReadOnlyMemory<byte>? found = null;
        try
        {
            if (!r.Read() || r.TokenType != JsonTokenType.StartObject)
            {
                throw new AttestationFormatException(what, "json", 0, "is not a JSON object");
            }

            while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
            {
                bool match = r.ValueTextEquals(property);
                r.Read();
                int start = (int)r.TokenStartIndex;
                r.Skip();
                if (match)
                {
                    if (found is not null)
                    {
                        throw new AttestationFormatException(what, property, start, "property appears more than once");
                    }

                    found = json[start..(int)r.BytesConsumed];
                }
            }

            if (r.TokenType != JsonTokenType.EndObject || r.Read())
            {
                throw new AttestationFormatException(what, "json", r.BytesConsumed, "unexpected content after the top-level object");
            }
        }
        catch (JsonException e)
        {
            throw new AttestationFormatException(what, "json", r.BytesConsumed, e.Message, e);
        }

        return found ?? throw new AttestationFormatException(what, property, -1, "property is missing");
    }

    public static string Str(JsonElement e, string name, string what) =>
        e.TryGetProperty(name, out JsonElement v) && v.ValueKind == JsonValueKind.String
            ? v.GetString()!
            : throw new AttestationFormatException(what, name, -1, "missing or not a string");

    public static int Int(JsonElement e, string name, string what) =>
        e.TryGetProperty(name, out JsonElement v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i)
            ? i
            : throw new AttestationFormatException(what, name, -1, "missing or not an integer");

    public static DateTimeOffset Time(JsonElement e, string name, string what)
    {
        string s = Str(e, name, what);
        return DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out DateTimeOffset t)
            ? t
            : throw new AttestationFormatException(what, name, -1, $"\"{s}\" is not an ISO 8601 time");
    }

    public static byte[] Hex(JsonElement e, string name, string what)
    {
        string s = Str(e, name, what);
        try
        {
            return Convert.FromHexString(s);
        }
        catch (FormatException ex)
        {
            throw new AttestationFormatException(what, name, -1, "is not hex", ex);
        }
    }

    public static JsonElement Arr(JsonElement e, string name, string what) =>
        e.TryGetProperty(name, out JsonElement v) && v.ValueKind == JsonValueKind.Array
            ? v
            : throw new AttestationFormatException(what, name, -1, "missing or not an array");

    public static JsonElement Obj(JsonElement e, string name, string what) =>
        e.TryGetProperty(name, out JsonElement v) && v.ValueKind == JsonValueKind.Object
            ? v
            : throw new AttestationFormatException(what, name, -1, "missing or not an object");

    public static TcbStatus Status(string s, string what) => s switch
    {
        "UpToDate" => TcbStatus.UpToDate,
        "SWHardeningNeeded" => TcbStatus.SWHardeningNeeded,
        "ConfigurationNeeded" => TcbStatus.ConfigurationNeeded,
        "ConfigurationAndSWHardeningNeeded" => TcbStatus.ConfigurationAndSWHardeningNeeded,
        "OutOfDate" => TcbStatus.OutOfDate,
        "OutOfDateConfigurationNeeded" => TcbStatus.OutOfDateConfigurationNeeded,
        "Revoked" => TcbStatus.Revoked,
        _ => throw new AttestationFormatException(what, "tcbStatus", -1, $"unknown status \"{s}\""),
    };
}
