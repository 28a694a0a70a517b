using System.Buffers.Binary;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

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

        int done = 0;
        if (bits <= 25 && Avx2.IsSupported && !ForceScalar)
        {
            done = UnpackAddAvx2(source, bits, accumulator);
        }

        UnpackAddScalar(source[(int)((long)done * bits / 8)..], bits, accumulator[done..]);
    }

    /// <summary>Gets or sets a value forcing the scalar unpacking path; for tests.</summary>
    internal static bool ForceScalar { get; set; }

    /// <summary>
    /// Eight elements (exactly <paramref name="bits"/> bytes) per step: the bytes of elements 0–3 and 4–7 are loaded
    /// into the two 128-bit lanes, one in-lane byte shuffle puts each element's (at most 4) bytes into its 32-bit
    /// lane, a per-lane variable shift aligns it and a mask keeps b bits. Returns the number of elements done
    /// (a multiple of 8; the rest is left to the scalar path so no load reads past the source).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int UnpackAddAvx2(ReadOnlySpan<byte> source, int bits, Span<uint> accumulator)
    {
        int half = (4 * bits) >> 3;
        Span<byte> shuffle = stackalloc byte[32];
        Span<uint> shifts = stackalloc uint[8];
        for (int j = 0; j < 8; j++)
        {
            int bit = (j * bits) - (j < 4 ? 0 : 8 * half);
            for (int q = 0; q < 4; q++)
            {
                shuffle[(4 * j) + q] = (byte)((bit >> 3) + q);
            }

            shifts[j] = (uint)(bit & 7);
        }

        var shuffleMask = Vector256.Create<byte>(shuffle);
        var shiftCounts = Vector256.Create<uint>(shifts);
        var valueMask = Vector256.Create((1u << bits) - 1);
        int groups = accumulator.Length / 8;
        ref byte src = ref MemoryMarshal.GetReference(source);
        ref uint acc = ref MemoryMarshal.GetReference(accumulator);
        int g = 0;
        for (; g < groups; g++)
        {
            int at = g * bits;
            if (at + half + 16 > source.Length)
            {
                break;
            }

            var lo = Vector128.LoadUnsafe(ref src, (nuint)at);
            var hi = Vector128.LoadUnsafe(ref src, (nuint)(at + half));
            var gathered = Avx2.Shuffle(Vector256.Create(lo, hi), shuffleMask);
            var values = Avx2.ShiftRightLogicalVariable(gathered.AsUInt32(), shiftCounts) & valueMask;
            ref uint a = ref Unsafe.Add(ref acc, g * 8);
            (Vector256.LoadUnsafe(ref a) + values).StoreUnsafe(ref a);
        }

        return g * 8;
    }

    private static void UnpackAddScalar(ReadOnlySpan<byte> source, int bits, Span<uint> accumulator)
    {
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
