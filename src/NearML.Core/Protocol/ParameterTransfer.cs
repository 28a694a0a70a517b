using System.Runtime.InteropServices;
using System.Security.Cryptography;
using NearML.Core.Contracts;
using NearML.Core.Protocol.Internal;

namespace NearML.Core.Protocol;

/// <summary>
/// Streams a <see cref="ParameterSet"/> over a <see cref="FrameConnection"/> as <see cref="ParameterChunk"/> frames followed by
/// one <see cref="ParameterDone"/>. The sender's connection writes each chunk's bytes to the stream straight from the set's
/// contiguous buffer (no copy into the send pipe); the receiver copies each piece of a chunk into the destination set as it
/// arrives, hashes the chunk there when it ends (BLAKE3, one call over the chunk while it is still in cache) and compares,
/// and checks the root at the end.
/// Neither side allocates per chunk.
/// </summary>
public static class ParameterTransfer
{
    /// <summary>
    /// Sends <paramref name="parameters"/>. Each chunk is written from the set's buffer and this waits until it has been
    /// written to the stream, so nothing is buffered however large the set is.
    /// </summary>
    /// <param name="connection">The connection.</param>
    /// <param name="parameters">The parameters; must not change until this completes.</param>
    /// <param name="parameterVersion">The version announced in <see cref="ParameterDone"/>.</param>
    /// <param name="manifest">A manifest computed for these parameters, to avoid hashing again; <see langword="null"/> to hash while sending with <see cref="ParameterManifest.DefaultChunkSize"/>.</param>
    /// <param name="cancellationToken">Cancels the transfer; cancelling while a chunk is being written closes the connection (the peer then sees an incomplete stream).</param>
    /// <returns>The manifest of what was sent.</returns>
    /// <exception cref="ArgumentException">The manifest does not match the parameter size, or a chunk would exceed the frame limit.</exception>
    public static async Task<ParameterManifest> SendAsync(
        FrameConnection connection, ParameterSet parameters, ulong parameterVersion, ParameterManifest? manifest = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(parameters);
        var totalBytes = (long)parameters.Length * sizeof(float);
        var chunkSize = manifest?.ChunkSize ?? ParameterManifest.DefaultChunkSize;
        if (manifest is not null && manifest.TotalBytes != totalBytes)
        {
            throw new ArgumentException($"The manifest covers {manifest.TotalBytes} bytes but the parameters have {totalBytes}.", nameof(manifest));
        }

        if (ParameterChunkCodec.GetPayloadLength((ulong)totalBytes, chunkSize) > connection.Options.MaxFrameSize)
        {
            throw new ArgumentException(
                $"A {chunkSize}-byte chunk does not fit in the connection's {connection.Options.MaxFrameSize}-byte frame limit.", nameof(manifest));
        }

        var chunks = new ChunkSource(parameters.Buffer, totalBytes, chunkSize, manifest);
        await connection.SendFramesAsync(FrameType.ParameterChunk, chunks, cancellationToken).ConfigureAwait(false);
        manifest ??= new ParameterManifest(totalBytes, chunkSize, chunks.ComputedHashes!);
        await connection.SendAsync(
            new ParameterDone
            {
                ParameterVersion = parameterVersion,
                TotalBytes = (ulong)totalBytes,
                ChunkSize = (uint)chunkSize,
                ChunkCount = (uint)chunks.Count,
                TotalSha256 = Google.Protobuf.ByteString.CopyFrom(manifest.Root),
            },
            cancellationToken).ConfigureAwait(false);
        return manifest;
    }

