using System.Buffers.Binary;
using System.Collections.Immutable;
using System.IO.Compression;
using NearML.Core.Data.Internal;

namespace NearML.Core;

/// <summary>The element type of an IDX file (the third byte of its magic number).</summary>
public enum IdxDataType : byte
{
    /// <summary>Unsigned byte (0x08).</summary>
    UInt8 = 0x08,

    /// <summary>Signed byte (0x09).</summary>
    Int8 = 0x09,

    /// <summary>Big-endian 16-bit integer (0x0B).</summary>
    Int16 = 0x0B,

    /// <summary>Big-endian 32-bit integer (0x0C).</summary>
    Int32 = 0x0C,

    /// <summary>Big-endian IEEE float32 (0x0D).</summary>
    Float32 = 0x0D,

    /// <summary>Big-endian IEEE float64 (0x0E).</summary>
    Float64 = 0x0E,
}

/// <summary>An IDX array (the MNIST-family file format): element type, dimensions and the raw big-endian payload.</summary>
public sealed class IdxArray
{
    internal IdxArray(string source, IdxDataType dataType, ImmutableArray<int> dimensions, ReadOnlyMemory<byte> payload)
    {
        Source = source;
        DataType = dataType;
        Dimensions = dimensions;
        Payload = payload;
    }

    /// <summary>Gets the file (or description) it was read from.</summary>
    public string Source { get; }

    /// <summary>Gets the element type.</summary>
    public IdxDataType DataType { get; }

    /// <summary>Gets the dimensions, outermost (record count) first.</summary>
    public ImmutableArray<int> Dimensions { get; }

    /// <summary>Gets the payload bytes (big-endian for multi-byte types), exactly product(dims)·elementSize long.</summary>
    public ReadOnlyMemory<byte> Payload { get; }

    /// <summary>Gets the number of records (the first dimension).</summary>
    public int Count => Dimensions[0];

    /// <summary>Gets the number of elements per record (the product of the remaining dimensions).</summary>
    public int ElementsPerRecord
    {
        get
        {
            var n = 1;
            for (var i = 1; i < Dimensions.Length; i++)
            {
                n *= Dimensions[i];
            }

            return n;
        }
    }

    /// <summary>Gets the payload as unsigned bytes.</summary>
    /// <returns>The payload.</returns>
    /// <exception cref="InvalidDataFormatException">The element type is not <see cref="IdxDataType.UInt8"/>.</exception>
    public ReadOnlySpan<byte> GetBytes()
    {
        if (DataType != IdxDataType.UInt8)
        {
            throw new InvalidDataFormatException(Source, 2, $"expected unsigned-byte data (0x08) but the file holds {DataType} (0x{(byte)DataType:X2}).");
        }

        return Payload.Span;
    }
}

/// <summary>
/// Reads IDX files (the MNIST-family format: magic <c>00 00 TT NN</c>, NN big-endian u32 dimensions, then the data),
/// gzip-compressed (detected from the 1F 8B signature) or raw. Reading is strict: a bad magic, an unknown type, a zero
/// dimension, a payload shorter or longer than the dimensions say, or a corrupt gzip stream is an
/// <see cref="InvalidDataFormatException"/> naming the file and the byte offset (within the decompressed stream).
/// </summary>
public static class IdxReader
{
    /// <summary>The largest payload accepted (bytes).</summary>
    public const long MaxPayloadBytes = 1L << 31;

    /// <summary>Reads an IDX file.</summary>
    /// <param name="path">The file (gzip or raw).</param>
    /// <returns>The array.</returns>
    public static IdxArray ReadFile(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        return Read(fs, path);
    }

    /// <summary>Reads an IDX array from a stream (gzip or raw).</summary>
    /// <param name="stream">The stream, positioned at the start of the file.</param>
    /// <param name="sourceName">The name used in error messages.</param>
    /// <returns>The array.</returns>
    public static IdxArray Read(Stream stream, string sourceName = "stream")
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(sourceName);
        var buffered = new BufferedStream(stream, 1 << 16);
        Span<byte> sig = stackalloc byte[2];
        var got = ReadUpTo(buffered, sig, sourceName, 0);
        Stream body = buffered;
        var prefix = sig[..got].ToArray();
        if (got == 2 && sig[0] == 0x1F && sig[1] == 0x8B)
        {
            using var gz = new GZipStream(new PrefixStream(prefix, buffered), CompressionMode.Decompress, leaveOpen: true);
            return ReadBody(gz, sourceName);
        }

