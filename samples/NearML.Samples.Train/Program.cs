// Trains the MLP or the small CNN on Fashion-MNIST, or the character GPT on a text file, with NearML's managed
// engine, a live progress bar and a final report.
//
//   dotnet run -c Release --project samples/NearML.Samples.Train -- mlp [--epochs 5] [--data DIR]
//   dotnet run -c Release --project samples/NearML.Samples.Train -- cnn [--epochs 3]
//   dotnet run -c Release --project samples/NearML.Samples.Train -- gpt [--steps 300] [--text FILE]
using System.CommandLine;
using System.Diagnostics;
using NearML.Training;
using NearML.Training.Data;
using NearML.Training.Kernels;
using NearML.Training.Modules;
using NearML.Training.Optim;
using NearML.Training.Tensors;
using Spectre.Console;
using NearML.Samples;

PlainConsole.Configure();

var modelArg = new Argument<string>("model") { Description = "mlp, cnn or gpt" };
modelArg.AcceptOnlyFromAmong("mlp", "cnn", "gpt");
var epochsOpt = new Option<int?>("--epochs") { Description = "Training epochs (Fashion-MNIST; default 5 for mlp, 3 for cnn)" };
var stepsOpt = new Option<int?>("--steps") { Description = "Training steps (gpt; default 300)" };
var dataOpt = new Option<string?>("--data") { Description = "Folder with the Fashion-MNIST IDX files (default $FASHION_MNIST_DIR or /usr/share/datasets/fashion-mnist)" };
var textOpt = new Option<string?>("--text") { Description = "Text file for the gpt (default ../shared/data/tinyshakespeare.txt)" };
var seedOpt = new Option<int>("--seed") { Description = "Seed for initialisation and shuffling", DefaultValueFactory = _ => 0 };
var threadsOpt = new Option<int?>("--threads") { Description = "GEMM threads (default: all cores)" };
var root = new RootCommand("Train a model with NearML's managed engine") { modelArg, epochsOpt, stepsOpt, dataOpt, textOpt, seedOpt, threadsOpt };
root.SetAction(parse =>
{
    if (parse.GetValue(threadsOpt) is { } threads)
    {
        KernelThreads.Count = threads;
    }

    var model = parse.GetValue(modelArg)!;
    var seed = parse.GetValue(seedOpt);
    try
    {
        return model == "gpt"
            ? TrainGpt(parse.GetValue(textOpt), parse.GetValue(stepsOpt) ?? 300, seed)
            : TrainFashion(model, parse.GetValue(dataOpt), parse.GetValue(epochsOpt) ?? (model == "mlp" ? 5 : 3), seed);
    }
    catch (DatasetNotFoundException ex)
    {
        return SampleCommandLine.Fail(SampleCommandLine.BadInput, $"{ex.Message} Install it with: sudo apt-get install dataset-fashion-mnist");
    }
    catch (FileNotFoundException ex)
    {
        return SampleCommandLine.Fail(SampleCommandLine.BadInput, ex.Message);
    }
});
return await SampleCommandLine.RunAsync(root, args);

static int TrainFashion(string kind, string? dataDir, int epochs, int seed)
{
    var data = FashionMnist.Load(dataDir);
    Model model = kind == "mlp" ? new Mlp(seed: seed) : new SmallCnn(seed: seed);
    var batchSize = kind == "mlp" ? 128 : 64;
    var train = new ClassificationBatchSource(data.Train, batchSize, (ulong)seed);
    // evaluation shares the training tape's pooled buffers: a moderate batch keeps the CNN's im2col buffers (and peak RSS) small
    var test = new ClassificationBatchSource(data.Test, kind == "mlp" ? 1000 : 250, 0, shuffle: false);
    var trainer = new LocalTrainer(model, new AdamW(model.Parameters.Layout, new AdamWOptions { LearningRate = 1e-3, WeightDecay = 0.01 }));
    AnsiConsole.MarkupLineInterpolated($"[bold]{kind.ToUpperInvariant()}[/] on Fashion-MNIST: {data.Train.Count} train / {data.Test.Count} test, {model.Parameters.Length:N0} parameters, batch {batchSize}, AdamW lr 1e-3 wd 0.01, {KernelThreads.Count} GEMM threads ({KernelThreads.InstructionSet})");
    var table = new Table().AddColumns("epoch", "train loss", "test loss", "test accuracy", "samples/s");
    var results = new List<(TrainingRunResult Run, EvaluationResult Eval)>();
    var steps = train.BatchesPerEpoch;
    AnsiConsole.Progress()
        .AutoClear(false)
        .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
        .Start(ctx =>
        {
            for (var epoch = 0; epoch < epochs; epoch++)
            {
                var task = ctx.AddTask($"epoch {epoch + 1}/{epochs}", maxValue: steps);
                var progress = new InlineProgress(p =>
                {
                    task.Value = p.StepInEpoch;
                    task.Description = $"epoch {epoch + 1}/{epochs}  loss {p.Loss:F4}  {p.SamplesPerSecond:N0} samples/s";
                });
                var run = trainer.TrainEpoch(train, epoch, progress);
                var eval = trainer.Evaluate(test);
                task.Description = $"epoch {epoch + 1}/{epochs}  loss {run.MeanLoss:F4}  test acc {eval.Accuracy:P2}";
                task.StopTask();
                results.Add((run, eval));
            }
        });

    for (var i = 0; i < results.Count; i++)
    {
        var (run, eval) = results[i];
        table.AddRow($"{i + 1}", $"{run.MeanLoss:F4}", $"{eval.MeanLoss:F4}", $"{eval.Accuracy:P2}", $"{run.SamplesPerSecond:N0}");
    }

    AnsiConsole.Write(table);
    var last = results[^1];
    var totalSamples = results.Sum(r => r.Run.Samples);
    var totalSeconds = results.Sum(r => r.Run.Elapsed.TotalSeconds);
    AnsiConsole.MarkupLineInterpolated($"Final test accuracy [bold]{last.Eval.Accuracy:P2}[/], test loss {last.Eval.MeanLoss:F4}; training throughput {totalSamples / totalSeconds:N0} samples/s over {totalSeconds:F1} s.");
    Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(new
    {
        workload = kind,
        epochs,
        test_accuracy = last.Eval.Accuracy,
        test_loss = last.Eval.MeanLoss,
        samples_per_s = totalSamples / totalSeconds,
        accuracy_by_epoch = results.Select(r => r.Eval.Accuracy).ToArray(),
    }));
    return 0;
}

