using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using V = System.Runtime.Intrinsics.Vector512<ulong>;

namespace NearML.Core.Crypto.Internal;

/// <summary>
/// Eight X25519 agreements at once (RFC 7748 §5), one per 64-bit lane of AVX-512 registers. Field elements of
/// GF(2^255 − 19) are ten limbs in radix 2^25.5 (26, 25, 26, … bits), so every limb product is one 32×32→64-bit
/// VPMULUDQ and sums of ten products stay below 2^63. Constant time by construction: all 255 ladder steps run, swaps
/// are masked XORs, the inversion is a fixed chain, and nothing branches on or indexes memory by secret data. Used for
/// the server's batch of dropped-pair agreements and the client's roster agreements; validated against RFC 7748's
/// vectors and BouncyCastle on random inputs. Without AVX-512 the caller falls back to one agreement at a time.
/// </summary>
internal static class X25519Batch
{
    public const int Lanes = 8;
    private const int KeySize = 32;
    private static readonly int[] s_width = [26, 25, 26, 25, 26, 25, 26, 25, 26, 25];
    private static readonly int[] s_offset = [0, 26, 51, 77, 102, 128, 153, 179, 204, 230];

    /// <summary>Gets or sets a value disabling the vector path; for tests.</summary>
    internal static bool ForceScalar { get; set; }

    public static bool IsSupported => Avx512F.IsSupported && !ForceScalar;

    /// <summary>
    /// outputs[i] = X25519(scalars[i], points[i]) for up to <see cref="Lanes"/> items (32 bytes each, concatenated);
    /// ok[i] is false when the result is all zero (low-order point).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ScalarMult(ReadOnlySpan<byte> scalars, ReadOnlySpan<byte> points, Span<byte> outputs, Span<bool> ok)
    {
        int count = ok.Length;
        if (count is < 1 or > Lanes || scalars.Length != count * KeySize || points.Length != count * KeySize || outputs.Length < count * KeySize)
        {
            throw new ArgumentException("batch of 1..8 scalars and points of 32 bytes each");
        }

        // Clamped scalars as 4 little-endian words per lane (unused lanes repeat lane 0).
        Span<ulong> k = stackalloc ulong[4 * Lanes];
        Span<byte> clamped = stackalloc byte[KeySize];
        for (int lane = 0; lane < Lanes; lane++)
        {
            int src = lane < count ? lane : 0;
            scalars.Slice(src * KeySize, KeySize).CopyTo(clamped);
            clamped[0] &= 248;
            clamped[31] &= 127;
            clamped[31] |= 64;
            for (int w = 0; w < 4; w++)
            {
                k[(lane * 4) + w] = BinaryPrimitives.ReadUInt64LittleEndian(clamped[(w * 8)..]);
            }
        }

        System.Security.Cryptography.CryptographicOperations.ZeroMemory(clamped);
        var x1 = Decode(points, count);
        var x2 = Fe.One;
        var z2 = default(Fe);
        var x3 = x1;
        var z3 = Fe.One;
        V swap = V.Zero;
        Span<ulong> bits = stackalloc ulong[Lanes];
        for (int t = 254; t >= 0; t--)
        {
            int word = t >> 6, shift = t & 63;
            for (int lane = 0; lane < Lanes; lane++)
            {
                bits[lane] = (k[(lane * 4) + word] >> shift) & 1;
            }

            var bit = Vector512.Create(bits);
            swap ^= bit;
            Fe.ConditionalSwap(ref x2, ref x3, swap);
            Fe.ConditionalSwap(ref z2, ref z3, swap);
            swap = bit;

            var a = Fe.Add(x2, z2);
            var aa = Fe.Square(a);
            var b = Fe.Sub(x2, z2);
            var bb = Fe.Square(b);
            var e = Fe.Sub(aa, bb);
            var c = Fe.Add(x3, z3);
            var d = Fe.Sub(x3, z3);
            var da = Fe.Mul(d, a);
            var cb = Fe.Mul(c, b);
            x3 = Fe.Square(Fe.Add(da, cb));
            z3 = Fe.Mul(x1, Fe.Square(Fe.Sub(da, cb)));
            x2 = Fe.Mul(aa, bb);
            z2 = Fe.Mul(e, Fe.Add(aa, Fe.Mul121665(e)));
        }

        Fe.ConditionalSwap(ref x2, ref x3, swap);
        Fe.ConditionalSwap(ref z2, ref z3, swap);
        var result = Fe.Mul(x2, Fe.Invert(z2));
        k.Clear();
        Encode(result, outputs, ok);
    }

