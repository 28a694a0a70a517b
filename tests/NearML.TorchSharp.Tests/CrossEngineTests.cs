using NearML.Core;
using NearML.Training.Engines;
using NearML.Training.Modules;
using NearML.Training.Optim;

namespace NearML.TorchSharp.Tests;

/// <summary>
/// §4a: the managed engine and LibTorch, given the same parameters and batch, agree. Tolerances (stated in
/// docs/torchsharp.md): loss within rtol 1e-5; gradients within |Δ| ≤ 1e-6 + 1e-4·|g| element-wise (float32 GEMMs sum
/// in different orders); one AdamW step from the same parameters and gradients within |Δ| ≤ 1e-7 + 1e-6·|θ|.
/// </summary>
[TestClass]
public sealed class CrossEngineTests
{
    private static readonly InnerOptimizerSettings AdamW = new("adamw", LearningRate: 1e-3, WeightDecay: 0.1);

    [TestInitialize]
    public void Init() => TorchEnv.Require();

    [TestMethod]
    public void Mlp_Has_The_Managed_Mlps_Names_Shapes_And_Fingerprint()
    {
        using var torch = new TorchSharpTrainableModel(TorchModels.Mlp(), AdamW);
        var managed = new Mlp(seed: 1);
        CollectionAssert.AreEqual(managed.Parameters.Layout.Entries.Select(e => e.Name).ToArray(), torch.Layout.Entries.Select(e => e.Name).ToArray());
        Assert.AreEqual(managed.Parameters.Layout.Fingerprint, torch.Layout.Fingerprint);
        Assert.AreEqual("torchsharp", torch.Engine);
    }

    [TestMethod]
    public void Same_Parameters_And_Batch_Give_The_Same_Loss_And_Gradients()
    {
        var managed = new Mlp(seed: 7);
        using var runner = new ManagedRunner(managed);
        using var torch = new TorchSharpTrainableModel(TorchModels.Mlp(), AdamW);
        torch.Parameters.CopyFrom(managed.Parameters);
        torch.PushParameters();

        foreach (var (count, seed) in new[] { (64, 1), (17, 2), (1, 3) })
        {
            var batch = Batches.Random(count, 784, 10, seed, capacity: 64);
            var lm = runner.ComputeGradients(batch);
            var lt = torch.ComputeGradients(batch);
            torch.PullGradients();
            Assert.IsTrue(Math.Abs(lt - lm) <= 1e-5 * Math.Abs(lm), $"loss {lt} vs managed {lm} (count {count})");
            for (var i = 0; i < torch.Layout.Count; i++)
            {
                var ratio = Batches.WorstRatio(torch.Gradients.GetSpan(i), managed.Gradients.GetSpan(i), rtol: 1e-4, atol: 1e-6);
                Assert.IsTrue(ratio <= 1, $"gradient of {torch.Layout.Entries[i].Name}: worst error {ratio:F3}× the tolerance (count {count})");
            }
        }
    }

    [TestMethod]
    public void AdamW_Step_With_Weight_Decay_Matches_The_Managed_AdamW()
    {
        var managed = new Mlp(seed: 3);
        using var runner = new ManagedRunner(managed);
        var opt = new AdamW(managed.Parameters.Layout, new AdamWOptions { LearningRate = AdamW.LearningRate, WeightDecay = AdamW.WeightDecay, Beta1 = AdamW.Beta1, Beta2 = AdamW.Beta2, Epsilon = AdamW.Epsilon });
        using var torch = new TorchSharpTrainableModel(TorchModels.Mlp(), AdamW);
        torch.Parameters.CopyFrom(managed.Parameters);
        torch.PushParameters();

        for (var step = 0; step < 5; step++)
        {
            // the same gradients into both optimizers: only the optimizers' arithmetic can differ
            runner.ComputeGradients(Batches.Random(32, 784, 10, 100 + step));
            _ = torch.ComputeGradients(Batches.Random(32, 784, 10, 100 + step));
            torch.Gradients.CopyFrom(managed.Gradients);
            torch.PushGradients();
            opt.Step(managed.Parameters, managed.Gradients);
            torch.OptimizerStep();
            torch.PullParameters();
            var ratio = Batches.WorstRatio(torch.Parameters.Data, managed.Parameters.Data, rtol: 1e-6, atol: 1e-7);
            Assert.IsTrue(ratio <= 1, $"step {step}: parameters differ by {ratio:F3}× the tolerance");
        }

        // weight decay is really applied (TorchSharp's default would be 0): zero gradients still shrink the weights
        var before = torch.Parameters.Clone();
        torch.Gradients.Clear();
        torch.PushGradients();
        var freshTorch = new TorchSharpTrainableModel(TorchModels.Mlp(), AdamW);
        freshTorch.Parameters.CopyFrom(before);
        freshTorch.PushParameters();
        freshTorch.Gradients.Clear();
        freshTorch.PushGradients();
        freshTorch.OptimizerStep();
        freshTorch.PullParameters();
        var w = before.GetSpan("1.weight");
        var after = freshTorch.Parameters.GetSpan("1.weight");
        for (var i = 0; i < 100; i++)
        {
            Assert.AreEqual(w[i] * (1 - AdamW.LearningRate * AdamW.WeightDecay), after[i], 1e-9 + 1e-6 * Math.Abs(w[i]));
        }

        freshTorch.Dispose();
    }

