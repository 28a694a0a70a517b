using NearML.Core.Contracts.Aggregation;

namespace NearML.Aggregation.Tests;

[TestClass]
public sealed class ProtocolTests
{
    private static AggregationConfig Config(AggregationProtocol protocol, int n, int length = 257, int bits = 20, int? k = null, int? t = null, IReadOnlyList<byte[]>? ids = null)
        => k is null
            ? AggregationRound.CreateConfig("job-a", 7, protocol, n, length, bits, identityKeys: ids)
            : AggregationRound.CreateConfig("job-a", 7, protocol, n, length, bits, k.Value, t!.Value, ids);

    private static void AssertExact(RoundHarness h, AggregationResult result, IEnumerable<uint> expectedContributors)
    {
        CollectionAssert.AreEqual(expectedContributors.Order().ToArray(), result.Contributors.ToArray());
        CollectionAssert.AreEqual(h.ExpectedSum(result.Contributors), result.Sum);
    }

    [TestMethod]
    public void SecAggPlus_NoDropouts_ExactSum_300Clients()
    {
        var h = new RoundHarness(Config(AggregationProtocol.SecaggPlus, 300, k: 8, t: 5));
        var result = h.Run();
        AssertExact(h, result, Enumerable.Range(0, 300).Select(i => (uint)i));
        Assert.IsEmpty(h.Rejected);
        Assert.IsTrue(h.Clients.All(c => c.Phase == AggregationPhase.Completed));
    }

    [TestMethod]
    public void SecAgg_CompleteGraph_ExactSum()
    {
        var h = new RoundHarness(Config(AggregationProtocol.Secagg, 24, bits: 32));
        AssertExact(h, h.Run(), Enumerable.Range(0, 24).Select(i => (uint)i));
    }

    [TestMethod]
    [DataRow(RoundHarness.Never)]
    [DataRow(RoundHarness.AfterAdvertise)]
    [DataRow(RoundHarness.AfterShareKeys)]
    [DataRow(RoundHarness.AfterMaskedInput)]
    public void SecAggPlus_DropoutsAtOnePhase_RecoverSurvivorsSum(int stage)
    {
        var h = new RoundHarness(Config(AggregationProtocol.SecaggPlus, 100, bits: 18, k: 12, t: 6), seed: stage);
        var dropped = Enumerable.Range(0, 100).Where(i => i % 10 == 3).ToArray(); // 10%
        h.DropAt(stage, dropped);
        var result = h.Run();
        var survivors = Enumerable.Range(0, 100).Where(i => stage == RoundHarness.AfterMaskedInput || !dropped.Contains(i)).Select(i => (uint)i);
        AssertExact(h, result, survivors);
    }

    [TestMethod]
    public void SecAggPlus_CombinedDropoutsAtEveryPhase_RecoverSurvivorsSum()
    {
        var h = new RoundHarness(Config(AggregationProtocol.SecaggPlus, 200, bits: 24, k: 12, t: 7), seed: 9);
        var rng = new Random(11);
        var order = Enumerable.Range(0, 200).OrderBy(_ => rng.Next()).ToArray();
        h.DropAt(RoundHarness.Never, order[..4]);
        h.DropAt(RoundHarness.AfterAdvertise, order[4..8]);
        h.DropAt(RoundHarness.AfterShareKeys, order[8..12]);
        h.DropAt(RoundHarness.AfterMaskedInput, order[12..16]);
        var result = h.Run();
        AssertExact(h, result, Enumerable.Range(0, 200).Where(i => !order.AsSpan(0, 12).Contains(i)).Select(i => (uint)i));
    }

    [TestMethod]
    public void SecAgg_DropoutsUpToTolerance_RecoverAndBeyondFailCleanly()
    {
        // Complete graph, n = 21, t = 11: dropping 9 clients after ShareKeys leaves each survivor 11 surviving peers.
        var config = Config(AggregationProtocol.Secagg, 21, bits: 16);
        Assert.AreEqual(11u, config.Threshold);
        var ok = new RoundHarness(config);
        ok.DropAt(RoundHarness.AfterShareKeys, Enumerable.Range(0, 9));
        AssertExact(ok, ok.Run(), Enumerable.Range(9, 12).Select(i => (uint)i));

        var tooMany = new RoundHarness(config);
        tooMany.DropAt(RoundHarness.AfterShareKeys, Enumerable.Range(0, 11));
        var ex = Assert.ThrowsExactly<AggregationFailedException>(() => tooMany.Run());
        Assert.AreEqual(AggregationPhase.MaskedInputCollection, ex.Phase);
        Assert.AreEqual(AggregationPhase.Failed, tooMany.Server.Phase);
        Assert.ThrowsExactly<InvalidOperationException>(() => tooMany.Server.Finish());
    }

    [TestMethod]
    public void SecAggPlus_DropoutsDuringUnmaskingBeyondThreshold_FailWithReasonAndNoSum()
    {
        var config = Config(AggregationProtocol.SecaggPlus, 60, k: 10, t: 6);
        var h = new RoundHarness(config);
        // 30 clients go silent after sending masked inputs: some survivor has fewer than t = 6 answering neighbours.
        h.DropAt(RoundHarness.AfterMaskedInput, Enumerable.Range(0, 30));
        var ex = Assert.ThrowsExactly<AggregationFailedException>(() => h.Run());
        Assert.AreEqual(AggregationPhase.Unmasking, ex.Phase);
        StringAssert.Contains(ex.Reason, "threshold");
        Assert.ThrowsExactly<InvalidOperationException>(() => h.Server.Finish());
    }

