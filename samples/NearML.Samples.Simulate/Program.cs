using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using NearML.Core;
using NearML.Core.Collectives;
using NearML.Sharding;
using NearML.Training.Data;
using NearML.Training.Engines;
using NearML.Training.Kernels;
using NearML.Training.Modules;
using NearML.Training.Optim;
using NearML.Training.Sync;
using NearML.Training.Tensors;
using Spectre.Console;
using NearML.Samples;

PlainConsole.Configure();

// Multi-worker simulator: N in-process workers train one model with a chosen sync strategy and the exact bytes each
// worker sends and receives are counted by the in-process collective.
var model = new Option<string>("--model") { Description = "mlp | cnn | gpt", DefaultValueFactory = _ => "mlp" };
var strategy = new Option<string>("--strategy") { Description = "ddp | diloco | streaming | demo", DefaultValueFactory = _ => "diloco" };
var workers = new Option<int>("--workers") { Description = "Number of workers N", DefaultValueFactory = _ => 4 };
var steps = new Option<int>("--steps") { Description = "Local steps per worker (equal total samples across strategies)", DefaultValueFactory = _ => 1000 };
var batch = new Option<int>("--batch") { Description = "Samples per local step per worker", DefaultValueFactory = _ => 32 };
var h = new Option<int>("--h") { Description = "DiLoCo inner steps H (Streaming: per-fragment period)", DefaultValueFactory = _ => 100 };
var encoding = new Option<string>("--encoding") { Description = "fp32 | fp16 | int8 | int4 (DiLoCo/Streaming pseudo-gradients)", DefaultValueFactory = _ => "fp32" };
var fragments = new Option<int>("--fragments") { Description = "Streaming fragments F", DefaultValueFactory = _ => 4 };
var overlap = new Option<int>("--overlap") { Description = "Streaming overlap τ (inner steps)", DefaultValueFactory = _ => 1 };
var mixing = new Option<double>("--mixing") { Description = "Streaming mixing α", DefaultValueFactory = _ => 0.5 };
var lr = new Option<double>("--lr") { Description = "Inner AdamW learning rate (DDP: the optimizer's)", DefaultValueFactory = _ => 1e-3 };
var outerLr = new Option<double>("--outer-lr") { Description = "Outer Nesterov learning rate", DefaultValueFactory = _ => 0.7 };
var outerMomentum = new Option<double>("--outer-momentum") { Description = "Outer Nesterov momentum", DefaultValueFactory = _ => 0.9 };
var demoLr = new Option<double>("--demo-lr") { Description = "DeMo learning rate", DefaultValueFactory = _ => 1e-3 };
var topk = new Option<int>("--topk") { Description = "DeMo top-k per chunk", DefaultValueFactory = _ => 32 };
var scenario = new Option<string>("--scenario") { Description = "iid | skew | slow | dropout", DefaultValueFactory = _ => "iid" };
var hidden = new Option<int>("--hidden") { Description = "MLP hidden width", DefaultValueFactory = _ => 128 };
var text = new Option<string?>("--text") { Description = "Text file for --model gpt (default ../shared/data/tinyshakespeare.txt)" };
var seed = new Option<int>("--seed") { Description = "Seed (model init, shards, batches)", DefaultValueFactory = _ => 1 };
var parallel = new Option<int>("--parallel") { Description = "Workers computing at once (cores)", DefaultValueFactory = _ => 2 };
var output = new Option<string?>("--out") { Description = "Append the result as one JSON line to this file" };
var plots = new Option<string>("--plots") { Description = "Write PNG charts (loss and test accuracy per sync point, bytes sent vs DDP, samples per worker) to this folder; 'none' skips them", DefaultValueFactory = _ => "simulate-plots" };
var benchDemo = new Option<bool>("--bench-demo") { Description = "Micro-benchmark: time DeMo steps (DCT, top-k, all-gather, inverse) on --model's layout with --workers workers and random gradients; --steps timed steps" };

