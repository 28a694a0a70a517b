using System.Text.Json;
using NearML.Core;
using NearML.Training.Optim;

namespace NearML.Training.Tests.Optim;

/// <summary>Compares every optimizer step with PyTorch 1.13's torch.optim (fixtures from torch/gen_optim.py).</summary>
[TestClass]
public sealed class TorchReferenceTests
{
    // The tolerance check names the first element that is far off; the optimizers then also have to be bit-exact:
    // scalars are rounded like Python + ATen, and each element-wise operation rounds where ATen's vectorised CPU
    // kernels round (FMA for add_(alpha)/addcmul_, value·t1 before the division in addcdiv_). All of these are
    // IEEE-exact operations (TensorPrimitives.FusedMultiplyAdd is fused even without FMA hardware), so the result
    // does not depend on the CPU running the test.
    private const double Rtol = 1e-6;
    private const double Atol = 1e-7;

    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    [DataRow("sgd_plain")]
    [DataRow("sgd_momentum")]
    [DataRow("sgd_momentum_dampening")]
    [DataRow("sgd_nesterov")]
    [DataRow("sgd_weight_decay")]
    [DataRow("sgd_nesterov_weight_decay")]
    [DataRow("adamw_default")]
    [DataRow("adamw_large_lr")]
    [DataRow("adamw_scheduled")]
    [DataRow("adam_weight_decay")]
    [DataRow("adamw_no_decay_group")]
    [DataRow("sgd_no_decay_group")]
    [DataRow("adam_no_decay_group")]
    public void Steps_match_torch(string caseName)
    {
        var fx = OptimFixture.Current;
        var c = fx.Case(caseName);
        var parameters = fx.InitialParameters;
        var optimizer = Create(fx.Layout, c);
        double[]? lrs = c.TryGetProperty("lrs", out var l) ? [.. l.EnumerateArray().Select(x => x.GetDouble())] : null;
        var steps = c.GetProperty("steps");
        long maxUlp = 0;
        for (var k = 0; k < fx.K; k++)
        {
            if (lrs is not null)
            {
                optimizer.LearningRate = lrs[k];
            }

            optimizer.Step(parameters, fx.Gradients(k));
            var expected = steps[k];
            maxUlp = Math.Max(maxUlp, Compare.Close(fx.Decode(expected.GetProperty("params").GetString()!), parameters, Rtol, Atol, $"{caseName} step {k + 1} params"));
            var state = optimizer.ExportState();
            Assert.AreEqual(k + 1, state.StepCount);
            foreach (var s in expected.GetProperty("state").EnumerateObject())
            {
                if (s.Name == "step")
                {
                    Assert.AreEqual(s.Value.GetDouble(), state.StepCount);
                    continue;
                }

                Assert.IsTrue(state.Buffers.ContainsKey(s.Name), $"{caseName}: missing state buffer {s.Name}");
                maxUlp = Math.Max(maxUlp, Compare.Close(fx.Decode(s.Value.GetString()!), state.Buffers[s.Name], Rtol, Atol, $"{caseName} step {k + 1} {s.Name}"));
            }
        }

        TestContext.WriteLine($"{caseName}: largest difference from torch over {fx.K} steps: {maxUlp} ulp");
        Assert.AreEqual(0L, maxUlp, $"{caseName}: within tolerance but not bit-exact with torch ({maxUlp} ulp)");
    }

    [TestMethod]
    public void Warmup_cosine_matches_torch_LambdaLR()
    {
        var s = OptimFixture.Current.Root.GetProperty("schedule");
        var schedule = new WarmupCosineSchedule(
            s.GetProperty("base").GetDouble(),
            s.GetProperty("warmup").GetInt64(),
            s.GetProperty("total").GetInt64(),
            s.GetProperty("min").GetDouble());
        var lrs = s.GetProperty("lrs").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        Assert.IsGreaterThan(s.GetProperty("total").GetInt32(), lrs.Length, "the fixture covers the tail after the decay");
        for (var i = 0; i < lrs.Length; i++)
        {
            Assert.AreEqual(lrs[i], schedule.GetLearningRate(i), 1e-15 + (1e-12 * lrs[i]), $"step {i}");
        }
    }

    private static Optimizer Create(ParameterLayout layout, JsonElement c)
    {
        var o = c.GetProperty("options");
        Func<NearML.Core.TensorEntry, bool>? filter = null;
        if (c.TryGetProperty("no_decay", out var nd))
        {
            var excluded = nd.EnumerateArray().Select(x => x.GetString()).ToHashSet();
            filter = e => !excluded.Contains(e.Name);
        }

        double Get(string name, double fallback) => o.TryGetProperty(name, out var v) ? v.GetDouble() : fallback;
        return c.GetProperty("optimizer").GetString() switch
        {
            "sgd" => new Sgd(layout, new SgdOptions
            {
                LearningRate = Get("lr", 0),
                Momentum = Get("momentum", 0),
                Dampening = Get("dampening", 0),
                Nesterov = o.TryGetProperty("nesterov", out var n) && n.GetBoolean(),
                WeightDecay = Get("weight_decay", 0),
                WeightDecayFilter = filter,
            }),
            "adamw" => new AdamW(layout, new AdamWOptions
            {
                LearningRate = Get("lr", 1e-3),
                Beta1 = o.TryGetProperty("betas", out var b) ? b[0].GetDouble() : 0.9,
                Beta2 = o.TryGetProperty("betas", out var b2) ? b2[1].GetDouble() : 0.999,
                Epsilon = Get("eps", 1e-8),
                WeightDecay = Get("weight_decay", 0.01),
                WeightDecayFilter = filter,
            }),
            "adam" => new Adam(layout, new AdamOptions
            {
                LearningRate = Get("lr", 1e-3),
                WeightDecay = Get("weight_decay", 0),
                WeightDecayFilter = filter,
            }),
            var k => throw new InvalidOperationException($"unknown optimizer {k}"),
        };
    }
}
