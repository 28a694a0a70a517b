using NearML.Training.Data;
using NearML.Training.Modules;
using NearML.Training.Optim;
using NearML.Training.Tensors;

namespace NearML.Training.Tests.Engine;

[TestClass]
public sealed class TrainingTests
{
    public TestContext TestContext { get; set; } = null!;

    /// <summary>Two Gaussian-ish blobs per class in 20-D: easily separable, deterministic.</summary>
    private static LabeledDataset Blobs(int count, int seed)
    {
        var rng = new Random(seed);
        var centers = new float[5 * 20];
        var crng = new Random(1);
        for (var i = 0; i < centers.Length; i++)
        {
            centers[i] = (float)((crng.NextDouble() * 2) - 1);
        }

        var x = new float[count * 20];
        var y = new int[count];
        for (var n = 0; n < count; n++)
        {
            y[n] = rng.Next(5);
            for (var j = 0; j < 20; j++)
            {
                x[(n * 20) + j] = centers[(y[n] * 20) + j] + (float)((rng.NextDouble() - 0.5) * 0.6);
            }
        }

        return new LabeledDataset(x, y, [20], 5);
    }

    [TestMethod]
    public void Mlp_learns_a_separable_problem_with_AdamW_through_LocalTrainer()
    {
        var model = new Mlp(20, 32, 5, seed: 3);
        var trainer = new LocalTrainer(model, new AdamW(model.Parameters.Layout, new AdamWOptions { LearningRate = 1e-2 }));
        var train = new ClassificationBatchSource(Blobs(512, 10), 32, 7);
        var test = new ClassificationBatchSource(Blobs(256, 11), 64, 0, shuffle: false);
        var before = trainer.Evaluate(test);
        var reports = new List<TrainingProgress>();
        var progress = new SyncProgress(reports.Add);
        TrainingRunResult? last = null;
        for (var epoch = 0; epoch < 5; epoch++)
        {
            last = trainer.TrainEpoch(train, epoch, progress);
        }

        var after = trainer.Evaluate(test);
        TestContext.WriteLine($"accuracy {before.Accuracy:P1} -> {after.Accuracy:P1}, loss {before.MeanLoss:F3} -> {after.MeanLoss:F3}");
        Assert.IsTrue(after.Accuracy > 0.95, $"accuracy {after.Accuracy}");
        Assert.IsTrue(after.MeanLoss < before.MeanLoss / 4);
        Assert.AreEqual(16, last!.Steps);
        Assert.AreEqual(512, last.Samples);
        Assert.AreEqual(5 * 16, reports.Count);
        Assert.AreEqual(80L, trainer.Step);
        Assert.AreEqual(256, after.Targets);
    }

    [TestMethod]
    public void Training_is_deterministic_and_cancellable()
    {
        static float[] Run()
        {
            var model = new Mlp(20, 16, 5, seed: 5);
            var trainer = new LocalTrainer(model, new AdamW(model.Parameters.Layout));
            trainer.TrainEpoch(new ClassificationBatchSource(Blobs(128, 3), 16, 9), 0);
            return model.Parameters.Buffer;
        }

        CollectionAssert.AreEqual(Run(), Run());

        var m = new Mlp(20, 16, 5);
        var t = new LocalTrainer(m, new AdamW(m.Parameters.Layout));
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsExactly<OperationCanceledException>(() => t.TrainEpoch(new ClassificationBatchSource(Blobs(64, 3), 16, 9), 0, null, cts.Token));
        Assert.AreEqual(0L, t.Step);
    }

    [TestMethod]
    public void Gpt_loss_falls_on_a_repeating_text()
    {
        var model = new Gpt(new GptConfig(8, 16, 32, 2, 2), seed: 2);
        var trainer = new LocalTrainer(model, new AdamW(model.Parameters.Layout, new AdamWOptions { LearningRate = 3e-3 }));
        var source = new PatternSource(batch: 4, time: 16);
        source.StartEpoch(0);
        var first = trainer.TrainSteps(source, 5);
        var later = trainer.TrainSteps(source, 40);
        var final = trainer.TrainSteps(source, 5);
        TestContext.WriteLine($"GPT loss {first.MeanLoss:F3} -> {final.MeanLoss:F3}");
        Assert.IsTrue(final.MeanLoss < first.MeanLoss * 0.5, $"{first.MeanLoss} -> {final.MeanLoss}");
        Assert.AreEqual(50L, trainer.Step);
        Assert.AreEqual(40L, later.Steps);
    }