model.AcceptOnlyFromAmong("mlp", "cnn", "gpt");
strategy.AcceptOnlyFromAmong("ddp", "diloco", "streaming", "demo");
encoding.AcceptOnlyFromAmong("fp32", "fp16", "int8", "int4");
scenario.AcceptOnlyFromAmong("iid", "skew", "slow", "dropout");
var root = new RootCommand("NearML multi-worker simulator: DDP, DiLoCo, Streaming DiLoCo and DeMo with exact byte counts");
foreach (var o in new Option[] { model, strategy, workers, steps, batch, h, encoding, fragments, overlap, mixing, lr, outerLr, outerMomentum, demoLr, topk, scenario, hidden, text, seed, parallel, output, plots, benchDemo })
{
    root.Options.Add(o);
}

root.SetAction(async (parse, ct) =>
{
    var cfg = new SimConfig(parse.GetValue(model)!, parse.GetValue(strategy)!, parse.GetValue(workers), parse.GetValue(steps), parse.GetValue(batch),
        parse.GetValue(h), parse.GetValue(encoding)!, parse.GetValue(fragments), parse.GetValue(overlap), parse.GetValue(mixing), parse.GetValue(lr),
        parse.GetValue(outerLr), parse.GetValue(outerMomentum), parse.GetValue(demoLr), parse.GetValue(topk), parse.GetValue(scenario)!, parse.GetValue(hidden),
        parse.GetValue(text), parse.GetValue(seed), parse.GetValue(parallel));
    try
    {
        if (parse.GetValue(benchDemo))
        {
            var bench = await DeMoBench.RunAsync(cfg, ct);
            Console.WriteLine(bench.Text);
            if (parse.GetValue(output) is { } benchPath)
            {
                await File.AppendAllTextAsync(benchPath, JsonSerializer.Serialize(new { cfg, bench }) + "\n", ct);
            }

            return 0;
        }

        var plotDirectory = parse.GetValue(plots)!;
        var trace = plotDirectory == "none" ? null : new SimTrace();
        var result = await Simulator.RunAsync(cfg, ct, trace);
        var table = new Table().AddColumns("strategy", "N", "quality", "bytes sent/worker", "peak bytes/sync", "syncs", "rejected", "wall s");
        table.AddRow(Markup.Escape(result.Label), cfg.Workers.ToString(CultureInfo.InvariantCulture),
            Markup.Escape(result.QualityText), result.BytesSentPerWorker.ToString("N0", CultureInfo.InvariantCulture),
            result.PeakBytesPerSync.ToString("N0", CultureInfo.InvariantCulture), result.Syncs.ToString(CultureInfo.InvariantCulture),
            result.Rejected.ToString(CultureInfo.InvariantCulture), result.WallSeconds.ToString("F1", CultureInfo.InvariantCulture));
        AnsiConsole.Write(table);
        if (trace is not null)
        {
            var written = trace.WriteCharts(plotDirectory, cfg, result);
            AnsiConsole.MarkupLine($"Charts: [grey]{Markup.Escape(string.Join(", ", written))}[/]");
        }

        if (parse.GetValue(output) is { } path)
        {
            await File.AppendAllTextAsync(path, JsonSerializer.Serialize(new { cfg, result }) + "\n", ct);
        }

        return 0;
    }
    catch (NearMLException ex)
    {
        Console.Error.WriteLine("error: " + ex.Message);
        return 2;
    }
    catch (ArgumentException ex)
    {
        Console.Error.WriteLine("error: " + ex.Message);
        return 2;
    }
});
return await SampleCommandLine.RunAsync(root, args);

internal sealed record SimConfig(string Model, string Strategy, int Workers, int Steps, int Batch, int H, string Encoding, int Fragments, int Overlap,
    double Mixing, double Lr, double OuterLr, double OuterMomentum, double DemoLr, int TopK, string Scenario, int Hidden, string? Text, int Seed, int Parallel);

internal sealed record SimResult(string Label, string Metric, double Quality, string QualityText, long BytesSentPerWorker, long BytesReceivedPerWorker,
    long PeakBytesPerSync, long Syncs, long TotalBytesSentAllWorkers, int Rejected, double WallSeconds, long Parameters, long TotalSamples, string Notes);

