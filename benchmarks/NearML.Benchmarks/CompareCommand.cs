using System.Diagnostics;
using System.Globalization;
using System.Text;
using NearML.Training.Kernels;

namespace NearML.Benchmarks;

/// <summary>
/// `compare` console mode: measures a workload the way the matching PyTorch reference script does and prints one
/// JSON line per measurement on stdout (progress goes to stderr).
/// </summary>
internal static class CompareCommand
{
    public static int Run(string[] args)
    {
        if (args.Length == 0)
        {
            Console.Error.WriteLine("usage: compare gemm [--threads N] [--isa avx512|avx2|portable] [--only SUBSTR[,SUBSTR...]] [--repeats R] [--min-time S] [--list] [--kc KC] [--mc MC_PANELS]");
            Console.Error.WriteLine("       compare mlp|cnn [--threads N] [--epochs E] [--batch B] [--warmup W] [--window S] [--seed X] [--data DIR]");
            Console.Error.WriteLine("       compare profile-cnn [--threads N] [--batch B] [--steps S] [--seed X] [--data DIR]   (per-layer timings)");
            Console.Error.WriteLine("       compare gpt --corpus FILE [--threads N] [--warmup W] [--steps S] [--window S] [--seed X]");
            Console.Error.WriteLine("       compare profile-gpt --corpus FILE [--threads N] [--steps S] [--seed X]   (per-op timings)");
            Console.Error.WriteLine("every workload takes --isa avx512|avx2|portable to force a lower kernel instruction set");
            Console.Error.WriteLine("and --wait-policy adaptive|active|passive to set KernelThreads.WaitPolicy (default adaptive)");
            Console.Error.WriteLine("       compare load-ab [--load N] [--rounds R] [--threads T] [--only SHAPES|none] [--mlp-steps S]   (quiet vs N busy loops, alternating in one process)");
            return 2;
        }

        if (args[0] == "load-ab")
        {
            return LoadAbCommand.Run(args[1..]);
        }

        var options = Options.Parse(args[1..]);
        KernelThreads.Count = options.Threads;
        if (options.Isa is { } isa)
        {
            KernelThreads.Isa = isa;
        }

        if (options.WaitPolicy is { } policy)
        {
            KernelThreads.WaitPolicy = policy;
        }

        if (options.Kc is { } kc)
        {
            NearML.Training.Kernels.Internal.GemmDriver.KcMax = kc;
        }

        if (options.McPanels is { } mc)
        {
            NearML.Training.Kernels.Internal.GemmDriver.McPanels = mc;
        }

        Console.Error.WriteLine($"kernels: {KernelThreads.InstructionSet}, {KernelThreads.Count} threads, wait policy {KernelThreads.WaitPolicy}");
        switch (args[0])
        {
            case "gemm":
                return CompareGemm(options);
            case "mlp":
                return CompareTraining.Classifier("mlp", options.Batch ?? 128, options.Epochs ?? 5, options.Warmup ?? 20, options.Window ?? 200, options.Seed, options.Data);
            case "cnn":
                return CompareTraining.Classifier("cnn", options.Batch ?? 64, options.Epochs ?? 3, options.Warmup ?? 20, options.Window ?? 200, options.Seed, options.Data);
            case "profile-cnn":
                return ProfileCnn.Run(options.Batch ?? 64, options.Steps ?? 100, options.Seed, options.Data);
            case "gpt":
                if (options.Corpus is null)
                {
                    Console.Error.WriteLine("compare gpt needs --corpus FILE (e.g. ../shared/data/tinyshakespeare.txt)");
                    return 2;
                }

                return CompareTraining.Gpt(options.Corpus, options.Warmup ?? 5, options.Steps ?? 50, options.Window ?? 10, options.Seed);
            case "profile-gpt":
                if (options.Corpus is null)
                {
                    Console.Error.WriteLine("compare profile-gpt needs --corpus FILE (e.g. ../shared/data/tinyshakespeare.txt)");
                    return 2;
                }

                return ProfileGpt.Run(options.Corpus, options.Steps ?? 20, options.Seed);
            default:
                Console.Error.WriteLine($"unknown workload '{args[0]}' (known: gemm, mlp, cnn, gpt, profile-cnn, profile-gpt)");
                return 2;
        }
    }

