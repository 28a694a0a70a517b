namespace NearML.Aggregation;

/// <summary>Graph degree and Shamir threshold for one SecAgg+ cohort, with the bounds they were chosen under.</summary>
/// <param name="Degree">Number of neighbours k of every client (even; n − 1 means the complete graph of SecAgg).</param>
/// <param name="Threshold">Shamir threshold t: the smallest threshold that meets the security bound for this degree.</param>
/// <param name="SecurityFailureLog2">log2 of the bound on the probability that privacy fails (≤ −σ).</param>
/// <param name="CorrectnessFailureLog2">log2 of the bound on the probability that a client has fewer than t surviving neighbours (≤ −η).</param>
public sealed record SecAggParameters(int Degree, int Threshold, double SecurityFailureLog2, double CorrectnessFailureLog2)
{
    /// <summary>
    /// Gets the largest threshold that still meets the correctness bound for <see cref="Degree"/>. Any t in
    /// [<see cref="Threshold"/>, <see cref="MaxThreshold"/>] meets both bounds: a larger t trades dropout tolerance
    /// for a margin against more corrupt clients than γ·n.
    /// </summary>
    /// <value>The default value is <see cref="Threshold"/> when set by hand; the finder fills it in.</value>
    public int MaxThreshold { get; init; }

    /// <summary>
    /// Finds the smallest even degree k and, for it, the smallest Shamir threshold t such that on a randomly
    /// permuted Harary graph H(n, k), with c = ⌊γn⌋ corrupt and d = ⌊δn⌋ dropped clients chosen without knowledge of
    /// the permutation, union bounds give:
    /// (security against a malicious server) n · P[Hyp(n−1, c, k) ≥ 2t − k] ≤ 2^−(σ+1): no honest client has 2t − k
    /// corrupt neighbours, so its k neighbours cannot be split into two groups that each reach t shares with the
    /// corrupt ones' help (one told "it survived", one told "it dropped") — this also forces t &gt; k/2 and implies
    /// the semi-honest condition (fewer than t corrupt neighbours);
    /// (security, connectivity) n(n−k−1)/2 · C(c+d, k)/C(n, k) ≤ 2^−(σ+1): the honest survivors stay connected
    /// (disconnecting a Harary graph needs k/2 consecutive removed ring positions in two separate places);
    /// (correctness) n · P[Hyp(n−1, d, k) ≥ k − t + 1] ≤ 2^−η: every client keeps t surviving neighbours.
    /// The derivation is in docs/secure-aggregation.md. The finder never returns a configuration with 2t ≤ k (the
    /// split-view leak region). When no k ≤ n − 2 works, the complete graph (SecAgg) is returned with
    /// t = max(⌊(n − 1 + c)/2⌋ + 1, 2), and NaN bounds if even that cannot meet correctness (d &gt; n − 1 − t).
    /// </summary>
    /// <param name="clients">Cohort size n (≥ 2).</param>
    /// <param name="corruptFraction">γ, the fraction of clients that may collude with the server, in [0, 1).</param>
    /// <param name="dropoutFraction">δ, the fraction of clients that may drop out, in [0, 1).</param>
    /// <param name="securityBits">σ, statistical security in bits (default 40).</param>
    /// <param name="correctnessBits">η, correctness in bits (default 20).</param>
    /// <returns>The chosen parameters.</returns>
    public static SecAggParameters Find(int clients, double corruptFraction, double dropoutFraction, int securityBits = 40, int correctnessBits = 20)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(clients, 2);
        if (corruptFraction is < 0 or >= 1 || double.IsNaN(corruptFraction))
        {
            throw new ArgumentOutOfRangeException(nameof(corruptFraction), corruptFraction, "must be in [0, 1)");
        }

        if (dropoutFraction is < 0 or >= 1 || double.IsNaN(dropoutFraction) || corruptFraction + dropoutFraction >= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(dropoutFraction), dropoutFraction, "must be in [0, 1) with γ + δ < 1");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(securityBits, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(correctnessBits, 1);
        int n = clients;
        int corrupt = Count(corruptFraction, n);
        int dropped = Count(dropoutFraction, n);
        for (int k = 2; k <= n - 2; k += 2)
        {
            var p = Evaluate(n, k, corrupt, dropped, securityBits, correctnessBits);
            if (p is not null)
            {
                return p;
            }
        }

        return Complete(n, corrupt, dropped);
    }

