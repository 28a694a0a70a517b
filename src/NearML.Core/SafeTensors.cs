using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace NearML.Core;

/// <summary>A parameter set read from a safetensors file, with the file's free-form metadata.</summary>
/// <param name="Parameters">The tensors, in the order of their data in the file.</param>
/// <param name="Metadata">The <c>__metadata__</c> string map (empty when absent).</param>
public sealed record SafeTensorsContent(ParameterSet Parameters, IReadOnlyDictionary<string, string> Metadata);

/// <summary>
/// Reads and writes the safetensors format (Hugging Face): an 8-byte little-endian header length N, N bytes of
/// UTF-8 JSON describing each tensor (<c>dtype</c>, <c>shape</c>, <c>data_offsets</c>) and an optional
/// <c>__metadata__</c> string map, then the raw little-endian tensor bytes. Reading is strict: every length and
/// offset is checked before use, and any inconsistency is an <see cref="InvalidDataFormatException"/> naming the
/// source and byte offset.
/// </summary>
public static class SafeTensors
{
    /// <summary>The largest header accepted by default (the reference implementation's limit).</summary>
    public const long DefaultMaxHeaderBytes = 100_000_000;

    /// <summary>Writes <paramref name="parameters"/> to <paramref name="stream"/> as F32 tensors in layout order.</summary>
    /// <param name="stream">A writable stream.</param>
    /// <param name="parameters">The tensors.</param>
    /// <param name="metadata">Optional <c>__metadata__</c> entries.</param>
    public static void Write(Stream stream, ParameterSet parameters, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(parameters);
        var header = BuildHeader(parameters.Layout, metadata);
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)header.Length);
        stream.Write(len);
        stream.Write(header);
        stream.Write(MemoryMarshal.AsBytes(parameters.Data));
    }

    /// <summary>
    /// Writes safetensors bytes for <paramref name="layout"/> whose tensor data comes from several buffers, back to back in
    /// layout order (for example a checkpoint's parameters followed by its optimizer state), without first copying them
    /// into one set. The bytes equal <see cref="Write(Stream, ParameterSet, IReadOnlyDictionary{string, string}?)"/> of
    /// the concatenation.
    /// </summary>
    /// <param name="stream">The destination stream.</param>
    /// <param name="layout">The tensors' names and shapes.</param>
    /// <param name="data">The float32 values, in layout order; their lengths must add up to <see cref="ParameterLayout.TotalLength"/>.</param>
    /// <param name="metadata">Optional <c>__metadata__</c> entries.</param>
    /// <exception cref="ArgumentException">The buffers do not hold exactly the layout's values.</exception>
    public static void Write(Stream stream, ParameterLayout layout, IReadOnlyList<ReadOnlyMemory<float>> data, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(data);
        long total = 0;
        foreach (var part in data)
        {
            total += part.Length;
        }

        if (total != layout.TotalLength)
        {
            throw new ArgumentException($"The buffers hold {total} values but the layout needs {layout.TotalLength}.", nameof(data));
        }

        var header = BuildHeader(layout, metadata);
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)header.Length);
        stream.Write(len);
        stream.Write(header);
        foreach (var part in data)
        {
            stream.Write(MemoryMarshal.AsBytes(part.Span));
        }
    }

    /// <summary>
    /// Writes a safetensors file atomically: the bytes go to a temporary file in the same folder, are flushed to
    /// disk, and the temporary file then replaces <paramref name="path"/>. A crash leaves either the old or the new file.
    /// </summary>
    /// <param name="path">The destination path.</param>
    /// <param name="parameters">The tensors.</param>
    /// <param name="metadata">Optional <c>__metadata__</c> entries.</param>
    public static void WriteFile(string path, ParameterSet parameters, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(parameters);
        var full = Path.GetFullPath(path);
        var tmp = full + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp";
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                Write(fs, parameters, metadata);
                fs.Flush(flushToDisk: true);
            }

            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp))
            {
                File.Delete(tmp);
            }
        }
    }

    /// <summary>Reads a safetensors file.</summary>
    /// <param name="path">The file.</param>
    /// <param name="maxHeaderBytes">The largest header accepted.</param>
    /// <returns>The tensors (converted to float32) and metadata.</returns>
    /// <exception cref="InvalidDataFormatException">The file is truncated, inconsistent or uses an unsupported dtype.</exception>
    public static SafeTensorsContent ReadFile(string path, long maxHeaderBytes = DefaultMaxHeaderBytes)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        return Read(fs, path, maxHeaderBytes);
    }

    /// <summary>Reads safetensors bytes from a stream.</summary>
    /// <param name="stream">The stream, positioned at the start of the safetensors bytes.</param>
    /// <param name="sourceName">A name for error messages (e.g. a file path).</param>
    /// <param name="maxHeaderBytes">The largest header accepted.</param>
    /// <returns>The tensors (converted to float32) and metadata.</returns>
    /// <exception cref="InvalidDataFormatException">The bytes are truncated, inconsistent or use an unsupported dtype.</exception>
    public static SafeTensorsContent Read(Stream stream, string sourceName = "stream", long maxHeaderBytes = DefaultMaxHeaderBytes)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentException.ThrowIfNullOrEmpty(sourceName);
        long? available = stream.CanSeek ? stream.Length - stream.Position : null;

        Span<byte> lenBytes = stackalloc byte[8];
        ReadExactly(stream, lenBytes, sourceName, 0, "the 8-byte header length");
        var headerLen = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
        if (headerLen > (ulong)maxHeaderBytes)
        {
            throw new InvalidDataFormatException(sourceName, 0, $"header length {headerLen} exceeds the limit of {maxHeaderBytes} bytes");
        }

        if (available is { } av && (long)headerLen > av - 8)
        {
            throw new InvalidDataFormatException(sourceName, 0, $"header length {headerLen} is larger than the {av - 8} bytes that follow it");
        }

        var header = new byte[headerLen];
        ReadExactly(stream, header, sourceName, 8, $"the {headerLen}-byte JSON header");
        var dataStart = 8 + (long)headerLen;
        var (entries, metadata) = ParseHeader(header, sourceName);

        // Order by position in the data section; require the tensors to tile it exactly.
        entries.Sort((a, b) => a.Begin.CompareTo(b.Begin));
        long expected = 0;
        foreach (var e in entries)
        {
            if (e.Begin != expected)
            {
                throw new InvalidDataFormatException(sourceName, dataStart + e.Begin,
                    e.Begin > expected
                        ? $"tensor '{e.Name}' starts at data offset {e.Begin}, leaving a gap after offset {expected}"
                        : $"tensor '{e.Name}' at data offset {e.Begin} overlaps the previous tensor, which ends at {expected}");
            }

            expected = e.End;
        }

        var dataLen = expected;
        if (available is { } total && total - dataStart != dataLen)
        {
            throw new InvalidDataFormatException(sourceName, dataStart,
                total - dataStart < dataLen
                    ? $"the header describes {dataLen} data bytes but only {total - dataStart} follow it (truncated file)"
                    : $"the header describes {dataLen} data bytes but {total - dataStart} follow it");
        }

        var layout = new ParameterLayout(entries.Select(e => (e.Name, e.Shape)));
        var set = new ParameterSet(layout);
        var scratch = new byte[Math.Min(1 << 20, Math.Max(1, dataLen))];
        for (var i = 0; i < entries.Count; i++)
        {
            var e = entries[i];
            var dst = set.GetSpan(i);
            if (e.DType == "F32")
            {
                ReadExactly(stream, MemoryMarshal.AsBytes(dst), sourceName, dataStart + e.Begin, $"the data of tensor '{e.Name}'");
                continue;
            }

            var elemSize = ElementSize(e.DType);
            var done = 0;
            while (done < dst.Length)
            {
                var n = Math.Min(dst.Length - done, scratch.Length / elemSize);
                var bytes = scratch.AsSpan(0, n * elemSize);
                ReadExactly(stream, bytes, sourceName, dataStart + e.Begin + ((long)done * elemSize), $"the data of tensor '{e.Name}'");
                Convert(e.DType, bytes, dst.Slice(done, n));
                done += n;
            }
        }

        return new SafeTensorsContent(set, metadata);
    }

    private static byte[] BuildHeader(ParameterLayout layout, IReadOnlyDictionary<string, string>? metadata)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var kv in metadata.OrderBy(k => k.Key, StringComparer.Ordinal))
                {
                    w.WriteString(kv.Key, kv.Value);
                }

                w.WriteEndObject();
            }

            foreach (var e in layout.Entries)
            {
                if (e.Name == "__metadata__")
                {
                    throw new ArgumentException("A tensor may not be named '__metadata__' in a safetensors file.", nameof(layout));
                }

                w.WriteStartObject(e.Name);
                w.WriteString("dtype", "F32");
                w.WriteStartArray("shape");
                foreach (var d in e.Shape)
                {
                    w.WriteNumberValue(d);
                }

                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(e.Offset * 4);
                w.WriteNumberValue((e.Offset + e.Length) * 4);
                w.WriteEndArray();
                w.WriteEndObject();
            }

            w.WriteEndObject();
        }

        // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
        var len = (int)ms.Length;
        var padded = (len + 7) & ~7;
        var result = new byte[padded];
        ms.GetBuffer().AsSpan(0, len).CopyTo(result);
        result.AsSpan(len).Fill((byte)' ');
        return result;
    }

    private sealed record Entry(string Name, string DType, int[] Shape, long Begin, long End);

    private static (List<Entry> Entries, Dictionary<string, string> Metadata) ParseHeader(byte[] header, string source)
    {
        if (!System.Text.Unicode.Utf8.IsValid(header))
        {
            throw new InvalidDataFormatException(source, 8, "the header is not valid UTF-8");
        }

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header, new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException ex)
        {
            throw new InvalidDataFormatException(source, 8 + (ex.BytePositionInLine ?? 0), "the header is not valid JSON: " + ex.Message, ex);
        }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidDataFormatException(source, 8, "the header is not a JSON object");
            }

            var entries = new List<Entry>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (!seen.Add(prop.Name))
                {
                    throw new InvalidDataFormatException(source, 8, $"the header names '{prop.Name}' twice");
                }

                if (prop.Name == "__metadata__")
                {
                    if (prop.Value.ValueKind != JsonValueKind.Object)
                    {
                        throw new InvalidDataFormatException(source, 8, "__metadata__ is not an object of strings");
                    }

                    foreach (var m in prop.Value.EnumerateObject())
                    {
                        if (m.Value.ValueKind != JsonValueKind.String)
                        {
                            throw new InvalidDataFormatException(source, 8, $"__metadata__ entry '{m.Name}' is not a string");
                        }

                        metadata[m.Name] = m.Value.GetString()!;
                    }

                    continue;
                }

                entries.Add(ParseEntry(prop, source));
            }

            return (entries, metadata);
        }
    }

    private static Entry ParseEntry(JsonProperty prop, string source)
    {
        var name = prop.Name;
        if (name.Length == 0)
        {
            throw new InvalidDataFormatException(source, 8, "a tensor has an empty name");
        }

        var v = prop.Value;
        if (v.ValueKind != JsonValueKind.Object
            || !v.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String
            || !v.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array
            || !v.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
        {
            throw new InvalidDataFormatException(source, 8, $"tensor '{name}' lacks a string 'dtype', an array 'shape' or a two-element 'data_offsets'");
        }

        var dtype = dt.GetString()!;
        var size = dtype switch
        {
            "F32" or "F16" or "BF16" or "F64" => ElementSize(dtype),
            _ => throw new InvalidDataFormatException(source, 8, $"tensor '{name}' has dtype {dtype}; NearML reads F32, F16, BF16 and F64"),
        };

        var shape = new int[sh.GetArrayLength()];
        long count = 1;
        var i = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt32(out var di) || di <= 0)
            {
                throw new InvalidDataFormatException(source, 8, $"tensor '{name}' has an invalid dimension {d.GetRawText()} (dimensions must be positive 32-bit integers)");
            }

            shape[i++] = di;
            count *= di;
            if (count > Array.MaxLength)
            {
                throw new InvalidDataFormatException(source, 8, $"tensor '{name}' has more than {Array.MaxLength} elements");
            }
        }

        var offs = off.EnumerateArray().ToArray();
        if (!offs[0].TryGetInt64(out var begin) || !offs[1].TryGetInt64(out var end) || begin < 0 || end < begin)
        {
            throw new InvalidDataFormatException(source, 8, $"tensor '{name}' has invalid data_offsets {off.GetRawText()}");
        }

        if (end - begin != count * size)
        {
            throw new InvalidDataFormatException(source, 8,
                $"tensor '{name}' of shape [{string.Join(", ", shape)}] and dtype {dtype} needs {count * size} bytes but its data_offsets span {end - begin}");
        }

        return new Entry(name, dtype, shape, begin, end);
    }

    private static int ElementSize(string dtype) => dtype switch
    {
        "F64" => 8,
        "F32" => 4,
        _ => 2,
    };

    private static void Convert(string dtype, ReadOnlySpan<byte> src, Span<float> dst)
    {
        switch (dtype)
        {
            case "F16":
                for (var i = 0; i < dst.Length; i++)
                {
                    dst[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(src.Slice(i * 2, 2));
                }

                break;
            case "BF16":
                for (var i = 0; i < dst.Length; i++)
                {
                    dst[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(src.Slice(i * 2, 2)) << 16);
                }

                break;
            case "F64":
                for (var i = 0; i < dst.Length; i++)
                {
                    dst[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(src.Slice(i * 8, 8));
                }

                break;
            default:
                throw new InvalidOperationException("unreachable dtype " + dtype);
        }
    }

    private static void ReadExactly(Stream stream, Span<byte> buffer, string source, long offset, string what)
    {
        var done = 0;
        while (done < buffer.Length)
        {
            var n = stream.Read(buffer[done..]);
            if (n == 0)
            {
                throw new InvalidDataFormatException(source, offset + done, $"unexpected end of data while reading {what} ({buffer.Length - done} more bytes expected)");
            }

            done += n;
        }
    }
}
