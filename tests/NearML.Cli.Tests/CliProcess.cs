using System.Diagnostics;
using System.Reflection;
using System.Text;

namespace NearML.Cli.Tests;

/// <summary>The result of one finished child process.</summary>
internal sealed record CliResult(int ExitCode, string Stdout, string Stderr, byte[] StdoutBytes)
{
    /// <summary>Gets the non-empty stderr lines.</summary>
    public IReadOnlyList<string> StderrLines => Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public override string ToString() => $"exit {ExitCode}\n--- stdout:\n{Stdout}\n--- stderr:\n{Stderr}";
}

/// <summary>Runs a built sample or the CLI (<c>dotnet &lt;dll&gt; args</c>) with stdout and stderr redirected, to completion.</summary>
internal static class CliProcess
{
    /// <summary>Project folder under samples/ → built DLL name.</summary>
    public static string DllPath(string project, string assembly)
    {
        var asm = typeof(CliProcess).Assembly;
        string Meta(string key) => asm.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;
        var path = Path.Combine(Meta("NearML.RepositoryRoot"), "samples", project, "bin", Meta("NearML.Configuration"), Meta("NearML.TargetFramework"), assembly + ".dll");
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"{project} is not built at {path}; build tests/NearML.Cli.Tests (it references the samples)", path);
        }

        return path;
    }

    public static Task<CliResult> NearmlAsync(params string[] args) => RunAsync("NearML.Cli", "nearml", null, args);

    public static Task<CliResult> SampleAsync(string sample, params string[] args) => RunAsync($"NearML.Samples.{sample}", $"NearML.Samples.{sample}", null, args);

    /// <summary>Runs to completion (killed after <paramref name="timeout"/>, which fails the test).</summary>
    public static async Task<CliResult> RunAsync(string project, string assembly, IReadOnlyDictionary<string, string>? environment, string[] args, TimeSpan? timeout = null, string? workingDirectory = null)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardErrorEncoding = Encoding.UTF8,
            WorkingDirectory = workingDirectory ?? Path.GetTempPath(),
        };
        info.ArgumentList.Add(DllPath(project, assembly));
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["DOTNET_gcServer"] = "0";
        info.Environment["DOTNET_TieredPGO"] = "0";
        // A terminal-like environment: output must still be plain because it is redirected.
        info.Environment["TERM"] = "xterm-256color";
        info.Environment["COLORTERM"] = "truecolor";
        info.Environment.Remove("NO_COLOR");
        foreach (var (k, v) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[k] = v;
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException("could not start dotnet");
        var stdout = new MemoryStream();
        var copyOut = process.StandardOutput.BaseStream.CopyToAsync(stdout);
        var readErr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{assembly} {string.Join(' ', args)} did not exit within {(timeout ?? TimeSpan.FromSeconds(60)).TotalSeconds} s");
        }

        await copyOut.ConfigureAwait(false);
        var err = await readErr.ConfigureAwait(false);
        var bytes = stdout.ToArray();
        return new CliResult(process.ExitCode, Encoding.UTF8.GetString(bytes), err, bytes);
    }
}
