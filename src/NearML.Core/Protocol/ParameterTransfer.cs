using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using NearML.Core.Contracts;
using NearML.Core.Protocol.Internal;

namespace NearML.Core.Protocol;

/// <summary>
/// Streams a <see cref="ParameterSet"/> over a <see cref="FrameConnection"/> as <see cref="ParameterChunk"/> frames followed by
/// one <see cref="ParameterDone"/>. The sender copies straight from the set's contiguous buffer into the send pipe; the receiver
/// verifies each chunk's SHA-256 and copies it straight into the destination set; the root hash is checked at the end.
/// </summary>
public static class ParameterTransfer
{
    /// <summary>
    /// Sends <paramref name="parameters"/>. Waits for send-buffer space after every chunk, so memory stays bounded by
    /// <see cref="FrameConnectionOptions.SendBufferLimit"/> however large the set is.
    /// </summary>
    /// <param name="connection">The connection.</param>
    /// <param name="parameters">The parameters; must not change until this completes.</param>
    /// <param name="parameterVersion">The version announced in <see cref="ParameterDone"/>.</param>
    /// <param name="manifest">A manifest computed for these parameters, to avoid hashing again; <see langword="null"/> to hash while sending with <see cref="ParameterManifest.DefaultChunkSize"/>.</param>
    /// <param name="cancellationToken">Cancels the transfer (the peer then sees an incomplete stream).</param>
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

        var count = ParameterManifest.ChunkCountFor(totalBytes, chunkSize);
        var hashes = manifest is null ? new byte[count * 32] : null;
        var hash = new byte[32];
        var segmentSize = connection.Options.SegmentSize;
        for (var i = 0; i < count; i++)
        {
            var start = (long)i * chunkSize;
            var length = (int)Math.Min(chunkSize, totalBytes - start);
            if (manifest is null)
            {
                SHA256.HashData(MemoryMarshal.AsBytes(parameters.Buffer.AsSpan()).Slice((int)start, length), hash);
                hash.CopyTo(hashes.AsSpan(i * 32));
            }
            else
            {
                manifest.GetChunkHash(i).CopyTo(hash);
            }

            var state = new ChunkState(parameters.Buffer, start, length, hash, segmentSize);
            await connection.SendRawAsync(
                FrameType.ParameterChunk,
                ParameterChunkCodec.GetPayloadLength((ulong)start, length),
                state,
                static (writer, s) => ParameterChunkCodec.Write(
                    writer, (ulong)s.Start, s.Hash, MemoryMarshal.AsBytes(s.Buffer.AsSpan()).Slice((int)s.Start, s.Length), s.SegmentSize),
                cancellationToken).ConfigureAwait(false);
        }

        manifest ??= new ParameterManifest(totalBytes, chunkSize, hashes!);
        await connection.SendAsync(
            new ParameterDone
            {
                ParameterVersion = parameterVersion,
                TotalBytes = (ulong)totalBytes,
                ChunkSize = (uint)chunkSize,
                ChunkCount = (uint)count,
                TotalSha256 = Google.Protobuf.ByteString.CopyFrom(manifest.Root),
            },
            cancellationToken).ConfigureAwait(false);
        return manifest;
    }

    /// <summary>
    /// Receives a parameter stream into <paramref name="destination"/>, checking every chunk hash, that chunks arrive in order
    /// and cover the set exactly, the announced version, and the root (against <paramref name="expectedRoot"/> when given).
    /// Heartbeats in between are ignored. On failure the destination holds only verified chunks and must not be used.
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
        using var hasher = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var expectedHash = new byte[32];
        var actualHash = new byte[32];
        var hashes = new ArrayBufferWriter<byte>();
        long next = 0;
        var chunkSize = -1;
        while (true)
        {
            var received = await connection.ReceiveFrameAsync(cancellationToken).ConfigureAwait(false)
                ?? throw new ProtocolException(ErrorCode.ConnectionClosed, $"the peer closed the connection after {next} of {totalBytes} parameter bytes");
            var frame = received;
            switch (frame.Type)
            {
                case FrameType.Heartbeat:
                    continue;
                case FrameType.ParameterChunk:
                    {
                        ParameterChunkCodec.Read(frame.Payload, frame.StreamOffset, out var offset, out var data, expectedHash);
                        var length = data.Length;
                        if (offset != (ulong)next)
                        {
                            throw new ProtocolException(ErrorCode.MalformedFrame, $"parameter chunk at offset {offset} arrived; expected offset {next}");
                        }

                        if (length == 0 || next + length > totalBytes)
                        {
                            throw new ProtocolException(
                                ErrorCode.MalformedFrame, $"parameter chunk at offset {offset} of {length} bytes does not fit the destination's {totalBytes} bytes");
                        }

                        if (chunkSize < 0)
                        {
                            chunkSize = (int)length;
                        }
                        else if (length > chunkSize || (length < chunkSize && next + length != totalBytes))
                        {
                            throw new ProtocolException(
                                ErrorCode.MalformedFrame, $"parameter chunk at offset {offset} has {length} bytes; chunks must be {chunkSize} bytes except the last");
                        }

                        ParameterChunkCodec.Hash(data, hasher, actualHash);
                        if (!CryptographicOperations.FixedTimeEquals(actualHash, expectedHash))
                        {
                            throw new ProtocolException(
                                ErrorCode.HashMismatch,
                                $"parameter chunk at offset {offset} ({length} bytes) has SHA-256 {Convert.ToHexString(actualHash)}, but the chunk claims {Convert.ToHexString(expectedHash)}");
                        }

                        data.CopyTo(MemoryMarshal.AsBytes(destination.Buffer.AsSpan()).Slice((int)next, (int)length));
                        hashes.Write(actualHash);
                        next += length;
                        continue;
                    }

                case FrameType.ParameterDone:
                    {
                        var done = (ParameterDone)frame.ToMessage();
                        return Finish(done, destination, totalBytes, next, chunkSize, hashes, expectedVersion, expectedRoot.Span);
                    }

                default:
                    throw connection.UnexpectedMessage(frame.ToMessage(), "ParameterChunk or ParameterDone");
            }
        }
    }

    private static ParameterManifest Finish(
        ParameterDone done, ParameterSet destination, long totalBytes, long received, int chunkSize, ArrayBufferWriter<byte> hashes, ulong expectedVersion, ReadOnlySpan<byte> expectedRoot)
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

        if (totalBytes > 0 && done.ChunkSize != (uint)chunkSize && hashes.WrittenCount > 32)
        {
            throw new ProtocolException(ErrorCode.MalformedFrame, $"ParameterDone announces chunk size {done.ChunkSize} but chunks were {chunkSize} bytes");
        }

        var effectiveChunk = (int)done.ChunkSize;
        if (done.ChunkCount != (uint)(hashes.WrittenCount / 32))
        {
            throw new ProtocolException(ErrorCode.MalformedFrame, $"ParameterDone announces {done.ChunkCount} chunks but {hashes.WrittenCount / 32} arrived");
        }

        var manifest = new ParameterManifest(totalBytes, effectiveChunk, hashes.WrittenSpan.ToArray());
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

    private readonly record struct ChunkState(float[] Buffer, long Start, int Length, byte[] Hash, int SegmentSize);
}
