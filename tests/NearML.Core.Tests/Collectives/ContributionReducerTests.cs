using NearML.Core.Collectives;

namespace NearML.Core.Tests.Collectives;

/// <summary>The one reducer's mean and its norm-only screen (ContributionScreen.Reduce / WeightedMean / ScreenNorms).</summary>
[TestClass]
public sealed class ContributionReducerTests
{
    [TestMethod]
    public void Weighted_mean_accumulates_in_float32_in_the_given_order_with_rounded_weights()
    {
        var random = new Random(7);
        for (var trial = 0; trial < 200; trial++)
        {
            var n = random.Next(1, 6);
            var length = random.Next(1, 40);
            var candidates = new List<ScreenCandidate>();
            for (var i = 0; i < n; i++)
            {
                var values = new float[length];
                for (var j = 0; j < length; j++)
                {
                    values[j] = (float)((random.NextDouble() * 2) - 1);
                }

                candidates.Add(new ScreenCandidate($"w{i}", values, random.Next(1, 100)));
            }

            var mean = new float[length];
            var result = ContributionScreen.Reduce(trial, candidates, new ContributionPolicy { MaxNormToMedianRatio = null }, mean);
            Assert.AreEqual(n, result.Screen.Accepted.Count);

            // The reference: the same arithmetic written out, element by element.
            var total = candidates.Sum(c => c.Weight);
            Assert.AreEqual(total, result.TotalWeight);
            var expected = new float[length];
            foreach (var c in candidates)
            {
                var w = (float)(c.Weight / total);
                for (var j = 0; j < length; j++)
                {
                    expected[j] = (c.Values.Span[j] * w) + expected[j];
                }
            }

            for (var j = 0; j < length; j++)
            {
                Assert.AreEqual(BitConverter.SingleToInt32Bits(expected[j]), BitConverter.SingleToInt32Bits(mean[j]), $"trial {trial}, index {j}");
            }
        }
    }

    [TestMethod]
    public void Rejected_contributions_are_left_out_of_the_mean_and_nothing_is_written_when_none_is_accepted()
    {
        var candidates = new List<ScreenCandidate>
        {
            new("a", new float[] { 1, 1 }, 1),
            new("b", new float[] { float.NaN, 0 }, 1),
            new("c", new float[] { 3, 3 }, 0),
            new("d", new float[] { 3, 1 }, 1),
        };
        var mean = new float[2];
        var result = ContributionScreen.Reduce(0, candidates, new ContributionPolicy(), mean);
        CollectionAssert.AreEqual(new[] { 0, 3 }, result.Screen.Accepted.Select(a => a.Index).ToArray());
        CollectionAssert.AreEquivalent(new[] { RejectionReason.NonFinite, RejectionReason.InvalidWeight }, result.Screen.Rejections.Select(r => r.Reason).ToArray());
        CollectionAssert.AreEqual(new[] { 2f, 1f }, mean);

        var untouched = new[] { 5f, 5f };
        var none = ContributionScreen.Reduce(0, [candidates[1], candidates[2]], new ContributionPolicy(), untouched);
        Assert.IsFalse(none.HasResult);
        Assert.AreEqual(0, none.TotalWeight);
        CollectionAssert.AreEqual(new[] { 5f, 5f }, untouched);
    }

    [TestMethod]
    public void A_contribution_of_another_length_is_refused_with_a_typed_exception()
    {
        var candidates = new List<ScreenCandidate> { new("a", new float[] { 1, 1 }, 1), new("b", new float[] { 1 }, 1) };
        Assert.ThrowsExactly<ArgumentException>(() => ContributionScreen.WeightedMean(candidates, [new ScreenedContribution(0, 1), new ScreenedContribution(1, 1)], new float[2]));
    }

    [TestMethod]
    public void The_norm_screen_applies_the_same_rules_as_the_value_screen()
    {
        // Every subset of norms and weights: ScreenNorms on the norms decides exactly as Screen on vectors with those norms.
        var norms = new[] { 0.0, 1.0, 2.0, 50.0 };
        var weights = new[] { 1.0, -1.0 };
        var policies = new[]
        {
            new ContributionPolicy(),
            new ContributionPolicy { MaxNorm = 10 },
            new ContributionPolicy { RejectZero = true, MaxNormToMedianRatio = 3 },
            new ContributionPolicy { MaxNormToMedianRatio = null },
        };
        foreach (var policy in policies)
        {
            for (var mask = 1; mask < 1 << 6; mask++)
            {
                var byNorm = new List<NormCandidate>();
                var byValue = new List<ScreenCandidate>();
                for (var bit = 0; bit < 6; bit++)
                {
                    if ((mask & (1 << bit)) == 0)
                    {
                        continue;
                    }

                    var norm = norms[bit % norms.Length];
                    var weight = bit == 5 ? weights[1] : weights[0];
                    byNorm.Add(new NormCandidate($"w{bit}", norm, weight));
                    byValue.Add(new ScreenCandidate($"w{bit}", new[] { (float)norm }, weight));
                }

                var a = ContributionScreen.ScreenNorms(1, byNorm, policy);
                var b = ContributionScreen.Screen(1, byValue, policy);
                CollectionAssert.AreEqual(b.Accepted.ToArray(), a.Accepted.ToArray(), $"mask {mask}");
                CollectionAssert.AreEqual(b.Rejections.Select(r => (r.WorkerId, r.Reason)).ToArray(), a.Rejections.Select(r => (r.WorkerId, r.Reason)).ToArray(), $"mask {mask}");
                Assert.AreEqual(b.ReferenceNorm, a.ReferenceNorm);
            }
        }
    }

    [TestMethod]
    public void The_median_rule_needs_the_one_minimum_pool()
    {
        var policy = new ContributionPolicy { MaxNormToMedianRatio = 2 };
        var one = ContributionScreen.ScreenNorms(0, [new NormCandidate("a", 100, 1)], policy, []);
        Assert.IsNull(one.ReferenceNorm, "a single norm is below the minimum pool");
        var pool = Enumerable.Repeat(1.0, ContributionScreen.MinimumMedianPool - 1).ToArray();
        var enough = ContributionScreen.ScreenNorms(0, [new NormCandidate("a", 100, 1)], policy, pool);
        Assert.AreEqual(1.0, enough.ReferenceNorm);
        Assert.AreEqual(RejectionReason.NormFarAboveMedian, enough.Rejections.Single().Reason);
    }
}
