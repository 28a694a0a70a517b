namespace NearML.Core.Collectives;

/// <summary>One contribution offered to <see cref="ContributionScreen.Screen"/>.</summary>
/// <param name="WorkerId">Who sent it.</param>
/// <param name="Values">The decoded values.</param>
/// <param name="Weight">Its weight in the mean (positive and finite, or it is rejected).</param>
public readonly record struct ScreenCandidate(string WorkerId, ReadOnlyMemory<float> Values, double Weight);

/// <summary>
/// One contribution offered to <see cref="ContributionScreen.ScreenNorms"/> by a caller that computed its norm itself
/// (for example from a sparse message) and already refused malformed or non-finite values.
/// </summary>
/// <param name="WorkerId">Who sent it.</param>
/// <param name="Norm">Its Euclidean norm (finite, non-negative).</param>
/// <param name="Weight">Its weight in the mean (positive and finite, or it is rejected).</param>
public readonly record struct NormCandidate(string WorkerId, double Norm, double Weight);

/// <summary>The outcome of <see cref="ContributionScreen.Reduce"/>: the screen and the weighted mean written.</summary>
/// <param name="Screen">Which contributions were accepted and which rejected, with reasons.</param>
/// <param name="TotalWeight">The sum of the accepted weights (0 when none was accepted and the destination was not written).</param>
public sealed record ReductionResult(ScreenResult Screen, double TotalWeight)
{
    /// <summary>Gets a value indicating whether at least one contribution was averaged in (the destination holds the mean).</summary>
    public bool HasResult => Screen.Accepted.Count > 0;
}

/// <summary>A contribution that passed <see cref="ContributionScreen.Screen"/>.</summary>
/// <param name="Index">Its index in the candidate list.</param>
/// <param name="Norm">Its Euclidean norm.</param>
public readonly record struct ScreenedContribution(int Index, double Norm);

/// <summary>The outcome of <see cref="ContributionScreen.Screen"/>.</summary>
/// <param name="Accepted">The contributions to average in, in candidate order.</param>
/// <param name="Rejections">The contributions left out, with reasons, in candidate order.</param>
/// <param name="ReferenceNorm">The median norm the ratio rule compared against, or <see langword="null"/> when the rule did not apply.</param>
public sealed record ScreenResult(IReadOnlyList<ScreenedContribution> Accepted, IReadOnlyList<ContributionRejection> Rejections, double? ReferenceNorm);

/// <summary>
/// The one contribution reducer: every place that averages contributions — the in-process collective group (and so
/// Training's DDP and DiLoCo strategies and the simulator), DeMo's gather, and the coordinator's round protocols — screens
/// them here and averages them with <see cref="WeightedMean"/> (or <see cref="Reduce"/>, both at once). The screen rejects
/// non-positive weights, non-finite values, all-zero contributions (when <see cref="ContributionPolicy.RejectZero"/>),
/// norms above <see cref="ContributionPolicy.MaxNorm"/>, and norms above
/// <see cref="ContributionPolicy.MaxNormToMedianRatio"/> × the reference median.
/// </summary>
/// <remarks>
/// The reference median is the lower median of the finite, nonzero norms of this round together with
/// <c>history</c> — norms accepted in earlier rounds (the caller keeps a sliding window). The rule applies when that pool
/// holds at least <see cref="MinimumMedianPool"/> norms, so a tiny cohort (one honest and one hostile worker, or a lone worker) is still compared
/// against what was accepted before; in a large cohort the round's own norms dominate. With no history and a single
/// contribution only the absolute limit applies.
/// </remarks>
public static class ContributionScreen
{
    /// <summary>
    /// The fewest finite, nonzero norms (this round's and the history's together) the median-ratio rule needs before it
    /// applies. The one place this count lives.
    /// </summary>
    public const int MinimumMedianPool = 2;

    /// <summary>Computes the Euclidean norm of <paramref name="values"/> (double accumulation).</summary>
    /// <param name="values">The values.</param>
    /// <param name="firstNonFinite">The index of the first NaN or infinity, or -1.</param>
    /// <returns>The norm (positive infinity when a value is not finite).</returns>
    public static double Norm(ReadOnlySpan<float> values, out int firstNonFinite)
    {
        double sumSq = 0;
        for (var i = 0; i < values.Length; i++)
        {
            var v = values[i];
            if (!float.IsFinite(v))
            {
                firstNonFinite = i;
                return double.PositiveInfinity;
            }

            sumSq += (double)v * v;
        }

        firstNonFinite = -1;
        return Math.Sqrt(sumSq);
    }