internal static class Simulator
{
    public static async Task<SimResult> RunAsync(SimConfig cfg, CancellationToken ct, SimTrace? trace = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(cfg.Workers, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(cfg.Steps, 1);
        KernelThreads.Count = 1; // one thread per worker; --parallel bounds how many compute at once
        var isText = cfg.Model == "gpt";
        var scenario = cfg.Scenario;
        if (scenario is "slow" or "dropout" && cfg.Strategy != "diloco")
        {
            throw new ArgumentException($"--scenario {scenario} is simulated for --strategy diloco (round deadlines and rejoin at outer steps).");
        }

        // ---- data and shards ----
        FashionMnistData? images = null;
        TextDataset? corpus = null;
        int[][] shards;
        if (isText)
        {
            var path = cfg.Text ?? FindShared("data", "tinyshakespeare.txt") ?? throw new ArgumentException("--text FILE is required (../shared/data/tinyshakespeare.txt not found).");
            corpus = TextDataset.FromFile(path);
            shards = [];
        }
        else
        {
            images = FashionMnist.Load();
            var labels = images.Train.Labels;
            if (scenario == "skew")
            {
                shards = LabelSkew.Partition(labels, cfg.Workers, 2, (ulong)cfg.Seed);
            }
            else
            {
                var rng = new Random(cfg.Seed);
                var order = Enumerable.Range(0, labels.Length).OrderBy(_ => rng.Next()).ToArray();
                shards = [.. Enumerable.Range(0, cfg.Workers).Select(w => order.Where((_, i) => i % cfg.Workers == w).ToArray())];
            }
        }

        Model Create() => cfg.Model switch
        {
            "mlp" => new Mlp(784, cfg.Hidden, 10, cfg.Seed),
            "cnn" => new SmallCnn(cfg.Seed),
            "gpt" => new Gpt(new GptConfig(corpus!.VocabularySize, Context: 64, DModel: 64, Layers: 2, Heads: 4), cfg.Seed),
            _ => throw new ArgumentException($"Unknown --model '{cfg.Model}' (mlp, cnn, gpt)."),
        };

        var group = new InProcessCollectiveGroup();
        var gate = new SemaphoreSlim(Math.Max(1, cfg.Parallel));
        var endpoints = new List<ICollective>[cfg.Workers];
        var strategies = new SyncStrategy[cfg.Workers];
        var rejoinState = new TaskCompletionSource<SyncState>(TaskCreationOptions.RunContinuationsAsynchronously);
        const int DropAt = 2, DropFor = 2;
        var dropper = cfg.Workers - 1;
        var slowWorker = 0;
        long parameterCount = 0;
        var wall = Stopwatch.StartNew();

        SyncStrategy MakeStrategy(ICollective c, ParameterSet p, Optimizer inner) => cfg.Strategy switch
        {
            "ddp" => new DdpStrategy(c, p, inner),
            "diloco" => new DiLoCoStrategy(c, p, inner, Outer(cfg, cfg.H)),
            "streaming" => new StreamingDiLoCoStrategy(c, p, inner, new StreamingDiLoCoOptions
            {
                Outer = Outer(cfg, cfg.H),
                Fragments = cfg.Fragments,
                Overlap = cfg.Overlap,
                Mixing = cfg.Mixing,
                Partition = FragmentPartition.BalancedElements,
            }),
            "demo" => new DeMoStrategy(c, p, new DeMoOptions { LearningRate = cfg.DemoLr, TopK = cfg.TopK }),
            _ => throw new ArgumentException($"Unknown --strategy '{cfg.Strategy}' (ddp, diloco, streaming, demo)."),
        };

        var models = new Model[cfg.Workers];
        var engines = new ManagedTrainableModel[cfg.Workers];
        var innerOptimizers = new Optimizer[cfg.Workers];
        for (var w = 0; w < cfg.Workers; w++)
        {
            models[w] = Create();
            parameterCount = models[w].Parameters.Length;
            var inner = new AdamW(models[w].Parameters.Layout, new AdamWOptions { LearningRate = cfg.Lr, WeightDecay = 0 });

            // The strategies see the model only through the training contract: its host ParameterSets.
            engines[w] = new ManagedTrainableModel(models[w], inner, checkGradients: false);
            var ep = group.Join("w" + w.ToString("D2", CultureInfo.InvariantCulture));
            endpoints[w] = [ep];
            strategies[w] = MakeStrategy(ep, engines[w].Parameters, inner);
            innerOptimizers[w] = inner;
        }

        long samplesTotal = 0;
        var workerSamples = new long[cfg.Workers];
        trace?.Start(cfg.Workers, workerSamples);
        var tasks = Enumerable.Range(0, cfg.Workers).Select(w => Task.Run(async () =>
        {
            var m = engines[w];
            IBatchSource source = isText
                ? new TextWindowBatchSource(Slice(corpus!.Train, w, cfg.Workers), cfg.Batch, 64, 1000, (ulong)(cfg.Seed * 1000 + w))
                : new ClassificationBatchSource(images!.Train, shards[w], cfg.Batch, (ulong)(cfg.Seed * 1000 + w));
            var b = source.CreateBatch();
            var epoch = 0;
            source.StartEpoch(epoch);
            var s = strategies[w];
            var t = 0;
            while (t < cfg.Steps)
            {
                ct.ThrowIfCancellationRequested();
                if (s is DiLoCoStrategy d0 && scenario == "dropout" && w == dropper && d0.OuterStep == DropAt && d0.StepsSinceSync == 0)
                {
                    // Leave for DropFor rounds; register now to rejoin at round DropAt + DropFor (deterministic membership).
                    await s.Collective.DisposeAsync();
                    var ep = group.Join("w" + w.ToString("D2", CultureInfo.InvariantCulture) + "r", DropAt + DropFor);
                    endpoints[w].Add(ep);
                    var state = await rejoinState.Task.WaitAsync(ct);
                    s = MakeStrategy(ep, m.Parameters, innerOptimizers[w]);
                    s.RestoreState(state); // a joiner starts from the current global parameters
                    strategies[w] = s;
                    t += DropFor * cfg.H;
                    continue;
                }

                if (!source.TryFill(b))
                {
                    source.StartEpoch(++epoch);
                    continue;
                }

                float stepLoss;
                await gate.WaitAsync(ct);
                try
                {
                    stepLoss = m.ComputeGradients(b);
                    m.PullGradients();
                }
                finally
                {
                    gate.Release();
                }

                Interlocked.Add(ref samplesTotal, b.Count);
                Interlocked.Add(ref workerSamples[w], b.Count);
                await s.StepAsync(m.Gradients, b.Count, ct);
                m.PushParameters();
                t++;
                if (w == 0 && trace is not null)
                {
                    // worker 0's view, every H local steps: mean training loss, bytes it sent, accuracy of its global parameters
                    trace.Step(t, cfg.H, stepLoss, Sum(endpoints[0]).Sent, () => isText ? null : Accuracy(Create(), strategies[0].GlobalParameters, images!.Test, SimTrace.EvaluationImages));
                }
                if (s is DiLoCoStrategy d1)
                {
                    if (scenario == "slow" && w == slowWorker && d1.StepsSinceSync == Math.Max(1, cfg.H / 3))
                    {
                        // 3× slower: at the round deadline it has done H/3 steps; it syncs now, weighted by its samples.
                        await d1.SyncAsync(ct);
                        t += cfg.H - d1.StepsSinceSync - Math.Max(1, cfg.H / 3);
                    }

                    if (scenario == "dropout" && w == 0 && d1.StepsSinceSync == 0 && d1.OuterStep == DropAt + DropFor)
                    {
                        rejoinState.TrySetResult(d1.CaptureState());
                    }
                }
            }

            await s.FlushAsync(ct);
            if (w == 0)
            {
                trace?.Finish(t, Sum(endpoints[0]).Sent, () => isText ? null : Accuracy(Create(), strategies[0].GlobalParameters, images!.Test, SimTrace.EvaluationImages));
            }
        }, ct)).ToArray();
        await Task.WhenAll(tasks);
        wall.Stop();

        // ---- evaluate the global parameters of worker 0 ----
        var eval = Create();
        eval.LoadParameters(strategies[0].GlobalParameters);
        double quality;
        string metric, qualityText;
        var tapeEval = new Tape { GradEnabled = false, Training = false };
        if (isText)
        {
            var val = TextWindowBatchSource.ForValidation(corpus!.Validation, 16, 64, 20, 7);
            var vb = val.CreateBatch();
            val.StartEpoch(0);
            double sum = 0;
            var n = 0;
            while (val.TryFill(vb))
            {
                tapeEval.Reset();
                sum += eval.Loss(tapeEval, vb).Data[0];
                n++;
            }

            quality = sum / n;
            metric = "validation loss";
            qualityText = $"val loss {quality:F4}";
        }
        else
        {
            var test = new ClassificationBatchSource(images!.Test, 500, 0, shuffle: false);
            var tb = test.CreateBatch();
            test.StartEpoch(0);
            long correct = 0, total = 0;
            while (test.TryFill(tb))
            {
                tapeEval.Reset();
                var logits = eval.Forward(tapeEval, tb);
                correct += Model.CountCorrect(logits, tb.Targets);
                total += tb.Count;
            }

            quality = 100.0 * correct / total;
            metric = "test accuracy %";
            qualityText = $"acc {quality:F2}%";
        }

        var st0 = Sum(endpoints[0]);
        long allSent = endpoints.Sum(e => Sum(e).Sent);
        var rejected = strategies.Max(s => s.Rejections.Count);
        var label = cfg.Strategy switch
        {
            "ddp" => "DDP",
            "diloco" => $"DiLoCo H={cfg.H} {cfg.Encoding}",
            "streaming" => $"Streaming DiLoCo H={cfg.H} F={cfg.Fragments} τ={cfg.Overlap} α={cfg.Mixing} {cfg.Encoding}",
            "demo" => $"DeMo k={cfg.TopK} lr={cfg.DemoLr}",
            _ => cfg.Strategy,
        };
        var notes = scenario switch
        {
            "slow" => $"worker {slowWorker} 3x slower: H/3 steps per round, weighted by samples",
            "dropout" => $"worker {dropper} absent for rounds {DropAt}..{DropAt + DropFor - 1}, rejoined from global state",
            "skew" => "label-skewed shards (2 label runs per worker)",
            _ => "iid shards",
        };
        return new SimResult(label + (scenario == "iid" ? string.Empty : $" [{scenario}]"), metric, quality, qualityText, st0.Sent, st0.Received, st0.Peak, st0.Syncs,
            allSent, rejected, wall.Elapsed.TotalSeconds, parameterCount, samplesTotal, notes);
    }

    private static DiLoCoOptions Outer(SimConfig cfg, int hSteps) => new()
    {
        InnerSteps = hSteps,
        OuterLearningRate = cfg.OuterLr,
        OuterMomentum = cfg.OuterMomentum,
        Encoding = cfg.Encoding switch
        {
            "fp32" => PseudoGradientEncoding.Fp32,
            "fp16" => PseudoGradientEncoding.Fp16,
            "int8" => PseudoGradientEncoding.Int8,
            "int4" => PseudoGradientEncoding.Int4,
            _ => throw new ArgumentException($"Unknown --encoding '{cfg.Encoding}' (fp32, fp16, int8, int4)."),
        },
    };

    /// <summary>Test accuracy in [0, 1] of <paramref name="parameters"/> on the first <paramref name="limit"/> test images.</summary>
    private static double Accuracy(Model eval, ParameterSet parameters, LabeledDataset test, int limit)
    {
        eval.LoadParameters(parameters);
        var tape = new Tape { GradEnabled = false, Training = false };
        var source = new ClassificationBatchSource(test, 500, 0, shuffle: false);
        var batch = source.CreateBatch();
        source.StartEpoch(0);
        long correct = 0, total = 0;
        while (total < limit && source.TryFill(batch))
        {
            tape.Reset();
            correct += Model.CountCorrect(eval.Forward(tape, batch), batch.Targets);
            total += batch.Count;
        }

        return total == 0 ? 0 : (double)correct / total;
    }

    private static (long Sent, long Received, long Peak, long Syncs) Sum(List<ICollective> eps) =>
        (eps.Sum(e => e.Statistics.BytesSent), eps.Sum(e => e.Statistics.BytesReceived), eps.Max(e => e.Statistics.PeakBytesSentPerSync), eps.Sum(e => e.Statistics.SyncCount));

    private static ReadOnlyMemory<int> Slice(ReadOnlyMemory<int> tokens, int w, int n)
    {
        var start = (int)((long)tokens.Length * w / n);
        var end = (int)((long)tokens.Length * (w + 1) / n);
        return tokens[start..end];
    }

    private static string? FindShared(params string[] parts)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null)
        {
            if (File.Exists(Path.Combine(dir.FullName, "NearML.sln")))
            {
                var p = Path.Combine([dir.Parent?.FullName ?? dir.FullName, "shared", .. parts]);
                return File.Exists(p) ? p : null;
            }

            dir = dir.Parent;
        }

