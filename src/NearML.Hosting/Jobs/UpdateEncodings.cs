using System.Diagnostics.CodeAnalysis;
using NearML.Core;
using NearML.Core.Collectives;
using NearML.Core.Contracts;
using NearML.Training.Sync;

namespace NearML.Hosting.Jobs;

/// <summary>
/// The encodings of a pseudo-gradient in an <c>Update</c> frame: the wire enum <see cref="UpdateEncoding"/> and its one
/// text name, <c>fp32</c>, <c>fp16</c>, <c>int8</c> or <c>int4</c> (the enum value name in lower case; also the name of
/// NearML.Training's <see cref="PseudoGradientEncoding"/> member and of its codec). The integer encodings are
/// <see cref="BlockQuantizedCodec"/> with one absmax scale per block of <see cref="BlockSize"/> values. Both ends use these
/// functions, so <c>HyperParameters.update_encoding</c> fixes the byte layout.
/// </summary>
public static class UpdateEncodings
{
    /// <summary>The default encoding of a job.</summary>
    public const UpdateEncoding Default = UpdateEncoding.Int8;

    /// <summary>The name of <see cref="Default"/>.</summary>
    public const string DefaultName = "int8";

    /// <summary>The values per scale of the integer encodings.</summary>
    public const int BlockSize = BlockQuantizedCodec.DefaultBlockSize;

    private static readonly IPayloadCodec Fp16 = PayloadCodecs.Create(PseudoGradientEncoding.Fp16);
    private static readonly IPayloadCodec Int8 = PayloadCodecs.Create(PseudoGradientEncoding.Int8, BlockSize);
    private static readonly IPayloadCodec Int4 = PayloadCodecs.Create(PseudoGradientEncoding.Int4, BlockSize);

    /// <summary>Gets the known encoding names, in <see cref="UpdateEncoding"/> order.</summary>
    public static IReadOnlyList<string> Names { get; } = ["fp32", "fp16", "int8", "int4"];

    /// <summary>Gets a value indicating whether <paramref name="name"/> is the name of an encoding (exact, lower case).</summary>
    /// <param name="name">The name.</param>
    /// <returns><see langword="true"/> when known.</returns>
    public static bool IsKnown([NotNullWhen(true)] string? name) => TryParse(name, out _);

    /// <summary>Gets the encoding named <paramref name="name"/>.</summary>
    /// <param name="name">A name from <see cref="Names"/>.</param>
    /// <param name="encoding">The encoding, or <see cref="UpdateEncoding.Unspecified"/>.</param>
    /// <returns><see langword="true"/> when the name is known.</returns>
    public static bool TryParse([NotNullWhen(true)] string? name, out UpdateEncoding encoding)
    {
        encoding = name switch
        {
            "fp32" => UpdateEncoding.Fp32,
            "fp16" => UpdateEncoding.Fp16,
            "int8" => UpdateEncoding.Int8,
            "int4" => UpdateEncoding.Int4,
            _ => UpdateEncoding.Unspecified,
        };
        return encoding != UpdateEncoding.Unspecified;
    }

    /// <summary>Gets the encoding named <paramref name="name"/>.</summary>
    /// <param name="name">A name from <see cref="Names"/>.</param>
    /// <returns>The encoding.</returns>
    /// <exception cref="JobConfigurationException">The name is unknown.</exception>
    public static UpdateEncoding Parse(string? name) => TryParse(name, out var encoding)
        ? encoding
        : throw new JobConfigurationException($"unknown update encoding '{name}' (known: {string.Join(", ", Names)}).");

    /// <summary>Gets the name of an encoding.</summary>
    /// <param name="encoding">The encoding.</param>
    /// <returns><c>fp32</c>, <c>fp16</c>, <c>int8</c> or <c>int4</c>.</returns>
    /// <exception cref="JobConfigurationException">The value is <see cref="UpdateEncoding.Unspecified"/> or unknown.</exception>
    public static string NameOf(UpdateEncoding encoding) => encoding switch
    {
        UpdateEncoding.Fp32 => "fp32",
        UpdateEncoding.Fp16 => "fp16",
        UpdateEncoding.Int8 => "int8",
        UpdateEncoding.Int4 => "int4",
        _ => throw Unknown(encoding),
    };

    /// <summary>Formats an encoding for a message: its name, or <c>unspecified</c>, or <c>unknown (</c><i>n</i><c>)</c>.</summary>
    /// <param name="encoding">Any value, e.g. from a peer's frame.</param>
    /// <returns>The text.</returns>
    public static string Format(UpdateEncoding encoding) => encoding switch
    {
        UpdateEncoding.Fp32 or UpdateEncoding.Fp16 or UpdateEncoding.Int8 or UpdateEncoding.Int4 => $"'{NameOf(encoding)}'",
        UpdateEncoding.Unspecified => "unspecified",
        _ => $"unknown ({(int)encoding})",
    };