    /// <summary>
    /// Receives a parameter stream into <paramref name="destination"/>, checking every chunk hash, that chunks arrive in order
    /// and cover the set exactly, the announced version, and the root (against <paramref name="expectedRoot"/> when given).
    /// Heartbeats in between are ignored. Chunk data lands in the destination while it arrives; a chunk that fails its hash,
    /// or does not finish (truncated, peer gone, cancelled), is zeroed before this throws, so on failure the destination holds
    /// only verified chunks (and zeros) — it must still not be used. A failure or cancellation in the middle of a chunk also
    /// faults the connection.
    /// </summary>
    /// <param name="connection">The connection.</param>
    /// <param name="destination">The set to fill; its layout decides the expected size.</param>
    /// <param name="expectedVersion">The parameter version requested.</param>
    /// <param name="expectedRoot">The root announced in the <see cref="JobAssignment"/>; empty to skip that check.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>The manifest of what was received.</returns>
    /// <exception cref="ProtocolException">A chunk is malformed, out of order, out of range, or fails its hash; or the root differs.</exception>
    public static async Task<ParameterManifest> ReceiveAsync(
        FrameConnection connection, ParameterSet destination, ulong expectedVersion, ReadOnlyMemory<byte> expectedRoot = default, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(destination);
        var totalBytes = (long)destination.Length * sizeof(float);
        var sink = new ChunkSink(destination.Buffer, totalBytes);
        try
        {
            while (true)
            {
                var frame = await connection.ReceiveFrameAsync(sink, cancellationToken).ConfigureAwait(false)
                    ?? throw new ProtocolException(ErrorCode.ConnectionClosed, $"the peer closed the connection after {sink.Next} of {totalBytes} parameter bytes");
                switch (frame.Type)
                {
                    case FrameType.Heartbeat:
                        continue;
                    case FrameType.ParameterDone:
                        {
                            var done = (ParameterDone)frame.ToMessage();
                            return Finish(done, destination, totalBytes, sink.Next, sink.ChunkSize, sink.Hashes, expectedVersion, expectedRoot.Span);
                        }

                    default:
                        throw connection.UnexpectedMessage(frame.ToMessage(), "ParameterChunk or ParameterDone");
                }
            }
        }
        catch
        {
            sink.DiscardUnverified();
            throw;
        }
    }

    private static ParameterManifest Finish(
        ParameterDone done, ParameterSet destination, long totalBytes, long received, int chunkSize, byte[] hashes, ulong expectedVersion, ReadOnlySpan<byte> expectedRoot)
    {
        if (done.ParameterVersion != expectedVersion)
        {
            throw new ProtocolException(ErrorCode.UnexpectedMessage, $"received parameter version {done.ParameterVersion}; requested {expectedVersion}");
        }

        if (done.TotalBytes != (ulong)totalBytes || received != totalBytes)
        {
            throw new ProtocolException(
                ErrorCode.MalformedFrame,
                $"parameter stream ended after {received} bytes announcing {done.TotalBytes}; the destination layout ({destination.Layout.Count} tensors) needs {totalBytes}");
        }

        if (totalBytes > 0 && done.ChunkSize != (uint)chunkSize && hashes.Length > 32)
        {
            throw new ProtocolException(ErrorCode.MalformedFrame, $"ParameterDone announces chunk size {done.ChunkSize} but chunks were {chunkSize} bytes");
        }

        var effectiveChunk = (int)done.ChunkSize;
        if (done.ChunkCount != (uint)(hashes.Length / 32))
        {
            throw new ProtocolException(ErrorCode.MalformedFrame, $"ParameterDone announces {done.ChunkCount} chunks but {hashes.Length / 32} arrived");
        }

        var manifest = new ParameterManifest(totalBytes, effectiveChunk, hashes);
        if (!CryptographicOperations.FixedTimeEquals(manifest.Root, done.TotalSha256.Span))
        {
            throw new ProtocolException(
                ErrorCode.HashMismatch,
                $"parameter root {Convert.ToHexString(manifest.Root)} computed from the chunks differs from the announced {Convert.ToHexString(done.TotalSha256.Span)}");
        }

        if (!expectedRoot.IsEmpty && !CryptographicOperations.FixedTimeEquals(manifest.Root, expectedRoot))
        {
            throw new ProtocolException(
                ErrorCode.HashMismatch,
                $"parameter root {Convert.ToHexString(manifest.Root)} differs from the assignment's {Convert.ToHexString(expectedRoot)}");
        }

        return manifest;
    }

    /// <summary>
    /// The chunks of a parameter buffer as frames: each head carries the offset and hash (from the manifest, or computed
    /// here just before the chunk is sent), each body is a slice of the buffer itself.
    /// </summary>
    private sealed class ChunkSource : IFrameBodySource
    {
        private readonly ReadOnlyMemory<byte> _bytes;
        private readonly long _totalBytes;
        private readonly int _chunkSize;
        private readonly ParameterManifest? _manifest;
        private readonly byte[] _head = new byte[ParameterChunkCodec.MaxHeadLength];
        private readonly byte[] _hash = new byte[32];

        public ChunkSource(float[] buffer, long totalBytes, int chunkSize, ParameterManifest? manifest)
        {
            _bytes = new FloatBytesMemory(buffer).Memory;
            _totalBytes = totalBytes;
            _chunkSize = chunkSize;
            _manifest = manifest;
            Count = ParameterManifest.ChunkCountFor(totalBytes, chunkSize);
            ComputedHashes = manifest is null ? new byte[Count * 32] : null;
        }

        public int Count { get; }

        /// <summary>Gets the chunk hashes computed while sending, when no manifest was given.</summary>
        public byte[]? ComputedHashes { get; }

