using System.Globalization;
using Microsoft.Extensions.Hosting;
using NearML.Hosting.Coordinator;

namespace NearML.Samples.Coordinator;

/// <summary>
/// Prints one machine-readable line on stdout per coordinator event, for people and for the process tests:
/// <c>STANDBY job=…</c> (another coordinator holds the lease on the shared PostgreSQL state),
/// <c>LISTENING port=7420 fingerprint=AB:CD:…</c>, <c>WORKERS connected=3 ids=w0,w1,w2</c>,
/// <c>ROUND 3 COMPLETE acc=0.8512 accepted=2 cohort=3 rejected=0 loss=0.41 ms=2300</c>, <c>SETTLEMENT tx=…</c>,
/// <c>TRAINING COMPLETE rounds=10 acc=… ledger_root=…</c>. When training is complete it stops the host (exit code 0).
/// </summary>
internal sealed class CoordinatorStatusLines(CoordinatorStatus status, IHostApplicationLifetime lifetime) : BackgroundService
{
    private static readonly HashSet<string> GoneStates = new(StringComparer.OrdinalIgnoreCase) { "left", "dropped", "refused", "disconnected" };

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var signal = new SemaphoreSlim(0, int.MaxValue);
        void OnChanged(object? sender, EventArgs e)
        {
            try
            {
                signal.Release();
            }
            catch (ObjectDisposedException)
            {
                // raised after this service stopped
            }
        }

        status.StatusChanged += OnChanged;
        var listening = false;
        var standby = false;
        string? lastWorkers = null;
        var rounds = 0;
        var settlements = 0;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                if (!standby && status.Role == CoordinatorRole.Standby)
                {
                    standby = true;
                    Emit($"STANDBY job={status.JobId}");
                }

                if (!listening && status.Port > 0 && status.Fingerprint is { Length: > 0 } fingerprint)
                {
                    listening = true;
                    Emit($"LISTENING port={status.Port} fingerprint={fingerprint} job={status.JobId} round={status.Round}");
                }

                var connected = status.Workers.Where(w => !GoneStates.Contains(w.State)).Select(w => w.Id).Order(StringComparer.Ordinal).ToList();
                var workers = string.Join(',', connected);
                if (workers != lastWorkers)
                {
                    lastWorkers = workers;
                    Emit($"WORKERS connected={connected.Count} ids={workers}");
                }

                var completed = status.Rounds;
                for (; rounds < completed.Count; rounds++)
                {
                    var r = completed[rounds];
                    Emit(string.Create(
                        CultureInfo.InvariantCulture,
                        $"ROUND {r.Round} COMPLETE acc={(r.Accuracy is { } a ? a.ToString("0.0000", CultureInfo.InvariantCulture) : "n/a")} accepted={r.Accepted} cohort={r.Cohort} rejected={r.Rejected} loss={r.MeanLoss:0.0000} ms={r.Duration.TotalMilliseconds:0} update_bytes={r.UpdateBytes}"));
                }

                var txs = status.Settlements;
                for (; settlements < txs.Count; settlements++)
                {
                    Emit($"SETTLEMENT tx={txs[settlements]}");
                }

                if (status.Completed)
                {
                    Emit(string.Create(
                        CultureInfo.InvariantCulture,
                        $"TRAINING COMPLETE rounds={status.Round} acc={status.LastAccuracy:0.0000} ledger_entries={status.LedgerEntries} ledger_root={status.LedgerRoot}"));
                    lifetime.StopApplication();
                    return;
                }

                if (status.LastError is { } error && status.Listening.IsFaulted)
                {
                    Emit($"FAILED message={error.ReplaceLineEndings(" ")}");
                    lifetime.StopApplication();
                    return;
                }

                try
                {
                    await signal.WaitAsync(TimeSpan.FromMilliseconds(200), stoppingToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }

            // The host stops itself when the coordinator fails (StopHost), which can cancel this loop before it wakes up
            // to see the failure: report it on the way out, so a failed run always ends with its FAILED line.
            if (status.LastError is { } late && status.Listening.IsFaulted)
            {
                Emit($"FAILED message={late.ReplaceLineEndings(" ")}");
            }
        }
        finally
        {
            status.StatusChanged -= OnChanged;
        }
    }

    private static void Emit(string line) => Console.Out.WriteLine(line);
}
