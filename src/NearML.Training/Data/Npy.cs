using System.Buffers.Binary;
using System.Collections.Immutable;
using System.Globalization;
using System.IO.Compression;
using System.Text;
using NearML.Core;

namespace NearML.Training.Data;

/// <summary>The NumPy element types NearML reads (little-endian, C order).</summary>
public enum NpyDataType
{
    /// <summary><c>|u1</c> (uint8).</summary>
    UInt8,

    /// <summary><c>&lt;i4</c> (int32).</summary>
    Int32,

    /// <summary><c>&lt;i8</c> (int64).</summary>
    Int64,

    /// <summary><c>&lt;f4</c> (float32).</summary>
    Float32,
}

/// <summary>One NumPy array read from a <c>.npy</c> file (or a member of a <c>.npz</c> archive).</summary>
public sealed class NpyArray
{
    internal NpyArray(string source, NpyDataType dataType, ImmutableArray<int> shape, byte[] payload)
    {
        Source = source;
        DataType = dataType;
        Shape = shape;
        Payload = payload;
    }

    /// <summary>Gets where the array was read from (for error messages).</summary>
    public string Source { get; }

    /// <summary>Gets the element type.</summary>
    public NpyDataType DataType { get; }

    /// <summary>Gets the shape (empty for a scalar).</summary>
    public ImmutableArray<int> Shape { get; }

    /// <summary>Gets the raw little-endian element bytes in C order.</summary>
    public ReadOnlyMemory<byte> Payload { get; }

    /// <summary>Gets the number of elements.</summary>
    public long Length
    {
        get
        {
            long n = 1;
            foreach (var d in Shape)
            {
                n *= d;
            }

            return n;
        }
    }

    /// <summary>Gets the NumPy <c>descr</c> string of a type.</summary>
    /// <param name="type">The type.</param>
    /// <returns>For example <c>&lt;f4</c>.</returns>
    public static string Descr(NpyDataType type) => type switch
    {
        NpyDataType.UInt8 => "|u1",
        NpyDataType.Int32 => "<i4",
        NpyDataType.Int64 => "<i8",
        _ => "<f4",
    };

    /// <summary>Gets the size of one element in bytes.</summary>
    /// <param name="type">The type.</param>
    /// <returns>1, 4 or 8.</returns>
    public static int ElementSize(NpyDataType type) => type switch
    {
        NpyDataType.UInt8 => 1,
        NpyDataType.Int64 => 8,
        _ => 4,
    };

    /// <summary>Converts the elements to float32 (uint8 as is, not scaled; integers exactly where representable).</summary>
    /// <returns>A new array.</returns>
    public float[] ToSingle()
    {
        var p = Payload.Span;
        var n = checked((int)Length);
        var f = new float[n];
        switch (DataType)
        {
            case NpyDataType.UInt8:
                for (var i = 0; i < n; i++)
                {
                    f[i] = p[i];
                }

                break;
            case NpyDataType.Int32:
                for (var i = 0; i < n; i++)
                {
                    f[i] = BinaryPrimitives.ReadInt32LittleEndian(p[(i * 4)..]);
                }

                break;
            case NpyDataType.Int64:
                for (var i = 0; i < n; i++)
                {
                    f[i] = BinaryPrimitives.ReadInt64LittleEndian(p[(i * 8)..]);
                }

                break;
            default:
                for (var i = 0; i < n; i++)
                {
                    f[i] = BinaryPrimitives.ReadSingleLittleEndian(p[(i * 4)..]);
                }

                break;
        }

        return f;
    }

    /// <summary>Converts integer elements to int32 (for labels).</summary>
    /// <returns>A new array.</returns>
    /// <exception cref="InvalidDataFormatException">The array holds floats, or a value does not fit an int32.</exception>
    public int[] ToInt32()
    {
        var p = Payload.Span;
        var n = checked((int)Length);
        var v = new int[n];
        switch (DataType)
        {
            case NpyDataType.UInt8:
                for (var i = 0; i < n; i++)
                {
                    v[i] = p[i];
                }

                break;
            case NpyDataType.Int32:
                for (var i = 0; i < n; i++)
                {
                    v[i] = BinaryPrimitives.ReadInt32LittleEndian(p[(i * 4)..]);
                }

                break;
            case NpyDataType.Int64:
                for (var i = 0; i < n; i++)
                {
                    var x = BinaryPrimitives.ReadInt64LittleEndian(p[(i * 8)..]);
                    if (x is < int.MinValue or > int.MaxValue)
                    {
                        throw new InvalidDataFormatException(Source, -1, $"element {i} is {x}, which does not fit a 32-bit label.");
                    }

                    v[i] = (int)x;
                }

                break;
            default:
                throw new InvalidDataFormatException(Source, -1, $"holds {Descr(DataType)} values; integer labels (|u1, <i4, <i8) are needed.");
        }

        return v;
    }
}

