namespace NearML.Core.Protocol.Internal;

/// <summary>
/// Where <see cref="FrameConnection"/> puts the data of <see cref="Contracts.ParameterChunk"/> frames while they arrive,
/// instead of returning each frame whole: <see cref="Begin"/> once the chunk's head is parsed, <see cref="Append"/> for
/// every piece of data in order, <see cref="End"/> when the frame is complete. Any of them may throw
/// <see cref="ProtocolException"/>; the receive then fails with it.
/// </summary>
internal interface IParameterChunkSink
{
    /// <summary>A chunk of <paramref name="length"/> bytes at <paramref name="offset"/> claiming <paramref name="claimedHash"/> starts.</summary>
    void Begin(ulong offset, int length, ReadOnlySpan<byte> claimedHash);

    /// <summary>The next bytes of the chunk's data (valid only during the call).</summary>
    void Append(ReadOnlySpan<byte> data);

    /// <summary>The chunk's data is complete.</summary>
    void End();
}
