using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using NearML.Ledger;

namespace NearML.Hosting.ProcessTests;

/// <summary>
/// A coordinator process and worker processes in a fresh temporary folder. Everything started here is killed in
/// <see cref="DisposeAsync"/>, whatever happened; the folder is deleted unless the test failed (then it is kept and named).
/// </summary>
/// <summary>One <c>ROUND r COMPLETE</c> line of the coordinator sample.</summary>
internal sealed record RoundLine(long Round, double Accuracy, int Accepted, int Cohort, int Rejected);

internal sealed class TestCluster : IAsyncDisposable
{
    public static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    private readonly List<SampleProcess> _processes = [];
    private readonly TestContext _context;
    private bool _passed;

    public TestCluster(TestContext context, string name)
    {
        _context = context;
        Root = Path.Combine(Path.GetTempPath(), "nearml-process-tests", $"{name}-{Environment.ProcessId}-{Guid.NewGuid():N}"[..(name.Length + 20)]);
        Directory.CreateDirectory(Root);
    }

    /// <summary>Gets the temporary folder of this cluster.</summary>
    public string Root { get; }

    public string CoordinatorData => Path.Combine(Root, "coordinator");

    public int Port { get; private set; }

    public string Fingerprint { get; private set; } = string.Empty;

    public SampleProcess? Coordinator { get; private set; }

    public CancellationToken Token => _context.CancellationToken;

    /// <summary>Returns a TCP port that was free a moment ago (for a coordinator that must come back on the same port).</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Starts the coordinator sample and waits for its LISTENING line.</summary>
    public async Task<SampleProcess> StartCoordinatorAsync(int port = 0, params string[] extra)
    {
        string[] args =
        [
            "--port", port.ToString(CultureInfo.InvariantCulture),
            "--data", CoordinatorData,
            "--allow-simulated-attestation",
            "--heartbeat", "00:00:02",
            .. extra,
        ];
        var process = SampleProcess.Start("Coordinator", $"coordinator#{_processes.Count(p => p.Name.StartsWith("coordinator", StringComparison.Ordinal)) + 1}", Root, args);
        _processes.Add(process);
        Coordinator = process;
        var m = await process.WaitForStdoutAsync(@"^LISTENING port=(\d+) fingerprint=(\S+)", StartTimeout, 0, Token).ConfigureAwait(false);
        Port = int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        Fingerprint = m.Groups[2].Value;
        return process;
    }

    /// <summary>Starts a worker sample pinned to the coordinator.</summary>
    public SampleProcess StartWorker(string id, params string[] extra)
    {
        string[] args =
        [
            "--port", Port.ToString(CultureInfo.InvariantCulture),
            "--fingerprint", Fingerprint,
            "--id", id,
            "--data", Path.Combine(Root, id),
            "--attestation", "simulated",
            "--threads", "1",
            "--max-reconnect-delay", "00:00:02",
            "--progress",
            .. extra,
        ];
        var process = SampleProcess.Start("Worker", id, Root, args);
        _processes.Add(process);
        return process;
    }

    /// <summary>Parses every <c>ROUND r COMPLETE</c> line of a coordinator process.</summary>
    public static List<RoundLine> CompletedRounds(SampleProcess coordinator, int fromLine = 0)
    {
        var result = new List<RoundLine>();
        var regex = new Regex(@"^ROUND (\d+) COMPLETE acc=(\S+) accepted=(\d+) cohort=(\d+) rejected=(\d+)", RegexOptions.CultureInvariant);
        var lines = coordinator.StdoutLines;
        for (var i = fromLine; i < lines.Count; i++)
        {
            var m = regex.Match(lines[i]);
            if (m.Success)
            {
                result.Add(new RoundLine(
                    long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture),
                    ParseAccuracy(m.Groups[2].Value),
                    int.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture),
                    int.Parse(m.Groups[4].Value, CultureInfo.InvariantCulture),
                    int.Parse(m.Groups[5].Value, CultureInfo.InvariantCulture)));
            }
        }

        return result;
    }

    public static double ParseAccuracy(string text) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : double.NaN;

    /// <summary>Reads the coordinator's ledger (after the coordinator exited): verifies the chain and returns every receipt.</summary>
    public IReadOnlyList<ContributionReceipt> ReadLedger()
    {
        var path = Path.Combine(CoordinatorData, "ledger.db");
        Assert.IsTrue(File.Exists(path), $"no ledger at {path}");
        using var ledger = ContributionLedger.OpenSqlite(path);
        var verification = ledger.Verify(cancellationToken: Token);
        Assert.IsTrue(verification.IsValid, $"ledger verification failed: {verification.Message}");
        var signatures = ledger.VerifySignatures(cancellationToken: Token);
        Assert.IsTrue(signatures.IsValid, $"ledger signatures: {signatures.Message}");
        var receipts = new List<ContributionReceipt>();
        foreach (var epoch in ledger.Store.ListEpochs())
        {
            receipts.AddRange(ledger.ReadEpochReceipts(epoch).Select(r => r.Receipt));
        }

        return receipts;
    }

    /// <summary>Transcripts of every process, for failure messages.</summary>
    public string Transcripts() => string.Join("\n", _processes.Select(p => p.Transcript(40)));

    /// <summary>Call at the end of a test that passed: the folder is then deleted and no transcripts are written.</summary>
    public void Passed() => _passed = true;

    public async ValueTask DisposeAsync()
    {
        var transcripts = _passed ? string.Empty : Transcripts();
        foreach (var p in _processes)
        {
            await p.DisposeAsync().ConfigureAwait(false);
        }

        if (_passed)
        {
            try
            {
                Directory.Delete(Root, recursive: true);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
        else
        {
            _context.WriteLine($"cluster folder kept for inspection: {Root}");
            _context.WriteLine(transcripts);
        }
    }
}
