using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net;
using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;
using Google.Protobuf;
using NearML.Core.Contracts;
using NearML.Core.Protocol.Internal;

namespace NearML.Core.Protocol;

/// <summary>
/// A framed, full-duplex message connection over any <see cref="Stream"/> (a TLS stream over TCP, or an in-memory pipe in
/// tests). Frames are a 4-byte big-endian payload length, a 2-byte big-endian <see cref="FrameType"/> and the payload.
/// </summary>
/// <remarks>
/// <para>Reads go through a <see cref="PipeReader"/> fed by a read-ahead loop; frames are parsed in place from the
/// <see cref="ReadOnlySequence{T}"/> without copying. Writes go through a <see cref="PipeWriter"/> drained by a write loop;
/// <c>FlushAsync</c> waits once <see cref="FrameConnectionOptions.SendBufferLimit"/> bytes are queued (backpressure).</para>
/// <para>Any number of tasks may send at once (frames are serialized whole, never interleaved); one task at a time receives.
/// An oversized, malformed or truncated incoming frame raises <see cref="ProtocolException"/> and faults this connection only;
/// call <see cref="FailAsync"/> to tell the peer why and close.</para>
/// </remarks>
public sealed class FrameConnection : IAsyncDisposable
{
    private readonly Stream _stream;
    private readonly FrameConnectionOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly Pipe _receivePipe;
    private readonly Pipe _sendPipe;
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly Task _receiveLoop;
    private readonly Task _sendLoop;
    private readonly CancellationTokenSource _lifetime = new();
    private readonly byte[] _channelBinding;
    /// <summary>
    /// The pool of connections whose options name none: <see cref="MemoryPool{T}.Shared"/> misses often when blocks are
    /// rented on one thread and returned on another (as the read-ahead loop and the reader do), so a long transfer kept
    /// allocating fresh 64 KiB arrays; this one reuses them (and their owner objects) up to 64 MiB kept.
    /// </summary>
    private static readonly FrameBufferPool DefaultPool = new(64 << 10, 64L << 20);

    /// <summary>The least free space the read-ahead loop reads into before it moves to a new segment.</summary>
    private const int ReadSizeHint = 4096;

    private readonly byte[] _chunkHash = new byte[ParameterChunkCodec.HashSize];
    private readonly DirectBody _directBody = new();

    private DirectBody? _pendingBody;
    private long _pipeBytes;

    private SequencePosition _pendingEnd;
    private bool _hasPending;
    private int _receiving;
    private ProtocolException? _receiveFault;
    private long _bytesReceived;
    private long _bytesSent;
    private long _lastReceiveTimestamp;
    private long _heartbeatSequence;
    private int _disposed;

    /// <summary>Initializes a new connection over <paramref name="stream"/> and starts its read and write loops.</summary>
    /// <param name="stream">A readable and writable stream; the connection owns and disposes it.</param>
    /// <param name="options">Limits and buffer sizes; <see langword="null"/> for the defaults.</param>
    /// <param name="timeProvider">Clock for heartbeats and idle time; <see langword="null"/> for <see cref="TimeProvider.System"/>.</param>
    public FrameConnection(Stream stream, FrameConnectionOptions? options = null, TimeProvider? timeProvider = null)
        : this(stream, options, timeProvider, null, ReadOnlySpan<byte>.Empty)
    {
    }

