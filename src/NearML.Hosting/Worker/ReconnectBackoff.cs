using System.Security.Cryptography;

namespace NearML.Hosting.Worker;

/// <summary>
/// Exponential backoff with jitter for reconnecting: attempt n waits a uniformly random time in [d/2, d] where
/// d = min(max, initial · 2ⁿ) ("equal jitter"), so a fleet of workers that lost the same coordinator does not reconnect in lockstep.
/// </summary>
internal sealed class ReconnectBackoff
{
    private readonly TimeSpan _initial;
    private readonly TimeSpan _max;
    private int _attempt;

    public ReconnectBackoff(TimeSpan initial, TimeSpan max)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(initial, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(max, initial);
        _initial = initial;
        _max = max;
    }

    /// <summary>Gets the number of consecutive failed attempts.</summary>
    public int Attempt => _attempt;

    /// <summary>Gets the upper bound of the next delay (before jitter).</summary>
    public TimeSpan Ceiling(int attempt)
    {
        var factor = Math.Pow(2, Math.Min(attempt, 30));
        var ticks = Math.Min(_max.Ticks, _initial.Ticks * factor);
        return TimeSpan.FromTicks((long)ticks);
    }

    /// <summary>Returns the next delay and counts the attempt.</summary>
    public TimeSpan Next()
    {
        var ceiling = Ceiling(_attempt);
        _attempt++;
        var half = ceiling.Ticks / 2;
        var jitter = half > 0 ? (long)(RandomNumberGenerator.GetInt32(1_000_001) / 1_000_000.0 * half) : 0;
        return TimeSpan.FromTicks(half + jitter);
    }

    /// <summary>Resets after a successful admission.</summary>
    public void Reset() => _attempt = 0;
}
