using System.Buffers.Binary;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace NearML.Aggregation;

/// <summary>
/// Bit-packing of ring elements of Z_{2^b} (1 ≤ b ≤ 32): element i occupies bits [i·b, (i+1)·b) of a little-endian
/// bit stream, so a vector of L elements takes ⌈L·b/8⌉ bytes on the wire.
/// </summary>
public static class RingPacking
{
    /// <summary>Gets the packed size in bytes of <paramref name="count"/> elements of <paramref name="bits"/> bits.</summary>
    /// <param name="count">Number of elements.</param>
    /// <param name="bits">Bits per element (1..32).</param>
    /// <returns>⌈count·bits/8⌉.</returns>
    public static int PackedLength(int count, int bits)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ValidateBits(bits);
        return checked((int)(((long)count * bits + 7) / 8));
    }

    /// <summary>Packs the low <paramref name="bits"/> bits of each value.</summary>
    /// <param name="values">The ring elements.</param>
    /// <param name="bits">Bits per element (1..32).</param>
    /// <param name="destination">At least <see cref="PackedLength"/> bytes.</param>
    public static void Pack(ReadOnlySpan<uint> values, int bits, Span<byte> destination)
    {
        int len = PackedLength(values.Length, bits);
        if (destination.Length < len)
        {
            throw new ArgumentException($"destination holds {destination.Length} bytes, {len} needed", nameof(destination));
        }

        if (bits == 32)
        {
            MemoryMarshal.AsBytes(values).CopyTo(destination);
            if (!BitConverter.IsLittleEndian)
            {
                BinaryPrimitives.ReverseEndianness(MemoryMarshal.Cast<byte, uint>(destination[..len]), MemoryMarshal.Cast<byte, uint>(destination[..len]));
            }

            return;
        }

        ulong mask = (1UL << bits) - 1;
        ulong acc = 0;
        int filled = 0, o = 0;
        foreach (uint v in values)
        {
            acc |= (v & mask) << filled;
            filled += bits;
            while (filled >= 8)
            {
                destination[o++] = (byte)acc;
                acc >>= 8;
                filled -= 8;
            }
        }

        if (filled > 0)
        {
            destination[o] = (byte)acc;
        }
    }

    /// <summary>Unpacks <paramref name="destination"/>.Length elements.</summary>
    /// <param name="source">The packed bytes (exactly <see cref="PackedLength"/> bytes).</param>
    /// <param name="bits">Bits per element (1..32).</param>
    /// <param name="destination">Receives the elements.</param>
    public static void Unpack(ReadOnlySpan<byte> source, int bits, Span<uint> destination)
    {
        destination.Clear();
        UnpackAdd(source, bits, destination);
    }

    /// <summary>Unpacks and adds (mod 2^32) into <paramref name="accumulator"/>: the server's hot path for summing inputs.</summary>
    /// <param name="source">The packed bytes (exactly <see cref="PackedLength"/> bytes).</param>
    /// <param name="bits">Bits per element (1..32).</param>
    /// <param name="accumulator">Elements to add to.</param>
    public static void UnpackAdd(ReadOnlySpan<byte> source, int bits, Span<uint> accumulator)
    {
        int len = PackedLength(accumulator.Length, bits);
        if (source.Length != len)
        {
            throw new ArgumentException($"packed vector has {source.Length} bytes, {len} expected for {accumulator.Length} elements of {bits} bits", nameof(source));
        }

        if (bits == 32 && BitConverter.IsLittleEndian)
        {
            TensorPrimitives.Add(accumulator, MemoryMarshal.Cast<byte, uint>(source), accumulator);
            return;
        }

        uint mask = bits == 32 ? uint.MaxValue : (1u << bits) - 1;
        int n = accumulator.Length;
        int i = 0;
        long bitPos = 0;
        // Fast path: read 8 bytes at a time while at least 8 bytes remain after the current position.
        for (; i < n; i++, bitPos += bits)
        {
            int byteIndex = (int)(bitPos >> 3);
            if (byteIndex + 8 > source.Length)
            {
                break;
            }

            ulong w = BinaryPrimitives.ReadUInt64LittleEndian(source[byteIndex..]);
            accumulator[i] += (uint)(w >> (int)(bitPos & 7)) & mask;
        }

        for (; i < n; i++, bitPos += bits)
        {
            int byteIndex = (int)(bitPos >> 3);
            ulong w = 0;
            for (int b = 0; b < 8 && byteIndex + b < source.Length; b++)
            {
                w |= (ulong)source[byteIndex + b] << (8 * b);
            }

            accumulator[i] += (uint)(w >> (int)(bitPos & 7)) & mask;
        }
    }

    internal static void ValidateBits(int bits)
    {
        if (bits is < 1 or > 32)
        {
            throw new ArgumentOutOfRangeException(nameof(bits), bits, "ring bits must be in 1..32");
        }
    }
}
