using System.Diagnostics;
using System.Globalization;
using System.Text;
using NearML.Training;
using NearML.Training.Data;
using NearML.Training.Kernels;
using NearML.Training.Modules;
using NearML.Training.Optim;

namespace NearML.Benchmarks;

/// <summary>
/// Training workloads of the `compare` mode, following the recipe of ../shared/bench/pytorch/README.md: Fashion-MNIST
/// MLP (batch 128, 5 epochs) and small CNN (batch 64, 3 epochs) with AdamW lr 1e-3, wd 0.01, pixels/255, reshuffled
/// every epoch, last partial batch kept, 200-step throughput windows after 20 warm-up steps; the char-level GPT
/// (d 128, 4 layers, 4 heads, context 128, batch 32, AdamW lr 3e-4) with 5 warm-up + 50 timed steps, 10-step windows.
/// Every step is timed from batch gather to the optimiser step; evaluation is outside the timing.
/// </summary>
internal static class CompareTraining
{
    public static int Classifier(string kind, int batchSize, int epochs, int warmup, int window, int seed, string? dataDir)
    {
        var data = FashionMnist.Load(dataDir);
        Model model = kind == "cnn" ? new SmallCnn(seed) : new Mlp(seed: seed);
        var optimizer = new AdamW(model.Parameters.Layout, new AdamWOptions { LearningRate = 1e-3, WeightDecay = 0.01 });
        var trainer = new LocalTrainer(model, optimizer);
        var train = new ClassificationBatchSource(data.Train, batchSize, (ulong)seed);
        var test = new ClassificationBatchSource(data.Test, 1000, (ulong)seed, shuffle: false);
        var batch = train.CreateBatch();

        var totalSteps = train.BatchesPerEpoch * epochs;
        var stepSeconds = new double[totalSteps];
        var stepSamples = new int[totalSteps];
        var accuracies = new List<double>();
        var step = 0;
        long threadBytes = 0;
        var trainCpu = TimeSpan.Zero;
        double trainWall = 0;
        using var process = Process.GetCurrentProcess();
        var wall = Stopwatch.StartNew();
        for (var epoch = 1; epoch <= epochs; epoch++)
        {
            // shuffle seeds 0..epochs-1, as LocalTrainer.TrainEpoch and the Train sample number their epochs
            train.StartEpoch(epoch - 1);
            double lossSum = 0;
            var seen = 0;
            process.Refresh();
            var cpu0 = process.TotalProcessorTime;
            var epochClock = Stopwatch.StartNew();
            while (true)
            {
                var bytes0 = GC.GetAllocatedBytesForCurrentThread();
                var t0 = Stopwatch.GetTimestamp();
                if (!train.TryFill(batch))
                {
                    break;
                }

                var loss = trainer.TrainStep(batch);
                stepSeconds[step] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                if (step >= warmup)
                {
                    threadBytes += GC.GetAllocatedBytesForCurrentThread() - bytes0;
                }

                stepSamples[step] = batch.Count;
                step++;
                lossSum += (double)loss * batch.Count;
                seen += batch.Count;
            }

            var epochSeconds = epochClock.Elapsed.TotalSeconds;
            process.Refresh();
            trainCpu += process.TotalProcessorTime - cpu0;
            trainWall += epochSeconds;
            var eval = trainer.Evaluate(test);
            accuracies.Add(eval.Accuracy);
            Console.Error.WriteLine($"epoch {epoch}: train loss {lossSum / seen:F4}  test acc {eval.Accuracy:F4}  ({epochSeconds:F1} s)");
        }

        var timedSteps = step - warmup;
        var perStepThread = (double)threadBytes / timedSteps;

        var windows = new List<double>();
        for (var s = warmup; s + window <= step; s += window)
        {
            double secs = 0;
            long samples = 0;
            for (var i = s; i < s + window; i++)
            {
                secs += stepSeconds[i];
                samples += stepSamples[i];
            }

            windows.Add(samples / secs);
        }

        windows.Sort();
        var json = new StringBuilder();
        json.Append(CultureInfo.InvariantCulture, $"{{\"workload\":\"{kind}\",\"unit\":\"samples/s\",\"value\":{Median(windows):F1}");
        json.Append(CultureInfo.InvariantCulture, $",\"min\":{windows[0]:F1},\"max\":{windows[^1]:F1},\"n\":{windows.Count}");
        json.Append(CultureInfo.InvariantCulture, $",\"test_acc\":{accuracies[^1]:F4},\"test_acc_by_epoch\":[{string.Join(",", accuracies.Select(a => a.ToString("F4", CultureInfo.InvariantCulture)))}]");
        json.Append(CultureInfo.InvariantCulture, $",\"managed_bytes_per_step\":{perStepThread:F1},\"steps\":{step},\"batch\":{batchSize},\"epochs\":{epochs},\"seed\":{seed}");
        json.Append(CultureInfo.InvariantCulture, $",\"threads\":{KernelThreads.Count},\"isa\":\"{KernelThreads.InstructionSet}\",\"wall_s\":{wall.Elapsed.TotalSeconds:F1}");
        json.Append(CultureInfo.InvariantCulture, $",\"train_wall_ms_per_step\":{trainWall * 1000 / step:F2},\"train_cpu_ms_per_step\":{trainCpu.TotalMilliseconds / step:F2}");
        json.Append(CultureInfo.InvariantCulture, $",\"peak_rss_mb\":{CompareCommand.PeakRssMb():F1}}}");
        Console.WriteLine(json.ToString());
        return 0;
    }