        public ReadOnlyMemory<byte> Prepare(int index, out ReadOnlyMemory<byte> head)
        {
            var start = (int)((long)index * _chunkSize);
            var data = _bytes.Slice(start, (int)Math.Min(_chunkSize, _totalBytes - start));
            if (_manifest is null)
            {
                ParameterManifest.HashChunk(data.Span, _hash);
                _hash.CopyTo(ComputedHashes.AsSpan(index * 32));
            }
            else
            {
                _manifest.GetChunkHash(index).CopyTo(_hash);
            }

            head = _head.AsMemory(0, ParameterChunkCodec.WriteHead(_head, (ulong)start, _hash, data.Length));
            return data;
        }
    }

    /// <summary>
    /// Checks each chunk's place and size as it starts, copies its data into the destination as it arrives, and when the chunk
    /// ends hashes it where it landed (one BLAKE3 call over the whole chunk, which lets BLAKE3 use all its SIMD lanes; the
    /// chunk is still in cache) and compares. Allocates nothing per chunk.
    /// </summary>
    private sealed class ChunkSink(float[] destination, long totalBytes) : IParameterChunkSink
    {
        private readonly byte[] _claimed = new byte[32];
        private readonly byte[] _actual = new byte[32];
        private byte[] _hashes = [];
        private int _hashCount;
        private long _start = -1;
        private int _length;
        private int _written;

        /// <summary>Gets the number of verified bytes (chunks received in full, in order).</summary>
        public long Next { get; private set; }

        /// <summary>Gets the first chunk's size, or -1 before it.</summary>
        public int ChunkSize { get; private set; } = -1;

        /// <summary>Gets the hashes of the verified chunks (the sink's own array when every expected chunk arrived).</summary>
        public byte[] Hashes => _hashCount * 32 == _hashes.Length ? _hashes : _hashes.AsSpan(0, _hashCount * 32).ToArray();

        public void Begin(ulong offset, int length, ReadOnlySpan<byte> claimedHash)
        {
            if (offset != (ulong)Next)
            {
                throw new ProtocolException(ErrorCode.MalformedFrame, $"parameter chunk at offset {offset} arrived; expected offset {Next}");
            }

            if (length == 0 || Next + length > totalBytes)
            {
                throw new ProtocolException(
                    ErrorCode.MalformedFrame, $"parameter chunk at offset {offset} of {length} bytes does not fit the destination's {totalBytes} bytes");
            }

            if (ChunkSize < 0)
            {
                ChunkSize = length;
                _hashes = new byte[ParameterManifest.ChunkCountFor(totalBytes, length) * 32];
            }
            else if (length > ChunkSize || (length < ChunkSize && Next + length != totalBytes))
            {
                throw new ProtocolException(
                    ErrorCode.MalformedFrame, $"parameter chunk at offset {offset} has {length} bytes; chunks must be {ChunkSize} bytes except the last");
            }

            claimedHash.CopyTo(_claimed);
            _start = Next;
            _length = length;
            _written = 0;
        }

        public void Append(ReadOnlySpan<byte> data)
        {
            if (data.Length > _length - _written)
            {
                throw new ProtocolException(ErrorCode.MalformedFrame, $"parameter chunk at offset {_start} has more than its {_length} data bytes");
            }

            var target = MemoryMarshal.AsBytes(destination.AsSpan()).Slice((int)(_start + _written), data.Length);
            data.CopyTo(target);
            _written += data.Length;
        }

        public void End()
        {
            if (_written != _length)
            {
                throw new ProtocolException(ErrorCode.MalformedFrame, $"parameter chunk at offset {_start} ended after {_written} of its {_length} data bytes");
            }

            ParameterManifest.HashChunk(MemoryMarshal.AsBytes(destination.AsSpan()).Slice((int)_start, _length), _actual);
            if (!CryptographicOperations.FixedTimeEquals(_actual, _claimed))
            {
                throw new ProtocolException(
                    ErrorCode.HashMismatch,
                    $"parameter chunk at offset {_start} ({_length} bytes) has BLAKE3 {Convert.ToHexString(_actual)}, but the chunk claims {Convert.ToHexString(_claimed)}");
            }

            _actual.CopyTo(_hashes.AsSpan(_hashCount * 32));
            _hashCount++;
            Next += _length;
            _start = -1;
        }

        /// <summary>Zeroes the bytes of a chunk that failed or did not finish, so only verified chunks stay in the destination.</summary>
        public void DiscardUnverified()
        {
            if (_start >= 0)
            {
                MemoryMarshal.AsBytes(destination.AsSpan()).Slice((int)_start, _length).Clear();
                _start = -1;
            }
        }
    }
}