    /// <summary>Screens one round's contributions.</summary>
    /// <param name="round">The round tag (copied into the rejections).</param>
    /// <param name="candidates">The contributions.</param>
    /// <param name="policy">What is accepted.</param>
    /// <param name="history">Norms accepted in earlier rounds (a sliding window), or <see langword="null"/>.</param>
    /// <returns>The accepted contributions with their norms and the rejections.</returns>
    public static ScreenResult Screen(long round, IReadOnlyList<ScreenCandidate> candidates, ContributionPolicy policy, IReadOnlyCollection<double>? history = null)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        ArgumentNullException.ThrowIfNull(policy);
        var rejections = new List<ContributionRejection>();
        var finite = new List<ScreenedContribution>();
        for (var index = 0; index < candidates.Count; index++)
        {
            var c = candidates[index];
            if (!double.IsFinite(c.Weight) || c.Weight <= 0)
            {
                rejections.Add(new ContributionRejection(c.WorkerId, round, RejectionReason.InvalidWeight, $"weight {c.Weight} is not positive and finite"));
                continue;
            }

            var values = c.Values.Span;
            var norm = Norm(values, out var bad);
            if (bad >= 0 && policy.RejectNonFinite)
            {
                rejections.Add(new ContributionRejection(c.WorkerId, round, RejectionReason.NonFinite, $"value {values[bad]} at index {bad} of {values.Length}"));
                continue;
            }

            if (norm == 0 && policy.RejectZero)
            {
                rejections.Add(new ContributionRejection(c.WorkerId, round, RejectionReason.ZeroNorm, $"all {values.Length} values are zero: the contribution carries no change"));
                continue;
            }

            if (policy.MaxNorm is { } max && norm > max)
            {
                rejections.Add(new ContributionRejection(c.WorkerId, round, RejectionReason.NormAboveLimit, $"norm {norm:G6} exceeds the limit {max:G6}"));
                continue;
            }

            finite.Add(new ScreenedContribution(index, norm));
        }

