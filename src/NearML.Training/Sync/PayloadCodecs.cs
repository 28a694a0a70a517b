using System.Buffers.Binary;
using NearML.Core;
using NearML.Core.Collectives;

namespace NearML.Training.Sync;

/// <summary>How a pseudo-gradient travels on the wire. The member names are the encodings' one name (in lower case:
/// <c>fp32</c>, <c>fp16</c>, <c>int8</c>, <c>int4</c>), as in the wire enum <c>UpdateEncoding</c> and each codec's
/// <see cref="IPayloadCodec.Name"/>.</summary>
public enum PseudoGradientEncoding
{
    /// <summary>IEEE float32, 4 bytes per value, lossless.</summary>
    Fp32,

    /// <summary>IEEE float16 (binary16), 2 bytes per value; relative error ≤ 2⁻¹¹ in the normal range.</summary>
    Fp16,

    /// <summary>Signed 8-bit codes with one float32 absmax scale per block (see <see cref="BlockQuantizedCodec"/>).</summary>
    Int8,

    /// <summary>Signed 4-bit codes, two per byte, with one float32 absmax scale per block (see <see cref="BlockQuantizedCodec"/>).</summary>
    Int4,
}

/// <summary>Creates the <see cref="IPayloadCodec"/> for a <see cref="PseudoGradientEncoding"/>.</summary>
public static class PayloadCodecs
{
    /// <summary>Gets the codec for <paramref name="encoding"/>.</summary>
    /// <param name="encoding">The encoding.</param>
    /// <param name="blockSize">Values per scale for the integer encodings.</param>
    /// <returns>The codec.</returns>
    public static IPayloadCodec Create(PseudoGradientEncoding encoding, int blockSize = BlockQuantizedCodec.DefaultBlockSize) => encoding switch
    {
        PseudoGradientEncoding.Fp32 => Float32Codec.Instance,
        PseudoGradientEncoding.Fp16 => Float16Codec.Instance,
        PseudoGradientEncoding.Int8 => new BlockQuantizedCodec(8, blockSize),
        PseudoGradientEncoding.Int4 => new BlockQuantizedCodec(4, blockSize),
        _ => throw new ArgumentOutOfRangeException(nameof(encoding), encoding, "Unknown pseudo-gradient encoding."),
    };
}

/// <summary>IEEE binary16 wire encoding (round to nearest even); values beyond ±65504 become infinite and are then
/// rejected by the reducer as non-finite.</summary>
public sealed class Float16Codec : IPayloadCodec
{
    /// <summary>Gets the shared instance.</summary>
    public static Float16Codec Instance { get; } = new();

    /// <inheritdoc/>
    public string Name => "fp16";

    /// <inheritdoc/>
    public int GetEncodedLength(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        return checked(count * 2);
    }

    /// <inheritdoc/>
    public void Encode(ReadOnlySpan<float> values, Span<byte> destination)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(destination.Length, GetEncodedLength(values.Length), nameof(destination));
        for (var i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteHalfLittleEndian(destination.Slice(2 * i, 2), (Half)values[i]);
        }
    }

    /// <inheritdoc/>
    public void Decode(ReadOnlySpan<byte> source, Span<float> destination)
    {
        if (source.Length != GetEncodedLength(destination.Length))
        {
            throw new InvalidDataFormatException("fp16 payload", 0, $"expected {GetEncodedLength(destination.Length)} bytes for {destination.Length} values, got {source.Length}");
        }

        for (var i = 0; i < destination.Length; i++)
        {
            destination[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(source.Slice(2 * i, 2));
        }
    }
}

/// <summary>
/// Symmetric absmax block quantization. The values are cut into blocks of <see cref="BlockSize"/> (the last may be
/// shorter); each block stores its scale s = max|x| / Q as float32, where Q = 127 for 8 bits and 7 for 4 bits, and
/// each value the code q = round(x / s) (ties to even) in [−Q, Q]. Decoding gives q·s, so the error of every value is
/// at most s/2 = max|x|/(2Q) of its block: 1/254 of the block's absmax for int8, 1/14 for int4. Layout: all block
/// scales (little-endian float32), then the codes: one signed byte each (int8), or two per byte (int4, low nibble
/// first, stored as q + 8). Accumulation of decoded values happens in float32 at the reducer.
/// </summary>
public sealed class BlockQuantizedCodec : IPayloadCodec
{
    /// <summary>The default number of values per scale.</summary>
    public const int DefaultBlockSize = 64;

    private readonly int _q;

