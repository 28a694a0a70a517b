using System.Globalization;
using Microsoft.Extensions.Logging;

namespace NearML.Hosting.Coordinator;

/// <summary>
/// Keeps a connection flood from flooding the log: at most <c>burst</c> refusals and connection faults are logged one by one
/// per interval; the others are counted (by reason, with the number of distinct addresses) and written as one summary line
/// when the interval ends. Thread-safe.
/// </summary>
internal sealed class RefusalLogLimiter : IDisposable
{
    private const int MaxTrackedAddresses = 4096;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly TimeSpan _interval;
    private readonly int _burst;
    private readonly Lock _gate = new();
    private readonly SortedDictionary<string, long> _suppressed = new(StringComparer.Ordinal);
    private readonly HashSet<string> _addresses = new(StringComparer.Ordinal);
    private readonly ITimer _timer;
    private long _windowStart;
    private int _logged;
    private long _suppressedTotal;

    public RefusalLogLimiter(ILogger logger, TimeProvider time, TimeSpan interval, int burst)
    {
        _logger = logger;
        _time = time;
        _interval = interval;
        _burst = burst;
        _windowStart = time.GetTimestamp();
        _timer = time.CreateTimer(_ => Flush(), null, interval, interval);
    }

    /// <summary>Gets the refusals and faults counted but not logged one by one since the service started.</summary>
    public long SuppressedTotal
    {
        get
        {
            lock (_gate)
            {
                return _suppressedTotal;
            }
        }
    }

    /// <summary>Returns <see langword="true"/> when this refusal may be logged on its own line; otherwise counts it for the summary.</summary>
    /// <param name="reason">A short reason (the summary groups by it).</param>
    /// <param name="remote">The client's address (with port; the summary counts distinct hosts).</param>
    /// <returns>Whether to log it now.</returns>
    public bool TryLog(string reason, string remote)
    {
        lock (_gate)
        {
            if (_time.GetElapsedTime(_windowStart) >= _interval)
            {
                FlushLocked();
            }

            if (_logged < _burst)
            {
                _logged++;
                return true;
            }

            _suppressed[reason] = _suppressed.TryGetValue(reason, out var n) ? n + 1 : 1;
            _suppressedTotal++;
            if (_addresses.Count < MaxTrackedAddresses)
            {
                _addresses.Add(Host(remote));
            }

            return false;
        }
    }

    /// <summary>Writes the summary of the interval that ended (nothing when nothing was suppressed).</summary>
    public void Flush()
    {
        lock (_gate)
        {
            FlushLocked();
        }
    }

    /// <summary>Stops the interval timer and writes the summary of the refusals counted since the last one, so that a flood
    /// just before the coordinator stops is still accounted for in the log.</summary>
    public void Dispose()
    {
        _timer.Dispose();
        Flush();
    }

    private static string Host(string remote)
    {
        var colon = remote.LastIndexOf(':');
        return colon > 0 ? remote[..colon] : remote;
    }

    private void FlushLocked()
    {
        var now = _time.GetTimestamp();
        var seconds = _time.GetElapsedTime(_windowStart, now).TotalSeconds;
        _windowStart = now;
        _logged = 0;
        if (_suppressed.Count == 0)
        {
            return;
        }

        var total = _suppressed.Values.Sum();
        var reasons = string.Join(", ", _suppressed.Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key}: {kv.Value}")));
        CoordinatorLog.RefusalSummary(_logger, total, seconds, reasons, _addresses.Count);
        _suppressed.Clear();
        _addresses.Clear();
    }
}
