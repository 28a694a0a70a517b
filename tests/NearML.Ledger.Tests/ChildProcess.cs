using System.Diagnostics;

namespace NearML.Ledger.Tests;

/// <summary>Starts NearML.Ledger.CrashTarget (built next to the tests) as a child process.</summary>
internal static class ChildProcess
{
    public static string CrashTargetDll()
    {
        // tests/NearML.Ledger.Tests/bin/<Configuration>/net10.0 -> tests/NearML.Ledger.CrashTarget/bin/<Configuration>/net10.0
        var dir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string tfm = dir.Name;
        string configuration = dir.Parent!.Name;
        string testsDir = dir.Parent!.Parent!.Parent!.Parent!.FullName;
        string dll = Path.Combine(testsDir, "NearML.Ledger.CrashTarget", "bin", configuration, tfm, "NearML.Ledger.CrashTarget.dll");
        if (!File.Exists(dll))
        {
            Assert.Inconclusive($"The crash target is not built at {dll}.");
        }

        return dll;
    }

    public static Process Start(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("exec");
        psi.ArgumentList.Add(CrashTargetDll());
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }

        return Process.Start(psi) ?? throw new InvalidOperationException("could not start the crash target");
    }

    public static async Task<string> WaitForLineAsync(Process p, string prefix, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        while (true)
        {
            string? line = await p.StandardOutput.ReadLineAsync(cts.Token);
            if (line is null)
            {
                string err = await p.StandardError.ReadToEndAsync(CancellationToken.None);
                throw new InvalidOperationException($"crash target exited before '{prefix}': {err}");
            }

            if (line.StartsWith(prefix, StringComparison.Ordinal))
            {
                return line;
            }
        }
    }

    /// <summary>SIGKILL on Unix: no finally blocks, no disposal, no flush.</summary>
    public static void Kill(Process p)
    {
        if (!p.HasExited)
        {
            p.Kill(entireProcessTree: false);
        }

        p.WaitForExit();
    }
}
