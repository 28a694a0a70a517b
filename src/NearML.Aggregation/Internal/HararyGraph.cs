namespace NearML.Aggregation.Internal;

/// <summary>
/// The SecAgg+ communication graph: a Harary graph H(n, k) (each ring position joined to the k/2 nearest positions on
/// each side) whose nodes are placed on the ring by a permutation derived from a 32-byte seed with the AES-CTR PRG.
/// When k ≥ n − 1 it is the complete graph (SecAgg).
/// </summary>
internal sealed class HararyGraph
{
    private readonly int[] _position;
    private readonly int[] _atPosition;

    public HararyGraph(int n, int k, ReadOnlySpan<byte> seed)
    {
        N = n;
        K = Math.Min(k, n - 1);
        IsComplete = K >= n - 1;
        _position = new int[n];
        _atPosition = new int[n];
        for (int i = 0; i < n; i++)
        {
            _atPosition[i] = i;
        }

        if (!IsComplete)
        {
            // Fisher–Yates with unbiased rejection sampling on a PRG stream keyed by the seed.
            var key = System.Security.Cryptography.HKDF.DeriveKey(
                System.Security.Cryptography.HashAlgorithmName.SHA256, seed.ToArray(), MaskPrg.KeySize, null, "nearml/secagg/v1/graph"u8.ToArray());
            var prg = new MaskPrg(key);
            var stream = new uint[Math.Max(64, n * 2)];
            prg.Generate(stream, 0);
            long next = stream.Length;
            int idx = 0;
            for (int i = n - 1; i > 0; i--)
            {
                uint bound = (uint)(i + 1);
                uint limit = uint.MaxValue - (uint.MaxValue % bound);
                uint r;
                do
                {
                    if (idx == stream.Length)
                    {
                        prg.Generate(stream, next);
                        next += stream.Length;
                        idx = 0;
                    }

                    r = stream[idx++];
                }
                while (r >= limit);
                int j = (int)(r % bound);
                (_atPosition[i], _atPosition[j]) = (_atPosition[j], _atPosition[i]);
            }
        }

        for (int p = 0; p < n; p++)
        {
            _position[_atPosition[p]] = p;
        }
    }

    public int N { get; }

    public int K { get; }

    public bool IsComplete { get; }

    /// <summary>The neighbours of <paramref name="node"/>, ascending.</summary>
    public uint[] Neighbours(uint node)
    {
        if (IsComplete)
        {
            var all = new uint[N - 1];
            for (uint v = 0, j = 0; v < N; v++)
            {
                if (v != node)
                {
                    all[j++] = v;
                }
            }

            return all;
        }

        int half = K / 2;
        int p = _position[node];
        var result = new uint[2 * half];
        int m = 0;
        for (int d = 1; d <= half; d++)
        {
            result[m++] = (uint)_atPosition[(p + d) % N];
            result[m++] = (uint)_atPosition[((p - d) % N + N) % N];
        }

        Array.Sort(result);
        return result;
    }

    public bool AreNeighbours(uint a, uint b)
    {
        if (a == b)
        {
            return false;
        }

        if (IsComplete)
        {
            return true;
        }

        int d = Math.Abs(_position[a] - _position[b]);
        d = Math.Min(d, N - d);
        return d <= K / 2;
    }
}
