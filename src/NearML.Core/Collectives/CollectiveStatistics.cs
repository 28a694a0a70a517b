namespace NearML.Core.Collectives;

/// <summary>
/// Running byte counts of one worker's collective traffic. Thread-safe for one writer (the worker's endpoint) and
/// any number of readers.
/// </summary>
public sealed class CollectiveStatistics
{
    private readonly Lock _gate = new();
    private long _sent;
    private long _received;
    private long _syncs;
    private long _peakSent;
    private long _peakReceived;
    private long _rejected;

    /// <summary>Gets the total bytes sent.</summary>
    public long BytesSent { get { lock (_gate) { return _sent; } } }

    /// <summary>Gets the total bytes received.</summary>
    public long BytesReceived { get { lock (_gate) { return _received; } } }

    /// <summary>Gets the number of completed exchanges (reductions and gathers) this worker contributed to.</summary>
    public long SyncCount { get { lock (_gate) { return _syncs; } } }

    /// <summary>Gets the largest number of bytes sent in one exchange.</summary>
    public long PeakBytesSentPerSync { get { lock (_gate) { return _peakSent; } } }

    /// <summary>Gets the largest number of bytes received in one exchange.</summary>
    public long PeakBytesReceivedPerSync { get { lock (_gate) { return _peakReceived; } } }

    /// <summary>Gets how many of this worker's contributions the reducer rejected.</summary>
    public long RejectedContributions { get { lock (_gate) { return _rejected; } } }

    /// <summary>Records one exchange.</summary>
    /// <param name="sent">Bytes sent in it.</param>
    /// <param name="received">Bytes received in it.</param>
    /// <param name="rejected">Whether this worker's contribution was rejected.</param>
    public void Record(long sent, long received, bool rejected = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(sent);
        ArgumentOutOfRangeException.ThrowIfNegative(received);
        lock (_gate)
        {
            _sent += sent;
            _received += received;
            _syncs++;
            _peakSent = Math.Max(_peakSent, sent);
            _peakReceived = Math.Max(_peakReceived, received);
            if (rejected)
            {
                _rejected++;
            }
        }
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"sent {BytesSent} B, received {BytesReceived} B in {SyncCount} exchanges (peak {PeakBytesSentPerSync} B sent)";
}