    [TestMethod]
    public void Several_Local_Steps_Track_The_Managed_Engine()
    {
        var managed = new Mlp(seed: 11);
        using var runner = new ManagedRunner(managed);
        var opt = new AdamW(managed.Parameters.Layout, new AdamWOptions { LearningRate = AdamW.LearningRate, WeightDecay = AdamW.WeightDecay });
        using var torch = new TorchSharpTrainableModel(TorchModels.Mlp(), AdamW);
        torch.Parameters.CopyFrom(managed.Parameters);
        torch.PushParameters();
        var start = managed.Parameters.Clone();
        for (var step = 0; step < 20; step++)
        {
            var batch = Batches.Random(32, 784, 10, 500 + step);
            runner.ComputeGradients(batch);
            opt.Step(managed.Parameters, managed.Gradients);
            torch.TrainStep(batch);
        }

        torch.PullParameters();
        var dm = managed.Parameters.Clone();
        dm.Subtract(start);
        var dt = torch.Parameters.Clone();
        dt.Subtract(start);
        var err = dt.Clone();
        err.Subtract(dm);
        var rel = err.Norm() / dm.Norm();
        Assert.IsTrue(rel < 1e-3, $"after 20 AdamW steps the updates differ by {rel:E2} (relative L2)");
    }

    [TestMethod]
    public void Optimizer_State_Exported_By_TorchSharp_Imports_Into_The_Managed_AdamW_And_Back()
    {
        using var torch = new TorchSharpTrainableModel(TorchModels.Mlp(), AdamW);
        for (var step = 0; step < 3; step++)
        {
            torch.TrainStep(Batches.Random(16, 784, 10, 40 + step));
        }

        var exported = torch.ExportOptimizerState();
        Assert.AreEqual("adamw", exported.Kind);
        Assert.AreEqual(3, exported.StepCount);
        Assert.IsTrue(exported.Buffers["exp_avg_sq"].Norm() > 0);

        var managed = new AdamW(torch.Layout, new AdamWOptions { LearningRate = AdamW.LearningRate, WeightDecay = AdamW.WeightDecay, Beta1 = AdamW.Beta1, Beta2 = AdamW.Beta2, Epsilon = AdamW.Epsilon });
        managed.ImportState(exported);
        var roundTrip = managed.ExportState();
        Assert.AreEqual(3, roundTrip.StepCount);

        using var other = new TorchSharpTrainableModel(TorchModels.Mlp(), AdamW);
        other.ImportOptimizerState(roundTrip);
        var back = other.ExportOptimizerState();
        Assert.AreEqual(exported.StepCount, back.StepCount);
        foreach (var name in new[] { "exp_avg", "exp_avg_sq" })
        {
            CollectionAssert.AreEqual(exported.Buffers[name].Buffer, back.Buffers[name].Buffer, name);
        }

        // and through a checkpoint file
        var path = Path.Combine(Path.GetTempPath(), $"nearml-torch-opt-{Guid.NewGuid():N}.safetensors");
        try
        {
            exported.Save(path);
            other.ImportOptimizerState(OptimizerState.Load(path));
            CollectionAssert.AreEqual(exported.Buffers["exp_avg"].Buffer, other.ExportOptimizerState().Buffers["exp_avg"].Buffer);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void Optimizer_State_Of_Another_Kind_Or_Hyperparameters_Or_Layout_Is_Refused()
    {
        using var torch = new TorchSharpTrainableModel(TorchModels.Mlp(), AdamW);
        var good = torch.ExportOptimizerState();
        var sgd = new OptimizerState("sgd", 1, 0.1, new Dictionary<string, ParameterSet>());
        Assert.ThrowsExactly<InvalidOptimizerStateException>(() => torch.ImportOptimizerState(sgd));
        var otherDecay = new OptimizerState("adamw", 1, 1e-3, good.Buffers, new Dictionary<string, double>(good.Hyperparameters) { ["weight_decay"] = 0 });
        Assert.ThrowsExactly<InvalidOptimizerStateException>(() => torch.ImportOptimizerState(otherDecay));
        using var small = new TorchSharpTrainableModel(TorchModels.Mlp(hidden: 8), AdamW);
        Assert.ThrowsExactly<InvalidOptimizerStateException>(() => small.ImportOptimizerState(good));
        Assert.ThrowsExactly<ArgumentException>(() => torch.ResetOptimizer(AdamW with { Kind = "lion" }));
    }

    [TestMethod]
    public void Sgd_With_Momentum_Matches_The_Managed_Sgd()
    {
        var settings = new InnerOptimizerSettings("sgd", LearningRate: 0.05, WeightDecay: 0.01, Momentum: 0.9);
        var managed = new Mlp(seed: 5);
        using var runner = new ManagedRunner(managed);
        var opt = new Sgd(managed.Parameters.Layout, new SgdOptions { LearningRate = settings.LearningRate, Momentum = settings.Momentum, WeightDecay = settings.WeightDecay });
        using var torch = new TorchSharpTrainableModel(TorchModels.Mlp(), settings);
        torch.Parameters.CopyFrom(managed.Parameters);
        torch.PushParameters();
        for (var step = 0; step < 4; step++)
        {
            runner.ComputeGradients(Batches.Random(32, 784, 10, 900 + step));
            _ = torch.ComputeGradients(Batches.Random(32, 784, 10, 900 + step));
            torch.Gradients.CopyFrom(managed.Gradients);
            torch.PushGradients();
            opt.Step(managed.Parameters, managed.Gradients);
            torch.OptimizerStep();
        }

        torch.PullParameters();
        Assert.IsTrue(Batches.WorstRatio(torch.Parameters.Data, managed.Parameters.Data, rtol: 1e-6, atol: 1e-7) <= 1);
        var exported = torch.ExportOptimizerState();
        Assert.AreEqual(4, exported.StepCount);
        var m = opt.ExportState();
        Assert.IsTrue(Batches.WorstRatio(exported.Buffers["momentum_buffer"].Data, m.Buffers["momentum_buffer"].Data, 1e-6, 1e-8) <= 1);
        opt.ImportState(exported);
    }
}