        return null;
    }
}

internal sealed record DeMoBenchResult(string Model, long Parameters, int Workers, int Steps, int MessageBytes, double WallMsPerStep,
    double CpuMsPerStep, string LoadAverage, string Text);

/// <summary>
/// Times DeMo's per-step work in isolation (no forward/backward): every worker draws a fixed random gradient per step
/// and calls <see cref="DeMoStrategy.StepAsync"/>, which does the momentum update, the chunked DCT-II, top-k, the
/// removal of the transmitted part, the all-gather, the aggregation and the inverse transform.
/// </summary>
internal static class DeMoBench
{
    public static async Task<DeMoBenchResult> RunAsync(SimConfig cfg, CancellationToken ct)
    {
        KernelThreads.Count = 1;
        var layoutModel = cfg.Model switch
        {
            "mlp" => (Model)new Mlp(784, cfg.Hidden, 10, cfg.Seed),
            "cnn" => new SmallCnn(cfg.Seed),
            "gpt" => new Gpt(new GptConfig(65, Context: 64, DModel: 64, Layers: 2, Heads: 4), cfg.Seed),
            _ => throw new ArgumentException($"Unknown --model '{cfg.Model}' (mlp, cnn, gpt)."),
        };
        var group = new InProcessCollectiveGroup();
        var workers = Enumerable.Range(0, cfg.Workers).Select(w => new DeMoStrategy(
            group.Join("w" + w.ToString("D2", CultureInfo.InvariantCulture)), layoutModel.Parameters.Clone(),
            new DeMoOptions { LearningRate = cfg.DemoLr, TopK = cfg.TopK })).ToArray();
        var gradients = workers.Select((_, w) =>
        {
            var g = layoutModel.Parameters.CreateZeros();
            var rng = new Random(cfg.Seed + w);
            var span = g.Data;
            for (var i = 0; i < span.Length; i++)
            {
                span[i] = (float)((rng.NextDouble() * 2) - 1);
            }

            return g;
        }).ToArray();

        async Task Run(int count)
        {
            await Task.WhenAll(workers.Select((d, w) => Task.Run(async () =>
            {
                for (var i = 0; i < count; i++)
                {
                    await d.StepAsync(gradients[w], 1, ct);
                }
            }, ct)));
        }

        await Run(Math.Max(40, cfg.Steps / 4)); // warm-up: past the JIT's tier-0 code (30 calls) and into steady caches
        var process = Process.GetCurrentProcess();
        var cpu0 = process.TotalProcessorTime;
        var wall = Stopwatch.StartNew();
        await Run(cfg.Steps);
        wall.Stop();
        process.Refresh();
        var cpu = (process.TotalProcessorTime - cpu0).TotalMilliseconds;
        var load = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "n/a";
        var wallMs = wall.Elapsed.TotalMilliseconds / cfg.Steps;
        var cpuMs = cpu / cfg.Steps;
        var text = string.Create(CultureInfo.InvariantCulture,
            $"DeMo bench: model {cfg.Model} ({layoutModel.Parameters.Length:N0} parameters), {cfg.Workers} worker(s), {cfg.Steps} steps, k {cfg.TopK}: " +
            $"{wallMs:F2} ms wall per step (all workers), {cpuMs:F2} ms CPU per step, message {workers[0].MessageBytes:N0} B; load {load}");
        return new DeMoBenchResult(cfg.Model, layoutModel.Parameters.Length, cfg.Workers, cfg.Steps, workers[0].MessageBytes, wallMs, cpuMs, load, text);
    }
}
