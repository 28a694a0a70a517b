namespace NearML.Training.Data;

/// <summary>
/// A small deterministic pseudo-random generator (xoshiro256** seeded through SplitMix64) whose sequence is fixed by
/// this library, not by the runtime: the same seed gives the same shuffles and windows on every platform and .NET
/// version. Not for secrets (use <c>RandomNumberGenerator</c>).
/// </summary>
public sealed class SeededRandom
{
    private ulong _s0;
    private ulong _s1;
    private ulong _s2;
    private ulong _s3;

    /// <summary>Initializes a generator from a seed.</summary>
    /// <param name="seed">Any 64-bit value.</param>
    public SeededRandom(ulong seed)
    {
        var x = seed;
        _s0 = SplitMix64(ref x);
        _s1 = SplitMix64(ref x);
        _s2 = SplitMix64(ref x);
        _s3 = SplitMix64(ref x);
    }

    /// <summary>Initializes a generator for one stream of a seed (e.g. one epoch), independent of the other streams.</summary>
    /// <param name="seed">The base seed.</param>
    /// <param name="stream">The stream number (epoch, worker, …).</param>
    public SeededRandom(ulong seed, ulong stream)
        : this(Mix(seed, stream))
    {
    }

    /// <summary>Returns the next 64 uniformly random bits.</summary>
    /// <returns>The value.</returns>
    public ulong NextUInt64()
    {
        var result = RotateLeft(_s1 * 5, 7) * 9;
        var t = _s1 << 17;
        _s2 ^= _s0;
        _s3 ^= _s1;
        _s1 ^= _s2;
        _s0 ^= _s3;
        _s2 ^= t;
        _s3 = RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>Returns a uniformly distributed integer in [0, <paramref name="bound"/>) without modulo bias (Lemire's method).</summary>
    /// <param name="bound">The exclusive upper bound (&gt; 0).</param>
    /// <returns>The value.</returns>
    public int NextInt(int bound)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bound);
        var b = (ulong)bound;
        var hi = Math.BigMul(NextUInt64(), b, out var lo);
        if (lo < b)
        {
            var threshold = (0 - b) % b;
            while (lo < threshold)
            {
                hi = Math.BigMul(NextUInt64(), b, out lo);
            }
        }

        return (int)hi;
    }

    /// <summary>Returns a uniformly distributed double in [0, 1) with 53 random bits.</summary>
    /// <returns>The value.</returns>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Shuffles <paramref name="items"/> in place (Fisher–Yates, from the last element down).</summary>
    /// <typeparam name="T">The element type.</typeparam>
    /// <param name="items">The items.</param>
    public void Shuffle<T>(Span<T> items)
    {
        for (var i = items.Length - 1; i > 0; i--)
        {
            var j = NextInt(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    internal static ulong Mix(ulong seed, ulong stream)
    {
        var x = seed ^ (stream * 0xD1B54A32D192ED03UL);
        _ = SplitMix64(ref x);
        return SplitMix64(ref x) ^ stream;
    }

    private static ulong SplitMix64(ref ulong x)
    {
        x += 0x9E3779B97F4A7C15UL;
        var z = x;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    private static ulong RotateLeft(ulong x, int k) => (x << k) | (x >> (64 - k));
}
