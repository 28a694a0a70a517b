using NearML.Core.Contracts.Aggregation;

namespace NearML.Aggregation.Tests;

/// <summary>
/// Property tests of the malicious-server guarantee: over random malicious schedules (<see cref="MaliciousServer"/>:
/// roster substitution and replay, omitted and non-neighbour entries, withheld and forged shares, split and targeted
/// split views, mismatched and replayed unmasking requests, forged and corrupt signatures) no honest client's individual
/// input is ever computable from what the adversary holds — as long as c &lt; 2t − k clients collude (the condition the
/// parameter finder makes hold w.h.p.). The controls show the same adversary does unmask inputs in the semi-honest
/// variant and with more colluders than the bound, so the property can fail.
/// </summary>
[TestClass]
public sealed class MaliciousServerTests
{
    private static (AggregationConfig Config, (byte[] Sk, byte[] Pk)[] Ids, IReadOnlyList<AdvertiseKeys> Stale) Active(AggregationProtocol protocol, int n, int k, int t, ulong round)
    {
        var ids = Enumerable.Range(0, n).Select(_ => AggregationRound.CreateIdentityKey()).ToArray();
        var config = AggregationRound.CreateConfig("job-m", round, protocol, n, 12, 16, k, t, ids.Select(i => i.PublicKey).ToArray());

        // The same clients' signed keys from another session of the same job (the previous round) for replays.
        var previous = AggregationRound.CreateConfig("job-m", round - 1, protocol, n, 12, 16, k, t, ids.Select(i => i.PublicKey).ToArray());
        var stale = Enumerable.Range(0, n).Select(i => new SecureAggregationClient(previous, (uint)i, new uint[12], ids[i].PrivateKey).Start().AdvertiseKeys).ToList();
        return (config, ids.Select(i => (i.PrivateKey, i.PublicKey)).ToArray(), stale);
    }

    [TestMethod]
    public void RandomMaliciousSchedules_NeverRevealAnIndividualInput()
    {
        var rng = new Random(20261207);
        int refusals = 0, answered = 0;
        // (protocol, n, k, t): 2t − k = 4, so up to 3 colluders are within the guarantee on any graph.
        (AggregationProtocol P, int N, int K, int T)[] shapes =
        [
            (AggregationProtocol.Secagg, 9, 8, 6),
            (AggregationProtocol.SecaggPlus, 20, 8, 6),
            (AggregationProtocol.SecaggPlus, 24, 10, 7),
        ];
        for (int trial = 0; trial < 48; trial++)
        {
            var shape = shapes[trial % shapes.Length];
            var (config, ids, stale) = Active(shape.P, shape.N, shape.K, shape.T, (ulong)(10 + trial));
            int c = rng.Next(0, (2 * shape.T) - shape.K);
            var corrupt = Enumerable.Range(0, shape.N).OrderBy(_ => rng.Next()).Take(c).Select(i => (uint)i).ToArray();
            var adversary = new MaliciousServer(config, ids, corrupt, rng, stale)
            {
                SubstituteRate = new[] { 0.0, 0.0, 0.1, 1.0 }[rng.Next(4)],
                SplitRate = rng.NextDouble(),
                OmitRate = new[] { 0.0, 0.05, 0.2 }[rng.Next(3)],
                DeliverRate = new[] { 1.0, 0.95, 0.8 }[rng.Next(3)],
                Victim = rng.Next(2) == 0 ? (uint)rng.Next(shape.N) : null,
                Attacked = rng.Next(4) == 0 ? null : Enumerable.Range(0, rng.Next(1, 4)).Select(_ => (uint)rng.Next(shape.N)).ToHashSet(),
            };
            adversary.Run();
            var leaks = adversary.Leaks();
            Assert.IsEmpty(leaks, $"trial {trial} ({shape}, colluders {string.Join(',', corrupt)}): inputs of {string.Join(',', leaks.Select(l => l.Client))} recovered");
            refusals += adversary.Refusals.Count;
            answered += adversary.Answered;
        }

        // The schedules are not vacuous: clients refused some requests and answered others.
        Assert.IsGreaterThan(0, refusals);
        Assert.IsGreaterThan(100, answered);
    }

    [TestMethod]
    public void Control_SemiHonestVariant_SameAdversaryUnmasksInputs()
    {
        // The pre-fix shipped path: unsigned keys, no consistency round, Google's semi-honest k = 8, t = 4 (2t ≤ k).
        var rng = new Random(5);
        int leaked = 0;
        for (int trial = 0; trial < 12; trial++)
        {
            var config = AggregationRound.CreateConfig("job-m", (ulong)trial, AggregationProtocol.Secagg, 9, 12, 16, 8, 4);
            var adversary = new MaliciousServer(config, null, [], rng)
            {
                SubstituteRate = trial % 2 == 0 ? 0.6 : 0.0,
                Victim = trial % 2 == 0 ? null : (uint)rng.Next(9),
            };
            adversary.Run();
            foreach (var (client, computed) in adversary.Leaks())
            {
                CollectionAssert.AreEqual(adversary.Inputs[client], computed, "the adversary's unmasking is the true input");
                leaked++;
            }
        }

        Assert.IsGreaterThan(0, leaked, "roster substitution or split views unmask inputs in the semi-honest variant");
    }

    [TestMethod]
    public void Control_ActiveVariantBeyondTheCollusionBound_TargetedSplitViewUnmasksTheVictim()
    {
        // c = 5 > 2t − k = 4 colluders of 9: outside the guarantee, the targeted split view (victim and one client shown
        // "0 survived", two shown "0 dropped"; each group's views collect t = 6 neighbour signatures with the colluders')
        // completes, and the victim's input falls out — the property test can fail.
        var rng = new Random(8);
        int leaked = 0;
        for (int trial = 0; trial < 16 && leaked == 0; trial++)
        {
            var (config, ids, stale) = Active(AggregationProtocol.Secagg, 9, 8, 6, (ulong)(100 + trial));
            var adversary = new MaliciousServer(config, ids, [4, 5, 6, 7, 8], rng, stale) { SubstituteRate = 0, OmitRate = 0, DeliverRate = 1, Victim = 0 };
            adversary.Run();
            foreach (var (client, computed) in adversary.Leaks())
            {
                Assert.AreEqual(0u, client);
                CollectionAssert.AreEqual(adversary.Inputs[client], computed);
                leaked++;
            }
        }

        Assert.IsGreaterThan(0, leaked);
    }
}
