#pragma warning disable CA1859 // the tests deliberately drive the engine-neutral interface
using NearML.Core;
using NearML.Training.Data;
using NearML.Training.Engines;
using NearML.Training.Modules;
using NearML.Training.Optim;
using NearML.Training.Tensors;

namespace NearML.Training.Tests.Engines;

/// <summary>A model written the way an integrator writes one: public constructors and <see cref="Model.InitializeParameters"/> only.</summary>
internal sealed class TinyMlp : Model
{
    private readonly Linear _fc1;
    private readonly Linear _fc2;
    private readonly ScaleShift _out;

    public TinyMlp(int inputs, int hidden, int classes, int seed)
    {
        Inputs = inputs;
        Classes = classes;
        _fc1 = new Linear(this, "fc1", inputs, hidden);
        _fc2 = new Linear(this, "fc2", hidden, classes);
        _out = new ScaleShift(this, "out", classes);
        InitializeParameters(seed);
    }

    public int Inputs { get; }

    public override int Classes { get; }

    public override Tensor Forward(Tape tape, Batch batch)
    {
        ArgumentNullException.ThrowIfNull(tape);
        CheckFeatures(batch, Inputs);
        var x = tape.Input(batch.Features, 0, batch.Count, Inputs);
        var h = _fc1.Forward(tape, x, Activation.Relu);
        return _out.Forward(tape, _fc2.Forward(tape, h));
    }
}

/// <summary>A user-defined block with raw parameters: y = x + x·Wᵀ + b.</summary>
internal sealed class ScaleShift : Module
{
    public ScaleShift(Module parent, string name, int features)
        : base(parent, name)
    {
        Weight = AddParameter("weight", [features, features], ParameterInit.Uniform(1f / MathF.Sqrt(features)));
        Bias = AddParameter("bias", [features], ParameterInit.Zeros);
    }

    public Tensor Weight { get; }

    public Tensor Bias { get; }

    public Tensor Forward(Tape tape, Tensor x) => tape.Add(x, tape.Linear(x, Weight, Bias));
}

internal sealed class EmptyModel : Model
{
    public EmptyModel() => InitializeParameters(0);

    public override int Classes => 1;

    public override Tensor Forward(Tape tape, Batch batch) => throw new NotSupportedException();
}

[TestClass]
public sealed class ManagedTrainableModelTests
{
    /// <summary>Three well-separated Gaussian blobs in 4-D; labels are the blob.</summary>
    internal static LabeledDataset Blobs(int count, int seed)
    {
        var rng = new Random(seed);
        var features = new float[count * 4];
        var labels = new int[count];
        for (var i = 0; i < count; i++)
        {
            var c = i % 3;
            labels[i] = c;
            for (var j = 0; j < 4; j++)
            {
                var centre = j == c ? 3f : 0f;
                features[(i * 4) + j] = centre + (float)((rng.NextDouble() * 2) - 1);
            }
        }

        return new LabeledDataset(features, labels, [4], 3);
    }

