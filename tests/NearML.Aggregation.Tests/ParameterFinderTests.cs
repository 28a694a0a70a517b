namespace NearML.Aggregation.Tests;

[TestClass]
public sealed class ParameterFinderTests
{
    // Google's published (k, t) for a semi-honest server, σ = 40, η = 20 (federated-compute's graph parameter finder
    // table); the same rows are recomputed with exact rational arithmetic by benchmarks/.../finder_check.py. Google's t
    // is the smallest with n · P[Hyp ≥ t] ≤ 2^−41 (fewer than t corrupt neighbours); many rows have 2t ≤ k, inside the
    // split-view leak region of a malicious server, which NearML's finder never returns.
    [TestMethod]
    [DataRow(100, 0.05, 0.05, 12, 6)]
    [DataRow(1_000, 0.05, 0.05, 30, 17)]
    [DataRow(10_000, 0.05, 0.05, 34, 20)]
    [DataRow(100_000, 0.05, 0.05, 36, 21)]
    [DataRow(1_000_000, 0.05, 0.05, 38, 22)]
    [DataRow(100, 0.05, 0.33, 28, 6)]
    [DataRow(1_000, 0.05, 0.33, 72, 24)]
    [DataRow(10_000, 0.05, 0.33, 86, 29)]
    [DataRow(100, 0.33, 0.05, 34, 29)]
    [DataRow(1_000, 0.33, 0.05, 78, 60)]
    [DataRow(10_000, 0.33, 0.05, 92, 70)]
    [DataRow(100, 0.33, 0.33, 68, 34)]
    [DataRow(1_000, 0.33, 0.33, 286, 150)]
    [DataRow(100, 0.33, 0.0, 26, 25)]
    [DataRow(1_000, 0.0, 0.33, 38, 2)]
    [DataRow(100, 0.0, 0.0, 2, 2)]
    public void GooglesSemiHonestTable_IsReproducedByTheThresholdEvent_AndTheFinderStaysOutOfTheLeakRegion(int n, double gamma, double delta, int k, int t)
    {
        int c = SecAggParameters.Count(gamma, n), d = SecAggParameters.Count(delta, n);
        // The semi-honest threshold event reproduces Google's t for its k (the shared hypergeometric machinery is right).
        int semiHonestT = Enumerable.Range(2, k - 1).First(x => Math.Log2(n) + SecAggParameters.Log2HypergeometricTail(n - 1, c, k, x) <= -41);
        Assert.AreEqual(t, semiHonestT, $"semi-honest threshold for n={n}, k={k}");

        var p = SecAggParameters.Find(n, gamma, delta);
        Assert.IsGreaterThan(p.Degree, 2 * p.Threshold, $"2t > k for n={n}, γ={gamma}, δ={delta}");
        Assert.IsGreaterThanOrEqualTo(k, p.Degree, "the malicious-server bound never needs a smaller degree");
        if (double.IsNaN(p.CorrectnessFailureLog2))
        {
            // No graph meets correctness with t > (k + c)/2 (here n = 100, γ = δ = 0.33: 33 colluders and 33 dropouts
            // on the complete graph need t ≥ 67 and t ≤ 66): the finder says so rather than return a leaking t.
            Assert.AreEqual(n - 1, p.Degree);
            Assert.IsLessThan((2 * p.Threshold) - p.Degree, c);
            return;
        }

        Assert.IsLessThanOrEqualTo(-40.0, p.SecurityFailureLog2);
        Assert.IsLessThanOrEqualTo(-20.0, p.CorrectnessFailureLog2);
        Assert.IsLessThanOrEqualTo(-41.0, SecAggParameters.Log2SplitViewBound(n, p.Degree, p.Threshold, c));
        Assert.IsLessThanOrEqualTo(-20.0, SecAggParameters.Log2CorrectnessBound(n, p.Degree, p.Threshold, d));
        Assert.IsGreaterThanOrEqualTo(p.Threshold, p.MaxThreshold);
        Assert.IsLessThanOrEqualTo(p.Degree, p.MaxThreshold);
    }