        return ReadBody(new PrefixStream(prefix, body), sourceName);
    }

    /// <summary>Parses an IDX array held in memory (raw, not compressed).</summary>
    /// <param name="bytes">The file's bytes.</param>
    /// <param name="sourceName">The name used in error messages.</param>
    /// <returns>The array.</returns>
    public static IdxArray Parse(ReadOnlySpan<byte> bytes, string sourceName = "buffer")
    {
        ArgumentNullException.ThrowIfNull(sourceName);
        var (type, dims, headerLength, payloadLength) = ParseHeader(bytes, sourceName, bytes.Length);
        if (bytes.Length - headerLength < payloadLength)
        {
            throw new InvalidDataFormatException(sourceName, bytes.Length, $"truncated: dimensions [{string.Join(", ", dims)}] need {payloadLength} payload bytes but only {bytes.Length - headerLength} follow the header.");
        }

        if (bytes.Length - headerLength > payloadLength)
        {
            throw new InvalidDataFormatException(sourceName, headerLength + payloadLength, $"{bytes.Length - headerLength - payloadLength} unexpected trailing bytes after the payload of dimensions [{string.Join(", ", dims)}].");
        }

        return new IdxArray(sourceName, type, dims, bytes.Slice(headerLength, (int)payloadLength).ToArray());
    }

    /// <summary>
    /// Parses the IDX array at the start of <paramref name="bytes"/> (raw, not compressed) without copying its payload,
    /// and says how many bytes it used, for formats that store several arrays back to back (a data shard holds its
    /// records, then its labels). Error offsets are reported as <paramref name="baseOffset"/> plus the position within
    /// <paramref name="bytes"/>.
    /// </summary>
    /// <param name="bytes">The bytes; the array's payload is a slice of them.</param>
    /// <param name="sourceName">The name used in error messages.</param>
    /// <param name="baseOffset">The offset of <paramref name="bytes"/> within the named source.</param>
    /// <param name="consumed">The length of the header and payload.</param>
    /// <returns>The array, whose <see cref="IdxArray.Payload"/> refers to <paramref name="bytes"/>.</returns>
    /// <exception cref="InvalidDataFormatException">The header is malformed or the payload is truncated.</exception>
    public static IdxArray ParsePrefix(ReadOnlyMemory<byte> bytes, string sourceName, long baseOffset, out int consumed)
    {
        ArgumentNullException.ThrowIfNull(sourceName);
        ReadOnlySpan<byte> span = bytes.Span;
        (IdxDataType type, ImmutableArray<int> dims, int headerLength, long payloadLength) = ParseHeader(span, sourceName, span.Length, baseOffset);
        if (span.Length - headerLength < payloadLength)
        {
            throw new InvalidDataFormatException(sourceName, baseOffset + span.Length, $"truncated: dimensions [{string.Join(", ", dims)}] need {payloadLength} payload bytes but only {span.Length - headerLength} follow the header.");
        }

        consumed = headerLength + (int)payloadLength;
        return new IdxArray(sourceName, type, dims, bytes.Slice(headerLength, (int)payloadLength));
    }

    /// <summary>
    /// Reads a whole IDX file into memory, decompressing it when it is gzip (1F 8B signature), without parsing it; pair
    /// with <see cref="Parse"/> or <see cref="ParsePrefix"/>.
    /// </summary>
    /// <param name="path">The file.</param>
    /// <returns>The raw (decompressed) bytes.</returns>
    /// <exception cref="InvalidDataFormatException">The gzip stream is corrupt.</exception>
    public static byte[] ReadAllBytes(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        byte[] bytes = File.ReadAllBytes(path);
        if (bytes.Length < 2 || bytes[0] != 0x1F || bytes[1] != 0x8B)
        {
            return bytes;
        }

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

    /// <summary>Writes an unsigned-byte IDX file (raw, or gzip when the path ends in <c>.gz</c>).</summary>
    /// <param name="path">The destination.</param>
    /// <param name="dimensions">The dimensions (their product must equal <paramref name="data"/>'s length).</param>
    /// <param name="data">The bytes.</param>
    public static void WriteUInt8(string path, ReadOnlySpan<int> dimensions, ReadOnlySpan<byte> data)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None);
        using Stream s = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(fs, CompressionLevel.Fastest) : fs;
        WriteUInt8(s, dimensions, data);
    }

    /// <summary>Writes an unsigned-byte IDX array to a stream (raw).</summary>
    /// <param name="stream">The destination.</param>
    /// <param name="dimensions">The dimensions (their product must equal <paramref name="data"/>'s length).</param>
    /// <param name="data">The bytes.</param>
    public static void WriteUInt8(Stream stream, ReadOnlySpan<int> dimensions, ReadOnlySpan<byte> data)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (dimensions.Length is 0 or > 255)
        {
            throw new ArgumentOutOfRangeException(nameof(dimensions), dimensions.Length, "An IDX array has 1 to 255 dimensions.");
        }

        long product = 1;
        foreach (var d in dimensions)
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(d, nameof(dimensions));
            product *= d;
        }

        if (product != data.Length)
        {
            throw new ArgumentException($"The dimensions hold {product} elements but {data.Length} bytes were given.", nameof(data));
        }

        Span<byte> header = stackalloc byte[4 + (4 * dimensions.Length)];
        header[0] = 0;
        header[1] = 0;
        header[2] = (byte)IdxDataType.UInt8;
        header[3] = (byte)dimensions.Length;
        for (var i = 0; i < dimensions.Length; i++)
        {
            BinaryPrimitives.WriteInt32BigEndian(header[(4 + (4 * i))..], dimensions[i]);
        }

        stream.Write(header);
        stream.Write(data);
    }

    internal static int ElementSize(IdxDataType type) => type switch
    {
        IdxDataType.UInt8 or IdxDataType.Int8 => 1,
        IdxDataType.Int16 => 2,
        IdxDataType.Int32 or IdxDataType.Float32 => 4,
        IdxDataType.Float64 => 8,
        _ => 0,
    };

    private static IdxArray ReadBody(Stream s, string source)
    {
        Span<byte> magic = stackalloc byte[4];
        var got = ReadUpTo(s, magic, source, 0);
        if (got < 4)
        {
            throw new InvalidDataFormatException(source, got, "truncated: the 4-byte IDX magic number is incomplete.");
        }

        var ndim = magic[3];
        var header = new byte[4 + (4 * ndim)];
        magic.CopyTo(header);
        got = ReadUpTo(s, header.AsSpan(4), source, 4);
        if (got < header.Length - 4)
        {
            // Let the header parser report the precise problem (bad magic first, then truncation).
            ParseHeader(header.AsSpan(0, 4 + got), source, 4 + got);
            throw new InvalidDataFormatException(source, 4 + got, $"truncated: the header declares {ndim} dimensions but ends after {got / 4}.");
        }

        var (type, dims, headerLength, payloadLength) = ParseHeader(header, source, long.MaxValue);
        // Grow the buffer as data arrives so a lying header cannot make us allocate gigabytes up front.
        var payload = new byte[Math.Min(payloadLength, 1 << 24)];
        var read = 0;
        while (true)
        {
            read += ReadUpTo(s, payload.AsSpan(read), source, headerLength + read);
            if (read < payload.Length || payload.Length == payloadLength)
            {
                break;
            }

            Array.Resize(ref payload, (int)Math.Min(payloadLength, (long)payload.Length * 2));
        }

        if (read < payloadLength)
        {
            throw new InvalidDataFormatException(source, headerLength + read, $"truncated: dimensions [{string.Join(", ", dims)}] need {payloadLength} payload bytes but the data ends after {read}.");
        }

        Span<byte> extra = stackalloc byte[1];
        if (ReadUpTo(s, extra, source, headerLength + payloadLength) != 0)
        {
            throw new InvalidDataFormatException(source, headerLength + payloadLength, $"unexpected trailing bytes after the payload of dimensions [{string.Join(", ", dims)}].");
        }

        return new IdxArray(source, type, dims, payload);
    }

    private static (IdxDataType Type, ImmutableArray<int> Dims, int HeaderLength, long PayloadLength) ParseHeader(ReadOnlySpan<byte> bytes, string source, long available, long baseOffset = 0)
    {
        if (bytes.Length < 4)
        {
            throw new InvalidDataFormatException(source, baseOffset + bytes.Length, "truncated: the 4-byte IDX magic number is incomplete.");
        }

        if (bytes[0] != 0 || bytes[1] != 0)
        {
            throw new InvalidDataFormatException(source, baseOffset, $"bad IDX magic 0x{bytes[0]:X2}{bytes[1]:X2}{bytes[2]:X2}{bytes[3]:X2}: the first two bytes must be zero.");
        }

        var type = (IdxDataType)bytes[2];
        var size = ElementSize(type);
        if (size == 0)
        {
            throw new InvalidDataFormatException(source, baseOffset + 2, $"unknown IDX data type 0x{bytes[2]:X2} (known: 08, 09, 0B, 0C, 0D, 0E).");
        }

        int ndim = bytes[3];
        if (ndim == 0)
        {
            throw new InvalidDataFormatException(source, baseOffset + 3, "the IDX header declares zero dimensions.");
        }

        var headerLength = 4 + (4 * ndim);
        if (bytes.Length < headerLength)
        {
            throw new InvalidDataFormatException(source, baseOffset + Math.Min(bytes.Length, available), $"truncated: the header declares {ndim} dimensions ({headerLength} header bytes) but only {bytes.Length} bytes are present.");
        }

        var dims = ImmutableArray.CreateBuilder<int>(ndim);
        long count = 1;
        for (var i = 0; i < ndim; i++)
        {
            var d = BinaryPrimitives.ReadUInt32BigEndian(bytes[(4 + (4 * i))..]);
            if (d == 0 || d > int.MaxValue)
            {
                throw new InvalidDataFormatException(source, baseOffset + 4 + (4 * i), $"dimension {i} is {d}; dimensions must be in [1, {int.MaxValue}].");
            }

            count *= d;
            if (count * size > MaxPayloadBytes)
            {
                throw new InvalidDataFormatException(source, baseOffset + 4 + (4 * i), $"the dimensions describe more than {MaxPayloadBytes} payload bytes.");
            }

            dims.Add((int)d);
        }

        return (type, dims.MoveToImmutable(), headerLength, count * size);
    }

    private static int ReadUpTo(Stream s, Span<byte> destination, string source, long offset)
    {
        var total = 0;
        try
        {
            while (total < destination.Length)
            {
                var n = s.Read(destination[total..]);
                if (n == 0)
                {
                    break;
                }

                total += n;
            }
        }
        catch (InvalidDataException ex)
        {
            throw new InvalidDataFormatException(source, offset + total, "the gzip stream is corrupt.", ex);
        }

        return total;
    }
}
