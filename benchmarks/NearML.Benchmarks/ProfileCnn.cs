using System.Diagnostics;
using System.Globalization;
using NearML.Training;
using NearML.Training.Data;
using NearML.Training.Kernels;
using NearML.Training.Modules;
using NearML.Training.Optim;
using NearML.Training.Tensors;

namespace NearML.Benchmarks;

/// <summary>
/// `compare profile-cnn`: where a small-CNN training step spends its time. Prints the whole step (wall and process CPU
/// milliseconds, median over the timed steps) and then each layer of <see cref="SmallCnn"/> alone, forward and
/// forward and backward on its own tape with the step's shapes (batch 64 unless --batch; the first
/// convolution's input needs no gradient, as in training), median of repeated calls, random inputs.
/// A diagnostic for finding hot spots, not a comparison.
/// </summary>
internal static class ProfileCnn
{
    public static int Run(int batchSize, int steps, int seed, string? dataDir)
    {
        var data = FashionMnist.Load(dataDir);
        var model = new SmallCnn(seed);
        var optimizer = new AdamW(model.Parameters.Layout, new AdamWOptions { LearningRate = 1e-3, WeightDecay = 0.01 });
        var trainer = new LocalTrainer(model, optimizer);
        var train = new ClassificationBatchSource(data.Train, batchSize, (ulong)seed);
        var batch = train.CreateBatch();
        train.StartEpoch(0);
        var (wall, cpu) = OpTimer.Steps(
            10,
            steps,
            s =>
            {
                if (!train.TryFill(batch))
                {
                    train.StartEpoch(s);
                    train.TryFill(batch);
                }
            },
            () => trainer.TrainStep(batch));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"step (batch {batchSize}, {KernelThreads.Count} threads, {KernelThreads.InstructionSet}): wall {OpTimer.Median(wall):F2} ms [{wall[0]:F2}..{wall[^1]:F2}], CPU {OpTimer.Median(cpu):F2} ms, {batchSize * 1000 / OpTimer.Median(wall):F0} samples/s; load {File.ReadAllText("/proc/loadavg").Split(' ')[0]}"));

        var rng = new Random(seed);
        Layer("conv1 1→32 3×3 on 28×28 +relu", false, rng, [batchSize, 1, 28, 28], (t, x) => t.Conv2d(x, model.Conv1.Weight, model.Conv1.Bias, 1, 0, Activation.Relu));
        Layer("pool1 2×2 on 32×26×26", true, rng, [batchSize, 32, 26, 26], (t, x) => t.MaxPool2d(x, 2));
        Layer("conv2 32→64 3×3 on 13×13 +relu", true, rng, [batchSize, 32, 13, 13], (t, x) => t.Conv2d(x, model.Conv2.Weight, model.Conv2.Bias, 1, 0, Activation.Relu));
        Layer("pool2 2×2 on 64×11×11", true, rng, [batchSize, 64, 11, 11], (t, x) => t.MaxPool2d(x, 2));
        Layer("fc1 1600→128 +relu", true, rng, [batchSize, 1600], (t, x) => model.Fc1.Forward(t, x, Activation.Relu));
        Layer("fc2 128→10", true, rng, [batchSize, 128], (t, x) => model.Fc2.Forward(t, x));
        return 0;
    }

    private static void Layer(string name, bool inputGrad, Random rng, int[] shape, Func<Tape, Tensor, Tensor> op)
    {
        var (forward, both) = OpTimer.Time(rng, shape, inputGrad, op, repeats: 50, warmup: 10, gradScale: 1f);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {name,-34} forward {forward,7:F3} ms   backward {both - forward,7:F3} ms"));
    }
}
