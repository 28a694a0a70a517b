using System.Text.Json;
using Microsoft.Extensions.Options;
using NearML.Hosting.Coordinator;

namespace NearML.Dashboard;

/// <summary>
/// Watches <see cref="CoordinatorStatus.StatusChanged"/> and serves the current status as UTF-8 JSON, built at most once
/// per change however many pages are open. Pages wait on <see cref="WaitForChangeAsync"/>.
/// </summary>
internal sealed class DashboardFeed : IDisposable
{
    private readonly CoordinatorStatus _status;
    private readonly NearMLCoordinatorOptions _coordinator;
    private readonly NearMLDashboardOptions _options;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private long _version;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _cachedVersion = -1;
    private byte[] _cached = [];

    public DashboardFeed(CoordinatorStatus status, IOptions<NearMLCoordinatorOptions> coordinator, IOptions<NearMLDashboardOptions> options, TimeProvider? time = null)
    {
        _status = status;
        _coordinator = coordinator.Value;
        _options = options.Value;
        _time = time ?? TimeProvider.System;
        _status.StatusChanged += OnStatusChanged;
    }

    public NearMLDashboardOptions Options => _options;

    /// <summary>Gets the change counter (incremented on every <see cref="CoordinatorStatus.StatusChanged"/>).</summary>
    public long Version => Interlocked.Read(ref _version);

    /// <summary>Returns the current status as JSON and the version it reflects.</summary>
    public (long Version, byte[] Json) Current()
    {
        lock (_gate)
        {
            // Read the version first: a change racing with the build only makes the next call build again.
            var version = Version;
            if (version != _cachedVersion)
            {
                _cached = JsonSerializer.SerializeToUtf8Bytes(Build(version), DashboardJsonContext.Default.DashboardSnapshot);
                _cachedVersion = version;
            }

            return (_cachedVersion, _cached);
        }
    }

    /// <summary>Completes when the version differs from <paramref name="seen"/>, or after <paramref name="timeout"/> (returns false).</summary>
    public async Task<bool> WaitForChangeAsync(long seen, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var changed = Volatile.Read(ref _changed);
        if (Version != seen)
        {
            return true;
        }

        try
        {
            await changed.Task.WaitAsync(timeout, _time, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return Version != seen;
        }
    }

    public void Dispose() => _status.StatusChanged -= OnStatusChanged;

    private void OnStatusChanged(object? sender, EventArgs e)
    {
        Interlocked.Increment(ref _version);
        Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }

    private static double? Finite(double value) => double.IsFinite(value) ? value : null;

    private DashboardSnapshot Build(long version)
    {
        var s = _status;
        var ddpPerStep = 4L * s.ParameterCount;
        var innerSteps = _coordinator.InnerSteps;
        var all = s.Rounds;
        var omitted = Math.Max(0, all.Count - _options.MaxRounds);
        var rounds = new List<DashboardRound>(all.Count - omitted);
        long ddp = 0;
        for (var i = 0; i < all.Count; i++)
        {
            var r = all[i];

            // DDP sends one fp32 gradient per inner step per worker to the aggregator (docs/low-communication.md).
            var roundDdp = (long)r.Accepted * innerSteps * ddpPerStep;
            ddp += roundDdp;
            if (i >= omitted)
            {
                rounds.Add(new DashboardRound(r.Round, r.Cohort, r.Accepted, r.Rejected, Finite(r.MeanLoss), r.Accuracy is { } a ? Finite(a) : null, (long)r.Duration.TotalMilliseconds, r.UpdateBytes, roundDdp, r.AcceptedWorkers));
            }
        }

        var workers = s.Workers.Select(w => new DashboardWorker(w.Id, w.State, w.Attestation, w.Round, w.Step, Finite(w.Loss), Finite(w.SamplesPerSecond) ?? 0, w.Receipts, w.BytesSent, w.BytesReceived)).ToList();
        var settlements = s.SettlementTransactions.Select(t => new DashboardSettlement(t.Epoch, t.Hash, t.Receiver, t.Amount, t.DryRun)).ToList();
        var payouts = s.Payouts.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => new DashboardPayout(p.Key, p.Value)).ToList();

        // The error text is not served (it may name paths or servers): the page says where to look.
        var state = s.LastError is not null ? "failed" : s.Completed ? "completed" : s.Port == 0 ? "starting" : "running";
        return new DashboardSnapshot(
            version, s.JobId, state, s.Round, _coordinator.Rounds, innerSteps, s.ParameterVersion, s.ParameterCount, s.LastAccuracy is { } acc ? Finite(acc) : null,
            s.TotalBytesUp, s.TotalBytesDown, ddp, s.LedgerEntries, s.LedgerRoot, omitted, rounds, workers, settlements, payouts, _time.GetUtcNow().ToUnixTimeMilliseconds());
    }
}
