using System.Buffers;
using System.Runtime.InteropServices;

namespace NearML.Core.Protocol.Internal;

/// <summary>The bytes of a <see cref="float"/> array as <see cref="Memory{T}"/>, so they can be written to a stream without a copy.</summary>
internal sealed class FloatBytesMemory(float[] array) : MemoryManager<byte>
{
    public override Span<byte> GetSpan() => MemoryMarshal.AsBytes(array.AsSpan());

    public override unsafe MemoryHandle Pin(int elementIndex = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(elementIndex);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(elementIndex, array.Length * sizeof(float));
        var handle = GCHandle.Alloc(array, GCHandleType.Pinned);
        return new MemoryHandle((byte*)handle.AddrOfPinnedObject() + elementIndex, handle);
    }

    public override void Unpin()
    {
    }

    protected override void Dispose(bool disposing)
    {
    }
}
