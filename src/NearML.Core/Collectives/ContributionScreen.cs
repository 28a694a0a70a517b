namespace NearML.Core.Collectives;

/// <summary>One contribution offered to <see cref="ContributionScreen.Screen"/>.</summary>
/// <param name="WorkerId">Who sent it.</param>
/// <param name="Values">The decoded values.</param>
/// <param name="Weight">Its weight in the mean (positive and finite, or it is rejected).</param>
public readonly record struct ScreenCandidate(string WorkerId, ReadOnlyMemory<float> Values, double Weight);

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
/// The one screen every reducer runs before averaging (the in-process collective group and the coordinator): rejects
/// non-positive weights, non-finite values, all-zero contributions (when <see cref="ContributionPolicy.RejectZero"/>),
/// norms above <see cref="ContributionPolicy.MaxNorm"/>, and norms above
/// <see cref="ContributionPolicy.MaxNormToMedianRatio"/> × the reference median.
/// </summary>
/// <remarks>
/// The reference median is the lower median of the finite, nonzero norms of this round together with
/// <c>history</c> — norms accepted in earlier rounds (the caller keeps a sliding window). The rule applies when that pool
/// holds at least two norms, so a tiny cohort (one honest and one hostile worker, or a lone worker) is still compared
/// against what was accepted before; in a large cohort the round's own norms dominate. With no history and a single
/// contribution only the absolute limit applies.
/// </remarks>
public static class ContributionScreen
{
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

            if (pool.Count >= 2)
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
                        rejections.Add(new ContributionRejection(candidates[f.Index].WorkerId, round, RejectionReason.NormFarAboveMedian, $"norm {f.Norm:G6} exceeds {k:G4} × {source}"));
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