    [TestMethod]
    public void Find_NeverReturnsAConfigurationInTheSplitViewLeakRegion()
    {
        // Random cohorts and threat fractions: every result has t > k/2 and, when the bounds are met, fewer than 2t − k
        // corrupt neighbours anywhere except with probability ≤ 2^−41; the complete-graph fallback has c < 2t − k.
        var rng = new Random(1207);
        for (int i = 0; i < 300; i++)
        {
            int n = rng.Next(3, 3000);
            double gamma = Math.Round(rng.NextDouble() * 0.4, 3), delta = Math.Round(rng.NextDouble() * 0.4, 3);
            var p = SecAggParameters.Find(n, gamma, delta);
            int c = SecAggParameters.Count(gamma, n);
            Assert.IsGreaterThan(p.Degree, 2 * p.Threshold, $"n={n}, γ={gamma}, δ={delta}: k={p.Degree}, t={p.Threshold}");
            if (p.Degree == n - 1)
            {
                Assert.IsTrue(double.IsNaN(p.SecurityFailureLog2) || c < (2 * p.Threshold) - p.Degree, $"n={n}, γ={gamma}: complete graph");
            }
            else
            {
                Assert.IsLessThanOrEqualTo(-41.0, SecAggParameters.Log2SplitViewBound(n, p.Degree, p.Threshold, c), $"n={n}, γ={gamma}, δ={delta}");
            }
        }
    }

    [TestMethod]
    public void Find_IsMinimal_NoSmallerDegreeOrThresholdMeetsTheBounds()
    {
        foreach (var n in new[] { 100, 1_000, 10_000 })
        {
            var p = SecAggParameters.Find(n, 0.05, 0.05);
            int c = SecAggParameters.Count(0.05, n), d = SecAggParameters.Count(0.05, n);
            Assert.IsLessThanOrEqualTo(-40.0, SecAggParameters.Log2SecurityBound(n, p.Degree, p.Threshold, c, d));
            Assert.IsLessThanOrEqualTo(-20.0, SecAggParameters.Log2CorrectnessBound(n, p.Degree, p.Threshold, d));
            // t − 1 is not secure enough for this k.
            Assert.IsGreaterThan(-41.0, SecAggParameters.Log2SplitViewBound(n, p.Degree, p.Threshold - 1, c));
            // No smaller even k has a threshold meeting both bounds.
            for (int k = 2; k < p.Degree; k += 2)
            {
                bool any = false;
                for (int t = 2; t <= k; t++)
                {
                    any |= SecAggParameters.Log2SecurityBound(n, k, t, c, d) <= -40 && SecAggParameters.Log2DisconnectBound(n, k, c + d) <= -41
                        && SecAggParameters.Log2SplitViewBound(n, k, t, c) <= -41
                        && SecAggParameters.Log2CorrectnessBound(n, k, t, d) <= -20;
                }

                Assert.IsFalse(any, $"n={n}: k={k} would also do");
            }

            // The largest admissible threshold is correct, one more is not.
            Assert.IsLessThanOrEqualTo(-20.0, SecAggParameters.Log2CorrectnessBound(n, p.Degree, p.MaxThreshold, d));
            if (p.MaxThreshold < p.Degree)
            {
                Assert.IsGreaterThan(-20.0, SecAggParameters.Log2CorrectnessBound(n, p.Degree, p.MaxThreshold + 1, d));
            }
        }
    }

    [TestMethod]
    public void Bounds_AreMonotone()
    {
        const int n = 1_000;
        for (int k = 10; k <= 60; k += 2)
        {
            // Disconnection: fewer removed clients or a larger degree can only make it less likely.
            Assert.IsLessThanOrEqualTo(SecAggParameters.Log2DisconnectBound(n, k, 100), SecAggParameters.Log2DisconnectBound(n, k + 2, 100));
            Assert.IsLessThanOrEqualTo(SecAggParameters.Log2DisconnectBound(n, k, 120), SecAggParameters.Log2DisconnectBound(n, k, 100));
            for (int t = 2; t < k; t++)
            {
                // Security improves with t and worsens with more corrupt clients.
                Assert.IsLessThanOrEqualTo(SecAggParameters.Log2SecurityBound(n, k, t, 50, 50), SecAggParameters.Log2SecurityBound(n, k, t + 1, 50, 50));
                Assert.IsLessThanOrEqualTo(SecAggParameters.Log2SecurityBound(n, k, t, 60, 50), SecAggParameters.Log2SecurityBound(n, k, t, 50, 50));
                // Correctness worsens with t and with more dropouts.
                Assert.IsGreaterThanOrEqualTo(SecAggParameters.Log2CorrectnessBound(n, k, t, 50), SecAggParameters.Log2CorrectnessBound(n, k, t + 1, 50));
                Assert.IsGreaterThanOrEqualTo(SecAggParameters.Log2CorrectnessBound(n, k, t, 50), SecAggParameters.Log2CorrectnessBound(n, k, t, 60));
            }
        }

        // The chosen degree never falls as the threat grows or the bit targets rise.
        int prev = 0;
        foreach (var rate in new[] { 0.0, 0.02, 0.05, 0.1, 0.2, 0.3 })
        {
            int k = SecAggParameters.Find(n, rate, rate).Degree;
            Assert.IsGreaterThanOrEqualTo(prev, k, $"γ = δ = {rate}");
            prev = k;
        }

        Assert.IsGreaterThanOrEqualTo(SecAggParameters.Find(n, 0.05, 0.05).Degree, SecAggParameters.Find(n, 0.05, 0.05, securityBits: 60).Degree);
        Assert.IsGreaterThanOrEqualTo(SecAggParameters.Find(n, 0.05, 0.05).Degree, SecAggParameters.Find(n, 0.05, 0.05, correctnessBits: 40).Degree);
    }

