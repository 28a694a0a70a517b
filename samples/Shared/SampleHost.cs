using System.CommandLine;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace NearML.Samples;

/// <summary>
/// Command-line options that override one configuration section: only options the user actually gave are written, so
/// values from appsettings.json and the environment stay in force for the others.
/// </summary>
/// <param name="parse">The parse result.</param>
/// <param name="section">The configuration section the keys belong to (e.g. <c>NearML:Worker</c>).</param>
internal sealed class ConfigOverrides(ParseResult parse, string section)
{
    /// <summary>Gets the overrides, keyed <c>section:Key</c>, for <c>AddInMemoryCollection</c>.</summary>
    public Dictionary<string, string?> Values { get; } = new(StringComparer.Ordinal);

    /// <summary>Writes <paramref name="option"/>'s value under <paramref name="key"/> when the user gave it.</summary>
    /// <typeparam name="T">The option's value type.</typeparam>
    /// <param name="option">The option.</param>
    /// <param name="key">The key inside the section.</param>
    /// <param name="format">Formats the value as configuration text (invariant culture).</param>
    public void Set<T>(Option<T> option, string key, Func<T, string> format)
    {
        if (parse.GetResult(option) is { Implicit: false } && parse.GetValue(option) is { } value)
        {
            Values[$"{section}:{key}"] = format(value);
        }
    }
}

/// <summary>The logging every sample host uses.</summary>
internal static class SampleHost
{
    /// <summary>
    /// One UTC-timestamped line per entry, all on stderr (stdout carries the machine-readable status lines), and the generic
    /// host's own "failed to start" entry hidden: it repeats, with a stack trace, the one line the sample prints.
    /// </summary>
    /// <param name="builder">The host builder.</param>
    public static void ConfigureLogging(HostApplicationBuilder builder)
    {
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
            o.UseUtcTimestamp = true;
        });
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
        builder.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
    }
}
