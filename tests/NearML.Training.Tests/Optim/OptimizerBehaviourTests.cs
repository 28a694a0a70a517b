using NearML.Core;
using NearML.Training.Data;
using NearML.Training.Optim;

namespace NearML.Training.Tests.Optim;

[TestClass]
public sealed class OptimizerBehaviourTests
{
    public TestContext TestContext { get; set; } = null!;

    private static readonly ParameterLayout Layout = new([("a.weight", [37, 129]), ("a.bias", [129]), ("b", [5000])]);

    public static IEnumerable<object[]> Factories =>
    [
        ["sgd", (Func<Optimizer>)(() => new Sgd(Layout, new SgdOptions { LearningRate = 0.05 }))],
        ["sgd-nesterov-wd", (Func<Optimizer>)(() => new Sgd(Layout, new SgdOptions { LearningRate = 0.05, Momentum = 0.9, Nesterov = true, WeightDecay = 1e-3 }))],
        ["sgd-dampening", (Func<Optimizer>)(() => new Sgd(Layout, new SgdOptions { LearningRate = 0.05, Momentum = 0.9, Dampening = 0.2 }))],
        ["adamw", (Func<Optimizer>)(() => new AdamW(Layout, new AdamWOptions { LearningRate = 3e-3 }))],
        ["adam", (Func<Optimizer>)(() => new Adam(Layout, new AdamOptions { LearningRate = 3e-3, WeightDecay = 0.01 }))],
        ["adamw-matrices-only", (Func<Optimizer>)(() => new AdamW(Layout, new AdamWOptions { LearningRate = 3e-3, WeightDecay = 0.1, WeightDecayFilter = WeightDecayFilters.MatricesOnly }))],
    ];

    [TestMethod]
    public void Weight_decay_filter_spares_the_excluded_tensors()
    {
        // With zero gradients AdamW's update is exactly the decay p·(1 − lr·wd) on decayed tensors (m = v = 0).
        var o = new AdamW(Layout, new AdamWOptions { LearningRate = 0.1, WeightDecay = 0.5, WeightDecayFilter = WeightDecayFilters.MatricesOnly });
        var p = Random(1, 1f);
        var before = p.Clone();
        o.Step(p, new ParameterSet(Layout));
        var w = p.GetSpan("a.weight");
        var w0 = before.GetSpan("a.weight");
        for (var i = 0; i < w.Length; i++)
        {
            Assert.AreEqual(w0[i] * 0.95f, w[i]);
        }

        CollectionAssert.AreEqual(before.GetSpan("a.bias").ToArray(), p.GetSpan("a.bias").ToArray());
        CollectionAssert.AreEqual(before.GetSpan("b").ToArray(), p.GetSpan("b").ToArray());
        var unfiltered = new AdamW(Layout, new AdamWOptions { LearningRate = 0.1, WeightDecay = 0.5 });
        var ex = Assert.ThrowsExactly<InvalidOptimizerStateException>(() => unfiltered.ImportState(o.ExportState()));
        StringAssert.Contains(ex.Message, "decayed_tensors");
    }

    private static ParameterSet Random(ulong seed, float scale)
    {
        var set = new ParameterSet(Layout);
        var rng = new SeededRandom(seed);
        for (var i = 0; i < set.Length; i++)
        {
            set.Data[i] = (float)((rng.NextDouble() - 0.5) * 2 * scale);
        }

        return set;
    }

