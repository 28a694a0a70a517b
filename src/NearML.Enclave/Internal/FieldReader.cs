using System.Buffers.Binary;

namespace NearML.Enclave.Internal;

/// <summary>Bounds-checked little-endian reads that name the field and offset when the input is too short.</summary>
internal static class FieldReader
{
    public static void Require(ReadOnlySpan<byte> data, int offset, int length, string source, string field)
    {
        if (offset < 0 || length < 0 || (long)offset + length > data.Length)
        {
            throw new AttestationFormatException(source, field, offset,
                $"needs {length} byte(s) but only {Math.Max(0, data.Length - offset)} remain (input is {data.Length} bytes)");
        }
    }

    public static ushort U16(ReadOnlySpan<byte> data, int offset, string source, string field)
    {
        Require(data, offset, 2, source, field);
        return BinaryPrimitives.ReadUInt16LittleEndian(data[offset..]);
    }

    public static uint U32(ReadOnlySpan<byte> data, int offset, string source, string field)
    {
        Require(data, offset, 4, source, field);
        return BinaryPrimitives.ReadUInt32LittleEndian(data[offset..]);
    }

    public static ulong U64(ReadOnlySpan<byte> data, int offset, string source, string field)
    {
        Require(data, offset, 8, source, field);
        return BinaryPrimitives.ReadUInt64LittleEndian(data[offset..]);
    }
}