/// <summary>
/// Reads NumPy <c>.npy</c> files (format versions 1.0, 2.0 and 3.0) and <c>.npz</c> archives (stored or deflated), and
/// writes <c>.npy</c> version 1.0. Supported: little-endian <c>|u1</c>, <c>&lt;i4</c>, <c>&lt;i8</c>, <c>&lt;f4</c> in C
/// order. Anything else (big-endian, float64, object arrays, Fortran order, pickles) is refused with an
/// <see cref="InvalidDataFormatException"/> that names the file and the value, never guessed at.
/// </summary>
public static class NpyReader
{
    /// <summary>The largest payload accepted (2 GiB − 1).</summary>
    public const long MaxPayloadBytes = int.MaxValue;

    private static ReadOnlySpan<byte> Magic => [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>Reads a <c>.npy</c> file.</summary>
    /// <param name="path">The file.</param>
    /// <returns>The array.</returns>
    /// <exception cref="DatasetNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataFormatException">The file is not a supported <c>.npy</c> array.</exception>
    public static NpyArray ReadFile(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
        {
            throw new DatasetNotFoundException(path, $"The NumPy file '{path}' does not exist.");
        }

        return Parse(File.ReadAllBytes(path), path);
    }

    /// <summary>Reads every array of a <c>.npz</c> archive (<c>numpy.savez</c> or <c>numpy.savez_compressed</c>).</summary>
    /// <param name="path">The archive.</param>
    /// <returns>The arrays by name (the member name without <c>.npy</c>).</returns>
    /// <exception cref="DatasetNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataFormatException">The archive or a member is not supported.</exception>
    public static IReadOnlyDictionary<string, NpyArray> ReadArchive(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
        {
            throw new DatasetNotFoundException(path, $"The NumPy archive '{path}' does not exist.");
        }

        var result = new Dictionary<string, NpyArray>(StringComparer.Ordinal);
        try
        {
            using var zip = ZipFile.OpenRead(path);
            foreach (var entry in zip.Entries)
            {
                if (!entry.FullName.EndsWith(".npy", StringComparison.Ordinal))
                {
                    throw new InvalidDataFormatException(path, -1, $"member '{entry.FullName}' is not a .npy array.");
                }

                if (entry.Length > MaxPayloadBytes)
                {
                    throw new InvalidDataFormatException(path, -1, $"member '{entry.FullName}' has {entry.Length} bytes, more than the {MaxPayloadBytes} supported.");
                }

                var bytes = new byte[entry.Length];
                using (var s = entry.Open())
                {
                    s.ReadExactly(bytes);
                }

                var name = entry.FullName[..^4];
                result[name] = Parse(bytes, path + ":" + entry.FullName);
            }
        }
        catch (InvalidDataException ex)
        {
            throw new InvalidDataFormatException(path, -1, $"is not a valid .npz (zip) archive: {ex.Message}", ex);
        }

        return result;
    }

    /// <summary>Parses the bytes of a <c>.npy</c> file.</summary>
    /// <param name="bytes">The file's bytes.</param>
    /// <param name="sourceName">The name used in error messages.</param>
    /// <returns>The array (its payload is copied).</returns>
    /// <exception cref="InvalidDataFormatException">The bytes are not a supported <c>.npy</c> array.</exception>
    public static NpyArray Parse(ReadOnlySpan<byte> bytes, string sourceName = "buffer")
    {
        var (array, used) = ParsePrefix(bytes, sourceName);
        if (used != bytes.Length)
        {
            throw new InvalidDataFormatException(sourceName, used, $"has {bytes.Length - used} bytes after the array's {array.Payload.Length}-byte payload.");
        }

        return array;
    }

    /// <summary>Parses one <c>.npy</c> array at the start of <paramref name="bytes"/> and reports how many bytes it used
    /// (shards hold several arrays back to back).</summary>
    /// <param name="bytes">The bytes.</param>
    /// <param name="sourceName">The name used in error messages.</param>
    /// <returns>The array and the bytes consumed.</returns>
    /// <exception cref="InvalidDataFormatException">The bytes are not a supported <c>.npy</c> array.</exception>
    public static (NpyArray Array, int Consumed) ParsePrefix(ReadOnlySpan<byte> bytes, string sourceName = "buffer")
    {
        ArgumentNullException.ThrowIfNull(sourceName);
        if (bytes.Length < 10 || !bytes[..6].SequenceEqual(Magic))
        {
            throw new InvalidDataFormatException(sourceName, 0, "is not a NumPy .npy file (no \\x93NUMPY magic).");
        }

        var major = bytes[6];
        int headerLength, headerStart;
        switch (major)
        {
            case 1:
                headerLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes[8..]);
                headerStart = 10;
                break;
            case 2 or 3:
                if (bytes.Length < 12)
                {
                    throw new InvalidDataFormatException(sourceName, 8, "is truncated in its header length.");
                }

                var len = BinaryPrimitives.ReadUInt32LittleEndian(bytes[8..]);
                if (len > 1 << 20)
                {
                    throw new InvalidDataFormatException(sourceName, 8, $"declares a {len}-byte header; at most 1 MiB is accepted.");
                }

                headerLength = (int)len;
                headerStart = 12;
                break;
            default:
                throw new InvalidDataFormatException(sourceName, 6, $"has .npy format version {major}.{bytes[7]}; versions 1.0, 2.0 and 3.0 are supported.");
        }

        if (bytes.Length < headerStart + headerLength)
        {
            throw new InvalidDataFormatException(sourceName, headerStart, $"is truncated: the header needs {headerLength} bytes, {bytes.Length - headerStart} are present.");
        }

        string header;
        try
        {
            header = (major == 3 ? new UTF8Encoding(false, true) : Encoding.Latin1).GetString(bytes.Slice(headerStart, headerLength));
        }
        catch (DecoderFallbackException ex)
        {
            throw new InvalidDataFormatException(sourceName, headerStart, "has a header that is not valid UTF-8.", ex);
        }

        var (descr, fortran, shape) = ParseHeader(header, sourceName, headerStart);
        if (fortran)
        {
            throw new InvalidDataFormatException(
                sourceName,
                headerStart,
                "is stored in Fortran (column-major) order, which is not supported; save it with numpy.ascontiguousarray(a) first.");
        }

        var type = descr switch
        {
            "|u1" or "<u1" or "u1" => NpyDataType.UInt8,
            "<i4" => NpyDataType.Int32,
            "<i8" => NpyDataType.Int64,
            "<f4" => NpyDataType.Float32,
            _ => throw new InvalidDataFormatException(
                sourceName,
                headerStart,
                $"has dtype '{descr}', which is not supported (supported: |u1, <i4, <i8, <f4 little-endian; convert with a.astype(numpy.float32) or numpy.int64)."),
        };

        long count = 1;
        foreach (var d in shape)
        {
            count = checked(count * d);
        }

        var payloadBytes = count * NpyArray.ElementSize(type);
        var start = headerStart + headerLength;
        if (payloadBytes > MaxPayloadBytes)
        {
            throw new InvalidDataFormatException(sourceName, start, $"holds {payloadBytes} bytes, more than the {MaxPayloadBytes} supported.");
        }

        if (bytes.Length - start < payloadBytes)
        {
            throw new InvalidDataFormatException(sourceName, start, $"is truncated: shape [{string.Join(", ", shape)}] of {descr} needs {payloadBytes} bytes, {bytes.Length - start} are present.");
        }

        return (new NpyArray(sourceName, type, shape, bytes.Slice(start, (int)payloadBytes).ToArray()), start + (int)payloadBytes);
    }

