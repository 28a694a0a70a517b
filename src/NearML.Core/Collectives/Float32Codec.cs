using System.Runtime.InteropServices;

namespace NearML.Core.Collectives;

/// <summary>Lossless wire encoding: little-endian IEEE-754 float32, 4 bytes per value.</summary>
public sealed class Float32Codec : IPayloadCodec
{
    /// <summary>Gets the shared instance.</summary>
    public static Float32Codec Instance { get; } = new();

    /// <inheritdoc/>
    public string Name => "fp32";

    /// <inheritdoc/>
    public int GetEncodedLength(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        return checked(count * 4);
    }

    /// <inheritdoc/>
    public void Encode(ReadOnlySpan<float> values, Span<byte> destination)
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("NearML requires a little-endian platform.");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(destination.Length, GetEncodedLength(values.Length), nameof(destination));
        MemoryMarshal.AsBytes(values).CopyTo(destination);
    }

    /// <inheritdoc/>
    public void Decode(ReadOnlySpan<byte> source, Span<float> destination)
    {
        if (source.Length != GetEncodedLength(destination.Length))
        {
            throw new InvalidDataFormatException("fp32 payload", 0, $"expected {GetEncodedLength(destination.Length)} bytes for {destination.Length} values, got {source.Length}");
        }

        source.CopyTo(MemoryMarshal.AsBytes(destination));
    }
}