    [TestMethod]
    public void Steady_state_steps_allocate_less_than_4KB()
    {
        var mlp = new Mlp(seed: 1);
        var mlpBatch = new Batch(32, 784, 0, 1) { Count = 32 };
        Fill(mlpBatch, 10);
        var cnn = new SmallCnn(seed: 1);
        var cnnBatch = new Batch(8, 784, 0, 1) { Count = 8 };
        Fill(cnnBatch, 10);
        var gpt = new Gpt(new GptConfig(16, 16, 32, 2, 2), seed: 1);
        var gptBatch = new Batch(4, 0, 16, 16) { Count = 4 };
        for (var i = 0; i < gptBatch.Tokens.Length; i++)
        {
            gptBatch.Tokens[i] = i % 16;
            gptBatch.Targets[i] = (i + 1) % 16;
        }

        foreach (var (name, model, batch) in new (string, Model, Batch)[] { ("mlp", mlp, mlpBatch), ("cnn", cnn, cnnBatch), ("gpt", gpt, gptBatch) })
        {
            var trainer = new LocalTrainer(model, new AdamW(model.Parameters.Layout));
            for (var i = 0; i < 3; i++)
            {
                trainer.TrainStep(batch);
            }

            const int Steps = 10;
            // this thread only: the test host allocates on its own threads while results are being reported
            var before = GC.GetAllocatedBytesForCurrentThread();
            for (var i = 0; i < Steps; i++)
            {
                trainer.TrainStep(batch);
            }

            var perStep = (GC.GetAllocatedBytesForCurrentThread() - before) / (double)Steps;
            TestContext.WriteLine($"{name}: {perStep:F0} bytes allocated per steady-state training step");
            Assert.IsTrue(perStep < 4096, $"{name}: {perStep} bytes/step");
        }
    }

    [TestMethod]
    public void Evaluating_with_a_larger_batch_leaves_training_allocation_free()
    {
        // Regression: evaluation used to share the training tape, growing the training buffers and then their
        // gradient buffers to evaluation sizes (hundreds of MB for the CNN at evaluation batch 1000).
        var cnn = new SmallCnn(seed: 1);
        var batch = new Batch(8, 784, 0, 1) { Count = 8 };
        Fill(batch, 10);
        var trainer = new LocalTrainer(cnn, new AdamW(cnn.Parameters.Layout));
        for (var i = 0; i < 3; i++)
        {
            trainer.TrainStep(batch);
        }

        var eval = new OneBatchSource(32);
        Fill(eval.Source, 10);
        var first = trainer.Evaluate(eval);
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 5; i++)
        {
            trainer.TrainStep(batch);
        }

