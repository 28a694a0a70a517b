namespace NearML.Sharding.Internal;

/// <summary>SplitMix64: a tiny fixed-definition PRNG for seeded, reproducible shuffles in simulations.</summary>
internal sealed class SplitMix(ulong seed)
{
    private ulong _x = seed;

    public ulong Next()
    {
        _x += 0x9E3779B97F4A7C15UL;
        var z = _x;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public int NextInt(int bound)
    {
        // Rejection sampling removes modulo bias.
        var b = (ulong)bound;
        var limit = ulong.MaxValue - (ulong.MaxValue % b);
        ulong v;
        do
        {
            v = Next();
        }
        while (v >= limit);
        return (int)(v % b);
    }

    public void Shuffle<T>(Span<T> items)
    {
        for (var i = items.Length - 1; i > 0; i--)
        {
            var j = NextInt(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }
}