        return ApplyMedianRule(round, finite, i => candidates[i].WorkerId, rejections, policy, history);
    }

    /// <summary>
    /// Screens contributions whose norms the caller computed (weights, the absolute bound and the median-ratio rule; the
    /// caller has already refused malformed and non-finite values).
    /// </summary>
    /// <param name="round">The round tag (copied into the rejections).</param>
    /// <param name="candidates">The contributions' norms and weights.</param>
    /// <param name="policy">What is accepted.</param>
    /// <param name="history">Norms accepted in earlier rounds (a sliding window), or <see langword="null"/>.</param>
    /// <returns>The accepted contributions with their norms and the rejections.</returns>
    public static ScreenResult ScreenNorms(long round, IReadOnlyList<NormCandidate> candidates, ContributionPolicy policy, IReadOnlyCollection<double>? history = null)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        ArgumentNullException.ThrowIfNull(policy);
        var rejections = new List<ContributionRejection>();
        var finite = new List<ScreenedContribution>();
        for (var index = 0; index < candidates.Count; index++)
        {
            var c = candidates[index];
            if (!double.IsFinite(c.Weight) || c.Weight <= 0)
            {
                rejections.Add(new ContributionRejection(c.WorkerId, round, RejectionReason.InvalidWeight, $"weight {c.Weight} is not positive and finite"));
                continue;
            }

            if (!double.IsFinite(c.Norm))
            {
                rejections.Add(new ContributionRejection(c.WorkerId, round, RejectionReason.NonFinite, $"norm {c.Norm} is not finite"));
                continue;
            }

            if (c.Norm == 0 && policy.RejectZero)
            {
                rejections.Add(new ContributionRejection(c.WorkerId, round, RejectionReason.ZeroNorm, "all values are zero: the contribution carries no change"));
                continue;
            }

            if (policy.MaxNorm is { } max && c.Norm > max)
            {
                rejections.Add(new ContributionRejection(c.WorkerId, round, RejectionReason.NormAboveLimit, $"norm {c.Norm:G6} exceeds the limit {max:G6}"));
                continue;
            }

            finite.Add(new ScreenedContribution(index, c.Norm));
        }

        return ApplyMedianRule(round, finite, i => candidates[i].WorkerId, rejections, policy, history);
    }

    /// <summary>
    /// Writes the weighted mean of the accepted contributions into <paramref name="destination"/>: float32 accumulation in
    /// the order of <paramref name="accepted"/>, each contribution scaled by <c>(float)(weight / Σ weight)</c>. Every
    /// reducer in NearML computes its mean here, so equal inputs in equal order give equal bits everywhere.
    /// </summary>
    /// <param name="candidates">The contributions (as screened).</param>
    /// <param name="accepted">The accepted ones (for example <see cref="ScreenResult.Accepted"/>), in accumulation order.</param>
    /// <param name="destination">Receives the mean; as long as every accepted contribution. Left untouched when none is accepted.</param>
    /// <returns>The total weight (0 when nothing was accepted).</returns>
    /// <exception cref="ArgumentException">An accepted contribution's length differs from <paramref name="destination"/>'s.</exception>
    public static double WeightedMean(IReadOnlyList<ScreenCandidate> candidates, IReadOnlyList<ScreenedContribution> accepted, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        ArgumentNullException.ThrowIfNull(accepted);
        if (accepted.Count == 0)
        {
            return 0;
        }

        var total = 0.0;
        foreach (var a in accepted)
        {
            var c = candidates[a.Index];
            if (c.Values.Length != destination.Length)
            {
                throw new ArgumentException($"contribution of '{c.WorkerId}' holds {c.Values.Length} values; the mean holds {destination.Length}", nameof(accepted));
            }

            total += c.Weight;
        }

        destination.Clear();
        foreach (var a in accepted)
        {
            var c = candidates[a.Index];
            var w = (float)(c.Weight / total);
            System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(c.Values.Span, w, destination, destination);
        }

        return total;
    }

    /// <summary>Screens one round's contributions and writes the weighted mean of the accepted ones (<see cref="Screen"/>, then <see cref="WeightedMean"/>).</summary>
    /// <param name="round">The round tag.</param>
    /// <param name="candidates">The contributions, in accumulation order (NearML uses ascending worker id).</param>
    /// <param name="policy">What is accepted.</param>
    /// <param name="destination">Receives the mean when at least one contribution is accepted.</param>
    /// <param name="history">Norms accepted in earlier rounds (a sliding window), or <see langword="null"/>.</param>
    /// <returns>The screen and the total accepted weight.</returns>
    public static ReductionResult Reduce(long round, IReadOnlyList<ScreenCandidate> candidates, ContributionPolicy policy, Span<float> destination, IReadOnlyCollection<double>? history = null)
    {
        var screen = Screen(round, candidates, policy, history);
        var total = WeightedMean(candidates, screen.Accepted, destination);
        return new ReductionResult(screen, total);
    }

    private static ScreenResult ApplyMedianRule(long round, List<ScreenedContribution> finite, Func<int, string> workerOf, List<ContributionRejection> rejections, ContributionPolicy policy, IReadOnlyCollection<double>? history)
    {
        double? reference = null;
        if (policy.MaxNormToMedianRatio is { } k)
        {
            var pool = new List<double>(finite.Count + (history?.Count ?? 0));
            foreach (var f in finite)
            {
                if (f.Norm > 0 && double.IsFinite(f.Norm))
                {
                    pool.Add(f.Norm);
                }
            }

            if (history is not null)
            {
                foreach (var h in history)
                {
                    if (h > 0 && double.IsFinite(h))
                    {
                        pool.Add(h);
                    }
                }
            }

            if (pool.Count >= MinimumMedianPool)
            {
                pool.Sort();
                var median = pool[(pool.Count - 1) / 2];
                reference = median;
                var kept = new List<ScreenedContribution>(finite.Count);
                foreach (var f in finite)
                {
                    if (f.Norm > k * median)
                    {
                        var source = history is { Count: > 0 } ? $"the median {median:G6} of this round's and {history.Count} earlier accepted norms" : $"the cohort median {median:G6}";
                        rejections.Add(new ContributionRejection(workerOf(f.Index), round, RejectionReason.NormFarAboveMedian, $"norm {f.Norm:G6} exceeds {k:G4} × {source}"));
                    }
                    else
                    {
                        kept.Add(f);
                    }
                }

                finite = kept;
            }
        }

        return new ScreenResult(finite, rejections, reference);
    }
}