    public static int Gpt(string corpus, int warmup, int steps, int window, int seed)
    {
        var text = TextDataset.FromFile(corpus);
        const int context = 128, batchSize = 32;
        var model = new Gpt(new GptConfig(text.VocabularySize, Context: context), seed);
        var optimizer = new AdamW(model.Parameters.Layout, new AdamWOptions { LearningRate = 3e-4, WeightDecay = 0.01 });
        var trainer = new LocalTrainer(model, optimizer);
        var train = new TextWindowBatchSource(text.Train, batchSize, context, warmup + steps, (ulong)seed);
        var validation = TextWindowBatchSource.ForValidation(text.Validation, batchSize, context, 4, 1234);
        var batch = train.CreateBatch();
        train.StartEpoch(0);

        var val0 = trainer.Evaluate(validation).MeanLoss;
        var stepSeconds = new List<double>(steps);
        float firstLoss = 0, lastLoss = 0;
        long threadBytes = 0;
        var wall = Stopwatch.StartNew();
        for (var s = 0; s < warmup + steps; s++)
        {
            var bytes0 = GC.GetAllocatedBytesForCurrentThread();
            var t0 = Stopwatch.GetTimestamp();
            if (!train.TryFill(batch))
            {
                throw new InvalidOperationException("the GPT batch source ran dry");
            }

            var loss = trainer.TrainStep(batch);
            var dt = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            if (s >= warmup)
            {
                threadBytes += GC.GetAllocatedBytesForCurrentThread() - bytes0;
                stepSeconds.Add(dt);
            }

            if (s == 0)
            {
                firstLoss = loss;
            }

            lastLoss = loss;
            Console.Error.WriteLine($"step {s + 1}/{warmup + steps} {dt * 1000:F0} ms loss {loss:F4}{(s < warmup ? "  (warm-up)" : string.Empty)}");
        }

        var perStep = (double)threadBytes / steps;
        var valN = trainer.Evaluate(validation).MeanLoss;
        var tokensPerStep = batchSize * context;
        var windows = new List<double>();
        for (var i = 0; i + window <= stepSeconds.Count; i += window)
        {
            windows.Add(tokensPerStep * window / stepSeconds.Skip(i).Take(window).Sum());
        }

        windows.Sort();
        var json = new StringBuilder();
        json.Append(CultureInfo.InvariantCulture, $"{{\"workload\":\"gpt\",\"unit\":\"tokens/s\",\"value\":{Median(windows):F1}");
        json.Append(CultureInfo.InvariantCulture, $",\"min\":{windows[0]:F1},\"max\":{windows[^1]:F1},\"n\":{windows.Count}");
        json.Append(CultureInfo.InvariantCulture, $",\"train_loss_first\":{firstLoss:F4},\"train_loss_last\":{lastLoss:F4},\"val_loss_step0\":{val0:F4},\"val_loss_final\":{valN:F4}");
        json.Append(CultureInfo.InvariantCulture, $",\"params\":{model.Parameters.Layout.TotalLength},\"managed_bytes_per_step\":{perStep:F1},\"steps\":{warmup + steps}");
        json.Append(CultureInfo.InvariantCulture, $",\"threads\":{KernelThreads.Count},\"isa\":\"{KernelThreads.InstructionSet}\",\"wall_s\":{wall.Elapsed.TotalSeconds:F1}");
        json.Append(CultureInfo.InvariantCulture, $",\"peak_rss_mb\":{CompareCommand.PeakRssMb():F1}}}");
        Console.WriteLine(json.ToString());
        return 0;
    }

    private static double Median(List<double> sorted) =>
        sorted.Count == 0 ? double.NaN
        : sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
}
