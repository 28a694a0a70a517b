using NearML.Core;

namespace NearML.Sharding.Internal;

/// <summary>
/// Sharding's view of Core's one IDX reader (<see cref="IdxReader"/>): data shards hold unsigned-byte arrays only, and a
/// labelled shard stores its records' array followed by its labels' array.
/// </summary>
internal static class IdxCodec
{
    public static (int[] Dims, ReadOnlyMemory<byte> Payload, int Consumed) Parse(ReadOnlyMemory<byte> bytes, string source, long baseOffset = 0, bool allowTrailing = false)
    {
        IdxArray array = IdxReader.ParsePrefix(bytes, source, baseOffset, out int consumed);
        if (array.DataType != IdxDataType.UInt8)
        {
            throw new InvalidDataFormatException(source, baseOffset + 2, $"IDX data type 0x{(byte)array.DataType:X2} is not unsigned byte (0x08).");
        }

        if (!allowTrailing && consumed != bytes.Length)
        {
            throw new InvalidDataFormatException(source, baseOffset + consumed, $"{bytes.Length - consumed} unexpected trailing bytes after the IDX payload.");
        }

        return ([.. array.Dimensions], array.Payload, consumed);
    }

    public static byte[] ReadFile(string path) => IdxReader.ReadAllBytes(path);

    public static void Write(Stream s, ReadOnlySpan<int> dims, ReadOnlySpan<byte> data) => IdxReader.WriteUInt8(s, dims, data);
}