    [TestMethod]
    [DynamicData(nameof(Factories))]
    public void Export_import_resumes_bit_for_bit(string name, Func<Optimizer> create)
    {
        const int K = 4;
        const int Total = 9;
        var schedule = new WarmupCosineSchedule(1e-2, 3, Total, 1e-4);

        var straight = Random(1, 1f);
        var o1 = create();
        for (var s = 0; s < Total; s++)
        {
            schedule.Apply(o1);
            o1.Step(straight, Random(100 + (ulong)s, 0.5f));
        }

        var resumed = Random(1, 1f);
        var o2 = create();
        for (var s = 0; s < K; s++)
        {
            schedule.Apply(o2);
            o2.Step(resumed, Random(100 + (ulong)s, 0.5f));
        }

        // Through a file, as a checkpoint would.
        var path = Path.Combine(TestContext.TestRunDirectory ?? Path.GetTempPath(), $"optstate-{name}-{Guid.NewGuid():N}.safetensors");
        o2.ExportState().Save(path);
        var checkpointParams = resumed.Clone();
        var o3 = create();
        o3.ImportState(OptimizerState.Load(path));
        File.Delete(path);
        Assert.AreEqual(K, o3.StepCount, name);
        for (var s = K; s < Total; s++)
        {
            schedule.Apply(o3);
            o3.Step(checkpointParams, Random(100 + (ulong)s, 0.5f));
        }

        Compare.BitEqual(straight, checkpointParams, name + " params");
        var a = o1.ExportState();
        var b = o3.ExportState();
        Assert.AreEqual(a.StepCount, b.StepCount);
        Assert.AreEqual(a.LearningRate, b.LearningRate);
        CollectionAssert.AreEquivalent(a.Buffers.Keys.ToList(), b.Buffers.Keys.ToList());
        foreach (var k in a.Buffers.Keys)
        {
            Compare.BitEqual(a.Buffers[k], b.Buffers[k], $"{name} {k}");
        }
    }

    [TestMethod]
    [DynamicData(nameof(Factories))]
    public void Exported_state_is_a_copy(string name, Func<Optimizer> create)
    {
        var o = create();
        var p = Random(1, 1f);
        o.Step(p, Random(2, 1f));
        var state = o.ExportState();
        var before = state.Buffers.ToDictionary(kv => kv.Key, kv => kv.Value.Clone());
        o.Step(p, Random(3, 1f));
        foreach (var (k, v) in before)
        {
            Compare.BitEqual(v, state.Buffers[k], $"{name} {k}");
        }
    }

