namespace NearML.Core.Protocol;

/// <summary>Limits and buffer sizes of a <see cref="FrameConnection"/>.</summary>
public sealed class FrameConnectionOptions
{
    /// <summary>The smallest allowed <see cref="MaxFrameSize"/>.</summary>
    public const int MinimumMaxFrameSize = 4096;

    /// <summary>Gets or sets the largest frame payload accepted or sent, in bytes. A larger incoming frame closes the connection.</summary>
    /// <value>The default value is 4 MiB.</value>
    public int MaxFrameSize { get; set; } = 4 << 20;

    /// <summary>Gets or sets how many unsent bytes may queue before senders wait (<c>FlushAsync</c> backpressure).</summary>
    /// <value>The default value is 4 MiB.</value>
    public int SendBufferLimit { get; set; } = 4 << 20;

    /// <summary>Gets or sets how many bytes are read ahead from the stream before reading pauses; raised to at least one maximum frame.</summary>
    /// <value>The default value is 4 MiB.</value>
    public int ReceiveBufferLimit { get; set; } = 4 << 20;

    /// <summary>Gets or sets the size of each buffer segment (and so of each write to the underlying stream).</summary>
    /// <value>The default value is 64 KiB.</value>
    public int SegmentSize { get; set; } = 64 << 10;

    /// <summary>
    /// Gets or sets the pool the connection's read-ahead and send buffers come from (shared by every connection given these
    /// options), or <see langword="null"/> for a process-wide <see cref="FrameBufferPool"/> of 64 KiB blocks keeping up to
    /// 64 MiB (or <see cref="System.Buffers.MemoryPool{T}.Shared"/> when <see cref="SegmentSize"/> is larger). A host with
    /// many connections moving megabytes at once should pass its own <see cref="FrameBufferPool"/>.
    /// </summary>
    /// <value>The default value is <see langword="null"/>.</value>
    public System.Buffers.MemoryPool<byte>? BufferPool { get; set; }

    /// <summary>Gets or sets how long closing waits for queued frames (such as a final <c>Error</c>) to be written.</summary>
    /// <value>The default value is 2 seconds.</value>
    public TimeSpan CloseTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Throws if a value is out of range.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of range; the message names it.</exception>
    public void Validate()
    {
        if (MaxFrameSize < MinimumMaxFrameSize || MaxFrameSize > (1 << 30))
        {
            throw new ArgumentOutOfRangeException(nameof(MaxFrameSize), MaxFrameSize, $"MaxFrameSize must be between {MinimumMaxFrameSize} and 1 GiB.");
        }

        if (SegmentSize < 4096 || SegmentSize > (4 << 20))
        {
            throw new ArgumentOutOfRangeException(nameof(SegmentSize), SegmentSize, "SegmentSize must be between 4 KiB and 4 MiB.");
        }

        if (SendBufferLimit < SegmentSize)
        {
            throw new ArgumentOutOfRangeException(nameof(SendBufferLimit), SendBufferLimit, $"SendBufferLimit must be at least SegmentSize ({SegmentSize}).");
        }

        if (ReceiveBufferLimit < SegmentSize)
        {
            throw new ArgumentOutOfRangeException(nameof(ReceiveBufferLimit), ReceiveBufferLimit, $"ReceiveBufferLimit must be at least SegmentSize ({SegmentSize}).");
        }

        if (CloseTimeout < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(CloseTimeout), CloseTimeout, "CloseTimeout must not be negative.");
        }
    }

    internal FrameConnectionOptions Clone() => (FrameConnectionOptions)MemberwiseClone();
}
