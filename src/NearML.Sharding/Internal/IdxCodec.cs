using System.Buffers.Binary;
using System.IO.Compression;
using NearML.Core;

namespace NearML.Sharding.Internal;

/// <summary>A strict unsigned-byte IDX parser/writer (Sharding cannot reference NearML.Training).</summary>
internal static class IdxCodec
{
    public static (int[] Dims, ReadOnlyMemory<byte> Payload, int Consumed) Parse(ReadOnlyMemory<byte> bytes, string source, long baseOffset = 0, bool allowTrailing = false)
    {
        var span = bytes.Span;
        if (span.Length < 4)
        {
            throw new InvalidDataFormatException(source, baseOffset + span.Length, "truncated: the 4-byte IDX magic number is incomplete.");
        }

        if (span[0] != 0 || span[1] != 0)
        {
            throw new InvalidDataFormatException(source, baseOffset, "bad IDX magic: the first two bytes must be zero.");
        }

        if (span[2] != 0x08)
        {
            throw new InvalidDataFormatException(source, baseOffset + 2, $"IDX data type 0x{span[2]:X2} is not unsigned byte (0x08).");
        }

        int ndim = span[3];
        if (ndim == 0 || span.Length < 4 + (4 * ndim))
        {
            throw new InvalidDataFormatException(source, baseOffset + 3, $"the IDX header declares {ndim} dimensions but {span.Length} bytes are present.");
        }

        var dims = new int[ndim];
        long n = 1;
        for (var i = 0; i < ndim; i++)
        {
            var d = BinaryPrimitives.ReadUInt32BigEndian(span[(4 + (4 * i))..]);
            if (d == 0 || d > int.MaxValue)
            {
                throw new InvalidDataFormatException(source, baseOffset + 4 + (4 * i), $"dimension {i} is {d}.");
            }

            dims[i] = (int)d;
            n *= d;
            if (n > int.MaxValue)
            {
                throw new InvalidDataFormatException(source, baseOffset + 4 + (4 * i), "the dimensions describe more than 2 GiB.");
            }
        }

        var header = 4 + (4 * ndim);
        if (span.Length - header < n)
        {
            throw new InvalidDataFormatException(source, baseOffset + span.Length, $"truncated: dimensions [{string.Join(", ", dims)}] need {n} bytes but {span.Length - header} follow the header.");
        }

        if (!allowTrailing && span.Length - header > n)
        {
            throw new InvalidDataFormatException(source, baseOffset + header + n, "unexpected trailing bytes after the IDX payload.");
        }

        return (dims, bytes.Slice(header, (int)n), header + (int)n);
    }

    public static byte[] ReadFile(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B)
        {
            try
            {
                using var gz = new GZipStream(new MemoryStream(bytes), CompressionMode.Decompress);
                using var ms = new MemoryStream();
                gz.CopyTo(ms);
                return ms.ToArray();
            }
            catch (InvalidDataException ex)
            {
                throw new InvalidDataFormatException(path, -1, "the gzip stream is corrupt.", ex);
            }
        }

        return bytes;
    }

    public static void Write(Stream s, ReadOnlySpan<int> dims, ReadOnlySpan<byte> data)
    {
        Span<byte> header = stackalloc byte[4 + (4 * dims.Length)];
        header[2] = 0x08;
        header[3] = (byte)dims.Length;
        for (var i = 0; i < dims.Length; i++)
        {
            BinaryPrimitives.WriteInt32BigEndian(header[(4 + (4 * i))..], dims[i]);
        }

        s.Write(header);
        s.Write(data);
    }
}