    [TestMethod]
    [DynamicData(nameof(Factories))]
    public void Non_finite_gradient_throws_and_changes_nothing(string name, Func<Optimizer> create)
    {
        foreach (var bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
        {
            var o = create();
            var p = Random(1, 1f);
            o.Step(p, Random(2, 1f));
            var pBefore = p.Clone();
            var stateBefore = o.ExportState();
            var g = Random(3, 1f);
            g.GetSpan("b")[4321] = bad;
            var ex = Assert.ThrowsExactly<NonFiniteGradientException>(() => o.Step(p, g));
            Assert.AreEqual("b", ex.TensorName, name);
            Assert.AreEqual(4321, ex.Index, name);
            Assert.AreEqual(bad, ex.Value);
            StringAssert.Contains(ex.Message, "'b'");
            Assert.IsInstanceOfType<NearMLException>(ex);
            Compare.BitEqual(pBefore, p, name);
            Assert.AreEqual(1, o.StepCount);
            foreach (var (k, v) in stateBefore.Buffers)
            {
                Compare.BitEqual(v, o.ExportState().Buffers[k], $"{name} {k}");
            }
        }
    }

    [TestMethod]
    public void Large_finite_gradients_whose_sum_overflows_are_accepted()
    {
        var o = new Sgd(Layout, new SgdOptions { LearningRate = 0 });
        var g = new ParameterSet(Layout);
        g.Data.Fill(float.MaxValue / 2);
        var p = Random(1, 1f);
        var before = p.Clone();
        o.Step(p, g);
        Compare.BitEqual(before, p, "lr 0 leaves parameters unchanged");
        Assert.AreEqual(1, o.StepCount);
    }

    [TestMethod]
    [DynamicData(nameof(Factories))]
    public void Layout_mismatch_throws(string name, Func<Optimizer> create)
    {
        var o = create();
        var other = ParameterSet.Create(("a.weight", [37, 129]), ("a.bias", [129]), ("b", [4999]));
        Assert.ThrowsExactly<LayoutMismatchException>(() => o.Step(other, other.Clone()), name);
        Assert.ThrowsExactly<LayoutMismatchException>(() => o.Step(Random(1, 1f), other), name);
        Assert.AreEqual(0, o.StepCount);
    }

    [TestMethod]
    [DynamicData(nameof(Factories))]
    public void Steady_state_step_does_not_allocate(string name, Func<Optimizer> create)
    {
        var o = create();
        var p = Random(1, 1f);
        var g = Random(2, 0.1f);
        o.Step(p, g);
        o.Step(p, g);
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 20; i++)
        {
            o.Step(p, g);
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.AreEqual(0L, allocated, $"{name} allocated {allocated} bytes in 20 steps");
    }

    [TestMethod]
    public void Import_rejects_wrong_kind_and_missing_buffers()
    {
        var adamw = new AdamW(Layout);
        var sgd = new Sgd(Layout, new SgdOptions { Momentum = 0.9 });
        Assert.ThrowsExactly<InvalidOptimizerStateException>(() => adamw.ImportState(sgd.ExportState()));
        var empty = new OptimizerState("adamw", 3, 1e-3, new Dictionary<string, ParameterSet>());
        var ex = Assert.ThrowsExactly<InvalidOptimizerStateException>(() => adamw.ImportState(empty));
        StringAssert.Contains(ex.Message, "exp_avg");
        var wrong = new OptimizerState("adamw", 3, 1e-3, new Dictionary<string, ParameterSet>
        {
            ["exp_avg"] = ParameterSet.Create(("x", [3])),
            ["exp_avg_sq"] = ParameterSet.Create(("x", [3])),
        });
        Assert.ThrowsExactly<LayoutMismatchException>(() => adamw.ImportState(wrong));
        Assert.AreEqual(0, adamw.StepCount);
    }

    [TestMethod]
    public void Import_rejects_different_hyperparameters()
    {
        var a = new AdamW(Layout, new AdamWOptions { Beta2 = 0.95 });
        a.Step(Random(1, 1), Random(2, 1));
        var path = Path.Combine(TestContext.TestRunDirectory ?? Path.GetTempPath(), $"hp-{Guid.NewGuid():N}.safetensors");
        a.ExportState().Save(path);
        var loaded = OptimizerState.Load(path);
        File.Delete(path);
        Assert.AreEqual(0.95, loaded.Hyperparameters["beta2"]);
        var ex = Assert.ThrowsExactly<InvalidOptimizerStateException>(() => new AdamW(Layout).ImportState(loaded));
        StringAssert.Contains(ex.Message, "beta2");
        var same = new AdamW(Layout, new AdamWOptions { Beta2 = 0.95 });
        same.ImportState(loaded);
        Assert.AreEqual(1, same.StepCount);

        var sgd = new Sgd(Layout, new SgdOptions { Momentum = 0.9, Nesterov = true });
        var plainMomentum = new Sgd(Layout, new SgdOptions { Momentum = 0.9 });
        ex = Assert.ThrowsExactly<InvalidOptimizerStateException>(() => plainMomentum.ImportState(sgd.ExportState()));
        StringAssert.Contains(ex.Message, "nesterov");
    }

    [TestMethod]
    public void Options_are_validated()
    {
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new Sgd(Layout, new SgdOptions { Momentum = 0, Nesterov = true }));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new Sgd(Layout, new SgdOptions { Momentum = 0.9, Dampening = 0.1, Nesterov = true }));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new Sgd(Layout, new SgdOptions { LearningRate = -1 }));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new Sgd(Layout, new SgdOptions { WeightDecay = double.NaN }));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new AdamW(Layout, new AdamWOptions { Beta1 = 1 }));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new AdamW(Layout, new AdamWOptions { Beta2 = -0.1 }));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new AdamW(Layout, new AdamWOptions { Epsilon = -1 }));
        Assert.ThrowsExactly<ArgumentNullException>(() => new Sgd(Layout, null!));
        var o = new AdamW(Layout);
        Assert.AreEqual(1e-3, o.LearningRate);
        Assert.AreEqual(0.01, o.WeightDecay);
        Assert.AreEqual(0.9, o.Beta1);
        Assert.AreEqual(0.999, o.Beta2);
        Assert.AreEqual(1e-8, o.Epsilon);
        o.LearningRate = double.NaN;
        Assert.ThrowsExactly<InvalidOperationException>(() => o.Step(Random(1, 1), Random(2, 1)));
    }

    [TestMethod]
    public void Schedules_behave_at_their_edges()
    {
        var s = new WarmupCosineSchedule(1.0, 10, 110, 0.1);
        Assert.AreEqual(0.1, s.GetLearningRate(0), 1e-15);
        Assert.AreEqual(1.0, s.GetLearningRate(9), 1e-15);
        Assert.AreEqual(1.0, s.GetLearningRate(10), 1e-15);
        Assert.AreEqual(0.55, s.GetLearningRate(60), 1e-12);
        Assert.AreEqual(0.1, s.GetLearningRate(110), 1e-15);
        Assert.AreEqual(0.1, s.GetLearningRate(10_000), 1e-15);
        for (var i = 11; i < 110; i++)
        {
            Assert.IsLessThan(s.GetLearningRate(i - 1), s.GetLearningRate(i), $"monotone decay at {i}");
        }

        var noWarmup = new WarmupCosineSchedule(2.0, 0, 4);
        Assert.AreEqual(2.0, noWarmup.GetLearningRate(0));
        Assert.AreEqual(0.0, noWarmup.GetLearningRate(4));
        Assert.AreEqual(0.25, new ConstantSchedule(0.25).GetLearningRate(1_000_000));
        var o = new Sgd(Layout, new SgdOptions());
        Assert.AreEqual(0.1, s.Apply(o), 1e-15);
        Assert.AreEqual(0.1, o.LearningRate, 1e-15);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new WarmupCosineSchedule(1, 10, 5));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new WarmupCosineSchedule(1, 0, 5, 2));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => s.GetLearningRate(-1));
    }

    [TestMethod]
    public void Corrupt_state_file_is_a_format_error()
    {
        var path = Path.Combine(TestContext.TestRunDirectory ?? Path.GetTempPath(), $"bad-{Guid.NewGuid():N}.safetensors");
        SafeTensors.WriteFile(path, ParameterSet.Create(("x", [2])), new Dictionary<string, string> { ["nearml.optimizer.kind"] = "adamw" });
        var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => OptimizerState.Load(path));
        StringAssert.Contains(ex.Message, "nearml.optimizer.step");
        SafeTensors.WriteFile(path, ParameterSet.Create(("exp_avg/x", [2])), new Dictionary<string, string>
        {
            ["nearml.optimizer.kind"] = "adamw",
            ["nearml.optimizer.step"] = "1",
            ["nearml.optimizer.lr"] = "0.001",
            ["nearml.optimizer.buffers"] = "exp_avg,exp_avg",
        });
        ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => OptimizerState.Load(path));
        StringAssert.Contains(ex.Message, "repeated");
        SafeTensors.WriteFile(path, ParameterSet.Create(("other/x", [2])), new Dictionary<string, string>
        {
            ["nearml.optimizer.kind"] = "adamw",
            ["nearml.optimizer.step"] = "1",
            ["nearml.optimizer.lr"] = "0.001",
            ["nearml.optimizer.buffers"] = "exp_avg",
        });
        ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => OptimizerState.Load(path));
        StringAssert.Contains(ex.Message, "other/x");
        File.Delete(path);
    }
}
