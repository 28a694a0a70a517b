using System.Buffers;
using System.IO.Pipelines;
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

    /// <summary>The longest head <see cref="WriteHead"/> writes: offset tag and varint, hash tag, length and hash, data tag and length.</summary>
    public const int MaxHeadLength = 1 + 10 + 2 + HashSize + 1 + 5;

    /// <summary>
    /// Writes the fields before the data bytes (offset, hash, the data field's tag and length) into <paramref name="head"/>;
    /// the data bytes follow them on the wire. Returns the number of bytes written.
    /// </summary>
    public static int WriteHead(Span<byte> head, ulong offset, ReadOnlySpan<byte> hash, int dataLength)
    {
        var n = 0;
        head[n++] = OffsetTag;
        n += WriteVarint(head[n..], offset);
        head[n++] = HashTag;
        head[n++] = HashSize;
        hash.CopyTo(head[n..]);
        n += HashSize;
        head[n++] = DataTag;
        n += WriteVarint(head[n..], (ulong)dataLength);
        return n;
    }

    /// <summary>
    /// Parses the fields before the data bytes when they come in the order <see cref="WriteHead"/> writes them
    /// (an optional offset, the hash, then the data field), so that the data can be consumed as it arrives.
    /// <paramref name="available"/> is the start of the payload received so far; <paramref name="payloadLength"/> its full length.
    /// </summary>
    /// <returns><see cref="ChunkHeadStatus.Complete"/> with the head's length and the data length;
    /// <see cref="ChunkHeadStatus.NeedMore"/> when the head is cut short; <see cref="ChunkHeadStatus.NotCanonical"/> for any other
    /// layout (the caller then parses the whole frame with <see cref="Read"/>, which also reports malformed payloads).</returns>
    public static ChunkHeadStatus TryReadHead(
        in ReadOnlySequence<byte> available, long payloadLength, out ulong offset, Span<byte> hash, out int headLength, out int dataLength)
    {
        var reader = new SequenceReader<byte>(available);
        offset = 0;
        headLength = 0;
        dataLength = 0;
        if (!reader.TryPeek(out var tag))
        {
            return ChunkHeadStatus.NeedMore;
        }

        if (tag == OffsetTag)
        {
            reader.Advance(1);
            var status = TryReadVarint(ref reader, out offset);
            if (status != ChunkHeadStatus.Complete)
            {
                return status;
            }
        }

        if (!reader.TryRead(out tag) || !reader.TryRead(out var hashLength))
        {
            return reader.End ? ChunkHeadStatus.NeedMore : ChunkHeadStatus.NotCanonical;
        }

        if (tag != HashTag || hashLength != HashSize)
        {
            return ChunkHeadStatus.NotCanonical;
        }

        if (reader.Remaining < HashSize + 2)
        {
            return ChunkHeadStatus.NeedMore;
        }

        reader.TryCopyTo(hash[..HashSize]);
        reader.Advance(HashSize);
        reader.TryRead(out tag);
        if (tag != DataTag)
        {
            return ChunkHeadStatus.NotCanonical;
        }

        var lengthStatus = TryReadVarint(ref reader, out var length);
        if (lengthStatus != ChunkHeadStatus.Complete)
        {
            return lengthStatus;
        }

        if (length > (ulong)(payloadLength - reader.Consumed))
        {
            return ChunkHeadStatus.NotCanonical;
        }

        headLength = (int)reader.Consumed;
        dataLength = (int)length;
        return ChunkHeadStatus.Complete;
    }

    /// <summary>
    /// Checks the bytes after the data field: only unknown fields may follow (a repeated offset, data or hash is malformed,
    /// as in <see cref="Read"/>).
    /// </summary>
    public static void ReadTrailer(in ReadOnlySequence<byte> trailer, long frameOffset)
    {
        var reader = new SequenceReader<byte>(trailer);
        while (!reader.End)
        {
            var tag = ReadVarint(ref reader, frameOffset);
            var field = tag >> 3;
            if (field is >= 1 and <= 3)
            {
                throw Malformed(frameOffset, $"field {field} is repeated");
            }

            Skip(ref reader, (int)(tag & 7), frameOffset);
        }
    }

    /// <summary>Writes the payload; <paramref name="data"/> is copied straight into pipe segments.</summary>
    public static void Write(PipeWriter writer, ulong offset, ReadOnlySpan<byte> hash, ReadOnlySpan<byte> data, int segmentSize)
    {
        writer.Advance(WriteHead(writer.GetSpan(MaxHeadLength), offset, hash, data.Length));
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
        bool haveOffset = false, haveData = false, haveHash = false;
        while (!reader.End)
        {
            var tag = ReadVarint(ref reader, frameOffset);
            var field = tag >> 3;
            var wire = (int)(tag & 7);
            if ((field == 1 && haveOffset) || (field == 2 && haveData) || (field == 3 && haveHash))
            {
                throw Malformed(frameOffset, $"field {field} is repeated");
            }

            switch (field, wire)
            {
                case (1, 0):
                    offset = ReadVarint(ref reader, frameOffset);
                    haveOffset = true;
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
                        var length = ReadLength(ref reader, frameOffset, "blake3");
                        if (length != HashSize)
                        {
                            throw Malformed(frameOffset, $"blake3 is {length} bytes, expected {HashSize}");
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
            throw Malformed(frameOffset, haveData ? "blake3 is missing" : "data is missing");
        }
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

    private static ChunkHeadStatus TryReadVarint(ref SequenceReader<byte> reader, out ulong value)
    {
        value = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            if (!reader.TryRead(out var b))
            {
                return ChunkHeadStatus.NeedMore;
            }

            value |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                return ChunkHeadStatus.Complete;
            }
        }

        return ChunkHeadStatus.NotCanonical;
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

/// <summary>The outcome of <see cref="ParameterChunkCodec.TryReadHead"/>.</summary>
internal enum ChunkHeadStatus
{
    /// <summary>The head was parsed.</summary>
    Complete,

    /// <summary>More bytes are needed.</summary>
    NeedMore,

    /// <summary>The payload is laid out differently (or is malformed): parse the whole frame instead.</summary>
    NotCanonical,
}