    private static Fe Decode(ReadOnlySpan<byte> points, int count)
    {
        Span<byte> padded = stackalloc byte[KeySize + 8];
        Span<ulong> limbs = stackalloc ulong[10 * Lanes];
        for (int lane = 0; lane < Lanes; lane++)
        {
            int src = lane < count ? lane : 0;
            padded.Clear();
            points.Slice(src * KeySize, KeySize).CopyTo(padded);
            padded[31] &= 127; // RFC 7748: mask the most significant bit; values in [p, 2^255) reduce implicitly
            for (int i = 0; i < 10; i++)
            {
                ulong w = BinaryPrimitives.ReadUInt64LittleEndian(padded[(s_offset[i] >> 3)..]);
                limbs[(i * Lanes) + lane] = (w >> (s_offset[i] & 7)) & ((1UL << s_width[i]) - 1);
            }
        }

        return Fe.FromLimbs(limbs);
    }

    private static void Encode(in Fe f, Span<byte> outputs, Span<bool> ok)
    {
        Span<ulong> limbs = stackalloc ulong[10 * Lanes];
        Fe.Carry(f).ToLimbs(limbs);
        Span<ulong> h = stackalloc ulong[10];
        Span<ulong> words = stackalloc ulong[5];
        for (int lane = 0; lane < ok.Length; lane++)
        {
            for (int i = 0; i < 10; i++)
            {
                h[i] = limbs[(i * Lanes) + lane];
            }

            // Second carry pass, then subtract p once if the value is ≥ p (q = 1 exactly then), branch-free.
            CarryScalar(h);
            CarryScalar(h);
            ulong q = (h[0] + 19) >> 26;
            for (int i = 1; i < 10; i++)
            {
                q = (h[i] + q) >> s_width[i];
            }

            h[0] += 19 * q;
            for (int i = 0; i < 9; i++)
            {
                h[i + 1] += h[i] >> s_width[i];
                h[i] &= (1UL << s_width[i]) - 1;
            }

            h[9] &= (1UL << 25) - 1;
            words.Clear();
            for (int i = 0; i < 10; i++)
            {
                int o = s_offset[i];
                words[o >> 6] |= h[i] << (o & 63);
                if ((o & 63) + s_width[i] > 64)
                {
                    words[(o >> 6) + 1] |= h[i] >> (64 - (o & 63));
                }
            }

            var dst = outputs.Slice(lane * KeySize, KeySize);
            ulong any = 0;
            for (int w = 0; w < 4; w++)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(dst[(w * 8)..], words[w]);
                any |= words[w];
            }

            ok[lane] = any != 0;
        }
    }

    private static void CarryScalar(Span<ulong> h)
    {
        for (int i = 0; i < 9; i++)
        {
            h[i + 1] += h[i] >> s_width[i];
            h[i] &= (1UL << s_width[i]) - 1;
        }

        h[0] += 19 * (h[9] >> 25);
        h[9] &= (1UL << 25) - 1;
    }

    /// <summary>
    /// Ten limbs per lane. Outputs of <see cref="Mul"/>/<see cref="Carry"/>/<see cref="Sub"/> have limbs below
    /// 2^26 + 2^17; <see cref="Add"/> of two such stays below 2^27.01, which <see cref="Mul"/> accepts: its largest
    /// column is f0·g0 + 19·(14 products) &lt; 2^62.2, and 19·g and 2·f stay below 2^32 for VPMULUDQ.
    /// </summary>
    private readonly struct Fe
    {
        private readonly V _l0, _l1, _l2, _l3, _l4, _l5, _l6, _l7, _l8, _l9;

        private Fe(V l0, V l1, V l2, V l3, V l4, V l5, V l6, V l7, V l8, V l9)
        {
            (_l0, _l1, _l2, _l3, _l4, _l5, _l6, _l7, _l8, _l9) = (l0, l1, l2, l3, l4, l5, l6, l7, l8, l9);
        }

        public static Fe One => new(V.One, V.Zero, V.Zero, V.Zero, V.Zero, V.Zero, V.Zero, V.Zero, V.Zero, V.Zero);

        public static Fe FromLimbs(ReadOnlySpan<ulong> l) => new(
            Vector512.Create(l[..8]), Vector512.Create(l[8..16]), Vector512.Create(l[16..24]), Vector512.Create(l[24..32]), Vector512.Create(l[32..40]),
            Vector512.Create(l[40..48]), Vector512.Create(l[48..56]), Vector512.Create(l[56..64]), Vector512.Create(l[64..72]), Vector512.Create(l[72..80]));

        public void ToLimbs(Span<ulong> l)
        {
            _l0.CopyTo(l[..8]);
            _l1.CopyTo(l[8..16]);
            _l2.CopyTo(l[16..24]);
            _l3.CopyTo(l[24..32]);
            _l4.CopyTo(l[32..40]);
            _l5.CopyTo(l[40..48]);
            _l6.CopyTo(l[48..56]);
            _l7.CopyTo(l[56..64]);
            _l8.CopyTo(l[64..72]);
            _l9.CopyTo(l[72..80]);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Fe Add(in Fe a, in Fe b) => new(
            a._l0 + b._l0, a._l1 + b._l1, a._l2 + b._l2, a._l3 + b._l3, a._l4 + b._l4,
            a._l5 + b._l5, a._l6 + b._l6, a._l7 + b._l7, a._l8 + b._l8, a._l9 + b._l9);

        /// <summary>a − b as a + 2p − b (b's limbs are below 2p's: 2^27 − 38, 2^26 − 2, 2^27 − 2, …), then carried.</summary>
        public static Fe Sub(in Fe a, in Fe b)
        {
            var p0 = Vector512.Create(0x7FF_FFDAUL);
            var pOdd = Vector512.Create(0x3FF_FFFEUL);
            var pEven = Vector512.Create(0x7FF_FFFEUL);
            return Carry(new Fe(
                a._l0 + p0 - b._l0, a._l1 + pOdd - b._l1, a._l2 + pEven - b._l2, a._l3 + pOdd - b._l3, a._l4 + pEven - b._l4,
                a._l5 + pOdd - b._l5, a._l6 + pEven - b._l6, a._l7 + pOdd - b._l7, a._l8 + pEven - b._l8, a._l9 + pOdd - b._l9));
        }

        public static Fe Mul121665(in Fe a)
        {
            var s = Vector512.Create(121665UL);
            return Carry(new Fe(M(a._l0, s), M(a._l1, s), M(a._l2, s), M(a._l3, s), M(a._l4, s), M(a._l5, s), M(a._l6, s), M(a._l7, s), M(a._l8, s), M(a._l9, s)));
        }

        /// <summary>f², 55 limb products instead of 100 (same column sums as <see cref="Mul"/>, so the same bounds).</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static Fe Square(in Fe f)
        {
            var nineteen = Vector512.Create(19UL);
            V f0 = f._l0, f1 = f._l1, f2 = f._l2, f3 = f._l3, f4 = f._l4, f5 = f._l5, f6 = f._l6, f7 = f._l7, f8 = f._l8, f9 = f._l9;
            var f0x2 = f0 + f0;
            var f1x2 = f1 + f1;
            var f1x4 = (f1 + f1) + (f1 + f1);
            var f2x2 = f2 + f2;
            var f3x2 = f3 + f3;
            var f3x4 = (f3 + f3) + (f3 + f3);
            var f4x2 = f4 + f4;
            var f5x2 = f5 + f5;
            var f5x4 = (f5 + f5) + (f5 + f5);
            var f5x19 = M(f5, nineteen);
            var f6x2 = f6 + f6;
            var f6x19 = M(f6, nineteen);
            var f7x2 = f7 + f7;
            var f7x4 = (f7 + f7) + (f7 + f7);
            var f7x19 = M(f7, nineteen);
            var f8x2 = f8 + f8;
            var f8x19 = M(f8, nineteen);
            var f9x2 = f9 + f9;
            var f9x19 = M(f9, nineteen);
            var h0 = M(f0, f0) + M(f1x4, f9x19) + M(f2x2, f8x19) + M(f3x4, f7x19) + M(f4x2, f6x19) + M(f5x2, f5x19);
            var h1 = M(f0x2, f1) + M(f2x2, f9x19) + M(f3x2, f8x19) + M(f4x2, f7x19) + M(f5x2, f6x19);
            var h2 = M(f0x2, f2) + M(f1x2, f1) + M(f3x4, f9x19) + M(f4x2, f8x19) + M(f5x4, f7x19) + M(f6, f6x19);
            var h3 = M(f0x2, f3) + M(f1x2, f2) + M(f4x2, f9x19) + M(f5x2, f8x19) + M(f6x2, f7x19);
            var h4 = M(f0x2, f4) + M(f1x4, f3) + M(f2, f2) + M(f5x4, f9x19) + M(f6x2, f8x19) + M(f7x2, f7x19);
            var h5 = M(f0x2, f5) + M(f1x2, f4) + M(f2x2, f3) + M(f6x2, f9x19) + M(f7x2, f8x19);
            var h6 = M(f0x2, f6) + M(f1x4, f5) + M(f2x2, f4) + M(f3x2, f3) + M(f7x4, f9x19) + M(f8, f8x19);
            var h7 = M(f0x2, f7) + M(f1x2, f6) + M(f2x2, f5) + M(f3x2, f4) + M(f8x2, f9x19);
            var h8 = M(f0x2, f8) + M(f1x4, f7) + M(f2x2, f6) + M(f3x4, f5) + M(f4, f4) + M(f9x2, f9x19);
            var h9 = M(f0x2, f9) + M(f1x2, f8) + M(f2x2, f7) + M(f3x2, f6) + M(f4x2, f5);
            return Carry(new Fe(h0, h1, h2, h3, h4, h5, h6, h7, h8, h9));
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static Fe Mul(in Fe f, in Fe g)
        {
            var nineteen = Vector512.Create(19UL);
            V f0 = f._l0, f1 = f._l1, f2 = f._l2, f3 = f._l3, f4 = f._l4, f5 = f._l5, f6 = f._l6, f7 = f._l7, f8 = f._l8, f9 = f._l9;
            V g0 = g._l0, g1 = g._l1, g2 = g._l2, g3 = g._l3, g4 = g._l4, g5 = g._l5, g6 = g._l6, g7 = g._l7, g8 = g._l8, g9 = g._l9;
            V f1x2 = f1 + f1, f3x2 = f3 + f3, f5x2 = f5 + f5, f7x2 = f7 + f7, f9x2 = f9 + f9;
            V g1x19 = M(g1, nineteen), g2x19 = M(g2, nineteen), g3x19 = M(g3, nineteen), g4x19 = M(g4, nineteen), g5x19 = M(g5, nineteen);
            V g6x19 = M(g6, nineteen), g7x19 = M(g7, nineteen), g8x19 = M(g8, nineteen), g9x19 = M(g9, nineteen);
            var h0 = M(f0, g0) + M(f1x2, g9x19) + M(f2, g8x19) + M(f3x2, g7x19) + M(f4, g6x19) + M(f5x2, g5x19) + M(f6, g4x19) + M(f7x2, g3x19) + M(f8, g2x19) + M(f9x2, g1x19);
            var h1 = M(f0, g1) + M(f1, g0) + M(f2, g9x19) + M(f3, g8x19) + M(f4, g7x19) + M(f5, g6x19) + M(f6, g5x19) + M(f7, g4x19) + M(f8, g3x19) + M(f9, g2x19);
            var h2 = M(f0, g2) + M(f1x2, g1) + M(f2, g0) + M(f3x2, g9x19) + M(f4, g8x19) + M(f5x2, g7x19) + M(f6, g6x19) + M(f7x2, g5x19) + M(f8, g4x19) + M(f9x2, g3x19);
            var h3 = M(f0, g3) + M(f1, g2) + M(f2, g1) + M(f3, g0) + M(f4, g9x19) + M(f5, g8x19) + M(f6, g7x19) + M(f7, g6x19) + M(f8, g5x19) + M(f9, g4x19);
            var h4 = M(f0, g4) + M(f1x2, g3) + M(f2, g2) + M(f3x2, g1) + M(f4, g0) + M(f5x2, g9x19) + M(f6, g8x19) + M(f7x2, g7x19) + M(f8, g6x19) + M(f9x2, g5x19);
            var h5 = M(f0, g5) + M(f1, g4) + M(f2, g3) + M(f3, g2) + M(f4, g1) + M(f5, g0) + M(f6, g9x19) + M(f7, g8x19) + M(f8, g7x19) + M(f9, g6x19);
            var h6 = M(f0, g6) + M(f1x2, g5) + M(f2, g4) + M(f3x2, g3) + M(f4, g2) + M(f5x2, g1) + M(f6, g0) + M(f7x2, g9x19) + M(f8, g8x19) + M(f9x2, g7x19);
            var h7 = M(f0, g7) + M(f1, g6) + M(f2, g5) + M(f3, g4) + M(f4, g3) + M(f5, g2) + M(f6, g1) + M(f7, g0) + M(f8, g9x19) + M(f9, g8x19);
            var h8 = M(f0, g8) + M(f1x2, g7) + M(f2, g6) + M(f3x2, g5) + M(f4, g4) + M(f5x2, g3) + M(f6, g2) + M(f7x2, g1) + M(f8, g0) + M(f9x2, g9x19);
            var h9 = M(f0, g9) + M(f1, g8) + M(f2, g7) + M(f3, g6) + M(f4, g5) + M(f5, g4) + M(f6, g3) + M(f7, g2) + M(f8, g1) + M(f9, g0);

            return Carry(new Fe(h0, h1, h2, h3, h4, h5, h6, h7, h8, h9));
        }

        /// <summary>One carry pass: limbs below 2^26 / 2^25 except limb 1 (below 2^25 + 2^17).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Fe Carry(in Fe a)
        {
            var m26 = Vector512.Create((1UL << 26) - 1);
            var m25 = Vector512.Create((1UL << 25) - 1);
            V h0 = a._l0, h1 = a._l1, h2 = a._l2, h3 = a._l3, h4 = a._l4, h5 = a._l5, h6 = a._l6, h7 = a._l7, h8 = a._l8, h9 = a._l9;
            h1 += h0 >>> 26; h0 &= m26;
            h2 += h1 >>> 25; h1 &= m25;
            h3 += h2 >>> 26; h2 &= m26;
            h4 += h3 >>> 25; h3 &= m25;
            h5 += h4 >>> 26; h4 &= m26;
            h6 += h5 >>> 25; h5 &= m25;
            h7 += h6 >>> 26; h6 &= m26;
            h8 += h7 >>> 25; h7 &= m25;
            h9 += h8 >>> 26; h8 &= m26;
            var c = h9 >>> 25;
            h9 &= m25;
            h0 += (c << 4) + (c << 1) + c; // 19 · c without a 32-bit multiply (c may exceed 2^32)
            h1 += h0 >>> 26; h0 &= m26;
            return new Fe(h0, h1, h2, h3, h4, h5, h6, h7, h8, h9);
        }

        /// <summary>z^(p − 2) = z^(2^255 − 21), the same chain for every input.</summary>
        public static Fe Invert(in Fe z)
        {
            var z2 = Square(z);
            var z9 = Mul(SquareTimes(z2, 2), z);
            var z11 = Mul(z9, z2);
            var z5 = Mul(Square(z11), z9);
            var z10 = Mul(SquareTimes(z5, 5), z5);
            var z20 = Mul(SquareTimes(z10, 10), z10);
            var z40 = Mul(SquareTimes(z20, 20), z20);
            var z50 = Mul(SquareTimes(z40, 10), z10);
            var z100 = Mul(SquareTimes(z50, 50), z50);
            var z200 = Mul(SquareTimes(z100, 100), z100);
            var z250 = Mul(SquareTimes(z200, 50), z50);
            return Mul(SquareTimes(z250, 5), z11);
        }

        public static void ConditionalSwap(ref Fe a, ref Fe b, V swap)
        {
            var mask = V.Zero - swap;
            var t0 = mask & (a._l0 ^ b._l0); var t1 = mask & (a._l1 ^ b._l1); var t2 = mask & (a._l2 ^ b._l2);
            var t3 = mask & (a._l3 ^ b._l3); var t4 = mask & (a._l4 ^ b._l4); var t5 = mask & (a._l5 ^ b._l5);
            var t6 = mask & (a._l6 ^ b._l6); var t7 = mask & (a._l7 ^ b._l7); var t8 = mask & (a._l8 ^ b._l8);
            var t9 = mask & (a._l9 ^ b._l9);
            a = new Fe(a._l0 ^ t0, a._l1 ^ t1, a._l2 ^ t2, a._l3 ^ t3, a._l4 ^ t4, a._l5 ^ t5, a._l6 ^ t6, a._l7 ^ t7, a._l8 ^ t8, a._l9 ^ t9);
            b = new Fe(b._l0 ^ t0, b._l1 ^ t1, b._l2 ^ t2, b._l3 ^ t3, b._l4 ^ t4, b._l5 ^ t5, b._l6 ^ t6, b._l7 ^ t7, b._l8 ^ t8, b._l9 ^ t9);
        }

        private static Fe SquareTimes(Fe a, int times)
        {
            for (int i = 0; i < times; i++)
            {
                a = Square(a);
            }

            return a;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static V M(V a, V b) => Avx512F.Multiply(a.AsUInt32(), b.AsUInt32());
    }
}
