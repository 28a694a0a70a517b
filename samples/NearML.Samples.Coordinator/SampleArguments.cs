using System.Reflection;

namespace NearML.Samples;

/// <summary>
/// The sample hosts' configuration-key arguments: besides their typed switches (<c>--port 7420</c>), any key of their
/// options section can be given as <c>--NearML:Coordinator:RoundTimeout=00:02:00</c> (or <c>--Key value</c>), and
/// <c>--Logging:…</c> keys. A key that names no setting is bad input (a typo would otherwise be silently ignored).
/// </summary>
internal static class SampleArguments
{
    /// <summary>
    /// Removes the configuration-key arguments from <paramref name="args"/>. Returns the rest (for System.CommandLine) and
    /// the keys as <c>--Key=value</c> (for the command-line configuration provider).
    /// </summary>
    /// <param name="args">The raw arguments.</param>
    /// <param name="section">The options section (<c>NearML:Coordinator</c>).</param>
    /// <param name="optionsType">The options class bound from it (its properties are the valid keys).</param>
    /// <param name="configuration">The configuration arguments found.</param>
    /// <param name="error">One line naming a bad key, or <see langword="null"/>.</param>
    /// <returns>The remaining arguments.</returns>
    public static string[] ExtractConfiguration(string[] args, string section, Type optionsType, out List<string> configuration, out string? error)
    {
        configuration = [];
        error = null;
        var rest = new List<string>(args.Length);
        var properties = optionsType.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite || !p.PropertyType.IsValueType).Select(p => p.Name).ToList();
        for (var i = 0; i < args.Length; i++)
        {
            var arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal) || !arg.Contains(':', StringComparison.Ordinal))
            {
                rest.Add(arg);
                continue;
            }

            var eq = arg.IndexOf('=', StringComparison.Ordinal);
            var key = eq < 0 ? arg[2..] : arg[2..eq];
            string value;
            if (eq >= 0)
            {
                value = arg[(eq + 1)..];
            }
            else if (i + 1 < args.Length)
            {
                value = args[++i];
            }
            else
            {
                error = $"configuration key '--{key}' needs a value (--{key}=VALUE)";
                return [];
            }

            if (!key.StartsWith("Logging:", StringComparison.OrdinalIgnoreCase))
            {
                var prefix = section + ":";
                var name = key.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) ? key[prefix.Length..].Split(':')[0] : null;
                if (name is null || !properties.Contains(name, StringComparer.OrdinalIgnoreCase))
                {
                    var closest = SampleCommandLine.Closest(key, properties.Select(p => prefix + p));
                    error = $"unknown configuration key '--{key}'" + (closest is null ? $" (keys are {prefix}<setting>, see docs/operator-guide.md)" : $" (did you mean '--{closest}'?)");
                    return [];
                }
            }

            configuration.Add($"--{key}={value}");
        }

        return [.. rest];
    }
}
