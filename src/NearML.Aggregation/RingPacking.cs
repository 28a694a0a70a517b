using System.Buffers.Binary;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
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

        // Stream bits through a 64-bit register and store 32 bits at a time.
        ulong mask = (1UL << bits) - 1;
        ulong acc = 0;
        int filled = 0, o = 0;
        ref byte dst = ref MemoryMarshal.GetReference(destination);
        foreach (uint v in values)
        {
            acc |= (v & mask) << filled;
            filled += bits;
            if (filled >= 32)
            {
                Unsafe.WriteUnaligned(ref Unsafe.Add(ref dst, o), BitConverter.IsLittleEndian ? (uint)acc : BinaryPrimitives.ReverseEndianness((uint)acc));
                o += 4;
                acc >>= 32;
                filled -= 32;
            }
        }

        while (filled > 0)
        {
            destination[o++] = (byte)acc;
            acc >>= 8;
            filled -= 8;
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

        // Stream: refill a 64-bit register 32 bits at a time, peel one element per step.
        ulong mask = (1UL << bits) - 1;
        int n = accumulator.Length;
        int words = source.Length / 4;
        var src32 = MemoryMarshal.Cast<byte, uint>(source[..(words * 4)]);
        int w = 0, tail = words * 4;
        ulong acc = 0;
        int filled = 0;
        ref uint a0 = ref MemoryMarshal.GetReference(accumulator);
        for (int i = 0; i < n; i++)
        {
            if (filled < bits)
            {
                if (w < words)
                {
                    uint next = BitConverter.IsLittleEndian ? src32[w] : BinaryPrimitives.ReverseEndianness(src32[w]);
                    acc |= (ulong)next << filled;
                    filled += 32;
                    w++;
                }
                else
                {
                    while (filled < bits && tail < source.Length)
                    {
                        acc |= (ulong)source[tail++] << filled;
                        filled += 8;
                    }
                }
            }

            Unsafe.Add(ref a0, i) += (uint)(acc & mask);
            acc >>= bits;
            filled -= bits;
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
