using NearML.Core;
using NearML.Core.Collectives;
using NearML.Training.Sync;

namespace NearML.Training.Tests.Sync;

[TestClass]
public sealed class StrategyTests
{
    private static readonly ParameterLayout Layout = Quadratic.SmallLayout();

    private static List<SyncStrategy> Make(int n, Func<ICollective, ParameterSet, SyncStrategy> factory, InProcessCollectiveGroup? group = null)
    {
        group ??= new InProcessCollectiveGroup();
        var start = Quadratic.Start(Layout, 1);
        return [.. Enumerable.Range(0, n).Select(i => factory(group.Join("w" + i), start.Clone()))];
    }

    [TestMethod]
    public async Task DiLoCo_H1_Lr1_NoMomentum_OneWorker_EqualsPlainInnerTraining()
    {
        var problem = new Quadratic(Layout, 1, 3);
        var opts = new DiLoCoOptions { InnerSteps = 1, OuterLearningRate = 1, OuterMomentum = 0 };
        var s = Make(1, (c, p) => new DiLoCoStrategy(c, p, new PlainSgd(Layout, 0.1), opts));
        await Cluster.RunAsync(s, problem, 25);

        var plain = Quadratic.Start(Layout, 1);
        var g = plain.CreateZeros();
        var sgd = new PlainSgd(Layout, 0.1);
        for (var t = 0; t < 25; t++)
        {
            problem.Gradient(0, plain, g);
            sgd.Step(plain, g);
        }

        for (var i = 0; i < plain.Length; i++)
        {
            Assert.AreEqual(plain.Data[i], s[0].Parameters.Data[i], 1e-6f);
        }

        Assert.AreEqual(25, s[0].Collective.Statistics.SyncCount);
    }

    [TestMethod]
    public async Task DiLoCo_OuterStep_IsTorchNesterov_OnTheSampleWeightedMean()
    {
        // Two workers, H = 1, SGD lr 1: worker w's pseudo-gradient is exactly its gradient at θ0.
        var problem = new Quadratic(Layout, 2, 5);
        var opts = new DiLoCoOptions { InnerSteps = 1 };
        var s = Make(2, (c, p) => new DiLoCoStrategy(c, p, new PlainSgd(Layout, 1.0), opts));
        var theta = Quadratic.Start(Layout, 1);
        var buf = new float[theta.Length];
        var g0 = theta.CreateZeros();
        var g1 = theta.CreateZeros();
        for (var round = 0; round < 3; round++)
        {
            problem.Gradient(0, theta, g0);
            problem.Gradient(1, theta, g1);
            for (var i = 0; i < theta.Length; i++)
            {
                // weights: worker 0 reports 1 sample, worker 1 reports 2 (Cluster uses 1 + w)
                var mean = (g0.Data[i] * (1f / 3)) + (g1.Data[i] * (2f / 3));
                buf[i] = (0.9f * buf[i]) + mean;
                theta.Data[i] -= 0.7f * (mean + (0.9f * buf[i]));
            }

            await Cluster.RunAsync(s, problem, 1);
            for (var i = 0; i < theta.Length; i++)
            {
                Assert.AreEqual(theta.Data[i], s[0].GlobalParameters.Data[i], 1e-5f, $"round {round} element {i}");
            }

            CollectionAssert.AreEqual(s[0].GlobalParameters.ComputeHash(), s[1].GlobalParameters.ComputeHash());
        }
    }

