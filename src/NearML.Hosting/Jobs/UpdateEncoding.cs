using NearML.Core;
using NearML.Core.Collectives;
using NearML.Training.Sync;

namespace NearML.Hosting.Jobs;

/// <summary>
/// The encodings of a pseudo-gradient in an <c>Update</c> frame, by wire name: <c>fp32</c>, <c>fp16</c>, <c>int8</c> and
/// <c>int4</c> (NearML.Training's <see cref="BlockQuantizedCodec"/>, absmax scale per block of 64 values). Both ends use
/// these functions, so the name in <c>HyperParameters.compression</c> fixes the byte layout.
/// </summary>
public static class UpdateEncoding
{
    /// <summary>The default encoding of a job.</summary>
    public const string Default = "int8";

    /// <summary>The values per scale of the integer encodings.</summary>
    public const int BlockSize = BlockQuantizedCodec.DefaultBlockSize;

    private static readonly IPayloadCodec Fp16 = PayloadCodecs.Create(PseudoGradientEncoding.Float16);
    private static readonly IPayloadCodec Int8 = PayloadCodecs.Create(PseudoGradientEncoding.Int8, BlockSize);
    private static readonly IPayloadCodec Int4 = PayloadCodecs.Create(PseudoGradientEncoding.Int4, BlockSize);

    /// <summary>Gets the known encoding names.</summary>
    public static IReadOnlyList<string> Names { get; } = ["fp32", "fp16", "int8", "int4"];

    /// <summary>Gets a value indicating whether <paramref name="encoding"/> is a known name.</summary>
    /// <param name="encoding">The name.</param>
    /// <returns><see langword="true"/> when known.</returns>
    public static bool IsKnown(string? encoding) => encoding is not null && Names.Contains(encoding);

    /// <summary>Gets the codec of an encoding.</summary>
    /// <param name="encoding">The wire name.</param>
    /// <returns>The codec.</returns>
    /// <exception cref="JobConfigurationException">The name is unknown.</exception>
    public static IPayloadCodec GetCodec(string encoding) => encoding switch
    {
        "fp32" => Float32Codec.Instance,
        "fp16" => Fp16,
        "int8" => Int8,
        "int4" => Int4,
        _ => throw new JobConfigurationException($"unknown update encoding '{encoding}' (known: {string.Join(", ", Names)})."),
    };

    /// <summary>Gets the payload size of <paramref name="count"/> values.</summary>
    /// <param name="encoding">The wire name.</param>
    /// <param name="count">The number of values.</param>
    /// <returns>Bytes.</returns>
    public static int GetEncodedLength(string encoding, int count) => GetCodec(encoding).GetEncodedLength(count);

    /// <summary>Encodes a pseudo-gradient.</summary>
    /// <param name="encoding">The wire name.</param>
    /// <param name="delta">The values.</param>
    /// <param name="destination">At least <see cref="GetEncodedLength"/> bytes.</param>
    public static void Encode(string encoding, ReadOnlySpan<float> delta, Span<byte> destination) => GetCodec(encoding).Encode(delta, destination);

    /// <summary>Encodes a pseudo-gradient into a new array.</summary>
    /// <param name="encoding">The wire name.</param>
    /// <param name="delta">The values.</param>
    /// <returns>The payload.</returns>
    public static byte[] Encode(string encoding, ReadOnlySpan<float> delta)
    {
        var codec = GetCodec(encoding);
        var payload = new byte[codec.GetEncodedLength(delta.Length)];
        codec.Encode(delta, payload);
        return payload;
    }

    /// <summary>Decodes a payload into exactly <c>destination.Length</c> values.</summary>
    /// <param name="encoding">The wire name.</param>
    /// <param name="payload">The payload.</param>
    /// <param name="destination">The values.</param>
    /// <exception cref="JobConfigurationException">The name is unknown.</exception>
    /// <exception cref="InvalidDataFormatException">The payload has the wrong length for <c>destination.Length</c> values, or holds invalid codes.</exception>
    public static void Decode(string encoding, ReadOnlySpan<byte> payload, Span<float> destination)
    {
        var codec = GetCodec(encoding);
        var expected = codec.GetEncodedLength(destination.Length);
        if (payload.Length != expected)
        {
            throw new InvalidDataFormatException($"{encoding} update", 0, $"expected {expected} bytes for {destination.Length} values, got {payload.Length}");
        }

        codec.Decode(payload, destination);
    }
}