    internal FrameConnection(
        Stream stream, FrameConnectionOptions? options, TimeProvider? timeProvider, EndPoint? remoteEndPoint, ReadOnlySpan<byte> channelBinding)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanRead || !stream.CanWrite)
        {
            throw new ArgumentException("The stream must be readable and writable.", nameof(stream));
        }

        _options = (options ?? new FrameConnectionOptions()).Clone();
        _options.Validate();
        _stream = stream;
        _timeProvider = timeProvider ?? TimeProvider.System;
        RemoteEndPoint = remoteEndPoint;
        _channelBinding = channelBinding.ToArray();
        _lastReceiveTimestamp = _timeProvider.GetTimestamp();

        // The read-ahead buffer must hold a whole maximum frame, or a frame larger than it could never complete.
        long receivePause = Math.Max(_options.ReceiveBufferLimit, (long)_options.MaxFrameSize + WireProtocol.FrameHeaderSize + _options.SegmentSize);
        var pool = _options.BufferPool ?? (_options.SegmentSize <= DefaultPool.MaxBufferSize ? DefaultPool : null);
        _receivePipe = new Pipe(new PipeOptions(
            pool: pool,
            pauseWriterThreshold: receivePause,
            resumeWriterThreshold: receivePause / 2,
            readerScheduler: new ThreadPoolSlotScheduler(),
            writerScheduler: new ThreadPoolSlotScheduler(),
            minimumSegmentSize: _options.SegmentSize,
            useSynchronizationContext: false));
        _sendPipe = new Pipe(new PipeOptions(
            pool: pool,
            pauseWriterThreshold: _options.SendBufferLimit,
            resumeWriterThreshold: _options.SendBufferLimit / 2,
            readerScheduler: new ThreadPoolSlotScheduler(),
            writerScheduler: new ThreadPoolSlotScheduler(),
            minimumSegmentSize: _options.SegmentSize,
            useSynchronizationContext: false));

        _receiveLoop = Task.Run(ReceiveLoopAsync);
        _sendLoop = Task.Run(SendLoopAsync);
    }

    /// <summary>Gets the remote address, when the connection runs over a socket.</summary>
    public EndPoint? RemoteEndPoint { get; }

    /// <summary>
    /// Gets the TLS channel binding: SHA-256 of the coordinator's certificate (DER) as seen by this side, in the manner of
    /// RFC 5929 <c>tls-server-end-point</c>; empty when the stream is not TLS.
    /// </summary>
    public ReadOnlyMemory<byte> ChannelBinding => _channelBinding;

    /// <summary>Gets the options in effect (a private copy).</summary>
    public FrameConnectionOptions Options => _options;

    /// <summary>Gets a value indicating whether the coordinator's handshake admitted the peer on this connection.</summary>
    public bool IsAdmitted { get; private set; }

    /// <summary>Called once by the listener that owns the connection when it is admitted (moves it out of the handshake budget).</summary>
    internal Action? Admitted { get; set; }

    /// <summary>Marks the connection admitted (the coordinator's handshake calls this after sending Admission).</summary>
    internal void MarkAdmitted()
    {
        if (IsAdmitted)
        {
            return;
        }

        IsAdmitted = true;
        Admitted?.Invoke();
    }

    /// <summary>Gets the number of bytes (headers included) of complete frames received.</summary>
    public long BytesReceived => Interlocked.Read(ref _bytesReceived);

    /// <summary>Gets the number of bytes (headers included) of frames queued for sending.</summary>
    public long BytesSent => Interlocked.Read(ref _bytesSent);

    /// <summary>Gets how long ago the last complete frame arrived (or the connection was opened).</summary>
    public TimeSpan IdleTime => _timeProvider.GetElapsedTime(Interlocked.Read(ref _lastReceiveTimestamp));

    /// <summary>Gets a token cancelled when the connection is closed or disposed.</summary>
    public CancellationToken Closed => _lifetime.Token;

    /// <summary>
    /// Reads the next frame. The returned payload stays valid until the next call. Returns <see langword="null"/> when the
    /// peer closed the connection at a frame boundary.
    /// </summary>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>The frame, or <see langword="null"/> at a clean end of stream.</returns>
    /// <exception cref="ProtocolException">The frame is oversized, has an unknown type or is truncated, or the connection failed.</exception>
    /// <exception cref="InvalidOperationException">Another receive is in progress.</exception>
    public ValueTask<IncomingFrame?> ReceiveFrameAsync(CancellationToken cancellationToken = default) => ReceiveFrameAsync(null, cancellationToken);

    /// <summary>
    /// Reads the next frame like <see cref="ReceiveFrameAsync(CancellationToken)"/>, except that <see cref="ParameterChunk"/>
    /// frames are not returned: their data goes to <paramref name="chunkSink"/> piece by piece while it arrives (so it is
    /// copied once, while in cache, and the reader need not wait for whole frames), and the first other frame is returned.
    /// One call covers any number of chunks, so nothing is allocated per chunk. A chunk laid out differently from
    /// <see cref="ParameterChunkCodec.Write"/>'s order is read whole and then passed on.
    /// A failure or cancellation in the middle of a chunk faults the connection (the stream is no longer at a frame boundary).
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    internal async ValueTask<IncomingFrame?> ReceiveFrameAsync(IParameterChunkSink? chunkSink, CancellationToken cancellationToken)
    {
        ThrowIfClosed();
        if (Interlocked.Exchange(ref _receiving, 1) != 0)
        {
            throw new InvalidOperationException("A receive is already in progress; a FrameConnection has a single reader.");
        }

        try
        {
            if (_receiveFault is not null)
            {
                throw _receiveFault;
            }

            var reader = _receivePipe.Reader;
            if (_hasPending)
            {
                _hasPending = false;
                reader.AdvanceTo(_pendingEnd);
            }

            while (true)
            {
                ReadResult result;
                try
                {
                    result = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    throw;
                }
                catch (Exception ex) when (ex is not ProtocolException)
                {
                    throw Fault(new ProtocolException(ErrorCode.ConnectionClosed, $"connection lost after {BytesReceived} bytes: {ex.Message}", ex));
                }

                var buffer = result.Buffer;
                if (buffer.Length >= WireProtocol.FrameHeaderSize)
                {
                    var (type, length) = ReadHeader(buffer);
                    if (chunkSink is not null && type == FrameType.ParameterChunk)
                    {
                        var available = buffer.Slice(WireProtocol.FrameHeaderSize, Math.Min(buffer.Length - WireProtocol.FrameHeaderSize, length));
                        var head = ParameterChunkCodec.TryReadHead(available, length, out var chunkOffset, _chunkHash, out var headLength, out var dataLength);
                        if (head == ChunkHeadStatus.NeedMore && available.Length == length)
                        {
                            head = ChunkHeadStatus.NotCanonical;
                        }

                        if (head == ChunkHeadStatus.Complete)
                        {
                            var frameOffset = Interlocked.Read(ref _bytesReceived);
                            try
                            {
                                chunkSink.Begin(chunkOffset, dataLength, _chunkHash);
                            }
                            catch (ProtocolException ex)
                            {
                                reader.AdvanceTo(buffer.Start);
                                throw Fault(ex);
                            }

                            reader.AdvanceTo(buffer.GetPosition(WireProtocol.FrameHeaderSize + headLength));
                            long data = dataLength, trailer = length - headLength - dataLength, remaining = data + trailer;
                            try
                            {
                                // Each piece is consumed as soon as it arrives, so the pipe stays small and the bytes are still in cache.
                                while (remaining > 0)
                                {
                                    var more = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
                                    var pieces = more.Buffer;
                                    if (data > 0)
                                    {
                                        var take = Math.Min(pieces.Length, data);
                                        foreach (var segment in pieces.Slice(0, take))
                                        {
                                            chunkSink.Append(segment.Span);
                                        }

                                        data -= take;
                                        remaining -= take;
                                        pieces = pieces.Slice(take);
                                        if (data > 0 || trailer == 0)
                                        {
                                            reader.AdvanceTo(pieces.Start);
                                            if (remaining > 0 && more.IsCompleted)
                                            {
                                                throw TruncatedChunk(frameOffset, length, remaining);
                                            }

                                            continue;
                                        }
                                    }

                                    if (pieces.Length >= trailer)
                                    {
                                        var rest = pieces.Slice(0, trailer);
                                        reader.AdvanceTo(rest.End);
                                        remaining = 0;
                                        ParameterChunkCodec.ReadTrailer(rest, frameOffset);
                                    }
                                    else
                                    {
                                        reader.AdvanceTo(pieces.Start, pieces.End);
                                        if (more.IsCompleted)
                                        {
                                            throw TruncatedChunk(frameOffset, length, remaining);
                                        }
                                    }
                                }
                            }
                            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                            {
                                Fault(new ProtocolException(
                                    ErrorCode.ConnectionClosed,
                                    $"a receive was cancelled {length - remaining} bytes into a {length}-byte ParameterChunk at byte {frameOffset}; the connection cannot continue"));
                                throw;
                            }
                            catch (ProtocolException ex)
                            {
                                throw Fault(ex);
                            }
                            catch (Exception ex)
                            {
                                throw Fault(new ProtocolException(
                                    ErrorCode.ConnectionClosed, $"connection lost after {frameOffset + WireProtocol.FrameHeaderSize + length - remaining} bytes: {ex.Message}", ex));
                            }

                            Interlocked.Add(ref _bytesReceived, WireProtocol.FrameHeaderSize + length);
                            Interlocked.Exchange(ref _lastReceiveTimestamp, _timeProvider.GetTimestamp());
                            chunkSink.End();
                            continue;
                        }

                        if (head == ChunkHeadStatus.NeedMore && !result.IsCompleted)
                        {
                            reader.AdvanceTo(buffer.Start, buffer.End);
                            continue;
                        }
                    }

                    if (buffer.Length - WireProtocol.FrameHeaderSize >= length)
                    {
                        var offset = Interlocked.Read(ref _bytesReceived);
                        var payload = buffer.Slice(WireProtocol.FrameHeaderSize, length);
                        if (chunkSink is not null && type == FrameType.ParameterChunk)
                        {
                            // Not in the streaming layout: parse the whole frame (which reports any malformation), then hand it on.
                            try
                            {
                                ParameterChunkCodec.Read(payload, offset, out var chunkOffset, out var data, _chunkHash);
                                chunkSink.Begin(chunkOffset, (int)data.Length, _chunkHash);
                                foreach (var segment in data)
                                {
                                    chunkSink.Append(segment.Span);
                                }
                            }
                            finally
                            {
                                reader.AdvanceTo(payload.End);
                                Interlocked.Add(ref _bytesReceived, WireProtocol.FrameHeaderSize + length);
                                Interlocked.Exchange(ref _lastReceiveTimestamp, _timeProvider.GetTimestamp());
                            }

                            chunkSink.End();
                            continue;
                        }

                        _pendingEnd = payload.End;
                        _hasPending = true;
                        Interlocked.Add(ref _bytesReceived, WireProtocol.FrameHeaderSize + length);
                        Interlocked.Exchange(ref _lastReceiveTimestamp, _timeProvider.GetTimestamp());
                        return new IncomingFrame(type, payload, offset);
                    }

                    if (result.IsCompleted)
                    {
                        reader.AdvanceTo(buffer.End);
                        throw Fault(new ProtocolException(
                            ErrorCode.TruncatedFrame,
                            $"frame at byte {BytesReceived} is truncated: the stream ended {buffer.Length - WireProtocol.FrameHeaderSize} bytes into a {length}-byte {type} payload"));
                    }
                }
                else if (result.IsCompleted)
                {
                    reader.AdvanceTo(buffer.End);
                    if (buffer.IsEmpty)
                    {
                        return null;
                    }

                    throw Fault(new ProtocolException(
                        ErrorCode.TruncatedFrame,
                        $"frame at byte {BytesReceived} is truncated: the stream ended after {buffer.Length} of {WireProtocol.FrameHeaderSize} header bytes"));
                }

                reader.AdvanceTo(buffer.Start, buffer.End);
            }
        }
        finally
        {
            Volatile.Write(ref _receiving, 0);
        }
    }

    private static ProtocolException TruncatedChunk(long frameOffset, int frameLength, long remaining) =>
        new(ErrorCode.TruncatedFrame, $"frame at byte {frameOffset} is truncated: the stream ended {frameLength - remaining} bytes into a {frameLength}-byte {FrameType.ParameterChunk} payload");

    /// <summary>Reads and parses the next message of any type. Returns <see langword="null"/> at a clean end of stream.</summary>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>The message, or <see langword="null"/>.</returns>
    /// <exception cref="ProtocolException">The frame is invalid or the connection failed.</exception>
    public async ValueTask<IMessage?> ReceiveAsync(CancellationToken cancellationToken = default)
    {
        var frame = await ReceiveFrameAsync(cancellationToken).ConfigureAwait(false);
        if (frame is null)
        {
            return null;
        }

        try
        {
            return frame.Value.ToMessage();
        }
        catch (ProtocolException ex)
        {
            throw Fault(ex);
        }
    }

    /// <summary>
    /// Reads the next message, which must be a <typeparamref name="T"/>. Heartbeats in between are consumed (unless
    /// <typeparamref name="T"/> is <see cref="Heartbeat"/>); an <see cref="Error"/> from the peer is raised as a
    /// <see cref="ProtocolException"/> with <see cref="ProtocolException.IsRemote"/> set.
    /// </summary>
    /// <typeparam name="T">The expected message type.</typeparam>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>The message.</returns>
    /// <exception cref="ProtocolException">Another message arrived, the peer sent an error, or the connection closed.</exception>
    public async ValueTask<T> ReceiveAsync<T>(CancellationToken cancellationToken = default)
        where T : class, IMessage<T>
    {
        while (true)
        {
            var message = await ReceiveAsync(cancellationToken).ConfigureAwait(false);
            switch (message)
            {
                case T expected:
                    return expected;
                case Heartbeat:
                    continue;
                case null:
                    throw new ProtocolException(ErrorCode.ConnectionClosed, $"the peer closed the connection while a {typeof(T).Name} was expected");
                default:
                    throw UnexpectedMessage(message, typeof(T).Name);
            }
        }
    }

    /// <summary>Sends one message as one frame and waits until it is queued within the send buffer limit.</summary>
    /// <param name="message">A wire message.</param>
    /// <param name="cancellationToken">Cancels waiting for buffer space (the frame may already be queued).</param>
    /// <returns>A task that completes when the frame is queued.</returns>
    /// <exception cref="ProtocolException">The message exceeds <see cref="FrameConnectionOptions.MaxFrameSize"/> or the connection is closed.</exception>
    public async ValueTask SendAsync(IMessage message, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        var type = WireProtocol.GetFrameType(message);
        var size = message.CalculateSize();
        ThrowIfTooLarge(type, size);

        await _sendLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfClosed();
            var writer = _sendPipe.Writer;
            WriteHeader(writer, type, size);
            if (size > 0)
            {
                message.WriteTo((IBufferWriter<byte>)writer);
            }

            _pipeBytes += WireProtocol.FrameHeaderSize + size;
            Interlocked.Add(ref _bytesSent, WireProtocol.FrameHeaderSize + size);
            await FlushAsync(writer, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>Sends a <see cref="Heartbeat"/> stamped with the current time and the next sequence number.</summary>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>A task that completes when the heartbeat is queued.</returns>
    public ValueTask SendHeartbeatAsync(CancellationToken cancellationToken = default) =>
        SendAsync(
            new Heartbeat
            {
                Sequence = (ulong)Interlocked.Increment(ref _heartbeatSequence),
                SentUnixMs = _timeProvider.GetUtcNow().ToUnixTimeMilliseconds(),
            },
            cancellationToken);

    /// <summary>Sends a heartbeat every <paramref name="interval"/> until cancelled or the connection closes.</summary>
    /// <param name="interval">Time between heartbeats.</param>
    /// <param name="cancellationToken">Stops the loop.</param>
    /// <returns>A task that completes when the loop stops (it does not throw on cancellation or close).</returns>
    public async Task RunHeartbeatsAsync(TimeSpan interval, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(interval, TimeSpan.Zero);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _lifetime.Token);
        using var timer = new PeriodicTimer(interval, _timeProvider);
        try
        {
            while (await timer.WaitForNextTickAsync(linked.Token).ConfigureAwait(false))
            {
                await SendHeartbeatAsync(linked.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (linked.IsCancellationRequested)
        {
        }
        catch (ProtocolException ex) when (ex.Code == ErrorCode.ConnectionClosed)
        {
        }
        catch (ObjectDisposedException)
        {
        }
    }

    /// <summary>
    /// Tells the peer why the connection is being closed (an <see cref="Error"/> frame, best effort within
    /// <see cref="FrameConnectionOptions.CloseTimeout"/>) and closes it. Faults reported by the peer are not echoed back.
    /// </summary>
    /// <param name="fault">The reason.</param>
    /// <returns>A task that completes when the connection is closed.</returns>
    public async ValueTask FailAsync(ProtocolException fault)
    {
        ArgumentNullException.ThrowIfNull(fault);
        if (!fault.IsRemote && fault.Code != ErrorCode.ConnectionClosed && Volatile.Read(ref _disposed) == 0)
        {
            using var timeout = new CancellationTokenSource(_options.CloseTimeout);
            try
            {
                await SendAsync(new Error { Code = fault.Code, Message = fault.Message }, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is ProtocolException or OperationCanceledException or ObjectDisposedException)
            {
                // The peer is gone or not reading: nothing more to tell it.
            }
        }

        await DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Flushes queued frames (within <see cref="FrameConnectionOptions.CloseTimeout"/>) and closes the stream.</summary>
    /// <returns>A task that completes when both loops have stopped.</returns>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (!await _sendLock.WaitAsync(_options.CloseTimeout).ConfigureAwait(false))
        {
            // A sender is stuck on backpressure (the peer stopped reading): break the stream so it fails, then take the lock.
            await _lifetime.CancelAsync().ConfigureAwait(false);
            await _stream.DisposeAsync().ConfigureAwait(false);
            await _sendLock.WaitAsync().ConfigureAwait(false);
        }

        try
        {
            await _sendPipe.Writer.CompleteAsync().ConfigureAwait(false);
        }
        finally
        {
            _sendLock.Release();
        }

        try
        {
            await _sendLoop.WaitAsync(_options.CloseTimeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // The peer is not reading; closing the stream below ends the write loop.
        }

        await _lifetime.CancelAsync().ConfigureAwait(false);
        await _stream.DisposeAsync().ConfigureAwait(false);
        await Task.WhenAll(_sendLoop, _receiveLoop).ConfigureAwait(false);
        if (Interlocked.CompareExchange(ref _receiving, 1, 0) == 0)
        {
            // No receive in progress (and none can start now): return the read-ahead buffers.
            await _receivePipe.Reader.CompleteAsync().ConfigureAwait(false);
        }
    }

    internal ValueTask SendSerializedAsync(FrameType type, byte[] payload, CancellationToken cancellationToken) =>
        SendRawAsync(type, payload.Length, payload, static (writer, bytes) => writer.Write(bytes), cancellationToken);

    internal async ValueTask SendRawAsync<TState>(FrameType type, int payloadLength, TState state, Action<PipeWriter, TState> writePayload, CancellationToken cancellationToken)
    {
        if (payloadLength > _options.MaxFrameSize)
        {
            throw new ProtocolException(
                ErrorCode.FrameTooLarge, $"outgoing {type} of {payloadLength} bytes exceeds the maximum frame size of {_options.MaxFrameSize} bytes");
        }

        await _sendLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfClosed();
            var writer = _sendPipe.Writer;
            WriteHeader(writer, type, payloadLength);
            writePayload(writer, state);
            _pipeBytes += WireProtocol.FrameHeaderSize + payloadLength;
            Interlocked.Add(ref _bytesSent, WireProtocol.FrameHeaderSize + payloadLength);
            await FlushAsync(writer, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _sendLock.Release();
        }
    }

    private void ThrowIfTooLarge(FrameType type, long size)
    {
        if (size > _options.MaxFrameSize)
        {
            throw new ProtocolException(
                ErrorCode.FrameTooLarge, $"outgoing {type} of {size} bytes exceeds the maximum frame size of {_options.MaxFrameSize} bytes");
        }
    }

    /// <summary>
    /// Sends <see cref="IFrameBodySource.Count"/> frames of <paramref name="type"/>, each a head followed by a body that
    /// <paramref name="source"/> prepares. A body of at least <see cref="FrameConnectionOptions.SegmentSize"/> bytes is not
    /// copied into the send buffer: the write loop writes it to the stream straight from the source's memory after the frame
    /// header and head, and the next frame starts once it has. Other senders' frames may come between these frames. One
    /// asynchronous operation covers all the frames, so nothing is allocated per frame.
    /// Cancelling while a body is queued or being written closes the connection (the frame cannot be finished).
    /// </summary>
    /// <param name="type">The frame type.</param>
    /// <param name="source">Prepares each frame's head and body; bodies must not change until this completes.</param>
    /// <param name="cancellationToken">Cancels the send.</param>
    internal async Task SendFramesAsync(FrameType type, IFrameBodySource source, CancellationToken cancellationToken)
    {
        for (var index = 0; index < source.Count; index++)
        {
            var body = source.Prepare(index, out var head);
            var payloadLength = (long)head.Length + body.Length;
            ThrowIfTooLarge(type, payloadLength);

            await _sendLock.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                ThrowIfClosed();
                var writer = _sendPipe.Writer;
                WriteHeader(writer, type, (int)payloadLength);
                writer.Write(head.Span);
                Interlocked.Add(ref _bytesSent, WireProtocol.FrameHeaderSize + payloadLength);
                if (body.Length < _options.SegmentSize)
                {
                    writer.Write(body.Span);
                    _pipeBytes += WireProtocol.FrameHeaderSize + payloadLength;
                    await FlushAsync(writer, cancellationToken).ConfigureAwait(false);
                    continue;
                }

                _pipeBytes += WireProtocol.FrameHeaderSize + head.Length;
                var direct = _directBody;
                direct.Prepare(body, _pipeBytes);
                Volatile.Write(ref _pendingBody, direct);
                using (cancellationToken.UnsafeRegister(static s => ((FrameConnection)s!).Abort(), this))
                {
                    FlushResult flush = default;
                    Exception? flushError = null;
                    try
                    {
                        flush = await writer.FlushAsync(CancellationToken.None).ConfigureAwait(false);
                    }
                    catch (Exception ex)
                    {
                        flushError = ex;
                    }

                    if ((flushError is not null || flush.IsCompleted) && Interlocked.CompareExchange(ref _pendingBody, null, direct) == direct)
                    {
                        // The write loop has stopped and will never take the body.
                        cancellationToken.ThrowIfCancellationRequested();
                        throw flushError as ProtocolException ?? new ProtocolException(
                            ErrorCode.ConnectionClosed, flushError is null ? "connection closed while sending" : $"connection lost while sending: {flushError.Message}", flushError);
                    }

                    try
                    {
                        await direct.Task.ConfigureAwait(false);
                    }
                    catch (Exception ex) when (ex is not ProtocolException || cancellationToken.IsCancellationRequested)
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                        throw new ProtocolException(ErrorCode.ConnectionClosed, $"connection lost while sending: {ex.Message}", ex);
                    }
                }
            }
            finally
            {
                _sendLock.Release();
            }
        }
    }

    /// <summary>Breaks the connection at once: both loops stop, pending sends and receives fail.</summary>
    private void Abort()
    {
        try
        {
            _lifetime.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    internal ProtocolException UnexpectedMessage(IMessage message, string expected)
    {
        if (message is Error error)
        {
            return Fault(new ProtocolException(error.Code, $"peer reported {error.Code}: {error.Message}") { IsRemote = true });
        }

        return Fault(new ProtocolException(
            ErrorCode.UnexpectedMessage, $"expected {expected} but received {WireProtocol.GetFrameType(message)}"));
    }

    private void ThrowIfClosed()
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            throw new ProtocolException(ErrorCode.ConnectionClosed, "the connection is closed");
        }
    }

    private ProtocolException Fault(ProtocolException ex)
    {
        _receiveFault ??= ex;
        return ex;
    }

    private (FrameType Type, int Length) ReadHeader(ReadOnlySequence<byte> buffer)
    {
        Span<byte> header = stackalloc byte[WireProtocol.FrameHeaderSize];
        buffer.Slice(0, WireProtocol.FrameHeaderSize).CopyTo(header);
        var length = BinaryPrimitives.ReadUInt32BigEndian(header);
        var type = (FrameType)BinaryPrimitives.ReadUInt16BigEndian(header[4..]);
        if (length > (uint)_options.MaxFrameSize)
        {
            throw Fault(new ProtocolException(
                ErrorCode.FrameTooLarge,
                $"frame at byte {BytesReceived} announces a {length}-byte payload; the maximum frame size is {_options.MaxFrameSize} bytes"));
        }

        if (!WireProtocol.IsKnown(type))
        {
            throw Fault(new ProtocolException(
                ErrorCode.UnknownFrameType, $"frame at byte {BytesReceived} has unknown type {(ushort)type}"));
        }

        return (type, (int)length);
    }

    private static void WriteHeader(PipeWriter writer, FrameType type, int length)
    {
        var span = writer.GetSpan(WireProtocol.FrameHeaderSize);
        BinaryPrimitives.WriteUInt32BigEndian(span, (uint)length);
        BinaryPrimitives.WriteUInt16BigEndian(span[4..], (ushort)type);
        writer.Advance(WireProtocol.FrameHeaderSize);
    }

    private static async ValueTask FlushAsync(PipeWriter writer, CancellationToken cancellationToken)
    {
        FlushResult result;
        try
        {
            result = await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException and not ProtocolException)
        {
            throw new ProtocolException(ErrorCode.ConnectionClosed, $"connection lost while sending: {ex.Message}", ex);
        }

        if (result.IsCompleted)
        {
            throw new ProtocolException(ErrorCode.ConnectionClosed, "connection closed while sending");
        }
    }

    private async Task ReceiveLoopAsync()
    {
        var writer = _receivePipe.Writer;
        Exception? error = null;
        try
        {
            while (true)
            {
                // Fill the current segment before starting another: a TLS read returns one record (up to 16 KiB), and asking for
                // a whole segment each time would start a fresh segment for every record, renting 4x the bytes received.
                var memory = writer.GetMemory(ReadSizeHint);
                var read = await _stream.ReadAsync(memory, _lifetime.Token).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }

                writer.Advance(read);
                var flush = await writer.FlushAsync(_lifetime.Token).ConfigureAwait(false);
                if (flush.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (OperationCanceledException) when (_lifetime.IsCancellationRequested)
        {
        }
        catch (ObjectDisposedException) when (_lifetime.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            error = ex;
        }

        await writer.CompleteAsync(error).ConfigureAwait(false);
    }

    private async Task SendLoopAsync()
    {
        var reader = _sendPipe.Reader;
        Exception? error = null;
        long written = 0;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                foreach (var segment in buffer)
                {
                    await _stream.WriteAsync(segment, _lifetime.Token).ConfigureAwait(false);
                }

                written += buffer.Length;
                reader.AdvanceTo(buffer.End);

                // A frame whose body is written from the sender's own buffer: its header and head were the last bytes queued.
                var direct = Volatile.Read(ref _pendingBody);
                if (direct is not null && direct.Position == written && Interlocked.CompareExchange(ref _pendingBody, null, direct) == direct)
                {
                    try
                    {
                        await _stream.WriteAsync(direct.Body, _lifetime.Token).ConfigureAwait(false);
                        await _stream.FlushAsync(_lifetime.Token).ConfigureAwait(false);
                    }
                    catch (Exception ex)
                    {
                        direct.Complete(ex);
                        throw;
                    }

                    direct.Complete(null);
                }
                else if (!buffer.IsEmpty)
                {
                    await _stream.FlushAsync(_lifetime.Token).ConfigureAwait(false);
                }

                if (result.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (Exception ex)
        {
            // Senders see a ProtocolException from then on (a bare OperationCanceledException would look like their own cancellation).
            error = ex is OperationCanceledException && _lifetime.IsCancellationRequested
                ? new ProtocolException(ErrorCode.ConnectionClosed, "the connection was closed while sending", ex)
                : ex;
            await _lifetime.CancelAsync().ConfigureAwait(false);
        }

        await reader.CompleteAsync(error).ConfigureAwait(false);
        if (Interlocked.Exchange(ref _pendingBody, null) is { } pending)
        {
            pending.Complete(error ?? new ProtocolException(ErrorCode.ConnectionClosed, "the connection closed before the frame was sent"));
        }
    }

    /// <summary>
    /// A frame body the write loop writes straight from the sender's buffer (<see cref="SendFramesAsync"/>), and the
    /// reusable completion the sender awaits. Completion runs the sender's continuation on the thread pool (never inline in
    /// the write loop) without allocating.
    /// </summary>
    private sealed class DirectBody : IValueTaskSource, IThreadPoolWorkItem
    {
        private ManualResetValueTaskSourceCore<bool> _core;
        private Exception? _error;

        public ReadOnlyMemory<byte> Body { get; private set; }

        /// <summary>Gets how many bytes precede the body in the send pipe since the connection opened.</summary>
        public long Position { get; private set; }

        public ValueTask Task => new(this, _core.Version);

        public void Prepare(ReadOnlyMemory<byte> body, long position)
        {
            _core.Reset();
            _error = null;
            Body = body;
            Position = position;
        }

        public void Complete(Exception? error)
        {
            _error = error;
            Body = default;
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        }

        void IThreadPoolWorkItem.Execute()
        {
            if (_error is { } error)
            {
                _core.SetException(error);
            }
            else
            {
                _core.SetResult(true);
            }
        }

        public void GetResult(short token) => _core.GetResult(token);

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }
}
