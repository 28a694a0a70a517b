using System.Buffers;
using System.IO.Pipelines;
using System.Security.Cryptography;
using NearML.Core.Contracts;

namespace NearML.Core.Protocol.Internal;

/// <summary>
/// Encodes and decodes <see cref="ParameterChunk"/> payloads directly between a parameter buffer and the pipe, without the
/// intermediate <c>ByteString</c> copy the generated code would make. The encoding is ordinary protobuf (fields 1, 3, 2).
/// </summary>
internal static class ParameterChunkCodec
{
    private const byte OffsetTag = (1 << 3) | 0; // field 1, varint
    private const byte DataTag = (2 << 3) | 2;   // field 2, length-delimited
    private const byte HashTag = (3 << 3) | 2;   // field 3, length-delimited
    public const int HashSize = 32;

    public static int GetPayloadLength(ulong offset, int dataLength) =>
        1 + VarintLength(offset) + 2 + HashSize + 1 + VarintLength((ulong)dataLength) + dataLength;

    /// <summary>Writes the payload; <paramref name="data"/> is copied straight into pipe segments.</summary>
    public static void Write(PipeWriter writer, ulong offset, ReadOnlySpan<byte> hash, ReadOnlySpan<byte> data, int segmentSize)
    {
        var head = writer.GetSpan(32 + HashSize);
        var n = 0;
        head[n++] = OffsetTag;
        n += WriteVarint(head[n..], offset);
        head[n++] = HashTag;
        head[n++] = HashSize;
        hash.CopyTo(head[n..]);
        n += HashSize;
        head[n++] = DataTag;
        n += WriteVarint(head[n..], (ulong)data.Length);
        writer.Advance(n);

        while (!data.IsEmpty)
        {
            var span = writer.GetSpan(Math.Min(data.Length, segmentSize));
            var count = Math.Min(span.Length, data.Length);
            data[..count].CopyTo(span);
            writer.Advance(count);
            data = data[count..];
        }
    }

    /// <summary>
    /// Parses a chunk payload in place. Unknown fields are skipped; a missing or repeated field, a hash of the wrong size or a
    /// length running past the payload is malformed.
    /// </summary>
    public static void Read(in ReadOnlySequence<byte> payload, long frameOffset, out ulong offset, out ReadOnlySequence<byte> data, Span<byte> hash)
    {
        var reader = new SequenceReader<byte>(payload);
        offset = 0;
        data = default;
        bool haveData = false, haveHash = false;
        while (!reader.End)
        {
            var tag = ReadVarint(ref reader, frameOffset);
            var field = tag >> 3;
            var wire = (int)(tag & 7);
            switch (field, wire)
            {
                case (1, 0):
                    offset = ReadVarint(ref reader, frameOffset);
                    break;
                case (2, 2):
                    {
                        var length = ReadLength(ref reader, frameOffset, "data");
                        data = reader.Sequence.Slice(reader.Position, length);
                        reader.Advance(length);
                        haveData = true;
                        break;
                    }

                case (3, 2):
                    {
                        var length = ReadLength(ref reader, frameOffset, "sha256");
                        if (length != HashSize)
                        {
                            throw Malformed(frameOffset, $"sha256 is {length} bytes, expected {HashSize}");
                        }

                        reader.TryCopyTo(hash);
                        reader.Advance(HashSize);
                        haveHash = true;
                        break;
                    }

                default:
                    Skip(ref reader, wire, frameOffset);
                    break;
            }
        }

        if (!haveData || !haveHash)
        {
            throw Malformed(frameOffset, haveData ? "sha256 is missing" : "data is missing");
        }
    }

    public static void Hash(in ReadOnlySequence<byte> data, IncrementalHash hasher, Span<byte> hash)
    {
        if (data.IsSingleSegment)
        {
            SHA256.HashData(data.FirstSpan, hash);
            return;
        }

        foreach (var segment in data)
        {
            hasher.AppendData(segment.Span);
        }

        hasher.GetHashAndReset(hash);
    }

    private static int ReadLength(ref SequenceReader<byte> reader, long frameOffset, string field)
    {
        var length = ReadVarint(ref reader, frameOffset);
        if (length > (ulong)reader.Remaining)
        {
            throw Malformed(frameOffset, $"{field} claims {length} bytes but only {reader.Remaining} remain in the frame");
        }

        return (int)length;
    }

    private static void Skip(ref SequenceReader<byte> reader, int wire, long frameOffset)
    {
        switch (wire)
        {
            case 0:
                ReadVarint(ref reader, frameOffset);
                break;
            case 1:
            case 5:
                var size = wire == 1 ? 8 : 4;
                if (reader.Remaining < size)
                {
                    throw Malformed(frameOffset, "fixed-size field runs past the end of the frame");
                }

                reader.Advance(size);
                break;
            case 2:
                reader.Advance(ReadLength(ref reader, frameOffset, "unknown field"));
                break;
            default:
                throw Malformed(frameOffset, $"unsupported protobuf wire type {wire}");
        }
    }

    private static ulong ReadVarint(ref SequenceReader<byte> reader, long frameOffset)
    {
        ulong value = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            if (!reader.TryRead(out var b))
            {
                throw Malformed(frameOffset, "varint runs past the end of the frame");
            }

            value |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                return value;
            }
        }

        throw Malformed(frameOffset, "varint is longer than 10 bytes");
    }

    private static int WriteVarint(Span<byte> span, ulong value)
    {
        var n = 0;
        while (value >= 0x80)
        {
            span[n++] = (byte)(value | 0x80);
            value >>= 7;
        }

        span[n++] = (byte)value;
        return n;
    }

    private static int VarintLength(ulong value)
    {
        var n = 1;
        while (value >= 0x80)
        {
            value >>= 7;
            n++;
        }

        return n;
    }

    private static ProtocolException Malformed(long frameOffset, string what) =>
        new(ErrorCode.MalformedFrame, $"frame at byte {frameOffset}: malformed ParameterChunk: {what}");
}
