using System.Buffers;
using Google.Protobuf;
using NearML.Core.Contracts;

namespace NearML.Core.Protocol;

/// <summary>
/// A frame just read from a <see cref="FrameConnection"/>. The payload points into the connection's receive buffer and is
/// valid only until the next receive call on that connection.
/// </summary>
public readonly struct IncomingFrame : IEquatable<IncomingFrame>
{
    internal IncomingFrame(FrameType type, ReadOnlySequence<byte> payload, long streamOffset)
    {
        Type = type;
        Payload = payload;
        StreamOffset = streamOffset;
    }

    /// <summary>Gets the frame's type tag.</summary>
    public FrameType Type { get; }

    /// <summary>Gets the payload bytes (valid until the next receive).</summary>
    public ReadOnlySequence<byte> Payload { get; }

    /// <summary>Gets the offset of the frame header within everything received on the connection.</summary>
    public long StreamOffset { get; }

    /// <summary>Parses the payload as the message its type announces.</summary>
    /// <returns>The message (a copy, independent of the receive buffer).</returns>
    /// <exception cref="ProtocolException">The payload is not a valid message of that type.</exception>
    public IMessage ToMessage()
    {
        try
        {
            return WireProtocol.GetParser(Type).ParseFrom(Payload);
        }
        catch (InvalidProtocolBufferException ex)
        {
            throw new ProtocolException(
                ErrorCode.MalformedFrame,
                $"frame at byte {StreamOffset}: {Payload.Length}-byte {Type} payload is not a valid message: {ex.Message}",
                ex);
        }
    }

    /// <inheritdoc/>
    public bool Equals(IncomingFrame other) =>
        Type == other.Type && StreamOffset == other.StreamOffset && Payload.Equals(other.Payload);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is IncomingFrame other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Type, StreamOffset, Payload.Length);

    /// <summary>Compares two frames.</summary>
    /// <param name="left">The first frame.</param>
    /// <param name="right">The second frame.</param>
    /// <returns>Whether they are the same frame.</returns>
    public static bool operator ==(IncomingFrame left, IncomingFrame right) => left.Equals(right);

    /// <summary>Compares two frames.</summary>
    /// <param name="left">The first frame.</param>
    /// <param name="right">The second frame.</param>
    /// <returns>Whether they differ.</returns>
    public static bool operator !=(IncomingFrame left, IncomingFrame right) => !left.Equals(right);
}