    [TestMethod]
    public void SecAggPlus_DropoutsDuringUnmaskingWithinThreshold_Succeed()
    {
        var h = new RoundHarness(Config(AggregationProtocol.SecaggPlus, 60, k: 20, t: 10));
        h.DropAt(RoundHarness.AfterMaskedInput, [1, 2, 3, 40, 41]);
        h.DropAt(RoundHarness.AfterShareKeys, [10, 20]);
        AssertExact(h, h.Run(), Enumerable.Range(0, 60).Where(i => i is not (10 or 20)).Select(i => (uint)i));
    }

    [TestMethod]
    public void ActiveVariant_SignedViews_WithDropouts_ExactSum()
    {
        int n = 40;
        var keys = Enumerable.Range(0, n).Select(_ => AggregationRound.CreateIdentityKey()).ToArray();
        var config = Config(AggregationProtocol.SecaggPlus, n, k: 14, t: 8, ids: keys.Select(k => k.PublicKey).ToArray());
        var h = new RoundHarness(config, identity: i => keys[i].PrivateKey);
        h.DropAt(RoundHarness.AfterShareKeys, [5, 6]);
        h.DropAt(RoundHarness.AfterMaskedInput, [7]); // sends masked input, never signs
        var result = h.Run();
        AssertExact(h, result, Enumerable.Range(0, n).Where(i => i is not (5 or 6)).Select(i => (uint)i));
    }

    [TestMethod]
    public void PlainAggregator_SameInterface_ExactSum()
    {
        var h = new RoundHarness(Config(AggregationProtocol.Plain, 50, bits: 13));
        h.DropAt(RoundHarness.Never, [3, 4]);
        AssertExact(h, h.Run(), Enumerable.Range(0, 50).Where(i => i is not (3 or 4)).Select(i => (uint)i));
    }

    [TestMethod]
    public void EndToEnd_FloatUpdates_WeightedMeanWithinQuantizationBound()
    {
        int n = 64, entries = 1000;
        var encoder = new FixedPointEncoder(clipRange: 1f, valueBits: 8, maxClients: n, maxWeight: 100);
        var config = AggregationRound.CreateConfig("job-w", 1, AggregationProtocol.SecaggPlus, n, FixedPointEncoder.EncodedLength(entries), encoder.RingBits, 10, 6);
        var rng = new Random(2);
        var updates = new float[n][];
        var weights = new int[n];
        var clients = new SecureAggregationClient[n];
        for (int i = 0; i < n; i++)
        {
            updates[i] = Enumerable.Range(0, entries).Select(_ => (float)((rng.NextDouble() * 2.4) - 1.2)).ToArray();
            weights[i] = rng.Next(1, 101);
            var encoded = new uint[FixedPointEncoder.EncodedLength(entries)];
            encoder.Encode(updates[i], weights[i], encoded);
            clients[i] = new SecureAggregationClient(config, (uint)i, encoded);
        }

        var server = new SecureAggregationServer(config);
        foreach (var c in clients)
        {
            server.Receive(c.Start());
        }

        while (server.Phase != AggregationPhase.Completed)
        {
            foreach (var m in server.Advance())
            {
                server.Receive(clients[m.Recipient].Handle(m));
            }
        }

        var mean = new float[entries];
        long total = encoder.DecodeMean(server.Finish().Sum, mean);
        Assert.AreEqual(weights.Sum(), total);
        for (int j = 0; j < entries; j++)
        {
            double exact = Enumerable.Range(0, n).Sum(i => weights[i] * Math.Clamp(updates[i][j], -1f, 1f)) / total;
            Assert.IsLessThanOrEqualTo(encoder.ErrorBound + 1e-6, Math.Abs(mean[j] - exact), $"entry {j}");
        }
    }

    [TestMethod]
    public void SecAgg_ActiveVariant_DropoutsAfterMaskedInputAndDuringUnmasking_ExactSum()
    {
        int n = 16;
        var keys = Enumerable.Range(0, n).Select(_ => AggregationRound.CreateIdentityKey()).ToArray();
        var config = AggregationRound.CreateConfig("job-c", 2, AggregationProtocol.Secagg, n, 33, 12, identityKeys: keys.Select(k => k.PublicKey).ToArray());
        Assert.AreEqual(15u, config.Degree);
        var h = new RoundHarness(config, identity: i => keys[i].PrivateKey);
        h.DropAt(RoundHarness.AfterAdvertise, [0]);
        h.DropAt(RoundHarness.AfterShareKeys, [1]);
        h.DropAt(RoundHarness.AfterMaskedInput, [2]);
        h.DropAt(RoundHarness.AfterMaskedInput + 1, [3]); // signs the survivor view, then vanishes during Unmasking
        var result = h.Run();
        AssertExact(h, result, Enumerable.Range(2, n - 2).Select(i => (uint)i));
    }

    [TestMethod]
    public void SmallCohorts_GetAValidConfiguration()
    {
        foreach (int n in new[] { 4, 10, 30 })
        {
            var config = AggregationRound.CreateConfig("job-s", 1, AggregationProtocol.SecaggPlus, n, 8, 12);
            Assert.IsGreaterThanOrEqualTo(2u, config.Threshold);
            Assert.IsLessThanOrEqualTo(config.Degree, config.Threshold);
            var h = new RoundHarness(config);
            AssertExact(h, h.Run(), Enumerable.Range(0, n).Select(i => (uint)i));
        }
    }
}