    [TestMethod]
    [DataRow(PseudoGradientEncoding.Fp32, 4.0)]
    [DataRow(PseudoGradientEncoding.Int8, 1.0625)]
    [DataRow(PseudoGradientEncoding.Int4, 0.5625)]
    public async Task DiLoCo_BytesPerWorker_AreTheEncodedPseudoGradients(PseudoGradientEncoding encoding, double bytesPerValue)
    {
        var layout = new ParameterLayout([("a.weight", [16, 16]), ("b.weight", [16, 16])]);
        var problem = new Quadratic(layout, 3, 9);
        var group = new InProcessCollectiveGroup();
        var start = Quadratic.Start(layout, 2);
        var s = Enumerable.Range(0, 3).Select(i => (SyncStrategy)new DiLoCoStrategy(group.Join("w" + i), start.Clone(), new PlainSgd(layout, 0.05),
            new DiLoCoOptions { InnerSteps = 10, Encoding = encoding })).ToList();
        await Cluster.RunAsync(s, problem, 40);
        var perSync = (long)(512 * bytesPerValue);
        Assert.AreEqual(4, s[0].Collective.Statistics.SyncCount);
        Assert.AreEqual(4 * perSync, s[0].Collective.Statistics.BytesSent);
        Assert.AreEqual(4 * perSync, s[0].Collective.Statistics.BytesReceived);
        Assert.AreEqual(perSync, s[0].Collective.Statistics.PeakBytesSentPerSync);
        CollectionAssert.AreEqual(s[0].GlobalParameters.ComputeHash(), s[2].GlobalParameters.ComputeHash());
    }

    [TestMethod]
    public async Task DiLoCo_Quantized_StaysCloseToFloat32()
    {
        var problem = new Quadratic(Layout, 4, 11);
        async Task<ParameterSet> Run(PseudoGradientEncoding e)
        {
            var s = Make(4, (c, p) => new DiLoCoStrategy(c, p, new PlainSgd(Layout, 0.05), new DiLoCoOptions { InnerSteps = 5, Encoding = e }));
            await Cluster.RunAsync(s, problem, 50);
            return s[0].GlobalParameters;
        }

        var f32 = await Run(PseudoGradientEncoding.Fp32);
        var f16 = await Run(PseudoGradientEncoding.Fp16);
        var i8 = await Run(PseudoGradientEncoding.Int8);
        var i4 = await Run(PseudoGradientEncoding.Int4);
        double Dist(ParameterSet a)
        {
            var d = a.Clone();
            d.Subtract(f32);
            return d.Norm() / f32.Norm();
        }

        Assert.IsLessThan(1e-3, Dist(f16));
        Assert.IsLessThan(2e-2, Dist(i8));
        Assert.IsLessThan(2e-1, Dist(i4));
        Assert.IsGreaterThan(0, Dist(i8), "int8 must actually quantize");
    }

    [TestMethod]
    public async Task Ddp_AveragesGradientsEveryStep_AndKeepsWorkersIdentical()
    {
        var problem = new Quadratic(Layout, 3, 13);
        var s = Make(3, (c, p) => new DdpStrategy(c, p, new PlainSgd(Layout, 0.1)));
        var theta = Quadratic.Start(Layout, 1);
        var g = Enumerable.Range(0, 3).Select(_ => theta.CreateZeros()).ToArray();
        for (var t = 0; t < 5; t++)
        {
            for (var w = 0; w < 3; w++)
            {
                problem.Gradient(w, theta, g[w]);
            }

            for (var i = 0; i < theta.Length; i++)
            {
                var mean = (g[0].Data[i] * (1f / 6)) + (g[1].Data[i] * (2f / 6)) + (g[2].Data[i] * (3f / 6));
                theta.Data[i] -= 0.1f * mean;
            }
        }

        await Cluster.RunAsync(s, problem, 5);
        for (var i = 0; i < theta.Length; i++)
        {
            Assert.AreEqual(theta.Data[i], s[1].Parameters.Data[i], 1e-5f);
        }

        CollectionAssert.AreEqual(s[0].Parameters.ComputeHash(), s[2].Parameters.ComputeHash());
        Assert.AreEqual(5L * Layout.TotalLength * 4, s[0].Collective.Statistics.BytesSent);
    }