        var perStep = (GC.GetAllocatedBytesForCurrentThread() - before) / 5.0;
        Assert.IsLessThan(4096.0, perStep, $"{perStep} bytes/step after an evaluation at batch 32");
        Assert.AreEqual(32, first.Targets);
    }

    private sealed class OneBatchSource(int size) : IBatchSource
    {
        private bool _done;

        public Batch Source { get; } = new(size, 784, 0, 1) { Count = size };

        public int BatchSize => size;

        public Batch CreateBatch() => new(size, 784, 0, 1);

        public void StartEpoch(int epoch) => _done = false;

        public bool TryFill(Batch batch)
        {
            if (_done)
            {
                return false;
            }

            Source.Features.CopyTo(batch.Features, 0);
            Source.Targets.CopyTo(batch.Targets, 0);
            batch.Count = size;
            _done = true;
            return true;
        }
    }

    [TestMethod]
    public void Save_and_load_round_trip_through_safetensors()
    {
        var a = new Gpt(new GptConfig(10, 8, 16, 1, 2), seed: 1);
        var b = new Gpt(new GptConfig(10, 8, 16, 1, 2), seed: 2);
        CollectionAssert.AreNotEqual(a.Parameters.Buffer, b.Parameters.Buffer);
        var path = Path.Combine(Path.GetTempPath(), $"nearml-engine-{Guid.NewGuid():N}.safetensors");
        try
        {
            a.Save(path);
            b.Load(path);
            CollectionAssert.AreEqual(a.Parameters.Buffer, b.Parameters.Buffer);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void Parameter_names_match_the_pytorch_models()
    {
        var f = EngineFixture.Instance;
        var gpt = new Gpt(new GptConfig(11, 16, 32, 2, 2));
        CollectionAssert.AreEqual(f.Params("gpt").Layout.Entries.Select(e => e.Name).ToArray(), gpt.Parameters.Layout.Entries.Select(e => e.Name).ToArray());
        var cnn = new SmallCnn();
        CollectionAssert.AreEqual(f.Params("cnn").Layout.Entries.Select(e => e.Name).ToArray(), cnn.Parameters.Layout.Entries.Select(e => e.Name).ToArray());
        Assert.AreEqual(0, gpt.Parameters.Layout.Entries.Count(e => e.Name == "head.weight"), "the head is tied to tok.weight");
    }

    [TestMethod]
    public void Default_initialisation_follows_pytorch()
    {
        var mlp = new Mlp(seed: 4);
        var w = mlp.Parameters.GetSpan("1.weight");
        var bound = 1 / Math.Sqrt(784);
        Assert.IsTrue(w.ToArray().All(v => Math.Abs(v) <= bound));
        Assert.AreEqual(bound / Math.Sqrt(3), Std(w), bound * 0.02, "U(±b) has std b/√3");
        var gpt = new Gpt(new GptConfig(64, 32, 64, 2, 4), seed: 4);
        Assert.AreEqual(0.02, Std(gpt.Parameters.GetSpan("blocks.0.fc.weight")), 0.001);
        Assert.IsTrue(gpt.Parameters.GetSpan("blocks.0.fc.bias").ToArray().All(v => v == 0));
        Assert.IsTrue(gpt.Parameters.GetSpan("blocks.1.ln2.weight").ToArray().All(v => v == 1));
        CollectionAssert.AreEqual(new Mlp(seed: 4).Parameters.Buffer, mlp.Parameters.Buffer, "seeded");
    }

    [TestMethod]
    public void Parameters_and_gradients_are_views_into_the_parameter_sets()
    {
        var model = new Mlp(4, 3, 2);
        model.Fc1.Weight.Data[0] = 42f;
        Assert.AreEqual(42f, model.Parameters.GetSpan("1.weight")[0]);
        var tape = new Tape();
        var loss = tape.CrossEntropy(model.Forward(tape, Tensor.FromArray([1, 2, 3, 4], false, 1, 4)), [1]);
        tape.Backward(loss);
        Assert.AreEqual(model.Gradients.GetSpan("5.bias")[1], model.Fc3.Bias!.Grad[1]);
        Assert.AreNotEqual(0f, model.Gradients.GetSpan("5.bias")[1]);
    }

    private static double Std(ReadOnlySpan<float> s)
    {
        double m = 0, q = 0;
        foreach (var v in s)
        {
            m += v;
        }

        m /= s.Length;
        foreach (var v in s)
        {
            q += (v - m) * (v - m);
        }

        return Math.Sqrt(q / s.Length);
    }

    private static void Fill(Batch b, int classes)
    {
        var rng = new Random(1);
        for (var i = 0; i < b.Features.Length; i++)
        {
            b.Features[i] = (float)rng.NextDouble();
        }

        for (var i = 0; i < b.Targets.Length; i++)
        {
            b.Targets[i] = rng.Next(classes);
        }
    }

    private sealed class SyncProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }

    /// <summary>Windows of "abcdefgh" repeated (vocabulary 8), next-token targets.</summary>
    private sealed class PatternSource(int batch, int time) : IBatchSource
    {
        private int _step;

        public int BatchSize => batch;

        public Batch CreateBatch() => new(batch, 0, time, time);

        public void StartEpoch(int epoch) => _step = epoch * 1000;

        public bool TryFill(Batch b)
        {
            for (var s = 0; s < batch; s++)
            {
                var start = (_step * 3) + (s * 5);
                for (var t = 0; t < time; t++)
                {
                    b.Tokens[(s * time) + t] = (start + t) % 8;
                    b.Targets[(s * time) + t] = (start + t + 1) % 8;
                }
            }

            b.Count = batch;
            _step++;
            return true;
        }
    }
}