    [TestMethod]
    public void DisconnectBound_MatchesExactEnumerationOnASmallRing()
    {
        // n = 12, k = 4, 5 removed: count removed sets that disconnect H(12, 4) exactly (by BFS over all C(12, 5)
        // sets) and check that the union bound is an upper bound on that probability.
        const int n = 12, k = 4, removed = 5;
        int total = 0, disconnected = 0;
        for (int mask = 0; mask < 1 << n; mask++)
        {
            if (System.Numerics.BitOperations.PopCount((uint)mask) != removed)
            {
                continue;
            }

            total++;
            disconnected += IsConnectedAfterRemoval(n, k, mask) ? 0 : 1;
        }

        double exact = Math.Log2((double)disconnected / total);
        double bound = SecAggParameters.Log2DisconnectBound(n, k, removed);
        Assert.IsGreaterThan(0, disconnected);
        Assert.IsLessThanOrEqualTo(bound + 1e-12, exact);
        // A single run of k/2 (or fewer than k removed) never disconnects.
        Assert.AreEqual(double.NegativeInfinity, SecAggParameters.Log2DisconnectBound(n, k, k - 1));
        Assert.IsTrue(IsConnectedAfterRemoval(n, k, 0b11));
        Assert.IsFalse(IsConnectedAfterRemoval(n, k, 0b11 | (0b11 << 6)));
    }

    [TestMethod]
    public void Find_SmallCohorts_AndCompleteGraphFallback()
    {
        // n = 10, 3 dropped, none corrupt: t > k/2 leaves k − t < k/2 dropped neighbours, so only k = 8, t = 5 (no
        // client can have 4 dropped neighbours) meets correctness; Google's semi-honest finder returns k = 4.
        var small = SecAggParameters.Find(10, 0.05, 0.33);
        Assert.AreEqual(8, small.Degree);
        Assert.AreEqual(5, small.Threshold);
        Assert.IsLessThanOrEqualTo(-20.0, small.CorrectnessFailureLog2);
        Assert.IsGreaterThan(-20.0, SecAggParameters.Log2CorrectnessBound(10, 6, 4, 3));

        // Nothing below the complete graph works: SecAgg's deterministic conditions decide t = ⌊(k + c)/2⌋ + 1.
        var complete = SecAggParameters.Find(5, 0.2, 0.2);
        Assert.AreEqual(4, complete.Degree);
        Assert.AreEqual(3, complete.Threshold);
        Assert.AreEqual(double.NegativeInfinity, complete.SecurityFailureLog2);

        // Correctness impossible on the complete graph: NaN bounds, and still a threshold outside the leak region.
        var impossible = SecAggParameters.Find(4, 0.25, 0.25);
        Assert.AreEqual(3, impossible.Degree);
        Assert.AreEqual(3, impossible.Threshold);
        Assert.IsTrue(double.IsNaN(impossible.CorrectnessFailureLog2));

        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SecAggParameters.Find(100, 0.6, 0.5));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SecAggParameters.Find(1, 0.05, 0.05));
    }

    private static bool IsConnectedAfterRemoval(int n, int k, int removedMask)
    {
        int start = -1, alive = 0;
        for (int i = 0; i < n; i++)
        {
            if ((removedMask >> i & 1) == 0)
            {
                alive++;
                start = start < 0 ? i : start;
            }
        }

        if (alive == 0)
        {
            return true;
        }

        var seen = new bool[n];
        var stack = new Stack<int>();
        stack.Push(start);
        seen[start] = true;
        int reached = 1;
        while (stack.Count > 0)
        {
            int u = stack.Pop();
            for (int d = 1; d <= k / 2; d++)
            {
                foreach (var v in new[] { (u + d) % n, (u - d + n) % n })
                {
                    if (!seen[v] && (removedMask >> v & 1) == 0)
                    {
                        seen[v] = true;
                        reached++;
                        stack.Push(v);
                    }
                }
            }
        }

        return reached == alive;
    }
}