    [TestMethod]
    public void A_model_defined_outside_NearML_declares_named_parameters_in_one_set()
    {
        var model = new TinyMlp(4, 8, 3, seed: 1);
        var names = model.Parameters.Layout.Entries.Select(e => e.Name).ToArray();
        CollectionAssert.AreEqual(new[] { "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "out.weight", "out.bias" }, names);
        Assert.AreEqual((4 * 8) + 8 + (8 * 3) + 3 + 9 + 3, model.Parameters.Length);
        Assert.IsTrue(model.Parameters.GetSpan("out.bias").ToArray().All(v => v == 0f));

        // Equal seeds, equal bits; another seed, other values.
        CollectionAssert.AreEqual(model.Parameters.Data.ToArray(), new TinyMlp(4, 8, 3, 1).Parameters.Data.ToArray());
        CollectionAssert.AreNotEqual(model.Parameters.Data.ToArray(), new TinyMlp(4, 8, 3, 2).Parameters.Data.ToArray());
    }

    [TestMethod]
    public void A_model_defined_outside_NearML_trains_through_the_contract()
    {
        using var trainable = new ManagedTrainableModel(new TinyMlp(4, 16, 3, seed: 3), new InnerOptimizerSettings(LearningRate: 0.01));
        var (before, after) = TrainThroughContract(trainable);
        Assert.AreEqual("managed", trainable.Engine);
        Assert.IsLessThan(before.MeanLoss / 4, after.MeanLoss, $"loss {before.MeanLoss} -> {after.MeanLoss}");
        Assert.IsGreaterThan(0.95, after.Accuracy);
    }

    private static (EvaluationResult Before, EvaluationResult After) TrainThroughContract(ITrainableModel trainable)
    {
        var train = new ClassificationBatchSource(Blobs(600, 1), 32, 7);
        var test = new ClassificationBatchSource(Blobs(300, 2), 100, 0, shuffle: false);
        var before = trainable.Evaluate(test);
        var batch = train.CreateBatch();
        for (var epoch = 0; epoch < 5; epoch++)
        {
            train.StartEpoch(epoch);
            while (train.TryFill(batch))
            {
                trainable.TrainStep(batch);
            }
        }

        return (before, trainable.Evaluate(test));
    }

    [TestMethod]
    public void A_model_without_trainable_parameters_is_refused_with_a_clear_message()
    {
        var ex = Assert.ThrowsExactly<InvalidOperationException>(() => new EmptyModel());
        StringAssert.Contains(ex.Message, "no trainable parameters");
    }

    [TestMethod]
    public void Bad_declarations_are_refused()
    {
        Assert.ThrowsExactly<ArgumentException>(() => new BadNameModel("a.b"));
        Assert.ThrowsExactly<ArgumentException>(() => new BadNameModel(string.Empty));
        var dup = Assert.ThrowsExactly<InvalidOperationException>(() => new BadNameModel("fc", duplicate: true));
        StringAssert.Contains(dup.Message, "fc.weight");
    }

    [TestMethod]
    public void Managed_step_equals_LocalTrainer_step_bit_for_bit()
    {
        var settings = new InnerOptimizerSettings(LearningRate: 3e-3, WeightDecay: 0.05);
        using var viaContract = new ManagedTrainableModel(new Mlp(4, 16, 3, seed: 5), settings);
        var plainModel = new Mlp(4, 16, 3, seed: 5);
        var trainer = new LocalTrainer(plainModel, new AdamW(plainModel.Parameters.Layout, new AdamWOptions { LearningRate = 3e-3, WeightDecay = 0.05 }));
        var source = new ClassificationBatchSource(Blobs(256, 4), 32, 9);
        source.StartEpoch(0);
        var batch = source.CreateBatch();
        var steps = 0;
        while (source.TryFill(batch))
        {
            var a = viaContract.TrainStep(batch);
            var b = trainer.TrainStep(batch);
            Assert.AreEqual(BitConverter.SingleToInt32Bits(b), BitConverter.SingleToInt32Bits(a), $"loss at step {steps}");
            steps++;
        }

        Assert.AreEqual(8, steps);
        Assert.IsTrue(viaContract.Parameters.Data.SequenceEqual(plainModel.Parameters.Data), "parameters differ after 8 steps");
        Assert.IsFalse(viaContract.Parameters.Data.SequenceEqual(new Mlp(4, 16, 3, seed: 5).Parameters.Data), "the steps changed nothing");
    }

    [TestMethod]
    [DataRow("adamw")]
    [DataRow("sgd")]
    public void Optimizer_state_export_import_round_trip_continues_identically(string kind)
    {
        var settings = new InnerOptimizerSettings(kind, LearningRate: 0.01, Momentum: 0.9);
        using var a = new ManagedTrainableModel(new TinyMlp(4, 8, 3, 11), settings);
        var source = new ClassificationBatchSource(Blobs(96, 5), 16, 3);
        source.StartEpoch(0);
        var batch = source.CreateBatch();
        for (var i = 0; i < 3 && source.TryFill(batch); i++)
        {
            a.TrainStep(batch);
        }

        var state = a.ExportOptimizerState();
        Assert.AreEqual(kind, state.Kind);
        Assert.AreEqual(3, state.StepCount);

        using var b = new ManagedTrainableModel(new TinyMlp(4, 8, 3, 99), settings);
        b.Parameters.CopyFrom(a.Parameters);
        b.PushParameters();
        b.ImportOptimizerState(state);
        Assert.IsTrue(source.TryFill(batch));
        a.TrainStep(batch);
        b.TrainStep(batch);
        Assert.IsTrue(a.Parameters.Data.SequenceEqual(b.Parameters.Data), "a restored optimizer continues differently");

        // Without the state, the same step gives other parameters (so the assertion above can fail).
        using var c = new ManagedTrainableModel(new TinyMlp(4, 8, 3, 99), settings);
        c.Parameters.CopyFrom(b.Parameters);
        using var d = new ManagedTrainableModel(new TinyMlp(4, 8, 3, 99), settings);
        d.Parameters.CopyFrom(b.Parameters);
        d.ImportOptimizerState(b.ExportOptimizerState());
        c.TrainStep(batch);
        d.TrainStep(batch);
        Assert.IsFalse(c.Parameters.Data.SequenceEqual(d.Parameters.Data));

        // Another kind's state is refused.
        using var other = new ManagedTrainableModel(new TinyMlp(4, 8, 3, 1), settings with { Kind = kind == "sgd" ? "adamw" : "sgd" });
        Assert.ThrowsExactly<InvalidOptimizerStateException>(() => other.ImportOptimizerState(state));
    }

    [TestMethod]
    public void A_NaN_loss_is_a_typed_error_and_leaves_the_parameters_unchanged()
    {
        using var m = new ManagedTrainableModel(new TinyMlp(4, 8, 3, 1), new InnerOptimizerSettings());
        var before = m.Parameters.Data.ToArray();
        var batch = new Batch(2, 4, 0, 1) { Count = 2 };
        batch.Features[0] = float.NaN;
        var ex = Assert.ThrowsExactly<NonFiniteValueException>(() => m.TrainStep(batch));
        Assert.IsTrue(ex.What is "loss" or "input", ex.Message);
        CollectionAssert.AreEqual(before, m.Parameters.Data.ToArray());
    }

    [TestMethod]
    public void Unknown_optimizer_kind_is_refused()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => new ManagedTrainableModel(new TinyMlp(4, 8, 3, 1), new InnerOptimizerSettings("lion")));
        StringAssert.Contains(ex.Message, "lion");
    }

    private sealed class BadNameModel : Model
    {
        public BadNameModel(string name, bool duplicate = false)
        {
            _ = new Linear(this, name, 2, 2);
            if (duplicate)
            {
                _ = new Linear(this, name, 2, 2);
            }

            InitializeParameters(0);
        }

        public override int Classes => 2;

        public override Tensor Forward(Tape tape, Batch batch) => throw new NotSupportedException();
    }
}
