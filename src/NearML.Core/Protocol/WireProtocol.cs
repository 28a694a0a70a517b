using Google.Protobuf;
using NearML.Core.Contracts;

namespace NearML.Core.Protocol;

/// <summary>Constants of the NearML wire protocol and the mapping between frame types and messages.</summary>
public static class WireProtocol
{
    /// <summary>
    /// The major protocol version this build speaks. Peers with another major version are refused. 3: parameter chunks are
    /// hashed with BLAKE3 (2: typed job settings; 1: the first release).
    /// </summary>
    public const uint MajorVersion = 3;

    /// <summary>The minor protocol version this build speaks. Minor versions only add fields or messages.</summary>
    public const uint MinorVersion = 0;

    /// <summary>Bytes in a frame header: a 4-byte big-endian payload length followed by a 2-byte big-endian <see cref="FrameType"/>.</summary>
    public const int FrameHeaderSize = 6;

    /// <summary>Gets a new <see cref="ProtocolVersion"/> message holding this build's version.</summary>
    public static ProtocolVersion CurrentVersion => new() { Major = MajorVersion, Minor = MinorVersion };

    /// <summary>Returns whether a peer speaking <paramref name="version"/> can talk to this build (same major version).</summary>
    /// <param name="version">The peer's version; <see langword="null"/> is incompatible.</param>
    /// <returns><see langword="true"/> when the major versions match.</returns>
    public static bool IsCompatible(ProtocolVersion? version) => version is not null && version.Major == MajorVersion;

    /// <summary>Formats a version as <c>major.minor</c>, or <c>(none)</c>.</summary>
    /// <param name="version">The version.</param>
    /// <returns>The text.</returns>
    public static string Format(ProtocolVersion? version) => version is null ? "(none)" : $"{version.Major}.{version.Minor}";

    /// <summary>Returns whether <paramref name="type"/> is a frame type this build understands.</summary>
    /// <param name="type">The raw type tag.</param>
    /// <returns><see langword="true"/> if known.</returns>
    public static bool IsKnown(FrameType type) => type != FrameType.Unspecified && Enum.IsDefined(type);

    /// <summary>Gets the frame type that carries <paramref name="message"/>.</summary>
    /// <param name="message">A message from <see cref="NearML.Core.Contracts"/>'s wire contracts.</param>
    /// <returns>The frame type tag.</returns>
    /// <exception cref="ArgumentException">The message is not a wire message.</exception>
    public static FrameType GetFrameType(IMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        return message switch
        {
            Hello => FrameType.Hello,
            Challenge => FrameType.Challenge,
            Evidence => FrameType.Evidence,
            Admission => FrameType.Admission,
            Refusal => FrameType.Refusal,
            JobAssignment => FrameType.JobAssignment,
            ParameterRequest => FrameType.ParameterRequest,
            ParameterChunk => FrameType.ParameterChunk,
            ParameterDone => FrameType.ParameterDone,
            Progress => FrameType.Progress,
            Update => FrameType.Update,
            AggregationEnvelope => FrameType.Aggregation,
            Receipt => FrameType.Receipt,
            RelayContribution => FrameType.RelayContribution,
            RelayResult => FrameType.RelayResult,
            Heartbeat => FrameType.Heartbeat,
            Goodbye => FrameType.Goodbye,
            Error => FrameType.Error,
            _ => throw new ArgumentException($"{message.GetType().Name} is not a NearML wire message.", nameof(message)),
        };
    }

    /// <summary>Gets the protobuf parser of the message carried by frames of <paramref name="type"/>.</summary>
    /// <param name="type">A known frame type.</param>
    /// <returns>The parser.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The type is unknown.</exception>
    public static MessageParser GetParser(FrameType type) => type switch
    {
        FrameType.Hello => Hello.Parser,
        FrameType.Challenge => Challenge.Parser,
        FrameType.Evidence => Evidence.Parser,
        FrameType.Admission => Admission.Parser,
        FrameType.Refusal => Refusal.Parser,
        FrameType.JobAssignment => JobAssignment.Parser,
        FrameType.ParameterRequest => ParameterRequest.Parser,
        FrameType.ParameterChunk => ParameterChunk.Parser,
        FrameType.ParameterDone => ParameterDone.Parser,
        FrameType.Progress => Progress.Parser,
        FrameType.Update => Update.Parser,
        FrameType.Aggregation => AggregationEnvelope.Parser,
        FrameType.Receipt => Receipt.Parser,
        FrameType.RelayContribution => RelayContribution.Parser,
        FrameType.RelayResult => RelayResult.Parser,
        FrameType.Heartbeat => Heartbeat.Parser,
        FrameType.Goodbye => Goodbye.Parser,
        FrameType.Error => Error.Parser,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Unknown frame type."),
    };
}
