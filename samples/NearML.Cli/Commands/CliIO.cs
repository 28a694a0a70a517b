using System.CommandLine;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using NearML.Samples;

namespace NearML.Cli.Commands;

/// <summary>What every command shares: the <c>--json</c> switch, input files that must exist, JSON output.</summary>
internal static class CliIO
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Creates the <c>--json</c> switch.</summary>
    public static Option<bool> JsonOption() => new("--json") { Description = "Write one JSON document on stdout instead of text" };

    /// <summary>Writes <paramref name="node"/> as indented JSON on stdout.</summary>
    public static void WriteJson(JsonNode node) => Console.Out.WriteLine(node.ToJsonString(Indented));

    /// <summary>
    /// Resolves a file argument that may also name the coordinator's data folder (then <paramref name="fileInFolder"/> inside
    /// it is meant). A missing file is bad input (exit 2); nothing is ever created.
    /// </summary>
    public static string ExistingFile(string path, string fileInFolder, string what)
    {
        var full = Path.GetFullPath(path);
        if (Directory.Exists(full))
        {
            full = Path.Combine(full, fileInFolder);
        }

        if (!File.Exists(full))
        {
            throw new CommandLineExitException(SampleCommandLine.BadInput, $"no {what} at '{full}'");
        }

        return full;
    }

    /// <summary>Requires a SQLite database file (exit 2 otherwise), so opening it never turns another file into a database.</summary>
    public static string ExistingSqlite(string path, string fileInFolder, string what)
    {
        var full = ExistingFile(path, fileInFolder, what);
        var header = new byte[16];
        int read;
        using (var fs = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
        {
            read = fs.ReadAtLeast(header, header.Length, throwOnEndOfStream: false);
        }

        if (read < 16 || !header.AsSpan().SequenceEqual("SQLite format 3\0"u8))
        {
            throw new CommandLineExitException(SampleCommandLine.BadInput, $"'{full}' is not a SQLite database (expected the {what})");
        }

        return full;
    }

    /// <summary>Lower-case hex.</summary>
    public static string Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(bytes);

    /// <summary>Unix milliseconds as ISO 8601 UTC.</summary>
    public static string Time(long unixMs) => DateTimeOffset.FromUnixTimeMilliseconds(unixMs).ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>A CSV field, quoted when needed.</summary>
    public static string Csv(string value) =>
        value.IndexOfAny([',', '"', '\r', '\n']) < 0 ? value : "\"" + value.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    /// <summary>UTF-8 without a byte order mark.</summary>
    public static readonly Encoding Utf8 = new UTF8Encoding(false);
}
