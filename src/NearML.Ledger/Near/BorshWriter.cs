using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace NearML.Ledger;

/// <summary>
/// Writes values in Borsh (Binary Object Representation Serializer for Hashing), the canonical little-endian
/// encoding NEAR uses for transactions: fixed-width integers, <c>u32</c>-length-prefixed strings, byte vectors
/// and sequences, one-byte option and enum tags.
/// </summary>
public sealed class BorshWriter
{
    private readonly ArrayBufferWriter<byte> _buffer;

    /// <summary>Initializes a new writer.</summary>
    /// <param name="initialCapacity">The initial buffer size in bytes.</param>
    public BorshWriter(int initialCapacity = 256)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(initialCapacity);
        _buffer = new ArrayBufferWriter<byte>(initialCapacity);
    }

    /// <summary>Gets the number of bytes written so far.</summary>
    public int Length => _buffer.WrittenCount;

    /// <summary>Gets the bytes written so far (valid until the next write or <see cref="Clear"/>).</summary>
    public ReadOnlySpan<byte> WrittenSpan => _buffer.WrittenSpan;

    /// <summary>Discards everything written, keeping the buffer for reuse.</summary>
    public void Clear() => _buffer.ResetWrittenCount();

    /// <summary>Returns a copy of the bytes written so far.</summary>
    /// <returns>The encoded bytes.</returns>
    public byte[] ToArray() => _buffer.WrittenSpan.ToArray();

    /// <summary>Writes a <c>u8</c>.</summary>
    /// <param name="value">The value.</param>
    public void WriteU8(byte value) { _buffer.GetSpan(1)[0] = value; _buffer.Advance(1); }

    /// <summary>Writes a <c>bool</c> as one byte (0 or 1).</summary>
    /// <param name="value">The value.</param>
    public void WriteBool(bool value) => WriteU8(value ? (byte)1 : (byte)0);

    /// <summary>Writes a little-endian <c>u32</c>.</summary>
    /// <param name="value">The value.</param>
    public void WriteU32(uint value) { BinaryPrimitives.WriteUInt32LittleEndian(_buffer.GetSpan(4), value); _buffer.Advance(4); }

    /// <summary>Writes a little-endian <c>u64</c>.</summary>
    /// <param name="value">The value.</param>
    public void WriteU64(ulong value) { BinaryPrimitives.WriteUInt64LittleEndian(_buffer.GetSpan(8), value); _buffer.Advance(8); }

    /// <summary>Writes a little-endian <c>i64</c>.</summary>
    /// <param name="value">The value.</param>
    public void WriteI64(long value) { BinaryPrimitives.WriteInt64LittleEndian(_buffer.GetSpan(8), value); _buffer.Advance(8); }

    /// <summary>Writes a little-endian <c>u128</c>.</summary>
    /// <param name="value">The value.</param>
    public void WriteU128(UInt128 value) { BinaryPrimitives.WriteUInt128LittleEndian(_buffer.GetSpan(16), value); _buffer.Advance(16); }

    /// <summary>Writes a little-endian IEEE-754 <c>f64</c>.</summary>
    /// <param name="value">The value; NaN is rejected as Borsh requires.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="value"/> is NaN.</exception>
    public void WriteF64(double value)
    {
        if (double.IsNaN(value))
        {
            throw new ArgumentOutOfRangeException(nameof(value), "Borsh does not encode NaN.");
        }

        BinaryPrimitives.WriteDoubleLittleEndian(_buffer.GetSpan(8), value);
        _buffer.Advance(8);
    }

    /// <summary>Writes bytes with no length prefix (a fixed-size array such as a 32-byte hash).</summary>
    /// <param name="bytes">The bytes.</param>
    public void WriteFixed(ReadOnlySpan<byte> bytes) => _buffer.Write(bytes);

    /// <summary>Writes a <c>Vec&lt;u8&gt;</c>: a <c>u32</c> length, then the bytes.</summary>
    /// <param name="bytes">The bytes.</param>
    public void WriteBytes(ReadOnlySpan<byte> bytes)
    {
        WriteU32(checked((uint)bytes.Length));
        _buffer.Write(bytes);
    }

    /// <summary>Writes a <c>String</c>: a <c>u32</c> byte length, then the UTF-8 bytes.</summary>
    /// <param name="value">The string.</param>
    public void WriteString(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        int byteCount = Encoding.UTF8.GetByteCount(value);
        WriteU32((uint)byteCount);
        Span<byte> span = _buffer.GetSpan(byteCount);
        int written = Encoding.UTF8.GetBytes(value, span);
        _buffer.Advance(written);
    }
}
