using NearML.Core;
using NearML.Training.Engines;
using NearML.Training.Tensors;
using TorchSharp;
using static TorchSharp.torch;

namespace NearML.TorchSharp.Tests;

[TestClass]
public sealed class AdapterTests
{
    private static readonly InnerOptimizerSettings Adam = new("adamw", LearningRate: 1e-3, WeightDecay: 0.01);

    [TestInitialize]
    public void Init() => TorchEnv.Require();

    [TestMethod]
    public void Sync_Point_Copies_Round_Trip_Bit_For_Bit()
    {
        using var m = new TorchSharpTrainableModel(TorchModels.Mlp(32, 16, 4), Adam);
        for (var seed = 0; seed < 5; seed++)
        {
            var p = Batches.RandomSet(m.Layout, seed, scale: 3);
            p.Data[seed] = float.Epsilon; // subnormal survives
            m.Parameters.CopyFrom(p);
            m.PushParameters();
            m.Parameters.Clear();
            m.PullParameters();
            CollectionAssert.AreEqual(p.Buffer, m.Parameters.Buffer);

            // the module itself holds exactly those values, under those names
            foreach (var (name, t) in m.Module.named_parameters())
            {
                var expect = p.GetSpan(name).ToArray();
                CollectionAssert.AreEqual(expect, t.data<float>().ToArray(), name);
            }

            var g = Batches.RandomSet(m.Layout, 100 + seed);
            m.Gradients.CopyFrom(g);
            m.PushGradients();
            m.Gradients.Clear();
            m.PullGradients();
            CollectionAssert.AreEqual(g.Buffer, m.Gradients.Buffer);
        }
    }

    [TestMethod]
    public void Gradients_Pulled_Are_The_Last_Backward_And_Are_Zeroed_Each_Step()
    {
        using var m = new TorchSharpTrainableModel(TorchModels.Mlp(32, 16, 4), Adam);
        var batch = Batches.Random(8, 32, 4, 1);
        m.ComputeGradients(batch);
        m.PullGradients();
        var first = m.Gradients.Clone();
        Assert.IsTrue(first.Norm() > 0);
        m.ComputeGradients(batch); // not accumulated: zeroed before the backward
        m.PullGradients();
        CollectionAssert.AreEqual(first.Buffer, m.Gradients.Buffer);
    }

    [TestMethod]
    public void Frozen_Parameters_Are_Left_Out_Of_The_Layout_And_Not_Trained()
    {
        var module = TorchModels.Mlp(32, 16, 4);
        var frozen = module.named_parameters().Where(p => p.name.StartsWith("1.", StringComparison.Ordinal)).ToList();
        foreach (var (_, p) in frozen)
        {
            p.requires_grad = false;
        }

        var frozenBefore = frozen.Select(p => p.parameter.data<float>().ToArray()).ToList();
        using var m = new TorchSharpTrainableModel(module, Adam);
        CollectionAssert.AreEqual(new[] { "3.weight", "3.bias", "5.weight", "5.bias" }, m.Layout.Entries.Select(e => e.Name).ToArray());
        Assert.AreEqual(16 * 16 + 16 + 4 * 16 + 4, m.Layout.TotalLength);
        for (var i = 0; i < 3; i++)
        {
            m.TrainStep(Batches.Random(8, 32, 4, i));
        }

        var after = m.Module.named_parameters().Where(p => p.name.StartsWith("1.", StringComparison.Ordinal)).Select(p => p.parameter.data<float>().ToArray()).ToList();
        for (var i = 0; i < after.Count; i++)
        {
            CollectionAssert.AreEqual(frozenBefore[i], after[i]);
        }
    }