    private static int CompareGemm(Options options)
    {
        var shapes = GemmShapes.Select(options.Only);
        if (options.List)
        {
            foreach (var s in shapes)
            {
                Console.WriteLine(s.Name);
            }

            return 0;
        }

        var rng = new Random(0);
        foreach (var (name, m, k, n, ta, tb) in shapes)
        {
            var a = Fill(new float[m * k], rng);
            var b = Fill(new float[k * n], rng);
            var c = new float[m * n];
            var lda = ta ? m : k;
            var ldb = tb ? k : n;
            void Call() => Gemm.Sgemm(ta, tb, m, n, k, 1f, a, lda, b, ldb, 0f, c, n);

            var flops = 2.0 * m * n * k;
            Call(); // warm-up: JIT, pack buffers, worker threads
            Call();
            var before = GC.GetAllocatedBytesForCurrentThread();
            Call();
            var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

            var gflops = new List<double>();
            var cpuGflops = new List<double>();
            var bestCall = double.MaxValue; // the fastest single call: preemption only ever adds time, so the steadiest figure under load
            using var process = Process.GetCurrentProcess();
            for (var r = 0; r < options.Repeats; r++)
            {
                var iters = 0;
                process.Refresh();
                var cpu0 = process.TotalProcessorTime;
                var t0 = Stopwatch.GetTimestamp();
                double dt;
                var previous = t0;
                do
                {
                    Call();
                    iters++;
                    var now = Stopwatch.GetTimestamp();
                    bestCall = Math.Min(bestCall, Stopwatch.GetElapsedTime(previous, now).TotalSeconds);
                    previous = now;
                    dt = Stopwatch.GetElapsedTime(t0, now).TotalSeconds;
                }
                while (dt < options.MinTime);
                gflops.Add(flops * iters / dt / 1e9);
                process.Refresh();
                cpuGflops.Add(flops * iters / (process.TotalProcessorTime - cpu0).TotalSeconds / 1e9);
            }

            gflops.Sort();
            cpuGflops.Sort();
            var json = new StringBuilder();
            json.Append(CultureInfo.InvariantCulture, $"{{\"workload\":\"gemm_{name}\",\"unit\":\"GFLOP/s\",\"value\":{Median(gflops):F2}");
            json.Append(CultureInfo.InvariantCulture, $",\"min\":{gflops[0]:F2},\"max\":{gflops[^1]:F2},\"n\":{gflops.Count}");
            json.Append(CultureInfo.InvariantCulture, $",\"M\":{m},\"K\":{k},\"N\":{n},\"transA\":{(ta ? "true" : "false")},\"transB\":{(tb ? "true" : "false")}");
            json.Append(CultureInfo.InvariantCulture, $",\"threads\":{KernelThreads.Count},\"isa\":\"{KernelThreads.Isa}\",\"managed_bytes_per_call\":{allocated}");
            json.Append(CultureInfo.InvariantCulture, $",\"best_call_gflops\":{flops / bestCall / 1e9:F2}");
            json.Append(CultureInfo.InvariantCulture, $",\"gflop_per_cpu_s\":{Median(cpuGflops):F2},\"peak_rss_mb\":{PeakRssMb():F1}}}");
            Console.WriteLine(json.ToString());
            Console.Error.WriteLine($"{name,-28} {Median(gflops),8:F2} GFLOP/s  [{gflops[0]:F2} .. {gflops[^1]:F2}]  per CPU-second {Median(cpuGflops),8:F2}  best call {flops / bestCall / 1e9,8:F2}");
        }

        return 0;
    }