    /// <summary>Writes a <c>.npy</c> (version 1.0, C order) array.</summary>
    /// <param name="stream">The destination.</param>
    /// <param name="type">The element type.</param>
    /// <param name="shape">The shape.</param>
    /// <param name="payload">The little-endian element bytes (product(shape) × element size).</param>
    public static void Write(Stream stream, NpyDataType type, ReadOnlySpan<int> shape, ReadOnlySpan<byte> payload)
    {
        ArgumentNullException.ThrowIfNull(stream);
        long count = 1;
        foreach (var d in shape)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(d, nameof(shape));
            count *= d;
        }

        if (payload.Length != count * NpyArray.ElementSize(type))
        {
            throw new ArgumentException($"The payload has {payload.Length} bytes; shape [{string.Join(", ", shape.ToArray())}] of {NpyArray.Descr(type)} needs {count * NpyArray.ElementSize(type)}.", nameof(payload));
        }

        var dims = shape.Length == 1 ? shape[0].ToString(CultureInfo.InvariantCulture) + "," : string.Join(", ", shape.ToArray());
        var dict = $"{{'descr': '{NpyArray.Descr(type)}', 'fortran_order': False, 'shape': ({dims}), }}";

        // As numpy does: pad with spaces so that magic + header is a multiple of 64 bytes, ending in '\n'.
        var total = 10 + dict.Length + 1;
        var padded = (total + 63) / 64 * 64;
        var header = dict + new string(' ', padded - total) + "\n";
        Span<byte> prefix = stackalloc byte[10];
        Magic.CopyTo(prefix);
        prefix[6] = 1;
        prefix[7] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(prefix[8..], (ushort)header.Length);
        stream.Write(prefix);
        stream.Write(Encoding.Latin1.GetBytes(header));
        stream.Write(payload);
    }

    private static (string Descr, bool Fortran, ImmutableArray<int> Shape) ParseHeader(string header, string source, long offset)
    {
        // The header is a Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
        var h = header.Trim();
        if (!h.StartsWith('{') || !h.EndsWith('}'))
        {
            throw new InvalidDataFormatException(source, offset, $"has a header that is not a dict literal: {Shorten(header)}");
        }

        var descr = StringValue(h, "descr", source, offset);
        var fortranText = RawValue(h, "fortran_order", source, offset);
        var fortran = fortranText switch
        {
            "True" => true,
            "False" => false,
            _ => throw new InvalidDataFormatException(source, offset, $"has fortran_order '{fortranText}', expected True or False."),
        };

        var shapeText = RawValue(h, "shape", source, offset);
        if (!shapeText.StartsWith('(') || !shapeText.EndsWith(')'))
        {
            throw new InvalidDataFormatException(source, offset, $"has shape '{shapeText}', expected a tuple.");
        }

        var parts = shapeText[1..^1].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var dims = ImmutableArray.CreateBuilder<int>(parts.Length);
        foreach (var p in parts)
        {
            var q = p.EndsWith('L') ? p[..^1] : p;
            if (!int.TryParse(q, NumberStyles.None, CultureInfo.InvariantCulture, out var d))
            {
                throw new InvalidDataFormatException(source, offset, $"has shape {shapeText} with a dimension '{p}' that is not a non-negative 32-bit integer.");
            }

            dims.Add(d);
        }

        return (descr, fortran, dims.ToImmutable());
    }

    private static int KeyIndex(string h, string key, string source, long offset)
    {
        var i = h.IndexOf("'" + key + "'", StringComparison.Ordinal);
        if (i < 0)
        {
            i = h.IndexOf("\"" + key + "\"", StringComparison.Ordinal);
        }

        if (i < 0)
        {
            throw new InvalidDataFormatException(source, offset, $"has no '{key}' in its header: {Shorten(h)}");
        }

        var colon = h.IndexOf(':', i + key.Length + 2);
        if (colon < 0)
        {
            throw new InvalidDataFormatException(source, offset, $"has no value for '{key}' in its header.");
        }

        return colon + 1;
    }

    private static string StringValue(string h, string key, string source, long offset)
    {
        var v = RawValue(h, key, source, offset);
        if (v.Length >= 2 && (v[0] == '\'' || v[0] == '"') && v[^1] == v[0])
        {
            return v[1..^1];
        }

        throw new InvalidDataFormatException(source, offset, $"has {key} {Shorten(v)}; only simple dtype strings are supported (no structured or object dtypes).");
    }

    private static string RawValue(string h, string key, string source, long offset)
    {
        var i = KeyIndex(h, key, source, offset);
        while (i < h.Length && h[i] == ' ')
        {
            i++;
        }

        int end;
        if (i < h.Length && h[i] == '(')
        {
            end = h.IndexOf(')', i);
            end = end < 0 ? h.Length : end + 1;
        }
        else if (i < h.Length && (h[i] == '\'' || h[i] == '"'))
        {
            end = h.IndexOf(h[i], i + 1);
            end = end < 0 ? h.Length : end + 1;
        }
        else if (i < h.Length && (h[i] == '[' || h[i] == '{'))
        {
            // A structured dtype: refuse it by name.
            end = h.Length - 1;
        }
        else
        {
            end = i;
            while (end < h.Length && h[end] != ',' && h[end] != '}')
            {
                end++;
            }
        }

        return h[i..end].Trim();
    }

    private static string Shorten(string s) => s.Length <= 120 ? s : s[..120] + "…";
}
