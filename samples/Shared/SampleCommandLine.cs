using System.CommandLine;
using System.CommandLine.Invocation;
using System.Globalization;

namespace NearML.Samples;

/// <summary>
/// The one way every NearML sample and the <c>nearml</c> CLI run their System.CommandLine root: a parse error (unknown or
/// misspelled option, bad value, missing argument) prints ONE line on stderr — with the closest option for a typo — and exits
/// 2; an exception that escapes a command prints one line and exits 1; Ctrl+C exits 130. Nothing ever aborts with a stack
/// trace. Exit codes: 0 success, 1 runtime refusal or failure, 2 bad input (see docs/operator-guide.md).
/// </summary>
internal static class SampleCommandLine
{
    /// <summary>Exit code: success.</summary>
    public const int Success = 0;

    /// <summary>Exit code: the command ran and refused (verification failed, a state it cannot work with, a runtime fault).</summary>
    public const int Refused = 1;

    /// <summary>Exit code: bad input (unknown option, bad value, missing or unreadable input file, invalid configuration).</summary>
    public const int BadInput = 2;

    /// <summary>Exit code: stopped by Ctrl+C / SIGTERM before completing.</summary>
    public const int Cancelled = 130;

    /// <summary>Parses and invokes <paramref name="root"/> with the rules above.</summary>
    /// <param name="root">The root command.</param>
    /// <param name="args">The arguments.</param>
    /// <param name="terminationTimeout">
    /// How long an action may take to finish after Ctrl+C / SIGTERM cancelled its token (then the process exits 130);
    /// <see langword="null"/> leaves the signals to the action (a generic host's console lifetime handles them itself).
    /// </param>
    /// <returns>The exit code.</returns>
    public static Task<int> RunAsync(RootCommand root, string[] args, TimeSpan? terminationTimeout) => RunCoreAsync(root, args, terminationTimeout);

    /// <summary>Parses and invokes <paramref name="root"/> with the rules above; Ctrl+C cancels the action's token, which has 2 s to finish.</summary>
    /// <param name="root">The root command.</param>
    /// <param name="args">The arguments.</param>
    /// <returns>The exit code.</returns>
    public static Task<int> RunAsync(RootCommand root, string[] args) => RunCoreAsync(root, args, TimeSpan.FromSeconds(2));

