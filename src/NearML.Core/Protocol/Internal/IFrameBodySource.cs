namespace NearML.Core.Protocol.Internal;

/// <summary>The frames <see cref="FrameConnection.SendFramesAsync"/> sends: each a small head followed by a large body.</summary>
internal interface IFrameBodySource
{
    /// <summary>Gets the number of frames.</summary>
    int Count { get; }

    /// <summary>Prepares frame <paramref name="index"/> (called once per frame, in order, before its send starts).</summary>
    /// <param name="index">Zero-based frame index.</param>
    /// <param name="head">The head bytes, valid until the next call.</param>
    /// <returns>The body bytes, which must stay unchanged until the send completes.</returns>
    ReadOnlyMemory<byte> Prepare(int index, out ReadOnlyMemory<byte> head);
}