    [TestMethod]
    public void Half_Precision_Modules_Are_Refused_With_A_Clear_Message()
    {
        foreach (var dtype in new[] { ScalarType.Float16, ScalarType.BFloat16, ScalarType.Float64 })
        {
            var module = TorchModels.Mlp(8, 4, 2);
            module.to(dtype);
            var e = Assert.ThrowsExactly<UnsupportedTorchModelException>(() => new TorchSharpTrainableModel(module, Adam));
            StringAssert.Contains(e.Message, "'1.weight'");
            StringAssert.Contains(e.Message, "float32");
            if (dtype != ScalarType.Float64)
            {
                StringAssert.Contains(e.Message, "fp32 master weights");
            }

            module.Dispose();
        }
    }

    [TestMethod]
    public void A_Module_Without_Trainable_Parameters_Is_Refused()
    {
        var module = TorchModels.Mlp(8, 4, 2);
        foreach (var (_, p) in module.named_parameters())
        {
            p.requires_grad = false;
        }

        var e = Assert.ThrowsExactly<UnsupportedTorchModelException>(() => new TorchSharpTrainableModel(module, Adam));
        StringAssert.Contains(e.Message, "no trainable parameters");
        Assert.ThrowsExactly<UnsupportedTorchModelException>(() => new TorchSharpTrainableModel(nn.Sequential(nn.ReLU()), Adam));
    }

    [TestMethod]
    public void A_NaN_Loss_Throws_NonFiniteValueException_And_Leaves_The_Parameters()
    {
        using var m = new TorchSharpTrainableModel(TorchModels.Mlp(32, 16, 4), Adam);
        var before = m.Parameters.Clone();
        var batch = Batches.Random(8, 32, 4, 1);
        batch.Features[5] = float.NaN;
        var e = Assert.ThrowsExactly<NonFiniteValueException>(() => m.ComputeGradients(batch));
        Assert.AreEqual("loss", e.What);
        m.PullParameters();
        CollectionAssert.AreEqual(before.Buffer, m.Parameters.Buffer);
    }

    [TestMethod]
    public void A_NonFinite_Gradient_Under_A_Finite_Loss_Throws_Naming_The_Tensor()
    {
        // sqrt(|0·Σout|) is 0 in the forward but its derivative at 0 is infinite: NaN gradients, finite loss
        using var m = new TorchSharpTrainableModel(TorchModels.Mlp(32, 16, 4), Adam, new TorchSharpModelOptions
        {
            Loss = (output, targets) => nn.functional.cross_entropy(output, targets) + (output.sum() * 0).abs().sqrt(),
        });
        var e = Assert.ThrowsExactly<NonFiniteValueException>(() => m.ComputeGradients(Batches.Random(8, 32, 4, 1)));
        StringAssert.StartsWith(e.What, "gradient of ");
        Assert.IsTrue(e.Index >= 0);

        using var unchecked_ = new TorchSharpTrainableModel(TorchModels.Mlp(32, 16, 4), Adam, new TorchSharpModelOptions
        {
            CheckGradients = false,
            Loss = (output, targets) => nn.functional.cross_entropy(output, targets) + (output.sum() * 0).abs().sqrt(),
        });
        Assert.IsTrue(float.IsFinite(unchecked_.ComputeGradients(Batches.Random(8, 32, 4, 1))));
    }