    private static async Task<int> RunCoreAsync(RootCommand root, string[] args, TimeSpan? terminationTimeout)
    {
        ArgumentNullException.ThrowIfNull(root);
        ParseResult parse;
        try
        {
            parse = root.Parse(LastOccurrenceWins(root, args));
        }
        catch (InvalidOperationException ex)
        {
            // a value a validator could not convert: still bad input, still one line
            return Fail(BadInput, ex.Message);
        }

        if (parse.Errors.Count > 0 && parse.Action is not { ClearsParseErrors: true })
        {
            Console.Error.WriteLine("error: " + Describe(parse));
            return BadInput;
        }

        try
        {
            var invocation = new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = terminationTimeout };
            return await parse.InvokeAsync(invocation).ConfigureAwait(false);
        }
        catch (CommandLineExitException ex)
        {
            return Fail(ex.ExitCode, ex.Message);
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("cancelled");
            return Cancelled;
        }
        catch (Exception ex)
        {
            Console.Error.WriteLine("error: " + OneLine(ex));
            return Refused;
        }
    }

    /// <summary>
    /// A single-valued option of the root command given more than once keeps its last occurrence (<c>$DEFAULTS --port 1</c>
    /// overrides the port in <c>$DEFAULTS</c>), as the configuration command line did before; System.CommandLine alone would
    /// refuse the repetition.
    /// </summary>
    /// <param name="root">The root command.</param>
    /// <param name="args">The arguments.</param>
    /// <returns>The arguments without the earlier occurrences.</returns>
    public static string[] LastOccurrenceWins(RootCommand root, string[] args)
    {
        ArgumentNullException.ThrowIfNull(root);
        ArgumentNullException.ThrowIfNull(args);
        var byName = new Dictionary<string, Option>(StringComparer.Ordinal);
        foreach (var o in root.Options.Where(o => o.Arity.MaximumNumberOfValues == 1))
        {
            foreach (var name in o.Aliases.Prepend(o.Name))
            {
                byName[name] = o;
            }
        }

        var spans = new List<(Option Option, int Start, int Length)>();
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--")
            {
                break;
            }

            if (!byName.TryGetValue(args[i].Split('=', 2)[0], out var option))
            {
                continue;
            }

            var length = 1;
            if (!args[i].Contains('=', StringComparison.Ordinal) && i + 1 < args.Length
                && (option.Arity.MinimumNumberOfValues == 1 || args[i + 1] is "true" or "false"))
            {
                length = 2;
            }

            spans.Add((option, i, length));
            i += length - 1;
        }

        var dropped = new HashSet<int>();
        foreach (var group in spans.GroupBy(s => s.Option).Where(g => g.Count() > 1))
        {
            foreach (var (_, start, length) in group.SkipLast(1))
            {
                for (var k = start; k < start + length; k++)
                {
                    dropped.Add(k);
                }
            }
        }

        return dropped.Count == 0 ? args : [.. args.Where((_, i) => !dropped.Contains(i))];
    }

    /// <summary>Writes <c>error: message</c> as one line on stderr and returns <paramref name="exitCode"/>.</summary>
    /// <param name="exitCode">The exit code to return.</param>
    /// <param name="message">The message (line breaks are folded).</param>
    /// <returns><paramref name="exitCode"/>.</returns>
    public static int Fail(int exitCode, string message)
    {
        Console.Error.WriteLine("error: " + message.ReplaceLineEndings(" "));
        return exitCode;
    }

    /// <summary>Writes one <c>warning:</c> line on stderr when <paramref name="option"/> was given under a deprecated alias.</summary>
    /// <param name="parse">The parse result.</param>
    /// <param name="option">The option (its <see cref="Symbol.Name"/> is the new name).</param>
    /// <param name="alias">The deprecated alias, for example <c>--compression</c>.</param>
    public static void WarnDeprecatedAlias(ParseResult parse, Option option, string alias)
    {
        ArgumentNullException.ThrowIfNull(parse);
        ArgumentNullException.ThrowIfNull(option);
        if (parse.GetResult(option)?.IdentifierToken?.Value == alias)
        {
            Console.Error.WriteLine($"warning: {alias} is deprecated; use {option.Name}");
        }
    }

    /// <summary>Folds an exception (and its inner exceptions' messages when they add something) into one line.</summary>
    /// <param name="ex">The exception.</param>
    /// <returns>The line.</returns>
    public static string OneLine(Exception ex)
    {
        ArgumentNullException.ThrowIfNull(ex);
        var parts = new List<string>();
        for (var e = ex; e is not null; e = e.InnerException)
        {
            var m = e.Message.ReplaceLineEndings(" ").Trim();
            if (m.Length > 0 && !parts.Any(p => p.Contains(m, StringComparison.Ordinal)))
            {
                parts.Add(m);
            }
        }

        return string.Join(": ", parts);
    }

    /// <summary>One line describing the first parse error, with the closest known option or command for an unknown token.</summary>
    /// <param name="parse">The parse result.</param>
    /// <returns>The description.</returns>
    public static string Describe(ParseResult parse)
    {
        ArgumentNullException.ThrowIfNull(parse);
        var command = parse.CommandResult.Command;
        var help = $" (see '{CommandPath(parse)} --help')";
        if (parse.UnmatchedTokens.Count > 0)
        {
            var token = parse.UnmatchedTokens[0];
            var isOption = token.StartsWith('-');
            var candidates = isOption ? OptionNames(parse) : command.Subcommands.Where(c => !c.Hidden).SelectMany(c => c.Aliases.Prepend(c.Name));
            var name = token.Split('=', 2)[0];
            var closest = Closest(name, candidates);
            var what = isOption ? "unknown option" : command.Subcommands.Count > 0 ? "unknown command" : "unexpected argument";
            return closest is null
                ? $"{what} '{token}'{help}"
                : $"{what} '{token}' (did you mean '{closest}'?)";
        }

        var message = parse.Errors[0].Message.ReplaceLineEndings(" ");
        var m = System.Text.RegularExpressions.Regex.Match(message, @"^Cannot parse argument '(.*)' for (?:option|argument) '(.*)' as expected type '(.*)'\.?$");
        if (m.Success)
        {
            message = $"'{m.Groups[1].Value}' is not a valid value for {m.Groups[2].Value}: expected {Friendly(m.Groups[3].Value)}";
        }

        return message + help;
    }

    private static string Friendly(string type) => type switch
    {
        _ when type.Contains("Int32", StringComparison.Ordinal) || type.Contains("Int64", StringComparison.Ordinal) => "a whole number",
        _ when type.Contains("UInt", StringComparison.Ordinal) => "a non-negative whole number",
        _ when type.Contains("Double", StringComparison.Ordinal) || type.Contains("Single", StringComparison.Ordinal) => "a number",
        _ when type.Contains("TimeSpan", StringComparison.Ordinal) => "a duration such as 00:05:00",
        _ when type.Contains("Boolean", StringComparison.Ordinal) => "true or false",
        _ when type.Contains("Uri", StringComparison.Ordinal) => "a URL",
        _ => type,
    };

    /// <summary>The known name closest to <paramref name="typo"/> (edit distance), or <see langword="null"/> when none is close.</summary>
    /// <param name="typo">What was typed.</param>
    /// <param name="candidates">Known names.</param>
    /// <returns>The suggestion.</returns>
    public static string? Closest(string typo, IEnumerable<string> candidates)
    {
        string? best = null;
        var bestDistance = int.MaxValue;
        foreach (var c in candidates.Distinct(StringComparer.Ordinal))
        {
            var d = Distance(typo.ToLowerInvariant(), c.ToLowerInvariant());
            if (d < bestDistance || (d == bestDistance && best is not null && string.CompareOrdinal(c, best) < 0))
            {
                (best, bestDistance) = (c, d);
            }
        }

        var bare = typo.TrimStart('-').Length;
        return best is not null && (bestDistance <= Math.Max(2, bare / 3) || best.TrimStart('-').StartsWith(typo.TrimStart('-'), StringComparison.OrdinalIgnoreCase) && bare >= 2)
            ? best
            : null;
    }

    private static IEnumerable<string> OptionNames(ParseResult parse)
    {
        for (var r = parse.CommandResult; r is not null; r = r.Parent as System.CommandLine.Parsing.CommandResult)
        {
            foreach (var o in r.Command.Options.Where(o => !o.Hidden && (o.Recursive || r == parse.CommandResult)))
            {
                yield return o.Name;
                foreach (var a in o.Aliases.Where(a => a.StartsWith("--", StringComparison.Ordinal)))
                {
                    yield return a;
                }
            }
        }
    }

    private static string CommandPath(ParseResult parse)
    {
        var names = new List<string>();
        for (var r = parse.CommandResult; r is not null; r = r.Parent as System.CommandLine.Parsing.CommandResult)
        {
            names.Add(r.Command is RootCommand ? parse.RootCommandResult.Command.Name : r.Command.Name);
        }

        names.Reverse();
        return string.Join(' ', names);
    }

    private static int Distance(string a, string b)
    {
        // Damerau-Levenshtein (optimal string alignment): a swapped pair of letters counts as one edit.
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++)
        {
            d[i, 0] = i;
        }

        for (var j = 0; j <= b.Length; j++)
        {
            d[0, j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                {
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
                }
            }
        }

        return d[a.Length, b.Length];
    }

    /// <summary>Formats an integer for configuration values.</summary>
    /// <param name="value">The value.</param>
    /// <returns>The invariant text.</returns>
    public static string Invariant(IFormattable value) => value.ToString(null, CultureInfo.InvariantCulture);
}

/// <summary>Ends a command with an exit code and a one-line message (thrown from deep inside a command's action).</summary>
/// <param name="exitCode">The exit code: <see cref="SampleCommandLine.Refused"/> or <see cref="SampleCommandLine.BadInput"/>.</param>
/// <param name="message">What was wrong.</param>
internal sealed class CommandLineExitException(int exitCode, string message) : Exception(message)
{
    /// <summary>Gets the exit code.</summary>
    public int ExitCode { get; } = exitCode;
}
