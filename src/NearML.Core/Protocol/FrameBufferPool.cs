using System.Buffers;
using System.Collections.Concurrent;

namespace NearML.Core.Protocol;

/// <summary>
/// A <see cref="MemoryPool{T}"/> of fixed-size blocks for the pipes of many <see cref="FrameConnection"/>s that move large
/// frames at once (a coordinator receiving every worker's update and sending every worker the global parameters in the
/// same seconds). <see cref="MemoryPool{T}.Shared"/> keeps only a few blocks per size and core, so with dozens of
/// connections each holding megabytes in flight most blocks are allocated anew every round; this pool keeps every
/// returned block up to <c>maxRetainedBytes</c>, so in steady state a round allocates none.
/// </summary>
public sealed class FrameBufferPool : MemoryPool<byte>
{
    private readonly ConcurrentQueue<Owner> _free = new();
    private readonly int _blockSize;
    private readonly long _maxRetainedBytes;
    private long _retainedBytes;
    private long _allocatedBlocks;

    /// <summary>Initializes a pool.</summary>
    /// <param name="blockSize">The block size: use the connections' <see cref="FrameConnectionOptions.SegmentSize"/>.</param>
    /// <param name="maxRetainedBytes">The most bytes of free blocks kept for reuse (more are left to the GC).</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is not positive.</exception>
    public FrameBufferPool(int blockSize = 64 << 10, long maxRetainedBytes = 256L << 20)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 4096);
        ArgumentOutOfRangeException.ThrowIfNegative(maxRetainedBytes);
        _blockSize = blockSize;
        _maxRetainedBytes = maxRetainedBytes;
    }

    /// <inheritdoc/>
    public override int MaxBufferSize => _blockSize;

    /// <summary>Gets the bytes of free blocks kept for reuse.</summary>
    public long RetainedBytes => Interlocked.Read(ref _retainedBytes);

    /// <summary>Gets how many blocks were allocated so far (not reused).</summary>
    public long AllocatedBlocks => Interlocked.Read(ref _allocatedBlocks);

    /// <inheritdoc/>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="minBufferSize"/> exceeds the block size.</exception>
    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, _blockSize);
        if (_free.TryDequeue(out var owner))
        {
            Interlocked.Add(ref _retainedBytes, -_blockSize);
            owner.Reuse();
            return owner;
        }

        Interlocked.Increment(ref _allocatedBlocks);
        return new Owner(this, GC.AllocateUninitializedArray<byte>(_blockSize));
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        while (_free.TryDequeue(out _))
        {
        }

        Interlocked.Exchange(ref _retainedBytes, 0);
    }

    private void Return(Owner owner)
    {
        if (Interlocked.Add(ref _retainedBytes, _blockSize) <= _maxRetainedBytes)
        {
            _free.Enqueue(owner);
        }
        else
        {
            Interlocked.Add(ref _retainedBytes, -_blockSize);
        }
    }

    /// <summary>
    /// A rented block. The owner object travels with its block back into the pool and out again, so a rent allocates nothing
    /// once the pool is warm; a second <see cref="Dispose"/> of the same rental is ignored.
    /// </summary>
    private sealed class Owner(FrameBufferPool pool, byte[] block) : IMemoryOwner<byte>
    {
        private int _rented = 1;

        public Memory<byte> Memory => Volatile.Read(ref _rented) != 0 ? block : throw new ObjectDisposedException(nameof(FrameBufferPool));

        public void Reuse() => Volatile.Write(ref _rented, 1);

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _rented, 0) != 0)
            {
                pool.Return(this);
            }
        }
    }
}
