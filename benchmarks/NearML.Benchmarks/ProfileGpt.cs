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
/// `compare profile-gpt`: where a char-GPT training step (the `compare gpt` model: d 128, 4 layers, 4 heads, context
/// 128, batch 32, AdamW) spends its time. Prints the whole step (wall and process CPU milliseconds, median over the timed
/// steps), the optimizer step alone, and then each op of a block alone, forward and backward on its own tape with the
/// step's shapes (4,096 tokens × d 128), median of repeated calls on random inputs, with its share of the step once
/// multiplied by the number of times a step runs it. A diagnostic for deciding which ops are worth fusing, not a
/// comparison: the ops run cold here (their inputs are not in cache from the previous op), so the shares are upper bounds.
/// Last, the attention alone per row-block size (<see cref="Tape.AttentionBlockRows"/>), alternated, with CPU time.
/// </summary>
internal static class ProfileGpt
{
    public static int Run(string corpus, int steps, int seed)
    {
        var text = TextDataset.FromFile(corpus);
        const int context = 128, batchSize = 32;
        var model = new Gpt(new GptConfig(text.VocabularySize, Context: context), seed);
        var config = model.Config;
        var optimizer = new AdamW(model.Parameters.Layout, new AdamWOptions { LearningRate = 3e-4, WeightDecay = 0.01 });
        var trainer = new LocalTrainer(model, optimizer);
        var train = new TextWindowBatchSource(text.Train, batchSize, context, steps + 5, (ulong)seed);
        var batch = train.CreateBatch();
        train.StartEpoch(0);
        var (wall, cpu) = OpTimer.Steps(
            5,
            steps,
            _ =>
            {
                if (!train.TryFill(batch))
                {
                    throw new InvalidOperationException("the GPT batch source ran dry");
                }
            },
            () => trainer.TrainStep(batch));
        var step = OpTimer.Median(wall);
        var tokens = batchSize * context;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"step ({tokens} tokens, {KernelThreads.Count} threads, {KernelThreads.InstructionSet}): wall {step:F2} ms [{wall[0]:F2}..{wall[^1]:F2}], CPU {OpTimer.Median(cpu):F2} ms, {tokens * 1000 / step:F0} tokens/s; load {File.ReadAllText("/proc/loadavg").Split(' ')[0]}"));

        var opt = new List<double>();
        for (var r = 0; r < 30; r++)
        {
            var t0 = Stopwatch.GetTimestamp();
            optimizer.Step(model.Parameters, model.Gradients);
            opt.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }

        opt.Sort();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {"AdamW step (" + model.Parameters.Layout.TotalLength + " parameters)",-40} {OpTimer.Median(opt),8:F3} ms  ({100 * OpTimer.Median(opt) / step,5:F1} % of the step)"));

        var rng = new Random(seed);
        var d = config.DModel;
        var layers = config.Layers;
        var block = model.Blocks[0];
        var total = OpTimer.Median(opt);
        total += Op("layer norm (d 128)", 2 * layers + 1, step, rng, [tokens, d], (t, x) => block.Ln1.Forward(t, x));
        total += Op("qkv linear 128→384", layers, step, rng, [tokens, d], (t, x) => block.Qkv.Forward(t, x));
        total += Op("causal attention (4 heads, T 128)", layers, step, rng, [tokens, 3 * d], (t, x) => t.CausalSelfAttention(t.Reshape(x, batchSize, context, 3 * d), config.Heads));
        total += Op("proj linear 128→128", layers, step, rng, [tokens, d], (t, x) => block.Proj.Forward(t, x));
        total += Op("fc linear 128→512 + GELU", layers, step, rng, [tokens, d], (t, x) => block.Fc.Forward(t, x, Activation.Gelu));
        total += Op("fc_out linear 512→128", layers, step, rng, [tokens, 4 * d], (t, x) => block.FcOut.Forward(t, x));
        total += Op("residual add", 2 * layers + 1, step, rng, [tokens, d], (t, x) => t.Add(x, x));
        total += Op("head (tied) 128→vocab + cross-entropy", 1, step, rng, [tokens, d], (t, x) => t.CrossEntropy(t.Linear(x, model.Tok.Weight, null), batch.Targets));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {"sum of the ops above",-40} {total,8:F3} ms  ({100 * total / step,5:F1} % of the step; the rest: embeddings, gradient zeroing, tape bookkeeping, caches)"));

        AttentionBlocks(rng, batchSize, context, d, config.Heads);
        return 0;
    }

    private static double Op(string name, int perStep, double step, Random rng, int[] shape, Func<Tape, Tensor, Tensor> op)
    {
        var (forward, perCall) = OpTimer.Time(rng, shape, inputGrad: true, op, repeats: 30, warmup: 10, gradScale: 1e-2f);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {name,-40} forward {forward,7:F3} ms  backward {perCall - forward,7:F3} ms  × {perStep,2} = {perCall * perStep,8:F3} ms  ({100 * perCall * perStep / step,5:F1} % of the step)"));
        return perCall * perStep;
    }

    /// <summary>
    /// The attention alone per row-block size, alternated over 3 rounds: T rows is one block, i.e. the former full-matrix
    /// products (T×T scores, P·V, dP, dQ, dK, dV over all of T). Wall milliseconds (median) and process CPU milliseconds
    /// per forward + backward (median of the rounds; more stable than wall on a shared machine). Every size gives the same bits.
    /// </summary>
    private static void AttentionBlocks(Random rng, int batchSize, int context, int d, int heads)
    {
        int[] sizes = [context, 16, 32, 64];
        var x = Tensor.Create(true, batchSize, context, 3 * d);
        var xd = x.Data;
        for (var i = 0; i < xd.Length; i++)
        {
            xd[i] = (float)(rng.NextDouble() * 2) - 1;
        }

        var grad = Enumerable.Range(0, batchSize * context * d).Select(i => (float)Math.Sin(i) * 1e-2f).ToArray();
        var tape = new Tape();
        var fwd = sizes.Select(_ => new List<double>()).ToArray();
        var bwd = sizes.Select(_ => new List<double>()).ToArray();
        var cpu = sizes.Select(_ => new List<double>()).ToArray();
        using var process = Process.GetCurrentProcess();
        var keep = Tape.AttentionBlockRows;
        try
        {
            for (var round = 0; round < 3; round++)
            {
                for (var s = 0; s < sizes.Length; s++)
                {
                    Tape.AttentionBlockRows = sizes[s];
                    process.Refresh();
                    var c0 = process.TotalProcessorTime;
                    const int Reps = 20;
                    for (var r = -3; r < Reps; r++)
                    {
                        if (r == 0)
                        {
                            process.Refresh();
                            c0 = process.TotalProcessorTime;
                        }

                        tape.Reset();
                        var t0 = Stopwatch.GetTimestamp();
                        var y = tape.CausalSelfAttention(x, heads);
                        var t1 = Stopwatch.GetTimestamp();
                        tape.Backward(y, grad);
                        if (r >= 0)
                        {
                            fwd[s].Add(Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds);
                            bwd[s].Add(Stopwatch.GetElapsedTime(t1).TotalMilliseconds);
                        }
                    }

                    process.Refresh();
                    cpu[s].Add((process.TotalProcessorTime - c0).TotalMilliseconds / Reps);
                }
            }
        }
        finally
        {
            Tape.AttentionBlockRows = keep;
        }

        double full = 0;
        for (var s = 0; s < sizes.Length; s++)
        {
            fwd[s].Sort();
            bwd[s].Sort();
            cpu[s].Sort();
            var both = OpTimer.Median(cpu[s]);
            full = s == 0 ? both : full;
            var label = sizes[s] == context ? $"attention, one block of {context} (full)" : $"attention, row blocks of {sizes[s]}";
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {label,-40} forward {OpTimer.Median(fwd[s]),7:F3} ms  backward {OpTimer.Median(bwd[s]),7:F3} ms  CPU {both,7:F3} ms per call  ({full / both:F2}× the full products' CPU)"));
        }
    }
}
