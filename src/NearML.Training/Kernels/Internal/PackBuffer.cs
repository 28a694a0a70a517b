using System.Runtime.InteropServices;

namespace NearML.Training.Kernels.Internal;

/// <summary>
/// A 64-byte-aligned native float buffer that only grows. Packing buffers live for the thread (or pool) that owns them,
/// so a steady-state GEMM call allocates nothing; the finalizer returns the memory when the owner goes away.
/// </summary>
internal sealed unsafe class PackBuffer
{
    private float* _data;
    private nint _capacity;

    /// <summary>Finalizes an instance of the <see cref="PackBuffer"/> class, freeing the native block.</summary>
    ~PackBuffer()
    {
        if (_data != null)
        {
            NativeMemory.AlignedFree(_data);
        }
    }

    /// <summary>Returns a block of at least <paramref name="floats"/> elements; contents are unspecified.</summary>
    /// <param name="floats">Required element count.</param>
    /// <returns>A pointer valid until the next call that needs more room.</returns>
    public float* Get(nint floats)
    {
        if (floats > _capacity)
        {
            if (_data != null)
            {
                NativeMemory.AlignedFree(_data);
                _data = null;
                _capacity = 0;
            }

            // Round up to a whole 4 KB page worth of floats so small growth steps do not reallocate repeatedly.
            var size = (floats + 1023) & ~(nint)1023;
            _data = (float*)NativeMemory.AlignedAlloc((nuint)size * sizeof(float), 64);
            _capacity = size;
        }

        return _data;
    }
}
