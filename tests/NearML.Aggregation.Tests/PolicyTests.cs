using Google.Protobuf;
using NearML.Core.Contracts.Aggregation;

namespace NearML.Aggregation.Tests;

/// <summary>The client's local floor (<see cref="SecureAggregationPolicy"/>) and the active variant's hard configuration rules.</summary>
[TestClass]
public sealed class PolicyTests
{
    private static (AggregationConfig Config, byte[][] Keys) Active(AggregationProtocol protocol, int n, int? k = null, int? t = null)
    {
        var keys = Enumerable.Range(0, n).Select(_ => AggregationRound.CreateIdentityKey().PublicKey).ToArray();
        var config = k is null
            ? AggregationRound.CreateConfig("job-p", 1, protocol, n, 8, 16, identityKeys: keys)
            : AggregationRound.CreateConfig("job-p", 1, protocol, n, 8, 16, k.Value, t!.Value, keys);
        return (config, keys);
    }

    [TestMethod]
    public void DefaultPolicy_AcceptsWhatTheCoordinatorCreates_ForEveryCohortSize()
    {
        var policy = new SecureAggregationPolicy();
        foreach (int n in new[] { 3, 4, 5, 7, 10, 19, 20, 40, 100, 300, 1000 })
        {
            foreach (var protocol in new[] { AggregationProtocol.Secagg, AggregationProtocol.SecaggPlus })
            {
                AggregationConfig config;
                byte[][] keys;
                try
                {
                    (config, keys) = Active(protocol, n);
                }
                catch (ArgumentException)
                {
                    continue; // SecAgg+ has no sparse graph for this n (the coordinator falls back to SecAgg).
                }

                Assert.IsNull(policy.Check(config, (uint)(n - 1), keys[n - 1]), $"n = {n}, {protocol}: k = {config.Degree}, t = {config.Threshold}");
            }
        }
    }

    [TestMethod]
    public void Refuses_PlainSemiHonestForeignIdentityAndWeakParameters_WithReasons()
    {
        var policy = new SecureAggregationPolicy { MinimumThreshold = 4, MinimumDegree = 6 };
        var (config, keys) = Active(AggregationProtocol.Secagg, 9);
        Assert.IsNull(policy.Check(config, 2, keys[2]));

        var semiHonest = AggregationRound.CreateConfig("job-p", 1, AggregationProtocol.Secagg, 9, 8, 16);
        StringAssert.Contains(policy.Check(semiHonest, 2, keys[2]), "semi-honest");
        var plain = AggregationRound.CreateConfig("job-p", 1, AggregationProtocol.Plain, 9, 8, 16);
        StringAssert.Contains(policy.Check(plain, 2, keys[2]), "does not hide");
        StringAssert.Contains(policy.Check(config, 3, keys[2]), "not this client's identity key");
        StringAssert.Contains(policy.Check(config, 9, keys[2]), "not below num_clients");

        var (small, smallKeys) = Active(AggregationProtocol.Secagg, 5);
        StringAssert.Contains(new SecureAggregationPolicy { MinimumDegree = 6 }.Check(small, 0, smallKeys[0]), "degree 4 is below the local minimum 6");
        var (lowT, lowTKeys) = Active(AggregationProtocol.SecaggPlus, 40, 6, 4);
        StringAssert.Contains(new SecureAggregationPolicy { MinimumThreshold = 5 }.Check(lowT, 0, lowTKeys[0]), "threshold 4 is below the local minimum 5");

        // Collusion the client assumes: 2 of 9 (γ = 0.25) need t > (8 + 2)/2 on the complete graph.
        var (k8t5, k8t5Keys) = Active(AggregationProtocol.Secagg, 9, 8, 5);
        Assert.IsNull(new SecureAggregationPolicy().Check(k8t5, 0, k8t5Keys[0]));
        StringAssert.Contains(new SecureAggregationPolicy { CorruptFraction = 0.25 }.Check(k8t5, 0, k8t5Keys[0]), "split view");

        // A sparse graph whose split-view bound is far above 2^−40 at the client's γ.
        var (weak, weakKeys) = Active(AggregationProtocol.SecaggPlus, 1000, 12, 7);
        StringAssert.Contains(new SecureAggregationPolicy().Check(weak, 0, weakKeys[0]), "split-view bound");

        // A malformed configuration is refused with the validation message, not thrown.
        var broken = config.Clone();
        broken.SessionNonce = ByteString.Empty;
        StringAssert.Contains(policy.Check(broken, 2, keys[2]), "session_nonce");
    }