    /// <summary>Creates a codec.</summary>
    /// <param name="bits">8 or 4.</param>
    /// <param name="blockSize">Values per scale (≥ 2, even for 4 bits).</param>
    public BlockQuantizedCodec(int bits, int blockSize = DefaultBlockSize)
    {
        if (bits is not (8 or 4))
        {
            throw new ArgumentOutOfRangeException(nameof(bits), bits, "Only 8-bit and 4-bit codes are supported.");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 2);
        if (bits == 4 && blockSize % 2 != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "4-bit blocks must hold an even number of values.");
        }

        Bits = bits;
        BlockSize = blockSize;
        _q = bits == 8 ? 127 : 7;
    }

    /// <summary>Gets the code width in bits.</summary>
    public int Bits { get; }

    /// <summary>Gets the number of values that share one scale.</summary>
    public int BlockSize { get; }

    /// <inheritdoc/>
    /// <remarks><c>int8</c> or <c>int4</c> with the default block of <see cref="DefaultBlockSize"/> values (the wire
    /// encodings of those names); <c>int8-b</c><i>N</i> or <c>int4-b</c><i>N</i> for another block size.</remarks>
    public string Name => BlockSize == DefaultBlockSize ? $"int{Bits}" : $"int{Bits}-b{BlockSize}";

    /// <inheritdoc/>
    public int GetEncodedLength(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var blocks = (count + BlockSize - 1) / BlockSize;
        var codes = Bits == 8 ? count : (count + 1) / 2;
        return checked((blocks * 4) + codes);
    }

    /// <inheritdoc/>
    public void Encode(ReadOnlySpan<float> values, Span<byte> destination)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(destination.Length, GetEncodedLength(values.Length), nameof(destination));
        var blocks = (values.Length + BlockSize - 1) / BlockSize;
        var codes = destination[(blocks * 4)..];
        if (Bits == 4)
        {
            codes[..((values.Length + 1) / 2)].Clear();
        }

        for (var b = 0; b < blocks; b++)
        {
            var start = b * BlockSize;
            var block = values.Slice(start, Math.Min(BlockSize, values.Length - start));
            var absmax = 0f;
            foreach (var v in block)
            {
                var a = MathF.Abs(v);
                if (a > absmax || float.IsNaN(a))
                {
                    absmax = a;
                }
            }

            var scale = absmax / _q;
            BinaryPrimitives.WriteSingleLittleEndian(destination.Slice(b * 4, 4), scale);
            for (var i = 0; i < block.Length; i++)
            {
                var q = scale > 0 && float.IsFinite(scale) ? (int)MathF.Round(block[i] / scale, MidpointRounding.ToEven) : 0;
                q = Math.Clamp(q, -_q, _q);
                var index = start + i;
                if (Bits == 8)
                {
                    codes[index] = unchecked((byte)(sbyte)q);
                }
                else
                {
                    var nibble = (byte)(q + 8);
                    codes[index >> 1] |= (byte)((index & 1) == 0 ? nibble : nibble << 4);
                }
            }
        }
    }

    /// <inheritdoc/>
    public void Decode(ReadOnlySpan<byte> source, Span<float> destination)
    {
        var expected = GetEncodedLength(destination.Length);
        if (source.Length != expected)
        {
            throw new InvalidDataFormatException(Name + " payload", 0, $"expected {expected} bytes for {destination.Length} values, got {source.Length}");
        }

        var blocks = (destination.Length + BlockSize - 1) / BlockSize;
        var codes = source[(blocks * 4)..];
        for (var b = 0; b < blocks; b++)
        {
            var scale = BinaryPrimitives.ReadSingleLittleEndian(source.Slice(b * 4, 4));
            if (scale < 0)
            {
                throw new InvalidDataFormatException(Name + " payload", b * 4, $"block {b} has a negative scale {scale}");
            }

            var start = b * BlockSize;
            var end = Math.Min(start + BlockSize, destination.Length);
            for (var index = start; index < end; index++)
            {
                int q;
                if (Bits == 8)
                {
                    q = unchecked((sbyte)codes[index]);
                }
                else
                {
                    var packed = codes[index >> 1];
                    q = ((index & 1) == 0 ? packed & 0xF : packed >> 4) - 8;
                }

                if (q < -_q || q > _q)
                {
                    throw new InvalidDataFormatException(Name + " payload", (blocks * 4) + (Bits == 8 ? index : index >> 1),
                        $"code {q} of value {index} is outside [-{_q}, {_q}]");
                }

                destination[index] = q * scale;
            }
        }
    }
}
