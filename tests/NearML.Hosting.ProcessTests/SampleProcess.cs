using System.Collections.Concurrent;
using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;

namespace NearML.Hosting.ProcessTests;

/// <summary>
/// One real child process running a built sample host (<c>dotnet &lt;dll&gt; args</c>). Collects stdout (status lines) and
/// stderr (logs) line by line; every wait has a deadline; <see cref="DisposeAsync"/> always kills what is still running.
/// </summary>
internal sealed partial class SampleProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<string> _stdout = [];
    private readonly List<string> _stderr = [];
    private readonly Lock _gate = new();
    private readonly SemaphoreSlim _changed = new(0, int.MaxValue);
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ConcurrentQueue<string> _transcript = new();

    private int _pid;

    private SampleProcess(string name, Process process)
    {
        Name = name;
        _process = process;
    }

    /// <summary>Gets the name used in messages.</summary>
    public string Name { get; }

    /// <summary>Gets the process id.</summary>
    public int Id => _pid;

    /// <summary>Gets a value indicating whether the process has exited.</summary>
    public bool HasExited => _exited.Task.IsCompleted;

    /// <summary>Gets the exit code (only after exit).</summary>
    public int ExitCode => _process.ExitCode;

    /// <summary>Gets a snapshot of the stdout lines so far.</summary>
    public IReadOnlyList<string> StdoutLines
    {
        get
        {
            lock (_gate)
            {
                return [.. _stdout];
            }
        }
    }

    /// <summary>Gets a snapshot of the stderr lines so far.</summary>
    public IReadOnlyList<string> StderrLines
    {
        get
        {
            lock (_gate)
            {
                return [.. _stderr];
            }
        }
    }

    /// <summary>Gets the stdout line count, to wait for lines after a point.</summary>
    public int StdoutCount
    {
        get
        {
            lock (_gate)
            {
                return _stdout.Count;
            }
        }
    }

    /// <summary>Starts a sample host.</summary>
    /// <param name="sample">"Coordinator" or "Worker".</param>
    /// <param name="name">Name for messages.</param>
    /// <param name="workingDirectory">Working directory.</param>
    /// <param name="args">Arguments.</param>
    /// <returns>The running process.</returns>
    public static SampleProcess Start(string sample, string name, string workingDirectory, params string[] args)
    {
        var dll = SamplePath(sample);
        var info = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        info.ArgumentList.Add(dll);
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        // Two cores shared by everything: keep each child's GC and thread pool small.
        info.Environment["DOTNET_gcServer"] = "0";
        info.Environment["DOTNET_TieredPGO"] = "0";
        info.Environment["DOTNET_ThreadPool_UnfairSemaphoreSpinLimit"] = "0";

        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var result = new SampleProcess(name, process);
        process.OutputDataReceived += (_, e) => result.OnLine(e.Data, stdout: true);
        process.ErrorDataReceived += (_, e) => result.OnLine(e.Data, stdout: false);
        process.Exited += (_, _) =>
        {
            result._exited.TrySetResult();
            result._changed.Release();
        };
        if (!process.Start())
        {
            throw new InvalidOperationException($"could not start {dll}");
        }

        result._pid = process.Id;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return result;
    }

    /// <summary>Gets the path of a built sample's DLL (built by the ProjectReference in this test project).</summary>
    /// <param name="sample">"Coordinator" or "Worker".</param>
    /// <returns>The DLL path.</returns>
    public static string SamplePath(string sample)
    {
        var asm = typeof(SampleProcess).Assembly;
        string Meta(string key) => asm.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;
        var path = Path.Combine(Meta("NearML.RepositoryRoot"), "samples", $"NearML.Samples.{sample}", "bin", Meta("NearML.Configuration"), Meta("NearML.TargetFramework"), $"NearML.Samples.{sample}.dll");
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"the {sample} sample is not built at {path}; build tests/NearML.Hosting.ProcessTests (it references the samples)", path);
        }

        return path;
    }

    /// <summary>Waits for a stdout line matching <paramref name="pattern"/>, at index ≥ <paramref name="fromLine"/>.</summary>
    /// <param name="pattern">The regular expression.</param>
    /// <param name="timeout">The deadline.</param>
    /// <param name="fromLine">The first line index to consider.</param>
    /// <param name="cancellationToken">Test cancellation.</param>
    /// <returns>The match.</returns>
    public Task<Match> WaitForStdoutAsync(string pattern, TimeSpan timeout, int fromLine = 0, CancellationToken cancellationToken = default) =>
        WaitForAsync(stdout: true, new Regex(pattern, RegexOptions.CultureInvariant), timeout, fromLine, cancellationToken);

    /// <summary>
    /// Waits until worker <paramref name="workerId"/> has received round <paramref name="round"/>'s assignment and started
    /// its inner steps (<c>ROUND</c> then <c>STATE … Training</c> lines). Unlike a <c>PROGRESS</c> line this does not depend
    /// on the round lasting longer than the worker's 1 s progress interval, which a quiet machine does not guarantee.
    /// </summary>
    /// <param name="workerId">The worker id.</param>
    /// <param name="round">The round.</param>
    /// <param name="timeout">The deadline for each of the two lines.</param>
    /// <param name="cancellationToken">Test cancellation.</param>
    /// <returns>A task that completes once the worker is training that round.</returns>
    public async Task WaitForTrainingAsync(string workerId, long round, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var roundLine = $"ROUND id={workerId} round={round}";
        await WaitForStdoutAsync("^" + Regex.Escape(roundLine) + "$", timeout, 0, cancellationToken).ConfigureAwait(false);
        var lines = StdoutLines;
        var from = 0;
        for (var i = lines.Count - 1; i >= 0; i--)
        {
            if (lines[i] == roundLine)
            {
                from = i;
                break;
            }
        }

        await WaitForStdoutAsync("^" + Regex.Escape($"STATE id={workerId} state=Training"), timeout, from, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Waits for a stderr (log) line matching <paramref name="pattern"/>, at index ≥ <paramref name="fromLine"/>.</summary>
    /// <param name="pattern">The regular expression.</param>
    /// <param name="timeout">The deadline.</param>
    /// <param name="fromLine">The first line index to consider.</param>
    /// <param name="cancellationToken">Test cancellation.</param>
    /// <returns>The match.</returns>
    public Task<Match> WaitForStderrAsync(string pattern, TimeSpan timeout, int fromLine = 0, CancellationToken cancellationToken = default) =>
        WaitForAsync(stdout: false, new Regex(pattern, RegexOptions.CultureInvariant), timeout, fromLine, cancellationToken);

    /// <summary>Gets the stderr line count.</summary>
    public int StderrCount
    {
        get
        {
            lock (_gate)
            {
                return _stderr.Count;
            }
        }
    }

    /// <summary>Waits for the process to exit.</summary>
    /// <param name="timeout">The deadline.</param>
    /// <param name="cancellationToken">Test cancellation.</param>
    /// <returns>The exit code.</returns>
    public async Task<int> WaitForExitAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        try
        {
            await _exited.Task.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"{Name} did not exit within {timeout.TotalSeconds:0} s.\n{Transcript()}");
        }

        // Exited fires before the redirected streams are drained; WaitForExit() (no timeout) waits for EOF on both.
        await _process.WaitForExitAsync(cancellationToken).WaitAsync(TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
        return _process.ExitCode;
    }

    /// <summary>SIGKILL: the process dies at once, its sockets are reset by the kernel.</summary>
    public void Kill()
    {
        if (!HasExited)
        {
            try
            {
                _process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // already gone
            }
        }
    }

    /// <summary>SIGTERM: asks the host to stop cleanly (the generic host's console lifetime handles it).</summary>
    public void Terminate()
    {
        if (!HasExited)
        {
            _ = SysKill(_pid, 15);
        }
    }

    /// <summary>Returns the last lines of both streams, for failure messages.</summary>
    /// <param name="maxLines">Lines to keep.</param>
    /// <returns>The transcript.</returns>
    public string Transcript(int maxLines = 60)
    {
        var lines = _transcript.ToArray();
        string exit;
        try
        {
            exit = HasExited ? $", exited {_process.ExitCode}" : string.Empty;
        }
        catch (InvalidOperationException)
        {
            exit = ", exited";
        }

        return $"--- {Name} (pid {_pid}{exit}), last {Math.Min(maxLines, lines.Length)} of {lines.Length} lines:\n"
            + string.Join('\n', lines.Skip(Math.Max(0, lines.Length - maxLines)));
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        Kill();
        try
        {
            await _exited.Task.WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // reported by the test that owns it; nothing more to do
        }

        _process.Dispose();
        _changed.Dispose();
    }

    private async Task<Match> WaitForAsync(bool stdout, Regex regex, TimeSpan timeout, int fromLine, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.StartNew();
        var next = fromLine;
        while (true)
        {
            lock (_gate)
            {
                var lines = stdout ? _stdout : _stderr;
                for (; next < lines.Count; next++)
                {
                    var m = regex.Match(lines[next]);
                    if (m.Success)
                    {
                        return m;
                    }
                }
            }

            if (HasExited && _process.WaitForExit(0))
            {
                // streams drained: re-check once, then give up
                lock (_gate)
                {
                    var lines = stdout ? _stdout : _stderr;
                    for (; next < lines.Count; next++)
                    {
                        var m = regex.Match(lines[next]);
                        if (m.Success)
                        {
                            return m;
                        }
                    }
                }

                throw new InvalidOperationException($"{Name} exited before printing /{regex}/ on {(stdout ? "stdout" : "stderr")}.\n{Transcript()}");
            }

            var left = timeout - deadline.Elapsed;
            if (left <= TimeSpan.Zero)
            {
                throw new TimeoutException($"{Name} did not print /{regex}/ on {(stdout ? "stdout" : "stderr")} within {timeout.TotalSeconds:0} s.\n{Transcript()}");
            }

            await _changed.WaitAsync(left < TimeSpan.FromMilliseconds(500) ? left : TimeSpan.FromMilliseconds(500), cancellationToken).ConfigureAwait(false);
        }
    }

    private void OnLine(string? line, bool stdout)
    {
        if (line is null)
        {
            return;
        }

        lock (_gate)
        {
            (stdout ? _stdout : _stderr).Add(line);
        }

        _transcript.Enqueue((stdout ? "out| " : "err| ") + line);
        while (_transcript.Count > 2000 && _transcript.TryDequeue(out _))
        {
        }

        _changed.Release();
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SysKill(int pid, int signal);
}
