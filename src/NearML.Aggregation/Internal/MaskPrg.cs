using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using AesNi = System.Runtime.Intrinsics.X86.Aes;

namespace NearML.Aggregation.Internal;

/// <summary>
/// The mask PRG: AES-128 in counter mode, expanded straight into ring elements. Counter block i is the 128-bit
/// little-endian integer i; its 16 output bytes are ring elements 4i..4i+3 (little-endian uint32, reduced mod 2^b
/// by the final masking of the sum). With AES-NI (VAES when present) the keystream is added to or subtracted from an
/// accumulator without ever being stored; otherwise .NET's AES-ECB over counter blocks produces the same stream.
/// </summary>
internal sealed class MaskPrg
{
    public const int KeySize = 16;
    private const int Rounds = 10;
    private readonly Vector128<byte>[] _roundKeys;
    private readonly byte[] _key;

    public MaskPrg(ReadOnlySpan<byte> key)
    {
        if (key.Length != KeySize)
        {
            throw new ArgumentException($"mask PRG key must be {KeySize} bytes, got {key.Length}", nameof(key));
        }

        _key = key.ToArray();
        _roundKeys = AesNi.IsSupported ? ExpandKey(_key) : [];
    }

    /// <summary>Gets or sets a value forcing the portable (non-intrinsic) path; for tests.</summary>
    internal static bool ForcePortable { get; set; }

    internal static bool UseIntrinsics => AesNi.IsSupported && Sse2.IsSupported && !ForcePortable;

    /// <summary>acc[i] += sign * PRG[first + i] (mod 2^32) for i in 0..acc.Length-1; <paramref name="first"/> must be a multiple of 4.</summary>
    public void Apply(Span<uint> acc, long first, bool subtract)
    {
        if ((first & 3) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(first), first, "must be a multiple of 4");
        }

