using Spectre.Console;

namespace NearML.Samples;

/// <summary>
/// Spectre.Console for people and for files: colours, styles and live displays only on a terminal. When stdout is
/// redirected (a file, a pipe, CI) or <c>NO_COLOR</c> is set, no ANSI escape sequence is written, only plain text.
/// </summary>
internal static class PlainConsole
{
    /// <summary>The line width assumed when stdout is not a terminal.</summary>
    public const int RedirectedWidth = 240;

    /// <summary>Replaces <see cref="AnsiConsole.Console"/> accordingly; call once at start.</summary>
    public static void Configure()
    {
        var redirected = Console.IsOutputRedirected;
        var noColor = !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("NO_COLOR"));
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = redirected ? AnsiSupport.No : AnsiSupport.Detect,
            ColorSystem = redirected || noColor ? ColorSystemSupport.NoColors : ColorSystemSupport.Detect,
            Interactive = redirected ? InteractionSupport.No : InteractionSupport.Detect,
            Out = new AnsiConsoleOutput(Console.Out),
        });
        if (redirected)
        {
            // no terminal to fit: Spectre would assume 80 columns and wrap hashes and table cells mid-word
            console.Profile.Width = RedirectedWidth;
        }

        AnsiConsole.Console = console;
    }
}