    [TestMethod]
    public async Task Streaming_F1_NoOverlap_NoMixing_EqualsDiLoCoBitForBit()
    {
        var problem = new Quadratic(Layout, 3, 17);
        var d = Make(3, (c, p) => new DiLoCoStrategy(c, p, new PlainSgd(Layout, 0.05), new DiLoCoOptions { InnerSteps = 4 }));
        var st = Make(3, (c, p) => new StreamingDiLoCoStrategy(c, p, new PlainSgd(Layout, 0.05),
            new StreamingDiLoCoOptions { Outer = new DiLoCoOptions { InnerSteps = 4 }, Fragments = 1, Overlap = 0, Mixing = 0 }));
        await Cluster.RunAsync(d, problem, 20);
        await Cluster.RunAsync(st, problem, 20);
        CollectionAssert.AreEqual(d[0].GlobalParameters.ComputeHash(), st[0].GlobalParameters.ComputeHash());
        CollectionAssert.AreEqual(d[1].Parameters.ComputeHash(), st[1].Parameters.ComputeHash());
    }

    [TestMethod]
    [DataRow(2)]
    [DataRow(4)]
    public async Task Streaming_PeakBytesPerSync_IsTotalOverF_OnAStaggeredSchedule(int f)
    {
        var layout = new ParameterLayout([("a.weight", [32, 32]), ("b.weight", [8, 8]), ("c.weight", [64])]); // 1152 values
        var problem = new Quadratic(layout, 2, 19);
        var start = Quadratic.Start(layout, 3);
        var group = new InProcessCollectiveGroup();
        var dGroup = new InProcessCollectiveGroup();
        var opts = new StreamingDiLoCoOptions { Outer = new DiLoCoOptions { InnerSteps = 8 }, Fragments = f, Partition = FragmentPartition.BalancedElements, Overlap = 1 };
        var st = Enumerable.Range(0, 2).Select(i => (SyncStrategy)new StreamingDiLoCoStrategy(group.Join("w" + i), start.Clone(), new PlainSgd(layout, 0.05), opts)).ToList();
        var d = Enumerable.Range(0, 2).Select(i => (SyncStrategy)new DiLoCoStrategy(dGroup.Join("w" + i), start.Clone(), new PlainSgd(layout, 0.05), new DiLoCoOptions { InnerSteps = 8 })).ToList();
        await Cluster.RunAsync(st, problem, 32);
        await Cluster.RunAsync(d, problem, 32);
        var ds = d[0].Collective.Statistics;
        var ss = st[0].Collective.Statistics;
        Assert.AreEqual(1152 * 4, ds.PeakBytesSentPerSync);
        Assert.AreEqual(1152 * 4 / f, ss.PeakBytesSentPerSync);
        Assert.AreEqual(4 * f, ss.SyncCount, "each fragment syncs every H steps");
        Assert.AreEqual(ds.BytesSent, ss.BytesSent, "same total volume, spread over time");
        var streaming = (StreamingDiLoCoStrategy)st[0];
        CollectionAssert.AreEqual(Enumerable.Range(0, f).Select(p => (long)(p + 1) * 8 / f).ToArray(), Enumerable.Range(0, f).Select(streaming.FirstSyncStep).ToArray());
        CollectionAssert.AreEqual(st[0].GlobalParameters.ComputeHash(), st[1].GlobalParameters.ComputeHash());

        // Training still makes progress on the joint objective, as DiLoCo does.
        var initial = problem.Loss(start);
        var dLoss = problem.Loss(d[0].GlobalParameters);
        Assert.IsLessThan(initial, dLoss);
        Assert.IsLessThan(1.2 * dLoss, problem.Loss(st[0].GlobalParameters));
    }