        ulong block = (ulong)first >> 2;
        if (UseIntrinsics)
        {
            ApplyIntrinsics(acc, block, subtract);
        }
        else
        {
            ApplyPortable(acc, block, subtract);
        }
    }

    /// <summary>Writes PRG elements first..first+dest.Length-1 to <paramref name="dest"/>.</summary>
    public void Generate(Span<uint> dest, long first)
    {
        dest.Clear();
        Apply(dest, first, subtract: false);
    }

    private static Vector128<byte>[] ExpandKey(byte[] key)
    {
        // FIPS-197 AES-128 key schedule with AESKEYGENASSIST (the round constant must be an immediate).
        var rk = new Vector128<byte>[Rounds + 1];
        var k = Vector128.Create(key);
        rk[0] = k;
        rk[1] = k = Next(k, AesNi.KeygenAssist(k, 0x01));
        rk[2] = k = Next(k, AesNi.KeygenAssist(k, 0x02));
        rk[3] = k = Next(k, AesNi.KeygenAssist(k, 0x04));
        rk[4] = k = Next(k, AesNi.KeygenAssist(k, 0x08));
        rk[5] = k = Next(k, AesNi.KeygenAssist(k, 0x10));
        rk[6] = k = Next(k, AesNi.KeygenAssist(k, 0x20));
        rk[7] = k = Next(k, AesNi.KeygenAssist(k, 0x40));
        rk[8] = k = Next(k, AesNi.KeygenAssist(k, 0x80));
        rk[9] = k = Next(k, AesNi.KeygenAssist(k, 0x1b));
        rk[10] = Next(k, AesNi.KeygenAssist(k, 0x36));
        return rk;

        static Vector128<byte> Next(Vector128<byte> k, Vector128<byte> assist)
        {
            var t = Sse2.Shuffle(assist.AsUInt32(), 0xFF).AsByte();
            k = Sse2.Xor(k, Sse2.ShiftLeftLogical128BitLane(k, 4));
            k = Sse2.Xor(k, Sse2.ShiftLeftLogical128BitLane(k, 4));
            k = Sse2.Xor(k, Sse2.ShiftLeftLogical128BitLane(k, 4));
            return Sse2.Xor(k, t);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<uint> Add(Vector128<uint> a, Vector128<uint> b, bool subtract) => subtract ? a - b : a + b;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void ApplyIntrinsics(Span<uint> acc, ulong block, bool subtract)
    {
        var rk = _roundKeys;
        int n = acc.Length;
        int i = 0;
        ref uint a0 = ref MemoryMarshal.GetReference(acc);
        if (n >= 32)
        {
            // 8 counter blocks (32 elements) in flight to fill the AES units' pipelines. Everything stays in registers:
            // no helper taking the blocks by reference (that would force them to the stack on every round).
            var k0 = rk[0]; var k1 = rk[1]; var k2 = rk[2]; var k3 = rk[3]; var k4 = rk[4]; var k5 = rk[5];
            var k6 = rk[6]; var k7 = rk[7]; var k8 = rk[8]; var k9 = rk[9]; var k10 = rk[10];
            var one = Vector128.Create(1UL, 0);
            var two = Vector128.Create(2UL, 0);
            var ctr = Vector128.Create(block, 0);
            for (; i + 32 <= n; i += 32)
            {
                var c1 = ctr + one;
                var x0 = ctr.AsByte() ^ k0; var x1 = c1.AsByte() ^ k0;
                var x2 = (ctr + two).AsByte() ^ k0; var x3 = (c1 + two).AsByte() ^ k0;
                ctr += two + two;
                c1 += two + two;
                var x4 = ctr.AsByte() ^ k0; var x5 = c1.AsByte() ^ k0;
                var x6 = (ctr + two).AsByte() ^ k0; var x7 = (c1 + two).AsByte() ^ k0;
                ctr += two + two;
                x0 = AesNi.Encrypt(x0, k1); x1 = AesNi.Encrypt(x1, k1); x2 = AesNi.Encrypt(x2, k1); x3 = AesNi.Encrypt(x3, k1);
                x4 = AesNi.Encrypt(x4, k1); x5 = AesNi.Encrypt(x5, k1); x6 = AesNi.Encrypt(x6, k1); x7 = AesNi.Encrypt(x7, k1);
                x0 = AesNi.Encrypt(x0, k2); x1 = AesNi.Encrypt(x1, k2); x2 = AesNi.Encrypt(x2, k2); x3 = AesNi.Encrypt(x3, k2);
                x4 = AesNi.Encrypt(x4, k2); x5 = AesNi.Encrypt(x5, k2); x6 = AesNi.Encrypt(x6, k2); x7 = AesNi.Encrypt(x7, k2);
                x0 = AesNi.Encrypt(x0, k3); x1 = AesNi.Encrypt(x1, k3); x2 = AesNi.Encrypt(x2, k3); x3 = AesNi.Encrypt(x3, k3);
                x4 = AesNi.Encrypt(x4, k3); x5 = AesNi.Encrypt(x5, k3); x6 = AesNi.Encrypt(x6, k3); x7 = AesNi.Encrypt(x7, k3);
                x0 = AesNi.Encrypt(x0, k4); x1 = AesNi.Encrypt(x1, k4); x2 = AesNi.Encrypt(x2, k4); x3 = AesNi.Encrypt(x3, k4);
                x4 = AesNi.Encrypt(x4, k4); x5 = AesNi.Encrypt(x5, k4); x6 = AesNi.Encrypt(x6, k4); x7 = AesNi.Encrypt(x7, k4);
                x0 = AesNi.Encrypt(x0, k5); x1 = AesNi.Encrypt(x1, k5); x2 = AesNi.Encrypt(x2, k5); x3 = AesNi.Encrypt(x3, k5);
                x4 = AesNi.Encrypt(x4, k5); x5 = AesNi.Encrypt(x5, k5); x6 = AesNi.Encrypt(x6, k5); x7 = AesNi.Encrypt(x7, k5);
                x0 = AesNi.Encrypt(x0, k6); x1 = AesNi.Encrypt(x1, k6); x2 = AesNi.Encrypt(x2, k6); x3 = AesNi.Encrypt(x3, k6);
                x4 = AesNi.Encrypt(x4, k6); x5 = AesNi.Encrypt(x5, k6); x6 = AesNi.Encrypt(x6, k6); x7 = AesNi.Encrypt(x7, k6);
                x0 = AesNi.Encrypt(x0, k7); x1 = AesNi.Encrypt(x1, k7); x2 = AesNi.Encrypt(x2, k7); x3 = AesNi.Encrypt(x3, k7);
                x4 = AesNi.Encrypt(x4, k7); x5 = AesNi.Encrypt(x5, k7); x6 = AesNi.Encrypt(x6, k7); x7 = AesNi.Encrypt(x7, k7);
                x0 = AesNi.Encrypt(x0, k8); x1 = AesNi.Encrypt(x1, k8); x2 = AesNi.Encrypt(x2, k8); x3 = AesNi.Encrypt(x3, k8);
                x4 = AesNi.Encrypt(x4, k8); x5 = AesNi.Encrypt(x5, k8); x6 = AesNi.Encrypt(x6, k8); x7 = AesNi.Encrypt(x7, k8);
                x0 = AesNi.Encrypt(x0, k9); x1 = AesNi.Encrypt(x1, k9); x2 = AesNi.Encrypt(x2, k9); x3 = AesNi.Encrypt(x3, k9);
                x4 = AesNi.Encrypt(x4, k9); x5 = AesNi.Encrypt(x5, k9); x6 = AesNi.Encrypt(x6, k9); x7 = AesNi.Encrypt(x7, k9);
                x0 = AesNi.EncryptLast(x0, k10); x1 = AesNi.EncryptLast(x1, k10); x2 = AesNi.EncryptLast(x2, k10); x3 = AesNi.EncryptLast(x3, k10);
                x4 = AesNi.EncryptLast(x4, k10); x5 = AesNi.EncryptLast(x5, k10); x6 = AesNi.EncryptLast(x6, k10); x7 = AesNi.EncryptLast(x7, k10);
                ref uint p = ref Unsafe.Add(ref a0, i);
                var v0 = Vector128.LoadUnsafe(ref p); var v1 = Vector128.LoadUnsafe(ref p, 4);
                var v2 = Vector128.LoadUnsafe(ref p, 8); var v3 = Vector128.LoadUnsafe(ref p, 12);
                var v4 = Vector128.LoadUnsafe(ref p, 16); var v5 = Vector128.LoadUnsafe(ref p, 20);
                var v6 = Vector128.LoadUnsafe(ref p, 24); var v7 = Vector128.LoadUnsafe(ref p, 28);
                if (subtract)
                {
                    v0 -= x0.AsUInt32(); v1 -= x1.AsUInt32(); v2 -= x2.AsUInt32(); v3 -= x3.AsUInt32();
                    v4 -= x4.AsUInt32(); v5 -= x5.AsUInt32(); v6 -= x6.AsUInt32(); v7 -= x7.AsUInt32();
                }
                else
                {
                    v0 += x0.AsUInt32(); v1 += x1.AsUInt32(); v2 += x2.AsUInt32(); v3 += x3.AsUInt32();
                    v4 += x4.AsUInt32(); v5 += x5.AsUInt32(); v6 += x6.AsUInt32(); v7 += x7.AsUInt32();
                }

                v0.StoreUnsafe(ref p); v1.StoreUnsafe(ref p, 4); v2.StoreUnsafe(ref p, 8); v3.StoreUnsafe(ref p, 12);
                v4.StoreUnsafe(ref p, 16); v5.StoreUnsafe(ref p, 20); v6.StoreUnsafe(ref p, 24); v7.StoreUnsafe(ref p, 28);
            }

            block += (ulong)i >> 2;
        }

        // 128-bit path: 4 blocks (16 elements) in flight, then single blocks.
        for (; i + 16 <= n; i += 16)
        {
            var x0 = Vector128.Create(block, 0).AsByte() ^ rk[0];
            var x1 = Vector128.Create(block + 1, 0).AsByte() ^ rk[0];
            var x2 = Vector128.Create(block + 2, 0).AsByte() ^ rk[0];
            var x3 = Vector128.Create(block + 3, 0).AsByte() ^ rk[0];
            for (int r = 1; r < Rounds; r++)
            {
                x0 = AesNi.Encrypt(x0, rk[r]); x1 = AesNi.Encrypt(x1, rk[r]); x2 = AesNi.Encrypt(x2, rk[r]); x3 = AesNi.Encrypt(x3, rk[r]);
            }

            x0 = AesNi.EncryptLast(x0, rk[Rounds]); x1 = AesNi.EncryptLast(x1, rk[Rounds]);
            x2 = AesNi.EncryptLast(x2, rk[Rounds]); x3 = AesNi.EncryptLast(x3, rk[Rounds]);
            ref uint p = ref Unsafe.Add(ref a0, i);
            Add(Vector128.LoadUnsafe(ref p), x0.AsUInt32(), subtract).StoreUnsafe(ref p);
            Add(Vector128.LoadUnsafe(ref p, 4), x1.AsUInt32(), subtract).StoreUnsafe(ref p, 4);
            Add(Vector128.LoadUnsafe(ref p, 8), x2.AsUInt32(), subtract).StoreUnsafe(ref p, 8);
            Add(Vector128.LoadUnsafe(ref p, 12), x3.AsUInt32(), subtract).StoreUnsafe(ref p, 12);
            block += 4;
        }

        for (; i < n; i += 4)
        {
            var x = Vector128.Create(block, 0).AsByte() ^ rk[0];
            for (int r = 1; r < Rounds; r++)
            {
                x = AesNi.Encrypt(x, rk[r]);
            }

            x = AesNi.EncryptLast(x, rk[Rounds]);
            block++;
            var w = x.AsUInt32();
            int m = Math.Min(4, n - i);
            for (int j = 0; j < m; j++)
            {
                acc[i + j] = subtract ? acc[i + j] - w[j] : acc[i + j] + w[j];
            }
        }
    }

    private void ApplyPortable(Span<uint> acc, ulong block, bool subtract)
    {
        const int BatchBlocks = 1024;
        using var aes = System.Security.Cryptography.Aes.Create();
        aes.Key = _key;
        var counters = new byte[BatchBlocks * 16];
        var stream = new byte[BatchBlocks * 16];
        int n = acc.Length;
        for (int i = 0; i < n; i += BatchBlocks * 4)
        {
            int elems = Math.Min(BatchBlocks * 4, n - i);
            int blocks = (elems + 3) / 4;
            var ctr = MemoryMarshal.Cast<byte, ulong>(counters.AsSpan(0, blocks * 16));
            for (int b = 0; b < blocks; b++)
            {
                ctr[2 * b] = block + (ulong)b;
                ctr[(2 * b) + 1] = 0;
            }

            aes.EncryptEcb(counters.AsSpan(0, blocks * 16), stream.AsSpan(0, blocks * 16), System.Security.Cryptography.PaddingMode.None);
            var words = MemoryMarshal.Cast<byte, uint>(stream.AsSpan(0, blocks * 16));
            var dst = acc.Slice(i, elems);
            for (int j = 0; j < elems; j++)
            {
                dst[j] = subtract ? dst[j] - words[j] : dst[j] + words[j];
            }

            block += (ulong)blocks;
        }
    }
}

/// <summary>Applies many masks to one accumulator, tiled so each tile stays in cache and tiles run in parallel.</summary>
internal static class MaskApplier
{
    private const int TileElements = 16 * 1024;

    public static void ApplyAll(IReadOnlyList<(MaskPrg Prg, bool Subtract)> masks, uint[] acc, bool parallel = true)
    {
        int tiles = (acc.Length + TileElements - 1) / TileElements;
        if (!parallel || tiles < 2 || masks.Count * (long)acc.Length < 1 << 20)
        {
            for (int t = 0; t < tiles; t++)
            {
                ApplyTile(masks, acc, t);
            }

            return;
        }

        Parallel.For(0, tiles, t => ApplyTile(masks, acc, t));
    }

    private static void ApplyTile(IReadOnlyList<(MaskPrg Prg, bool Subtract)> masks, uint[] acc, int tile)
    {
        int start = tile * TileElements;
        var span = acc.AsSpan(start, Math.Min(TileElements, acc.Length - start));
        for (int m = 0; m < masks.Count; m++)
        {
            masks[m].Prg.Apply(span, start, masks[m].Subtract);
        }
    }
}
