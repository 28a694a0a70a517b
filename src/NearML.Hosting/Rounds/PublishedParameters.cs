using System.Collections.Concurrent;
using NearML.Core;
using NearML.Core.Protocol;

namespace NearML.Hosting.Rounds;

/// <summary>
/// An immutable copy of the global parameters at one version, with its manifest: what workers download and what the
/// checkpoint of that round writes. Reference-counted: the publisher holds one reference while it is current, every
/// download and checkpoint write one more; when the last is released the buffer goes back to its
/// <see cref="PublishedParameters"/> and holds the next version (no new buffer per round).
/// </summary>
internal sealed class ParameterSnapshot
{
    private readonly PublishedParameters _owner;
    private int _references;

    internal ParameterSnapshot(PublishedParameters owner, ParameterSet parameters)
    {
        _owner = owner;
        Parameters = parameters;
    }

    /// <summary>Gets the version.</summary>
    public long Version { get; private set; }

    /// <summary>Gets the parameters (never written while a reference is held).</summary>
    public ParameterSet Parameters { get; }

    /// <summary>Gets the chunk manifest of <see cref="Parameters"/>.</summary>
    public ParameterManifest Manifest { get; private set; } = null!;

    internal void Fill(ParameterSet source, long version)
    {
        Parameters.CopyFrom(source);
        Version = version;
        Manifest = ParameterManifest.Compute(Parameters);
        Volatile.Write(ref _references, 1);
    }

    /// <summary>Takes a reference unless the snapshot was already released (then it is no longer current).</summary>
    internal bool TryAcquire()
    {
        while (true)
        {
            var n = Volatile.Read(ref _references);
            if (n <= 0)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _references, n + 1, n) == n)
            {
                return true;
            }
        }
    }

    /// <summary>Drops a reference; the last one returns the buffer for reuse.</summary>
    public void Release()
    {
        var n = Interlocked.Decrement(ref _references);
        if (n == 0)
        {
            _owner.Return(this);
        }
        else if (n < 0)
        {
            throw new InvalidOperationException("A parameter snapshot was released more often than it was acquired.");
        }
    }
}

/// <summary>
/// The coordinator's published global parameters: one current <see cref="ParameterSnapshot"/> (served to downloads and
/// checkpointed), replaced at every outer step by copying the new global into a recycled buffer. In steady state two
/// buffers alternate (the current version and the previous one while a download or checkpoint still reads it); a
/// third exists only while both are still held.
/// </summary>
internal sealed class PublishedParameters
{
    private readonly ConcurrentBag<ParameterSnapshot> _free = [];
    private volatile ParameterSnapshot? _current;

    /// <summary>Gets the current snapshot without taking a reference (its version, manifest and length only).</summary>
    public ParameterSnapshot Current => _current ?? throw new InvalidOperationException("Nothing was published yet.");

    /// <summary>Gets how many snapshot buffers were ever allocated.</summary>
    public int Allocated { get; private set; }

    /// <summary>Copies <paramref name="parameters"/> into a free buffer and makes it the current version.</summary>
    /// <param name="parameters">The global parameters after the outer step.</param>
    /// <param name="version">Their version.</param>
    public void Publish(ParameterSet parameters, long version)
    {
        ParameterSnapshot? snapshot = null;
        while (_free.TryTake(out var candidate))
        {
            if (candidate.Parameters.Length == parameters.Length && candidate.Parameters.Layout.Equals(parameters.Layout))
            {
                snapshot = candidate;
                break;
            }
        }

        if (snapshot is null)
        {
            snapshot = new ParameterSnapshot(this, new ParameterSet(parameters.Layout));
            Allocated++;
        }

        snapshot.Fill(parameters, version);
        var previous = _current;
        _current = snapshot;
        previous?.Release();
    }

    /// <summary>Takes a reference to the current snapshot (release it when done reading).</summary>
    /// <returns>The snapshot.</returns>
    public ParameterSnapshot Acquire()
    {
        while (true)
        {
            var current = Current;
            if (current.TryAcquire())
            {
                return current;
            }
        }
    }

    internal void Return(ParameterSnapshot snapshot) => _free.Add(snapshot);
}