    [TestMethod]
    public void A_Batch_That_Does_Not_Fit_Is_Refused()
    {
        using var m = new TorchSharpTrainableModel(TorchModels.Mlp(32, 16, 4), Adam, new TorchSharpModelOptions { SampleShape = [4, 4] });
        Assert.ThrowsExactly<ShapeMismatchException>(() => m.ComputeGradients(Batches.Random(2, 32, 4, 1)));
        var empty = Batches.Random(2, 32, 4, 1);
        empty.Count = 0;
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => m.ComputeGradients(empty));
    }

    [TestMethod]
    public void Same_Seed_Builds_Identical_Parameters_And_A_Pushed_Initial_Set_Makes_Workers_Identical()
    {
        var ctx = new ModelBuildContext("{}", Seed: 42, Adam, Threads: 1);
        using var a = TorchSharpTrainableModel.Create(ctx, () => TorchModels.Mlp(32, 16, 4));
        using var b = TorchSharpTrainableModel.Create(ctx, () => TorchModels.Mlp(32, 16, 4));
        using var c = TorchSharpTrainableModel.Create(ctx with { Seed = 43 }, () => TorchModels.Mlp(32, 16, 4));
        CollectionAssert.AreEqual(a.Parameters.Buffer, b.Parameters.Buffer);
        CollectionAssert.AreNotEqual(a.Parameters.Buffer, c.Parameters.Buffer);
        Assert.AreEqual(1, TorchSharpRuntime.GetThreads());

        // the job's mechanism across engines: the coordinator's initial set is pushed into every worker before round 1
        var initial = new NearML.Training.Modules.Mlp(32, 16, 4, seed: 9).Parameters;
        foreach (var w in new[] { a, c })
        {
            w.Parameters.CopyFrom(initial);
            w.PushParameters();
        }

        var batch = Batches.Random(8, 32, 4, 3);
        Assert.AreEqual(a.TrainStep(batch), c.TrainStep(batch));
        a.PullParameters();
        c.PullParameters();
        CollectionAssert.AreEqual(a.Parameters.Buffer, c.Parameters.Buffer);
    }

    [TestMethod]
    public void Evaluate_Scores_Without_Changing_Parameters()
    {
        using var m = new TorchSharpTrainableModel(TorchModels.Mlp(32, 16, 4), Adam);
        var data = new NearML.Training.Data.LabeledDataset(Enumerable.Range(0, 50 * 32).Select(i => (float)((i * 7919) % 101) / 101).ToArray(), Enumerable.Range(0, 50).Select(i => i % 4).ToArray(), [32], 4);
        var source = new NearML.Training.Data.ClassificationBatchSource(data, 16, 1, shuffle: false);
        var before = m.Parameters.Clone();
        var r = m.Evaluate(source);
        Assert.AreEqual(50, r.Targets);
        Assert.IsTrue(r.MeanLoss > 0 && double.IsFinite(r.MeanLoss));
        Assert.IsTrue(r.Accuracy is >= 0 and <= 1);
        m.PullParameters();
        CollectionAssert.AreEqual(before.Buffer, m.Parameters.Buffer);
    }

    [TestMethod]
    public void Cuda_Device_Trains_Where_Cuda_Is_Present()
    {
        if (!cuda.is_available())
        {
            var e = Assert.ThrowsExactly<TorchDeviceUnavailableException>(() => new TorchSharpTrainableModel(TorchModels.Mlp(8, 4, 2), Adam, new TorchSharpModelOptions { Device = "cuda" }));
            StringAssert.Contains(e.Message, "TorchSharp-cuda-linux");
            Assert.Inconclusive($"No CUDA here (this process's LibTorch is the CPU build or there is no GPU): {e.Message}");
        }

        using var gpu = new TorchSharpTrainableModel(TorchModels.Mlp(32, 16, 4), Adam, new TorchSharpModelOptions { Device = "cuda:0" });
        using var cpu = new TorchSharpTrainableModel(TorchModels.Mlp(32, 16, 4), Adam);
        gpu.Parameters.CopyFrom(cpu.Parameters);
        gpu.PushParameters();
        var batch = Batches.Random(8, 32, 4, 1);
        Assert.AreEqual(cpu.ComputeGradients(batch), gpu.ComputeGradients(batch), 1e-4);
        gpu.PullGradients();
        cpu.PullGradients();
        Assert.IsTrue(Batches.WorstRatio(gpu.Gradients.Data, cpu.Gradients.Data, 1e-3, 1e-5) <= 1);
        Assert.ThrowsExactly<TorchDeviceUnavailableException>(() => new TorchSharpTrainableModel(TorchModels.Mlp(8, 4, 2), Adam, new TorchSharpModelOptions { Device = "cuda:" + cuda.device_count() }));
    }
}