    /// <summary>
    /// log2 of the union bound on the probability that removing <paramref name="removed"/> clients, chosen
    /// independently of the permutation, disconnects a randomly permuted Harary graph H(n, k): the removed set must
    /// cover two disjoint, non-adjacent runs of k/2 ring positions; there are n(n−k−1)/2 such pairs of runs, and a
    /// fixed set of k positions is entirely removed with probability C(removed, k)/C(n, k).
    /// </summary>
    internal static double Log2DisconnectBound(int n, int k, int removed)
    {
        if (k > removed || n - k - 1 <= 0)
        {
            return double.NegativeInfinity;
        }

        return Math.Log2(n) + Math.Log2(n - k - 1) - 1 + Log2Choose(removed, k) - Log2Choose(n, k);
    }

    /// <summary>
    /// log2 of the security bound (split-view threshold event + connectivity event) for a given (n, k, t, c, d): some
    /// client has at least 2t − k corrupt neighbours (probability 1 when 2t ≤ k), or the honest survivors disconnect.
    /// </summary>
    internal static double Log2SecurityBound(int n, int k, int t, int corrupt, int dropped)
        => LogSum2(Log2SplitViewBound(n, k, t, corrupt), Log2DisconnectBound(n, k, corrupt + dropped));

    /// <summary>
    /// log2 of n · P[Hyp(n − 1, c, k) ≥ 2t − k]: the union bound on some client having so many corrupt neighbours that a
    /// malicious server can collect t shares of both of its secrets (0, certainty, when 2t ≤ k).
    /// </summary>
    internal static double Log2SplitViewBound(int n, int k, int t, int corrupt)
        => 2 * t <= k ? 0 : Math.Min(0, Math.Log2(n) + Log2HypergeometricTail(n - 1, corrupt, k, (2 * t) - k));

    /// <summary>log2 of the correctness bound: some client has more than k − t dropped neighbours.</summary>
    internal static double Log2CorrectnessBound(int n, int k, int t, int dropped)
        => Math.Log2(n) + Log2HypergeometricTail(n - 1, dropped, k, k - t + 1);

    /// <summary>The largest integer not above fraction · n (with a relative tolerance for decimal fractions such as 0.05).</summary>
    internal static int Count(double fraction, int n) => (int)Math.Floor((fraction * n) + (1e-9 * Math.Max(1, fraction * n)));

    private static SecAggParameters? Evaluate(int n, int k, int corrupt, int dropped, int sigma, int eta)
    {
        double perEvent = -(sigma + 1);
        double disconnect = Log2DisconnectBound(n, k, corrupt + dropped);
        if (disconnect > perEvent)
        {
            return null;
        }

        // Tails of the number of corrupt (resp. dropped) neighbours of one client, for every cut-off 0..k+1.
        var corruptTail = HypergeometricTails(n - 1, corrupt, k);
        var dropTail = HypergeometricTails(n - 1, dropped, k);
        double log2n = Math.Log2(n);
        int tMin = -1;
        for (int t = Math.Max(2, (k / 2) + 1); t <= k; t++)
        {
            // Split view: 2t − k ≥ 1 corrupt neighbours are needed for a malicious server to reach t shares of both secrets.
            if (log2n + corruptTail[(2 * t) - k] <= perEvent)
            {
                tMin = t;
                break;
            }
        }

        // A larger t only makes correctness harder, so the smallest secure t decides whether this k works.
        if (tMin < 0 || log2n + dropTail[k - tMin + 1] > -eta)
        {
            return null;
        }

        int tMax = tMin;
        while (tMax < k && log2n + dropTail[k - tMax] <= -eta)
        {
            tMax++;
        }

        return new SecAggParameters(k, tMin, LogSum2(log2n + corruptTail[(2 * tMin) - k], disconnect), log2n + dropTail[k - tMin + 1])
        {
            MaxThreshold = tMax,
        };
    }