    /// <summary>Gets NearML.Training's member for an encoding.</summary>
    /// <param name="encoding">The encoding.</param>
    /// <returns>The member of the same name.</returns>
    /// <exception cref="JobConfigurationException">The value is <see cref="UpdateEncoding.Unspecified"/> or unknown.</exception>
    public static PseudoGradientEncoding ToTraining(UpdateEncoding encoding) => encoding switch
    {
        UpdateEncoding.Fp32 => PseudoGradientEncoding.Fp32,
        UpdateEncoding.Fp16 => PseudoGradientEncoding.Fp16,
        UpdateEncoding.Int8 => PseudoGradientEncoding.Int8,
        UpdateEncoding.Int4 => PseudoGradientEncoding.Int4,
        _ => throw Unknown(encoding),
    };

    /// <summary>Gets the encoding whose codec is <paramref name="codec"/> (by the codec's name).</summary>
    /// <param name="codec">A codec.</param>
    /// <param name="encoding">The encoding, or <see cref="UpdateEncoding.Unspecified"/>.</param>
    /// <returns><see langword="true"/> when the codec is one of the wire encodings.</returns>
    public static bool TryFromCodec(IPayloadCodec codec, out UpdateEncoding encoding)
    {
        ArgumentNullException.ThrowIfNull(codec);
        return TryParse(codec.Name, out encoding);
    }

    /// <summary>Gets the codec of an encoding.</summary>
    /// <param name="encoding">The encoding.</param>
    /// <returns>The codec.</returns>
    /// <exception cref="JobConfigurationException">The value is <see cref="UpdateEncoding.Unspecified"/> or unknown.</exception>
    public static IPayloadCodec GetCodec(UpdateEncoding encoding) => encoding switch
    {
        UpdateEncoding.Fp32 => Float32Codec.Instance,
        UpdateEncoding.Fp16 => Fp16,
        UpdateEncoding.Int8 => Int8,
        UpdateEncoding.Int4 => Int4,
        _ => throw Unknown(encoding),
    };

    /// <summary>Gets the payload size of <paramref name="count"/> values.</summary>
    /// <param name="encoding">The encoding.</param>
    /// <param name="count">The number of values.</param>
    /// <returns>Bytes.</returns>
    public static int GetEncodedLength(UpdateEncoding encoding, int count) => GetCodec(encoding).GetEncodedLength(count);

    /// <summary>Encodes a pseudo-gradient.</summary>
    /// <param name="encoding">The encoding.</param>
    /// <param name="delta">The values.</param>
    /// <param name="destination">At least <see cref="GetEncodedLength"/> bytes.</param>
    public static void Encode(UpdateEncoding encoding, ReadOnlySpan<float> delta, Span<byte> destination) => GetCodec(encoding).Encode(delta, destination);

    /// <summary>Encodes a pseudo-gradient into a new array.</summary>
    /// <param name="encoding">The encoding.</param>
    /// <param name="delta">The values.</param>
    /// <returns>The payload.</returns>
    public static byte[] Encode(UpdateEncoding encoding, ReadOnlySpan<float> delta)
    {
        var codec = GetCodec(encoding);
        var payload = new byte[codec.GetEncodedLength(delta.Length)];
        codec.Encode(delta, payload);
        return payload;
    }

    /// <summary>Decodes a payload into exactly <c>destination.Length</c> values.</summary>
    /// <param name="encoding">The encoding.</param>
    /// <param name="payload">The payload.</param>
    /// <param name="destination">The values.</param>
    /// <exception cref="JobConfigurationException">The value is <see cref="UpdateEncoding.Unspecified"/> or unknown.</exception>
    /// <exception cref="InvalidDataFormatException">The payload has the wrong length for <c>destination.Length</c> values, or holds invalid codes.</exception>
    public static void Decode(UpdateEncoding encoding, ReadOnlySpan<byte> payload, Span<float> destination)
    {
        var codec = GetCodec(encoding);
        var expected = codec.GetEncodedLength(destination.Length);
        if (payload.Length != expected)
        {
            throw new InvalidDataFormatException($"{codec.Name} update", 0, $"expected {expected} bytes for {destination.Length} values, got {payload.Length}");
        }

        codec.Decode(payload, destination);
    }

    private static JobConfigurationException Unknown(UpdateEncoding encoding) =>
        new($"update encoding {encoding} is not one of {string.Join(", ", Names)}.");
}