static int TrainGpt(string? textPath, int steps, int seed)
{
    textPath ??= FindDefaultText() ?? throw new FileNotFoundException("No text file given and ../shared/data/tinyshakespeare.txt was not found; pass --text FILE.");
    var text = TextDataset.FromFile(textPath);
    const int Ctx = 128, Batch = 32;
    var model = new Gpt(new GptConfig(text.VocabularySize, Ctx, 128, 4, 4), seed);
    var train = new TextWindowBatchSource(text.Train, Batch, Ctx, steps, (ulong)seed);
    var val = TextWindowBatchSource.ForValidation(text.Validation, Batch, Ctx, 4, 1234);
    var trainer = new LocalTrainer(model, new AdamW(model.Parameters.Layout, new AdamWOptions { LearningRate = 3e-4 }));
    AnsiConsole.MarkupLineInterpolated($"[bold]GPT[/] on {Path.GetFileName(textPath)}: {text.Tokens.Length:N0} characters, vocabulary {text.VocabularySize}, {model.Parameters.Length:N0} parameters, d=128, 4 layers, 4 heads, context {Ctx}, batch {Batch}, AdamW lr 3e-4");
    var val0 = trainer.Evaluate(val);
    TrainingRunResult run = null!;
    AnsiConsole.Progress()
        .AutoClear(false)
        .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
        .Start(ctx =>
        {
            var task = ctx.AddTask("training", maxValue: steps);
            var progress = new InlineProgress(p =>
            {
                task.Value = p.StepInEpoch;
                task.Description = $"step {p.StepInEpoch}/{steps}  loss {p.Loss:F4}  {p.SamplesPerSecond * Ctx:N0} tokens/s";
            });
            run = trainer.TrainEpoch(train, 0, progress);
        });
    var val1 = trainer.Evaluate(val);
    var sample = Generate(model, text, "\n", 200, seed);
    var table = new Table().AddColumns("", "value");
    table.AddRow("validation loss (start → end)", $"{val0.MeanLoss:F4} → {val1.MeanLoss:F4}  (ln V = {Math.Log(text.VocabularySize):F4})");
    table.AddRow("mean training loss", $"{run.MeanLoss:F4}");
    table.AddRow("throughput", $"{run.Samples * Ctx / run.Elapsed.TotalSeconds:N0} tokens/s over {run.Elapsed.TotalSeconds:F1} s");
    AnsiConsole.Write(table);
    AnsiConsole.MarkupLine("[bold]sample:[/]");
    Console.WriteLine(sample);
    Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(new
    {
        workload = "gpt",
        steps = run.Steps,
        tokens_per_s = run.Samples * Ctx / run.Elapsed.TotalSeconds,
        val_loss_start = val0.MeanLoss,
        val_loss_end = val1.MeanLoss,
    }));
    return 0;
}

static string Generate(Gpt model, TextDataset text, string prompt, int length, int seed)
{
    var tape = new Tape { GradEnabled = false, Training = false };
    var tokens = new List<int>(text.Encode(prompt));
    var rng = new Random(seed);
    var window = new int[model.Config.Context];
    var probs = new float[text.VocabularySize];
    for (var i = 0; i < length; i++)
    {
        var n = Math.Min(tokens.Count, window.Length);
        tokens.CopyTo(tokens.Count - n, window, 0, n);
        tape.Reset();
        var logits = model.Forward(tape, window, 0, 1, n);
        var last = logits.Data.Slice((n - 1) * text.VocabularySize, text.VocabularySize);
        System.Numerics.Tensors.TensorPrimitives.Multiply(last, 1f / 0.8f, probs);
        System.Numerics.Tensors.TensorPrimitives.SoftMax(probs, probs);
        var u = rng.NextDouble();
        var next = probs.Length - 1;
        for (var j = 0; j < probs.Length; j++)
        {
            u -= probs[j];
            if (u <= 0)
            {
                next = j;
                break;
            }
        }

        tokens.Add(next);
    }

    return text.Decode(tokens.ToArray().AsSpan(prompt.Length > 0 ? text.Encode(prompt).Length : 0));
}

static string? FindDefaultText()
{
    foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
    {
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "shared", "data", "tinyshakespeare.txt");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }
    }

    return null;
}

/// <summary>Reports synchronously on the training thread (Progress&lt;T&gt; would post to the thread pool).</summary>
internal sealed class InlineProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
{
    public void Report(TrainingProgress value) => report(value);
}
