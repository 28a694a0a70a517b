using System.Buffers.Binary;
using System.Text;
using NearML.Core;

namespace NearML.Ledger;

/// <summary>
/// Reads Borsh-encoded values from a byte buffer. Every failure (truncation, an over-long length, invalid UTF-8,
/// an unknown tag) throws <see cref="InvalidDataFormatException"/> naming the byte offset.
/// </summary>
public sealed class BorshReader
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private readonly ReadOnlyMemory<byte> _data;
    private readonly string _source;

    /// <summary>Initializes a new reader.</summary>
    /// <param name="data">The encoded bytes.</param>
    /// <param name="source">A description of where the bytes come from, used in error messages.</param>
    public BorshReader(ReadOnlyMemory<byte> data, string source = "borsh")
    {
        ArgumentNullException.ThrowIfNull(source);
        _data = data;
        _source = source;
    }

    /// <summary>Gets the current byte offset.</summary>
    public int Position { get; private set; }

    /// <summary>Gets the number of bytes not yet read.</summary>
    public int Remaining => _data.Length - Position;

    /// <summary>Throws unless every byte has been consumed.</summary>
    /// <exception cref="InvalidDataFormatException">Bytes remain after the value.</exception>
    public void EnsureEnd()
    {
        if (Remaining != 0)
        {
            throw Fail($"{Remaining} trailing byte(s) after the value");
        }
    }

    /// <summary>Reads a <c>u8</c>.</summary>
    /// <returns>The value.</returns>
    public byte ReadU8() => Take(1)[0];

    /// <summary>Reads a <c>bool</c> (0 or 1).</summary>
    /// <returns>The value.</returns>
    public bool ReadBool()
    {
        int at = Position;
        byte b = ReadU8();
        return b switch
        {
            0 => false,
            1 => true,
            _ => throw new InvalidDataFormatException(_source, at, $"bool byte is {b}, expected 0 or 1"),
        };
    }

    /// <summary>Reads a little-endian <c>u32</c>.</summary>
    /// <returns>The value.</returns>
    public uint ReadU32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));

    /// <summary>Reads a little-endian <c>u64</c>.</summary>
    /// <returns>The value.</returns>
    public ulong ReadU64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));

    /// <summary>Reads a little-endian <c>i64</c>.</summary>
    /// <returns>The value.</returns>
    public long ReadI64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));

    /// <summary>Reads a little-endian <c>u128</c>.</summary>
    /// <returns>The value.</returns>
    public UInt128 ReadU128() => BinaryPrimitives.ReadUInt128LittleEndian(Take(16));

    /// <summary>Reads a little-endian <c>f64</c>.</summary>
    /// <returns>The value.</returns>
    public double ReadF64()
    {
        int at = Position;
        double v = BinaryPrimitives.ReadDoubleLittleEndian(Take(8));
        return double.IsNaN(v) ? throw new InvalidDataFormatException(_source, at, "f64 is NaN, which Borsh forbids") : v;
    }

    /// <summary>Reads <paramref name="length"/> bytes with no length prefix.</summary>
    /// <param name="length">The number of bytes.</param>
    /// <returns>A copy of the bytes.</returns>
    public byte[] ReadFixed(int length) => Take(length).ToArray();

    /// <summary>Reads a <c>Vec&lt;u8&gt;</c>.</summary>
    /// <returns>A copy of the bytes.</returns>
    public byte[] ReadBytes()
    {
        int length = ReadLength("byte vector");
        return Take(length).ToArray();
    }

    /// <summary>Reads a UTF-8 <c>String</c>.</summary>
    /// <returns>The string.</returns>
    public string ReadString()
    {
        int length = ReadLength("string");
        int at = Position;
        ReadOnlySpan<byte> bytes = Take(length);
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException ex)
        {
            throw new InvalidDataFormatException(_source, at, "string is not valid UTF-8", ex);
        }
    }

    /// <summary>Reads a sequence length (<c>u32</c>) and checks it against the bytes left.</summary>
    /// <param name="what">What the length counts, for the error message.</param>
    /// <param name="minElementSize">The smallest possible encoded size of one element.</param>
    /// <returns>The length.</returns>
    public int ReadLength(string what, int minElementSize = 1)
    {
        int at = Position;
        uint length = ReadU32();
        if ((ulong)length * (ulong)Math.Max(minElementSize, 0) > (ulong)Remaining)
        {
            throw new InvalidDataFormatException(_source, at, $"{what} length {length} exceeds the {Remaining} byte(s) left");
        }

        return (int)length;
    }

    /// <summary>Creates the exception for a malformed value at the current offset.</summary>
    /// <param name="message">What is wrong.</param>
    /// <returns>The exception to throw.</returns>
    public InvalidDataFormatException Fail(string message) => new(_source, Position, message);

    /// <summary>Creates the exception for a malformed value at a given offset.</summary>
    /// <param name="offset">The byte offset.</param>
    /// <param name="message">What is wrong.</param>
    /// <returns>The exception to throw.</returns>
    public InvalidDataFormatException FailAt(int offset, string message) => new(_source, offset, message);

    private ReadOnlySpan<byte> Take(int length)
    {
        if (length < 0 || length > Remaining)
        {
            throw new InvalidDataFormatException(_source, Position, $"needs {length} byte(s) but only {Remaining} remain");
        }

        ReadOnlySpan<byte> span = _data.Span.Slice(Position, length);
        Position += length;
        return span;
    }
}
