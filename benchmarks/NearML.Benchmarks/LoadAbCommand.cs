using System.Diagnostics;
using System.Globalization;
using System.Text;
using NearML.Training;
using NearML.Training.Data;
using NearML.Training.Kernels;
using NearML.Training.Kernels.Internal;
using NearML.Training.Modules;
using NearML.Training.Optim;

namespace NearML.Benchmarks;

/// <summary>
/// `compare load-ab` mode (issue 17): the engine quiet and under a competing CPU load, alternating in one process so the
/// noise of a shared machine hits both conditions. Every round measures each workload twice — quiet and while N busy-loop
/// processes (<c>bash -c 'while :; do :; done'</c>, started right before and killed by pid right after) keep the cores
/// busy — alternating which condition comes first; it reports each workload's quiet and loaded medians and the median of
/// the per-round loaded/quiet ratios. Workloads: a few GEMM shapes of <see cref="GemmShapes"/> (GFLOP/s) and the MLP
/// training step (batch 128, AdamW; synthetic 28×28 inputs, so no data set is needed; samples/s). After a loaded block it
/// waits 2 s, so the quiet figures are steady-state ones (the adaptive wait policy stays passive for up to 1.6 s after a
/// load is gone). <c>--policies</c> measures several <see cref="KernelWaitPolicy"/> values side by side.
/// </summary>
internal static class LoadAbCommand
{
    public static int Run(string[] args)
    {
        var load = 2;
        var rounds = 5;
        var threads = Environment.ProcessorCount;
        var only = "square_512,mlp_b128_fc1_fwd,gpt_mlpup_dW";
        var minTime = 0.3;
        var mlpSteps = 150;
        var policies = new List<KernelWaitPolicy> { KernelThreads.WaitPolicy };
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--load":
                    load = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--rounds":
                    rounds = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--threads":
                    threads = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--only":
                    only = args[++i];
                    break;
                case "--min-time":
                    minTime = double.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--policies":
                    policies = args[++i].Split(',').Select(p => Enum.Parse<KernelWaitPolicy>(p, ignoreCase: true)).ToList();
                    break;
                case "--pool":
                    // internal knobs of the adaptive policy, for tuning: lost=0.3,window=30,period=100
                    foreach (var kv in args[++i].Split(','))
                    {
                        var (key, value) = (kv.Split('=')[0], double.Parse(kv.Split('=')[1], CultureInfo.InvariantCulture));
                        switch (key)
                        {
                            case "lost": GemmWorkers.LostFraction = value; break;
                            case "window": GemmWorkers.WindowMilliseconds = (int)value; break;
                            case "period": GemmWorkers.ContendedMilliseconds = (int)value; break;
                            default: throw new ArgumentException($"unknown pool knob '{key}' (lost, window, period)");
                        }
                    }

                    break;
                case "--mlp-steps":
                    mlpSteps = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                default:
                    Console.Error.WriteLine($"unknown option '{args[i]}'");
                    Console.Error.WriteLine("usage: compare load-ab [--load N] [--rounds R] [--threads T] [--only SHAPE,SHAPE|none] [--min-time S] [--mlp-steps S (0: no MLP)] [--policies adaptive,active,passive] [--pool lost=0.3,window=30,period=100]");
                    return 2;
            }
        }

        KernelThreads.Count = threads;
        Console.Error.WriteLine($"kernels: {KernelThreads.InstructionSet}, {KernelThreads.Count} threads, load {load} busy loops, {rounds} rounds, wait policies {string.Join(',', policies)}");
        var measures = new List<(string Name, string Unit, Func<double> Measure)>();
        if (only != "none")
        {
            foreach (var shape in GemmShapes.Select(only))
            {
                measures.Add(("gemm_" + shape.Name, "GFLOP/s", GemmMeasure(shape, minTime)));
            }
        }

        if (mlpSteps > 0)
        {
            measures.Add(("mlp", "samples/s", MlpMeasure(mlpSteps)));
        }

        // Each workload under each wait policy (set right before its measurement), so policies alternate too.
        var workloads = new List<(string Name, string Unit, Func<double> Measure)>();
        foreach (var (name, unit, measure) in measures)
        {
            foreach (var policy in policies)
            {
                workloads.Add((policies.Count > 1 ? $"{name}@{policy.ToString().ToLowerInvariant()}" : name, unit, () =>
                {
                    KernelThreads.WaitPolicy = policy;
                    return measure();
                }));
            }
        }

        var quiet = workloads.Select(_ => new List<double>()).ToArray();
        var loaded = workloads.Select(_ => new List<double>()).ToArray();
        var ratios = workloads.Select(_ => new List<double>()).ToArray();
        var events = new long[workloads.Count, 2];
        foreach (var w in workloads)
        {
            w.Measure(); // warm-up: JIT, buffers, worker threads
        }

        for (var r = 0; r < rounds; r++)
        {
            var order = r % 2 == 0 ? new[] { false, true } : new[] { true, false };
            var q = new double[workloads.Count];
            var l = new double[workloads.Count];
            foreach (var underLoad in order)
            {
                var busy = underLoad ? StartBusyLoops(load) : [];
                try
                {
                    for (var i = 0; i < workloads.Count; i++)
                    {
                        var before = KernelThreads.ContentionEvents;
                        (underLoad ? l : q)[i] = workloads[i].Measure();
                        events[i, underLoad ? 1 : 0] += KernelThreads.ContentionEvents - before;
                    }
                }
                finally
                {
                    StopBusyLoops(busy);
                }

                if (underLoad)
                {
                    // Steady state: the adaptive wait policy stays passive for up to 1.6 s after a load is gone.
                    Thread.Sleep(2000);
                }
            }

            for (var i = 0; i < workloads.Count; i++)
            {
                quiet[i].Add(q[i]);
                loaded[i].Add(l[i]);
                ratios[i].Add(l[i] / q[i]);
                Console.Error.WriteLine($"round {r + 1}: {workloads[i].Name,-24} quiet {q[i],10:F1}  loaded {l[i],10:F1}  ({l[i] / q[i]:F2}×)");
            }
        }

        for (var i = 0; i < workloads.Count; i++)
        {
            var json = new StringBuilder();
            json.Append(CultureInfo.InvariantCulture, $"{{\"workload\":\"{workloads[i].Name}\",\"unit\":\"{workloads[i].Unit}\"");
            json.Append(CultureInfo.InvariantCulture, $",\"quiet\":{Median(quiet[i]):F2},\"loaded\":{Median(loaded[i]):F2},\"ratio\":{Median(ratios[i]):F3}");
            json.Append(CultureInfo.InvariantCulture, $",\"ratios\":[{string.Join(",", ratios[i].Select(x => x.ToString("F3", CultureInfo.InvariantCulture)))}]");
            json.Append(CultureInfo.InvariantCulture, $",\"contention_events_quiet\":{events[i, 0]},\"contention_events_loaded\":{events[i, 1]},\"load\":{load},\"rounds\":{rounds},\"threads\":{KernelThreads.Count},\"policy\":\"{(policies.Count > 1 ? "see name" : policies[0].ToString())}\",\"isa\":\"{KernelThreads.Isa}\"}}");
            Console.WriteLine(json.ToString());
            Console.Error.WriteLine($"{workloads[i].Name,-24} quiet {Median(quiet[i]),10:F1}  loaded {Median(loaded[i]),10:F1} {workloads[i].Unit}  loaded/quiet {Median(ratios[i]):F2}× [{ratios[i].Min():F2} .. {ratios[i].Max():F2}]  contention events {events[i, 0]} / {events[i, 1]}");
        }

        return 0;
    }

    private static Func<double> GemmMeasure((string Name, int M, int K, int N, bool TransA, bool TransB) shape, double minTime)
    {
        var (_, m, k, n, ta, tb) = shape;
        var rng = new Random(0);
        var a = new float[m * k];
        var b = new float[k * n];
        var c = new float[m * n];
        for (var i = 0; i < a.Length; i++)
        {
            a[i] = (float)((rng.NextDouble() * 2) - 1);
        }

        for (var i = 0; i < b.Length; i++)
        {
            b[i] = (float)((rng.NextDouble() * 2) - 1);
        }

        var lda = ta ? m : k;
        var ldb = tb ? k : n;
        var flops = 2.0 * m * n * k;
        return () =>
        {
            var iters = 0;
            var t0 = Stopwatch.GetTimestamp();
            double dt;
            do
            {
                Gemm.Sgemm(ta, tb, m, n, k, 1f, a, lda, b, ldb, 0f, c, n);
                iters++;
                dt = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            }
            while (dt < minTime);
            return flops * iters / dt / 1e9;
        };
    }

    private static Func<double> MlpMeasure(int steps)
    {
        const int samples = 8192, batchSize = 128;
        var rng = new Random(1);
        var features = new float[samples * 784];
        var labels = new int[samples];
        for (var i = 0; i < features.Length; i++)
        {
            features[i] = (float)rng.NextDouble();
        }

        for (var i = 0; i < labels.Length; i++)
        {
            labels[i] = rng.Next(10);
        }

        var data = new LabeledDataset(features, labels, [1, 28, 28], 10);
        var model = new Mlp(seed: 0);
        var optimizer = new AdamW(model.Parameters.Layout, new AdamWOptions { LearningRate = 1e-3, WeightDecay = 0.01 });
        var trainer = new LocalTrainer(model, optimizer);
        var source = new ClassificationBatchSource(data, batchSize, 0);
        var batch = source.CreateBatch();
        var epoch = 0;
        source.StartEpoch(epoch);
        return () =>
        {
            long seen = 0;
            var t0 = Stopwatch.GetTimestamp();
            for (var s = 0; s < steps; s++)
            {
                if (!source.TryFill(batch))
                {
                    source.StartEpoch(++epoch);
                    source.TryFill(batch);
                }

                trainer.TrainStep(batch);
                seen += batch.Count;
            }

            return seen / Stopwatch.GetElapsedTime(t0).TotalSeconds;
        };
    }

    private static List<Process> StartBusyLoops(int count)
    {
        var busy = new List<Process>();
        for (var i = 0; i < count; i++)
        {
            var start = new ProcessStartInfo("bash") { UseShellExecute = false };
            start.ArgumentList.Add("-c");
            start.ArgumentList.Add("while :; do :; done");
            busy.Add(Process.Start(start) ?? throw new InvalidOperationException("could not start bash"));
        }

        Thread.Sleep(50); // let the loops reach the run queue
        return busy;
    }

    private static void StopBusyLoops(List<Process> busy)
    {
        foreach (var p in busy)
        {
            try
            {
                p.Kill();
                p.WaitForExit();
            }
            catch (InvalidOperationException)
            {
                // already exited
            }

            p.Dispose();
        }
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }
}
