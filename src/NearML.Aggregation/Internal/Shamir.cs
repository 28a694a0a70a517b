using System.Buffers.Binary;
using System.Security.Cryptography;

namespace NearML.Aggregation.Internal;

/// <summary>
/// Shamir t-of-n secret sharing over the Mersenne prime field p = 2^61 − 1. A 32-byte secret is split into
/// five 7-byte chunks (each &lt; 2^56 &lt; p), each shared with its own independent random polynomial of degree t−1;
/// a share is five field elements (40 bytes). Evaluation points are x = client id + 1.
/// </summary>
internal static class Shamir
{
    public const ulong P = (1UL << 61) - 1;
    public const int SecretSize = 32;
    public const int Chunks = 5;
    public const int ChunkBytes = 7;
    public const int ShareSize = Chunks * 8;

    public static ulong Mul(ulong a, ulong b)
    {
        UInt128 m = (UInt128)a * b;
        ulong r = ((ulong)m & P) + (ulong)(m >> 61);
        r = (r & P) + (r >> 61);
        return r >= P ? r - P : r;
    }

    public static ulong Add(ulong a, ulong b)
    {
        ulong r = a + b;
        return r >= P ? r - P : r;
    }

    public static ulong Sub(ulong a, ulong b) => a >= b ? a - b : a + P - b;

    public static ulong Inverse(ulong a)
    {
        if (a == 0)
        {
            throw new DivideByZeroException("zero has no inverse in GF(2^61-1)");
        }

        // Fermat: a^(p-2).
        ulong result = 1, b = a, e = P - 2;
        while (e != 0)
        {
            if ((e & 1) != 0)
            {
                result = Mul(result, b);
            }

            b = Mul(b, b);
            e >>= 1;
        }

        return result;
    }

    private static ulong RandomElement()
    {
        Span<byte> buf = stackalloc byte[8];
        while (true)
        {
            RandomNumberGenerator.Fill(buf);
            ulong v = BinaryPrimitives.ReadUInt64LittleEndian(buf) & P;
            if (v != P)
            {
                return v;
            }
        }
    }

    /// <summary>Splits <paramref name="secret"/> into shares for the points xs[i] (all distinct, non-zero, &lt; p).</summary>
    public static byte[][] Split(ReadOnlySpan<byte> secret, int threshold, ReadOnlySpan<ulong> xs)
    {
        if (secret.Length != SecretSize)
        {
            throw new ArgumentException($"secret must be {SecretSize} bytes", nameof(secret));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(threshold, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(threshold, xs.Length);
        var shares = new byte[xs.Length][];
        for (int i = 0; i < shares.Length; i++)
        {
            shares[i] = new byte[ShareSize];
        }

        Span<ulong> coeffs = threshold <= 512 ? stackalloc ulong[threshold] : new ulong[threshold];
        Span<byte> chunk = stackalloc byte[8];
        for (int c = 0; c < Chunks; c++)
        {
            chunk.Clear();
            int off = c * ChunkBytes;
            int len = Math.Min(ChunkBytes, SecretSize - off);
            secret.Slice(off, len).CopyTo(chunk);
            coeffs[0] = BinaryPrimitives.ReadUInt64LittleEndian(chunk);
            for (int j = 1; j < threshold; j++)
            {
                coeffs[j] = RandomElement();
            }

            for (int i = 0; i < xs.Length; i++)
            {
                // Horner evaluation.
                ulong y = 0;
                for (int j = threshold - 1; j >= 0; j--)
                {
                    y = Add(Mul(y, xs[i]), coeffs[j]);
                }

                BinaryPrimitives.WriteUInt64LittleEndian(shares[i].AsSpan(c * 8), y);
            }

            CryptographicOperations.ZeroMemory(System.Runtime.InteropServices.MemoryMarshal.AsBytes(coeffs));
        }

        return shares;
    }

    /// <summary>Lagrange coefficients at 0 for the points xs: secret = Σ λ_i · y_i.</summary>
    public static ulong[] LagrangeAtZero(ReadOnlySpan<ulong> xs)
    {
        var lambda = new ulong[xs.Length];
        for (int i = 0; i < xs.Length; i++)
        {
            ulong num = 1, den = 1;
            for (int j = 0; j < xs.Length; j++)
            {
                if (j == i)
                {
                    continue;
                }

                num = Mul(num, xs[j]);
                den = Mul(den, Sub(xs[j], xs[i]));
            }

            lambda[i] = Mul(num, Inverse(den));
        }

        return lambda;
    }

    /// <summary>Reconstructs the secret; false when a chunk is out of range (inconsistent or corrupted shares).</summary>
    public static bool TryReconstruct(IReadOnlyList<byte[]> shares, ReadOnlySpan<ulong> lambda, Span<byte> secret)
    {
        Span<byte> chunk = stackalloc byte[8];
        for (int c = 0; c < Chunks; c++)
        {
            ulong s = 0;
            for (int i = 0; i < lambda.Length; i++)
            {
                ulong y = BinaryPrimitives.ReadUInt64LittleEndian(shares[i].AsSpan(c * 8));
                if (y >= P)
                {
                    return false;
                }

                s = Add(s, Mul(lambda[i], y));
            }

            int off = c * ChunkBytes;
            int len = Math.Min(ChunkBytes, SecretSize - off);
            if ((s >> (len * 8)) != 0)
            {
                return false;
            }

            BinaryPrimitives.WriteUInt64LittleEndian(chunk, s);
            chunk[..len].CopyTo(secret.Slice(off, len));
        }

        return true;
    }
}