    private static float[] Fill(float[] x, Random rng)
    {
        for (var i = 0; i < x.Length; i++)
        {
            x[i] = (float)((rng.NextDouble() * 2) - 1);
        }

        return x;
    }

    private static double Median(List<double> sorted) =>
        sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;

    /// <summary>Peak resident set of this process so far (VmHWM), in MB; -1 where /proc is absent.</summary>
    internal static double PeakRssMb()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                {
                    var kb = long.Parse(line["VmHWM:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
                    return kb / 1024.0;
                }
            }
        }
        catch (IOException)
        {
        }

        return -1;
    }

    private sealed class Options
    {
        public int Threads { get; private set; } = Environment.ProcessorCount;

        public string? Only { get; private set; }

        public int Repeats { get; private set; } = 5;

        public double MinTime { get; private set; } = 0.3;

        public bool List { get; private set; }

        public int? Epochs { get; private set; }

        public int? Batch { get; private set; }

        public int? Warmup { get; private set; }

        public int? Window { get; private set; }

        public int? Steps { get; private set; }

        public int Seed { get; private set; }

        public string? Data { get; private set; }

        public string? Corpus { get; private set; }

        public KernelIsa? Isa { get; private set; }

        public KernelWaitPolicy? WaitPolicy { get; private set; }

        /// <summary>Gets the GEMM depth block to use instead of the default (blocking experiments).</summary>
        public int? Kc { get; private set; }

        /// <summary>Gets the GEMM row block, in micro-kernel rows, to use instead of the default (blocking experiments).</summary>
        public int? McPanels { get; private set; }

        public static Options Parse(string[] args)
        {
            var o = new Options();
            for (var i = 0; i < args.Length; i++)
            {
                switch (args[i])
                {
                    case "--threads":
                        o.Threads = int.Parse(args[++i], CultureInfo.InvariantCulture);
                        break;
                    case "--only":
                        o.Only = args[++i];
                        break;
                    case "--repeats":
                        o.Repeats = int.Parse(args[++i], CultureInfo.InvariantCulture);
                        break;
                    case "--min-time":
                        o.MinTime = double.Parse(args[++i], CultureInfo.InvariantCulture);
                        break;
                    case "--list":
                        o.List = true;
                        break;
                    case "--epochs":
                        o.Epochs = int.Parse(args[++i], CultureInfo.InvariantCulture);
                        break;
                    case "--batch":
                        o.Batch = int.Parse(args[++i], CultureInfo.InvariantCulture);
                        break;
                    case "--warmup":
                        o.Warmup = int.Parse(args[++i], CultureInfo.InvariantCulture);
                        break;
                    case "--window":
                        o.Window = int.Parse(args[++i], CultureInfo.InvariantCulture);
                        break;
                    case "--steps":
                        o.Steps = int.Parse(args[++i], CultureInfo.InvariantCulture);
                        break;
                    case "--seed":
                        o.Seed = int.Parse(args[++i], CultureInfo.InvariantCulture);
                        break;
                    case "--data":
                        o.Data = args[++i];
                        break;
                    case "--isa":
                        o.Isa = Enum.Parse<KernelIsa>(args[++i], ignoreCase: true);
                        break;
                    case "--wait-policy":
                        o.WaitPolicy = Enum.Parse<KernelWaitPolicy>(args[++i], ignoreCase: true);
                        break;
                    case "--corpus":
                        o.Corpus = args[++i];
                        break;
                    case "--kc":
                        o.Kc = int.Parse(args[++i], CultureInfo.InvariantCulture);
                        break;
                    case "--mc":
                        o.McPanels = int.Parse(args[++i], CultureInfo.InvariantCulture);
                        break;
                    default:
                        throw new ArgumentException($"unknown option '{args[i]}'");
                }
            }

            return o;
        }
    }
}