    private static SecAggParameters Complete(int n, int corrupt, int dropped)
    {
        // Complete graph: every client sees every corrupt client and every dropout, so both conditions are
        // deterministic; removing clients never disconnects it. Split view: c < 2t − k, i.e. t > (k + c)/2.
        int k = n - 1;
        int t = Math.Min(k, MaliciousCompleteThreshold(n, corrupt));
        bool ok = corrupt < (2 * t) - k && dropped <= k - t;
        return ok
            ? new SecAggParameters(k, t, double.NegativeInfinity, double.NegativeInfinity) { MaxThreshold = k - dropped }
            : new SecAggParameters(k, t, double.NaN, double.NaN) { MaxThreshold = t };
    }

    /// <summary>The smallest threshold on the complete graph K_n with which c corrupt clients cannot complete a split view: ⌊(n − 1 + c)/2⌋ + 1, at least 2.</summary>
    internal static int MaliciousCompleteThreshold(int n, int corrupt) => Math.Max(2, ((n - 1 + corrupt) / 2) + 1);

    /// <summary>tails[x] = log2 P[X ≥ x] for X ~ Hypergeometric(population, successes, draws), x = 0..draws+1.</summary>
    private static double[] HypergeometricTails(int population, int successes, int draws)
    {
        var tails = new double[draws + 2];
        double denom = Log2Choose(population, draws);
        double acc = double.NegativeInfinity;
        tails[draws + 1] = double.NegativeInfinity;
        for (int i = draws; i >= 0; i--)
        {
            if (i <= successes && draws - i <= population - successes)
            {
                acc = LogSum2(acc, Log2Choose(successes, i) + Log2Choose(population - successes, draws - i) - denom);
            }

            tails[i] = i == 0 ? 0 : acc;
        }

        return tails;
    }

    /// <summary>log2 P[X ≥ x] for X ~ Hypergeometric(population N, successes K, draws k).</summary>
    internal static double Log2HypergeometricTail(int population, int successes, int draws, int x)
    {
        if (x <= 0)
        {
            return 0;
        }

        int max = Math.Min(successes, draws);
        if (x > max)
        {
            return double.NegativeInfinity;
        }

        double denom = Log2Choose(population, draws);
        double acc = double.NegativeInfinity;
        for (int i = x; i <= max; i++)
        {
            if (draws - i > population - successes)
            {
                continue;
            }

            acc = LogSum2(acc, Log2Choose(successes, i) + Log2Choose(population - successes, draws - i) - denom);
        }

        return acc;
    }

    internal static double Log2Choose(int n, int r)
    {
        if (r < 0 || r > n)
        {
            return double.NegativeInfinity;
        }

        return (LogFactorial(n) - LogFactorial(r) - LogFactorial(n - r)) / Math.Log(2);
    }

    private static double LogSum2(double a, double b)
    {
        if (double.IsNegativeInfinity(a))
        {
            return b;
        }

        if (double.IsNegativeInfinity(b))
        {
            return a;
        }

        double m = Math.Max(a, b);
        return m + Math.Log2(Math.Pow(2, a - m) + Math.Pow(2, b - m));
    }

    private static readonly double[] s_smallLogFactorial = BuildSmallLogFactorials();

    private static double[] BuildSmallLogFactorials()
    {
        var table = new double[64];
        for (int i = 2; i < table.Length; i++)
        {
            table[i] = table[i - 1] + Math.Log(i);
        }

        return table;
    }

    /// <summary>ln(m!): exact sums below 64, Stirling's series with four correction terms above (error &lt; 1e-17).</summary>
    private static double LogFactorial(int m)
    {
        if (m < s_smallLogFactorial.Length)
        {
            return s_smallLogFactorial[m];
        }

        double z = m + 1.0;
        double z2 = z * z;
        double series = (1 / (12 * z)) - (1 / (360 * z * z2)) + (1 / (1260 * z * z2 * z2)) - (1 / (1680 * z * z2 * z2 * z2));
        return ((z - 0.5) * Math.Log(z)) - z + (0.5 * Math.Log(2 * Math.PI)) + series;
    }
}
