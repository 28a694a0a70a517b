namespace NearML.Aggregation;

/// <summary>Graph degree and Shamir threshold for one SecAgg+ cohort, with the bounds they were chosen under.</summary>
/// <param name="Degree">Number of neighbours k of every client (even; n − 1 means the complete graph of SecAgg).</param>
/// <param name="Threshold">Shamir threshold t.</param>
/// <param name="SecurityFailureLog2">log2 of the bound on the probability that privacy fails (≤ −σ).</param>
/// <param name="CorrectnessFailureLog2">log2 of the bound on the probability that a client has fewer than t surviving neighbours (≤ −η).</param>
public sealed record SecAggParameters(int Degree, int Threshold, double SecurityFailureLog2, double CorrectnessFailureLog2)
{
    /// <summary>
    /// Finds the smallest even degree k and the largest threshold t for which, on a randomly permuted Harary graph
    /// H(n, k) with a γ fraction of corrupt and a δ fraction of dropped clients (both chosen adversarially but without
    /// knowledge of the permutation), a union bound over the n nodes gives:
    /// (security) P[some client has ≥ t corrupt neighbours] + P[the honest survivors' subgraph is disconnected] ≤ 2^−σ;
    /// (correctness) P[some client has more than k − t dropped neighbours] ≤ 2^−η.
    /// Neighbour counts are hypergeometric; disconnection of a permuted Harary graph needs k/2 consecutive removed
    /// ring positions, bounded by n · C(R, k/2) / C(n−1, k/2) with R = (γ + δ)·n removed nodes.
    /// When no k &lt; n − 1 works, the complete graph (SecAgg) is returned.
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
        int corrupt = (int)Math.Ceiling(corruptFraction * n);
        int dropped = (int)Math.Ceiling(dropoutFraction * n);
        double log2n = Math.Log2(n);
        for (int k = 2; k < n - 1; k += 2)
        {
            var p = Evaluate(n, k, corrupt, dropped, log2n, securityBits, correctnessBits);
            if (p is not null)
            {
                return p;
            }
        }

        int kc = n - 1;
        return Evaluate(n, kc, corrupt, dropped, log2n, securityBits, correctnessBits, complete: true)
            ?? new SecAggParameters(kc, Math.Max(1, kc - dropped), double.NaN, double.NaN);
    }

    private static SecAggParameters? Evaluate(int n, int k, int corrupt, int dropped, double log2n, int sigma, int eta, bool complete = false)
    {
        // Largest t with n · P[Hyp(n−1, dropped, k) > k − t] ≤ 2^−η; on the complete graph every client sees every
        // dropout, so the condition is deterministic: dropped ≤ k − t.
        int t = 0;
        double correctness = double.NegativeInfinity;
        for (int cand = k; cand >= 1; cand--)
        {
            if (complete)
            {
                if (dropped <= k - cand)
                {
                    t = cand;
                    break;
                }

                continue;
            }

            double tail = log2n + Log2HypergeometricTail(n - 1, dropped, k, k - cand + 1);
            if (tail <= -eta)
            {
                t = cand;
                correctness = tail;
                break;
            }
        }

        if (t < 1)
        {
            return null;
        }

        double security;
        if (complete)
        {
            security = corrupt >= t ? 0 : double.NegativeInfinity;
        }
        else
        {
            double corruptTail = log2n + Log2HypergeometricTail(n - 1, corrupt, k, t);
            int removed = Math.Min(n - 1, corrupt + dropped);
            int run = k / 2;
            double disconnect = run > removed ? double.NegativeInfinity : log2n + Log2Choose(removed, run) - Log2Choose(n - 1, run);
            security = LogSum2(corruptTail, disconnect);
        }

        if (security > -sigma)
        {
            return complete ? new SecAggParameters(k, t, security, correctness) : null;
        }

        return new SecAggParameters(k, t, security, correctness);
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

    private static double Log2Choose(int n, int r)
    {
        if (r < 0 || r > n)
        {
            return double.NegativeInfinity;
        }

        return (LogGamma(n + 1) - LogGamma(r + 1) - LogGamma(n - r + 1)) / Math.Log(2);
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

    private static double LogGamma(double x)
    {
        // ln Γ(x) for integer-valued x ≥ 1 via ln((x−1)!) summed exactly below 256, Stirling series above.
        if (x < 256)
        {
            double s = 0;
            for (int i = 2; i < (int)x; i++)
            {
                s += Math.Log(i);
            }

            return s;
        }

        double z = x;
        return ((z - 0.5) * Math.Log(z)) - z + (0.5 * Math.Log(2 * Math.PI)) + (1 / (12 * z)) - (1 / (360 * z * z * z));
    }
}
