namespace NearML.Samples;

/// <summary>
/// Turns the sample hosts' short command-line switches into configuration keys. Full configuration keys
/// (<c>--NearML:Coordinator:Port=7420</c>) keep working: anything not listed here is passed through unchanged.
/// </summary>
internal static class SampleArguments
{
    /// <summary>Rewrites <paramref name="args"/>: boolean switches given without a value get "true"; short switches are mapped.</summary>
    /// <param name="args">The raw arguments.</param>
    /// <param name="switches">Short switch → configuration key.</param>
    /// <param name="booleanSwitches">Switches that may stand alone (no value).</param>
    /// <returns>Arguments for the command-line configuration provider.</returns>
    public static string[] Normalize(string[] args, IReadOnlyDictionary<string, string> switches, IReadOnlySet<string> booleanSwitches)
    {
        var result = new List<string>(args.Length * 2);
        for (var i = 0; i < args.Length; i++)
        {
            var arg = args[i];
            var eq = arg.IndexOf('=', StringComparison.Ordinal);
            var name = eq < 0 ? arg : arg[..eq];
            if (booleanSwitches.Contains(name) && eq < 0)
            {
                // "--flag" alone, or "--flag true|false"
                var hasValue = i + 1 < args.Length && (args[i + 1] is "true" or "false");
                var value = hasValue ? args[++i] : "true";
                result.Add($"--{switches[name]}={value}");
                continue;
            }

            if (switches.TryGetValue(name, out var key))
            {
                if (eq >= 0)
                {
                    result.Add($"--{key}={arg[(eq + 1)..]}");
                }
                else if (i + 1 < args.Length)
                {
                    result.Add($"--{key}={args[++i]}");
                }
                else
                {
                    throw new ArgumentException($"switch {name} needs a value");
                }

                continue;
            }

            result.Add(arg);
        }

        return [.. result];
    }

    /// <summary>Whether the arguments ask for help.</summary>
    /// <param name="args">The raw arguments.</param>
    /// <returns><see langword="true"/> for -h, --help or -?.</returns>
    public static bool WantsHelp(string[] args) => args.Any(a => a is "-h" or "--help" or "-?");
}