    [TestMethod]
    public void Streaming_StridedLayers_AssignsLayerJToFragmentJModF()
    {
        var layout = new ParameterLayout([("h.0.w", [2]), ("h.0.b", [1]), ("h.1.w", [3]), ("h.2.w", [4]), ("h.3.w", [5])]);
        var parts = StreamingDiLoCoStrategy.Partition(layout, 2, FragmentPartition.StridedLayers);
        CollectionAssert.AreEqual(new[] { (0, 2), (2, 1), (6, 4) }, parts[0]);
        CollectionAssert.AreEqual(new[] { (3, 3), (10, 5) }, parts[1]);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => StreamingDiLoCoStrategy.Partition(layout, 5, FragmentPartition.StridedLayers));
    }

    [TestMethod]
    public async Task Elasticity_LeaverIsLeftOut_JoinerStartsFromGlobalAndContributesNextRound()
    {
        var problem = new Quadratic(Layout, 3, 23);
        var group = new InProcessCollectiveGroup();
        var opts = new DiLoCoOptions { InnerSteps = 3 };
        var s = Make(3, (c, p) => new DiLoCoStrategy(c, p, new PlainSgd(Layout, 0.05), opts), group);
        await Cluster.RunAsync(s, problem, 3); // round 0 with all three

        // w2 leaves; round 1 uses w0 and w1 only.
        await s[2].Collective.DisposeAsync();
        var two = s.Take(2).ToList();
        await Cluster.RunAsync(two, problem, 3);
        Assert.AreEqual(2, ((DiLoCoStrategy)s[0]).OuterStep);

        // Reference for round 1: mean of w0 and w1 only, weights 1 and 2.
        var joinerState = s[0].CaptureState();
        var joiner = new DiLoCoStrategy(group.Join("w9"), Quadratic.Start(Layout, 99), new PlainSgd(Layout, 0.05), opts);
        joiner.RestoreState(joinerState);
        CollectionAssert.AreEqual(s[0].GlobalParameters.ComputeHash(), joiner.Parameters.ComputeHash(), "a joiner starts from the global parameters");
        Assert.AreEqual(2, joiner.OuterStep);

        var three = new List<SyncStrategy> { s[0], s[1], joiner };
        var before = s[0].Collective.Statistics.SyncCount;
        await Cluster.RunAsync(three, problem, 3, [0, 1, 2]);
        Assert.AreEqual(before + 1, s[0].Collective.Statistics.SyncCount);
        CollectionAssert.AreEqual(s[0].GlobalParameters.ComputeHash(), joiner.GlobalParameters.ComputeHash());
        Assert.AreEqual(3L, joiner.LocalStep - 6);
    }

    [TestMethod]
    public async Task SlowWorker_SyncingEarly_IsWeightedByItsSamples()
    {
        var problem = new Quadratic(Layout, 2, 29);
        var s = Make(2, (c, p) => new DiLoCoStrategy(c, p, new PlainSgd(Layout, 0.05), new DiLoCoOptions { InnerSteps = 6, OuterMomentum = 0, OuterLearningRate = 1 }));
        var fast = (DiLoCoStrategy)s[0];
        var slow = (DiLoCoStrategy)s[1];
        var start = fast.GlobalParameters.Clone();
        var g = start.CreateZeros();
        var g2 = start.CreateZeros();
        var slowTask = Task.Run(async () =>
        {
            for (var t = 0; t < 2; t++)
            {
                problem.Gradient(1, slow.Parameters, g2);
                await slow.StepAsync(g2, 10);
            }

            return (Local: slow.Parameters.Clone(), Result: await slow.SyncAsync());
        });
        ParameterSet? fastLocal = null;
        for (var t = 0; t < 6; t++)
        {
            problem.Gradient(0, fast.Parameters, g);
            if (t == 5)
            {
                fastLocal = fast.Parameters.Clone();
                fastLocal.Axpy(-0.05f, g);
            }

            await fast.StepAsync(g, 10);
        }

        var (slowLocal, result) = await slowTask;
        Assert.AreEqual(2, result.Participants);

        // θ_new = θ0 − mean(Δ) with weights 60 (fast) and 20 (slow): θ0 − (0.75(θ0 − a) + 0.25(θ0 − b)) = 0.75a + 0.25b
        for (var i = 0; i < start.Length; i++)
        {
            var expected = (0.75f * fastLocal!.Data[i]) + (0.25f * slowLocal.Data[i]);
            Assert.AreEqual(expected, fast.GlobalParameters.Data[i], 1e-5f);
        }
    }

    [TestMethod]
    public async Task BadPseudoGradients_AreRejectedAndCounted_NeverAveragedIn()
    {
        var problem = new Quadratic(Layout, 4, 31);
        var opts = new DiLoCoOptions { InnerSteps = 2 };
        var s = Make(4, (c, p) => new DiLoCoStrategy(c, p, new PlainSgd(Layout, 0.05), opts),
            new InProcessCollectiveGroup(new ContributionPolicy { MaxNormToMedianRatio = 10 }));
        var honest = Make(2, (c, p) => new DiLoCoStrategy(c, p, new PlainSgd(Layout, 0.05), opts));
        await Cluster.RunAsync(s, problem, 4, corrupt: (w, t, g) =>
        {
            if (w == 2 && t == 1)
            {
                var bad = g.Clone();
                bad.Data[7] = float.NaN;
                return bad;
            }

            if (w == 3 && t == 1)
            {
                var huge = g.Clone();
                huge.Scale(1e6f);
                return huge;
            }

            return g;
        });
        var rej = s[0].Rejections;
        Assert.HasCount(2, rej);
        Assert.AreEqual(RejectionReason.NonFinite, rej.Single(r => r.WorkerId == "w2").Reason);
        Assert.AreEqual(RejectionReason.NormFarAboveMedian, rej.Single(r => r.WorkerId == "w3").Reason);
        Assert.IsTrue(s[0].GlobalParameters.IsFinite);
        Assert.AreEqual(1, s[2].Collective.Statistics.RejectedContributions);
        CollectionAssert.AreEqual(s[0].GlobalParameters.ComputeHash(), s[3].GlobalParameters.ComputeHash());
        _ = honest;
    }

    [TestMethod]
    public async Task MismatchedLayouts_AreLayoutMismatch()
    {
        var s = Make(1, (c, p) => new DiLoCoStrategy(c, p, new PlainSgd(Layout, 0.05)))[0];
        var other = ParameterSet.Create(("x", [3]));
        await Assert.ThrowsExactlyAsync<LayoutMismatchException>(async () => await s.StepAsync(other, 1));
        Assert.ThrowsExactly<LayoutMismatchException>(() => new DiLoCoStrategy(new InProcessCollectiveGroup().Join("a"), other, new PlainSgd(Layout, 0.1)));
        var demo = new DeMoStrategy(new InProcessCollectiveGroup().Join("a"), other.Clone());
        Assert.ThrowsExactly<LayoutMismatchException>(() => demo.RestoreState(s.CaptureState()));
        var dd = new DdpStrategy(new InProcessCollectiveGroup().Join("b"), Quadratic.Start(Layout, 1), new PlainSgd(Layout, 0.1));
        Assert.ThrowsExactly<LayoutMismatchException>(() => dd.RestoreState(s.CaptureState()));
        var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => dd.RestoreState(new SyncState(dd.CaptureState().Tensors, new Dictionary<string, string> { ["nearml.sync.kind"] = "diloco" })));
        StringAssert.Contains(ex.Message, "expected 'ddp'");
    }

    [TestMethod]
    public void Options_AreValidated()
    {
        var c = new InProcessCollectiveGroup().Join("a");
        var p = Quadratic.Start(Layout, 1);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new DiLoCoStrategy(c, p, new PlainSgd(Layout, 0.1), new DiLoCoOptions { InnerSteps = 0 }));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new DiLoCoStrategy(c, p, new PlainSgd(Layout, 0.1), new DiLoCoOptions { OuterMomentum = 1 }));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new StreamingDiLoCoStrategy(c, p, new PlainSgd(Layout, 0.1), new StreamingDiLoCoOptions { Mixing = 2 }));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new DeMoStrategy(c, p, new DeMoOptions { TopK = 0 }));
        Assert.ThrowsExactly<ArgumentNullException>(() => new DdpStrategy(c, p, null!));
        var d = new DiLoCoOptions();
        Assert.AreEqual(500, d.InnerSteps);
        Assert.AreEqual(0.7, d.OuterLearningRate);
        Assert.AreEqual(0.9, d.OuterMomentum);
        var m = new DeMoOptions();
        Assert.AreEqual(0.999, m.CompressionDecay);
        Assert.AreEqual(32, m.TopK);
        Assert.AreEqual(64, m.Chunk);
        Assert.AreEqual(0.0, m.WeightDecay);
    }
}