    [TestMethod]
    public void Policy_OwnSettingsAreValidated()
    {
        var bad = new SecureAggregationPolicy { MinimumThreshold = 1, MinimumDegree = 0, CorruptFraction = 1.5, SecurityBits = 0 };
        Assert.HasCount(4, bad.Problems());
        var (config, keys) = Active(AggregationProtocol.Secagg, 5);
        Assert.ThrowsExactly<InvalidOperationException>(() => bad.Check(config, 0, keys[0]));
        Assert.ThrowsExactly<ArgumentNullException>(() => new SecureAggregationPolicy().Check(null!, 0, keys[0]));
        Assert.IsEmpty(new SecureAggregationPolicy().Problems());
    }

    [TestMethod]
    public void ActiveConfigs_InTheSplitViewLeakRegion_AreInvalid_ForClientAndServer()
    {
        // Exhaustive over small complete and sparse shapes: 2t ≤ k is refused for the active variant, allowed semi-honest.
        foreach (var (protocol, n) in new[] { (AggregationProtocol.Secagg, 9), (AggregationProtocol.SecaggPlus, 30) })
        {
            var keys = Enumerable.Range(0, n).Select(_ => AggregationRound.CreateIdentityKey().PublicKey).ToArray();
            var degrees = protocol == AggregationProtocol.Secagg ? new[] { n - 1 } : new[] { 4, 6, 8, 10 };
            foreach (var k in degrees)
            {
                for (int t = 2; t <= k; t++)
                {
                    if (2 * t <= k)
                    {
                        var ex = Assert.ThrowsExactly<ArgumentException>(() => AggregationRound.CreateConfig("job-p", 1, protocol, n, 8, 16, k, t, keys));
                        StringAssert.Contains(ex.Message, "split", StringComparison.OrdinalIgnoreCase);
                        _ = AggregationRound.CreateConfig("job-p", 1, protocol, n, 8, 16, k, t); // semi-honest: allowed
                    }
                    else
                    {
                        _ = AggregationRound.CreateConfig("job-p", 1, protocol, n, 8, 16, k, t, keys);
                    }
                }
            }
        }

        // A leak-region config smuggled past CreateConfig is refused by both state machines.
        var (config, _) = Active(AggregationProtocol.Secagg, 9);
        var smuggled = config.Clone();
        smuggled.Threshold = 4;
        Assert.ThrowsExactly<ArgumentException>(() => new SecureAggregationServer(smuggled));
        Assert.ThrowsExactly<ArgumentException>(() => new SecureAggregationClient(smuggled, 0, new uint[8], new byte[32]));
    }

    [TestMethod]
    public void DuplicateIdentityKeys_AreInvalid()
    {
        var keys = Enumerable.Range(0, 5).Select(_ => AggregationRound.CreateIdentityKey().PublicKey).ToArray();
        keys[3] = keys[1];
        var ex = Assert.ThrowsExactly<ArgumentException>(() => AggregationRound.CreateConfig("job-p", 1, AggregationProtocol.Secagg, 5, 8, 16, identityKeys: keys));
        StringAssert.Contains(ex.Message, "identity_keys[3]");
    }

    [TestMethod]
    public void SecAggThreshold_IsOutsideTheLeakRegionForTheAssumedCollusion()
    {
        for (int n = 3; n <= 60; n++)
        {
            foreach (var gamma in new[] { 0.0, 0.05, 0.1, 0.2 })
            {
                AggregationConfig config;
                try
                {
                    config = AggregationRound.CreateConfig("job-p", 1, AggregationProtocol.Secagg, n, 8, 16, corruptFraction: gamma);
                }
                catch (ArgumentException)
                {
                    continue; // t would exceed k (n too small for this γ)
                }

                int c = SecAggParameters.Count(gamma, n);
                Assert.IsLessThan((2 * (int)config.Threshold) - (int)config.Degree, c, $"n = {n}, γ = {gamma}: t = {config.Threshold}");
            }
        }
    }
}
