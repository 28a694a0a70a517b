using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NearML.Training.Kernels.Internal;

/// <summary>8×8 float transposes with AVX, used to pack operands whose contiguous direction is the wrong one.</summary>
internal static unsafe class Transpose
{
    /// <summary>
    /// Reads an 8×8 block (rows <paramref name="src"/> + r·<paramref name="srcStride"/>), scales it and writes its
    /// transpose (rows <paramref name="dst"/> + c·<paramref name="dstStride"/>). Requires <see cref="Avx.IsSupported"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Block8x8(float* src, nint srcStride, float* dst, nint dstStride, Vector256<float> scale)
    {
        var r0 = Avx.LoadVector256(src);
        var r1 = Avx.LoadVector256(src + srcStride);
        var r2 = Avx.LoadVector256(src + (2 * srcStride));
        var r3 = Avx.LoadVector256(src + (3 * srcStride));
        var r4 = Avx.LoadVector256(src + (4 * srcStride));
        var r5 = Avx.LoadVector256(src + (5 * srcStride));
        var r6 = Avx.LoadVector256(src + (6 * srcStride));
        var r7 = Avx.LoadVector256(src + (7 * srcStride));

        var t0 = Avx.UnpackLow(r0, r1);
        var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3);
        var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5);
        var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7);
        var t7 = Avx.UnpackHigh(r6, r7);

        var u0 = Avx.Shuffle(t0, t2, 0x44);
        var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44);
        var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44);
        var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44);
        var u7 = Avx.Shuffle(t5, t7, 0xEE);

        Avx.Store(dst, Avx.Multiply(Avx.Permute2x128(u0, u4, 0x20), scale));
        Avx.Store(dst + dstStride, Avx.Multiply(Avx.Permute2x128(u1, u5, 0x20), scale));
        Avx.Store(dst + (2 * dstStride), Avx.Multiply(Avx.Permute2x128(u2, u6, 0x20), scale));
        Avx.Store(dst + (3 * dstStride), Avx.Multiply(Avx.Permute2x128(u3, u7, 0x20), scale));
        Avx.Store(dst + (4 * dstStride), Avx.Multiply(Avx.Permute2x128(u0, u4, 0x31), scale));
        Avx.Store(dst + (5 * dstStride), Avx.Multiply(Avx.Permute2x128(u1, u5, 0x31), scale));
        Avx.Store(dst + (6 * dstStride), Avx.Multiply(Avx.Permute2x128(u2, u6, 0x31), scale));
        Avx.Store(dst + (7 * dstStride), Avx.Multiply(Avx.Permute2x128(u3, u7, 0x31), scale));
    }

    /// <summary>
    /// Reads a 6×8 block (rows <paramref name="src"/> + r·<paramref name="srcStride"/>), scales it and writes its
    /// transpose as 8 rows of 6 (row c at <paramref name="dst"/> + 6c), the packed layout of the 6-row AVX2 A panel.
    /// Each row is written as 8 floats, so 2 floats past the last row are overwritten (with zeros): the destination needs
    /// that slack, and later rows overwrite earlier rows' spill. Requires <see cref="Avx.IsSupported"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Block6x8(float* src, nint srcStride, float* dst, Vector256<float> scale)
    {
        var r0 = Avx.LoadVector256(src);
        var r1 = Avx.LoadVector256(src + srcStride);
        var r2 = Avx.LoadVector256(src + (2 * srcStride));
        var r3 = Avx.LoadVector256(src + (3 * srcStride));
        var r4 = Avx.LoadVector256(src + (4 * srcStride));
        var r5 = Avx.LoadVector256(src + (5 * srcStride));
        var zero = Vector256<float>.Zero;

        var t0 = Avx.UnpackLow(r0, r1);
        var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3);
        var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5);
        var t5 = Avx.UnpackHigh(r4, r5);

        var u0 = Avx.Shuffle(t0, t2, 0x44);
        var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44);
        var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, zero, 0x44);
        var u5 = Avx.Shuffle(t4, zero, 0xEE);
        var u6 = Avx.Shuffle(t5, zero, 0x44);
        var u7 = Avx.Shuffle(t5, zero, 0xEE);

        Avx.Store(dst, Avx.Multiply(Avx.Permute2x128(u0, u4, 0x20), scale));
        Avx.Store(dst + 6, Avx.Multiply(Avx.Permute2x128(u1, u5, 0x20), scale));
        Avx.Store(dst + 12, Avx.Multiply(Avx.Permute2x128(u2, u6, 0x20), scale));
        Avx.Store(dst + 18, Avx.Multiply(Avx.Permute2x128(u3, u7, 0x20), scale));
        Avx.Store(dst + 24, Avx.Multiply(Avx.Permute2x128(u0, u4, 0x31), scale));
        Avx.Store(dst + 30, Avx.Multiply(Avx.Permute2x128(u1, u5, 0x31), scale));
        Avx.Store(dst + 36, Avx.Multiply(Avx.Permute2x128(u2, u6, 0x31), scale));
        Avx.Store(dst + 42, Avx.Multiply(Avx.Permute2x128(u3, u7, 0x31), scale));
    }
}
