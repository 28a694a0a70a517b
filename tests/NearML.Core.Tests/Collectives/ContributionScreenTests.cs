using NearML.Core.Collectives;

namespace NearML.Core.Tests.Collectives;

[TestClass]
public sealed class ContributionScreenTests
{
    private static float[] Vector(int n, float scale, int seed)
    {
        var r = new Random(seed);
        var v = new float[n];
        for (var i = 0; i < n; i++)
        {
            v[i] = (float)((r.NextDouble() * 2) - 1) * scale;
        }

        return v;
    }

    private static ScreenCandidate C(string id, float[] v, double w = 1) => new(id, v, w);

    [TestMethod]
    public void One_honest_and_one_huge_update_the_huge_one_is_rejected_against_the_lower_median()
    {
        var result = ContributionScreen.Screen(0, [C("honest", Vector(100, 0.01f, 1)), C("hostile", Vector(100, 1000f, 2))], new ContributionPolicy());
        Assert.HasCount(1, result.Accepted);
        Assert.AreEqual(0, result.Accepted[0].Index);
        Assert.HasCount(1, result.Rejections);
        Assert.AreEqual(RejectionReason.NormFarAboveMedian, result.Rejections[0].Reason);
        Assert.AreEqual("hostile", result.Rejections[0].WorkerId);
    }

    [TestMethod]
    public void A_lone_update_is_screened_against_the_earlier_accepted_norms()
    {
        double[] history = [1.0, 1.2, 0.9, 1.1];
        var lone = Vector(100, 10f, 3); // norm ≈ 57
        var result = ContributionScreen.Screen(7, [C("hostile", lone)], new ContributionPolicy { MaxNormToMedianRatio = 10 }, history);
        Assert.IsEmpty(result.Accepted);
        Assert.AreEqual(RejectionReason.NormFarAboveMedian, result.Rejections[0].Reason);
        StringAssert.Contains(result.Rejections[0].Detail, "4 earlier accepted norms");

        var fine = ContributionScreen.Screen(7, [C("honest", Vector(100, 0.2f, 4))], new ContributionPolicy { MaxNormToMedianRatio = 10 }, history);
        Assert.HasCount(1, fine.Accepted);

        // Without history a lone update meets only the absolute bound.
        Assert.HasCount(1, ContributionScreen.Screen(7, [C("alone", lone)], new ContributionPolicy()).Accepted);
        var bounded = ContributionScreen.Screen(7, [C("alone", lone)], new ContributionPolicy { MaxNorm = 5 });
        Assert.AreEqual(RejectionReason.NormAboveLimit, bounded.Rejections.Single().Reason);
    }

    [TestMethod]
    public void Zero_non_finite_and_invalid_weight_contributions_are_rejected_with_their_reason()
    {
        var nan = Vector(10, 1, 5);
        nan[3] = float.NaN;
        var result = ContributionScreen.Screen(
            1,
            [C("zero", new float[10]), C("nan", nan), C("weightless", Vector(10, 1, 6), 0), C("infinite-weight", Vector(10, 1, 7), double.PositiveInfinity), C("ok", Vector(10, 1, 8))],
            new ContributionPolicy { RejectZero = true });
        CollectionAssert.AreEqual(
            new[] { RejectionReason.ZeroNorm, RejectionReason.NonFinite, RejectionReason.InvalidWeight, RejectionReason.InvalidWeight },
            result.Rejections.Select(r => r.Reason).ToArray());
        Assert.AreEqual(4, result.Accepted.Single().Index);
        Assert.HasCount(1, ContributionScreen.Screen(1, [C("zero", new float[10])], new ContributionPolicy()).Accepted, "zero is accepted unless RejectZero");
    }

    [TestMethod]
    public void Random_cohorts_every_candidate_is_decided_once_and_no_accepted_norm_exceeds_k_times_the_reference()
    {
        var r = new Random(42);
        for (var trial = 0; trial < 300; trial++)
        {
            var n = r.Next(1, 9);
            var candidates = new List<ScreenCandidate>();
            for (var i = 0; i < n; i++)
            {
                var scale = (float)Math.Pow(10, r.Next(-3, 5));
                var v = r.Next(10) == 0 ? new float[16] : Vector(16, scale, r.Next());
                candidates.Add(C($"w{i}", v, r.Next(20) == 0 ? -1 : r.Next(1, 100)));
            }

            var history = Enumerable.Range(0, r.Next(0, 5)).Select(_ => Math.Pow(10, r.Next(-2, 3))).ToArray();
            var policy = new ContributionPolicy { RejectZero = r.Next(2) == 0, MaxNorm = r.Next(2) == 0 ? 1000 : null, MaxNormToMedianRatio = 10 };
            var result = ContributionScreen.Screen(trial, candidates, policy, history);
            Assert.AreEqual(n, result.Accepted.Count + result.Rejections.Count, $"trial {trial}");
            var decided = result.Accepted.Select(a => candidates[a.Index].WorkerId).Concat(result.Rejections.Select(x => x.WorkerId)).ToList();
            CollectionAssert.AreEquivalent(candidates.Select(c => c.WorkerId).ToList(), decided, $"trial {trial}");
            foreach (var a in result.Accepted)
            {
                Assert.AreEqual(ContributionScreen.Norm(candidates[a.Index].Values.Span, out _), a.Norm, 1e-9);
                Assert.IsTrue(candidates[a.Index].Weight > 0);
                if (policy.MaxNorm is { } max)
                {
                    Assert.IsLessThanOrEqualTo(max, a.Norm);
                }

                if (result.ReferenceNorm is { } median)
                {
                    Assert.IsLessThanOrEqualTo(10 * median, a.Norm, $"trial {trial}");
                }

                if (policy.RejectZero)
                {
                    Assert.IsGreaterThan(0, a.Norm);
                }
            }
        }
    }
}
