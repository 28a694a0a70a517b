using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using NearML.Benchmarks;
using NearML.Training.Data;
using NearML.TorchSharp;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

/// <summary>
/// `compare` mode: the workloads of benchmarks/compare-pytorch.sh (the GEMM shape suite, Fashion-MNIST MLP and CNN
/// training, char-level GPT training) run in LibTorch 2.10 through plain TorchSharp, with the same data, batches, model
/// sizes, optimiser and thread count as the NearML side (NearML.Benchmarks `compare`) and the PyTorch side
/// (../shared/bench/pytorch), printing the same JSON-lines schema as the NearML side on stdout (progress on stderr).
/// The batches come from NearML's own batch sources with the same seeds, so all three sides see the same samples in the
/// same order (PyTorch: the same recipe, its own shuffle).
/// </summary>
internal static class LibTorchCompare
{
    private const string Engine = "libtorch-2.10 (TorchSharp-cpu 0.107.0)";

    public static int Run(string[] args)
    {
        if (args.Length == 0)
        {
            Console.Error.WriteLine("usage: compare gemm [--threads N] [--only SUBSTR[,SUBSTR...]] [--repeats R] [--min-time S] [--list]");
            Console.Error.WriteLine("       compare mlp|cnn [--threads N] [--epochs E] [--batch B] [--warmup W] [--window S] [--seed X] [--data DIR]");
            Console.Error.WriteLine("       compare gpt --corpus FILE [--threads N] [--warmup W] [--steps S] [--window S] [--seed X]");
            return 2;
        }

        var o = new Options(args[1..]);
        TorchSharpRuntime.EnsureLoaded();
        torch.set_num_interop_threads(1); // as the PyTorch side: no inter-op pool (only jit fork/wait uses it)
        torch.set_num_threads(o.Threads);
        switch (args[0])
        {
            case "gemm":
                return Gemm(o);
            case "mlp":
                return Classifier("mlp", o.Int("--batch", 128), o.Int("--epochs", 5), o.Int("--warmup", 20), o.Int("--window", 200), o.Int("--seed", 0), o.Str("--data"), o.Threads);
            case "cnn":
                return Classifier("cnn", o.Int("--batch", 64), o.Int("--epochs", 3), o.Int("--warmup", 20), o.Int("--window", 200), o.Int("--seed", 0), o.Str("--data"), o.Threads);
            case "gpt":
                var corpus = o.Str("--corpus");
                if (corpus is null)
                {
                    Console.Error.WriteLine("compare gpt needs --corpus FILE (e.g. ../shared/data/tinyshakespeare.txt)");
                    return 2;
                }

                return Gpt(corpus, o.Int("--warmup", 5), o.Int("--steps", 50), o.Int("--window", 10), o.Int("--seed", 0), o.Threads);
            default:
                Console.Error.WriteLine($"unknown workload '{args[0]}' (known: gemm, mlp, cnn, gpt)");
                return 2;
        }
    }

    // ---------------------------------------------------------------------------------------------------------------
    // GEMM: C = op(A) · op(B) in LibTorch's CPU GEMM. TorchSharp has no torch.mm(out: C), so the out-form is
    // C.addmm_(A, B, beta: 0, alpha: 1) (ATen ignores C's contents when beta is 0: the same BLAS call as mm(out=C)).
    // Transposed operands are .t() views of contiguous tensors, as autograd hands them over in a backward pass and as
    // bench_gemm.py builds them.
    // ---------------------------------------------------------------------------------------------------------------
    private static int Gemm(Options o)
    {
        var only = o.Str("--only");
        var shapes = GemmShapes.Select(only);
        if (o.Has("--list"))
        {
            foreach (var s in shapes)
            {
                Console.WriteLine(s.Name);
            }

            return 0;
        }

        var repeats = o.Int("--repeats", 5);
        var minTime = o.Double("--min-time", 0.3);
        random.manual_seed(0);
        using var process = Process.GetCurrentProcess();
        foreach (var (name, m, k, n, ta, tb) in shapes)
        {
            using var scope = NewDisposeScope();
            var a = ta ? randn(k, m).t() : randn(m, k);
            var b = tb ? randn(n, k).t() : randn(k, n);
            var c = empty(m, n);
            void Call() => c.addmm_(a, b, 0f, 1f);

            var flops = 2.0 * m * n * k;
            Call(); // warm-up: pack buffers, the OpenMP pool
            Call();
            var before = GC.GetAllocatedBytesForCurrentThread();
            Call();
            var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

            var gflops = new List<double>();
            var cpuGflops = new List<double>();
            for (var r = 0; r < repeats; r++)
            {
                var iters = 0;
                process.Refresh();
                var cpu0 = process.TotalProcessorTime;
                var t0 = Stopwatch.GetTimestamp();
                double dt;
                do
                {
                    Call();
                    iters++;
                    dt = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                }
                while (dt < minTime);
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
            json.Append(CultureInfo.InvariantCulture, $",\"threads\":{torch.get_num_threads()},\"engine\":\"{Engine}\",\"op\":\"Tensor.addmm_(A,B,beta 0,alpha 1)\",\"managed_bytes_per_call\":{allocated}");
            json.Append(CultureInfo.InvariantCulture, $",\"gflop_per_cpu_s\":{Median(cpuGflops):F2},\"peak_rss_mb\":{PeakRssMb():F1}}}");
            Console.WriteLine(json.ToString());
            Console.Error.WriteLine($"{name,-28} {Median(gflops),8:F2} GFLOP/s  [{gflops[0]:F2} .. {gflops[^1]:F2}]  per CPU-second {Median(cpuGflops),8:F2}");
        }

        return 0;
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Fashion-MNIST MLP / CNN: the recipe of ../shared/bench/pytorch (torch default init, AdamW lr 1e-3 wd 0.01,
    // mean cross-entropy, pixels/255, reshuffled every epoch, last partial batch kept, 200-step windows after 20
    // warm-up steps). Each step is timed from the batch gather to the optimiser step; evaluation is outside.
    // ---------------------------------------------------------------------------------------------------------------
    private static int Classifier(string kind, int batchSize, int epochs, int warmup, int window, int seed, string? dataDir, int threads)
    {
        var data = FashionMnist.Load(dataDir);
        var features = data.Train.FeaturesPerSample;
        random.manual_seed(seed);
        nn.Module<Tensor, Tensor> model = kind == "cnn"
            ? nn.Sequential(
                nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(), nn.Linear(128, 10))
            : nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10));
        var parameters = model.parameters().ToArray();
        using var optimizer = new AdamW(parameters, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01);
        long[] inputShape = kind == "cnn" ? [batchSize, 1, 28, 28] : [batchSize, features];
        var x = empty(inputShape, ScalarType.Float32);
        var y = empty([batchSize], ScalarType.Int64);
        var train = new ClassificationBatchSource(data.Train, batchSize, (ulong)seed);
        var batch = train.CreateBatch();

        // the test set as two tensors, evaluated in chunks of 1000 (as the PyTorch side)
        long[] testShape = kind == "cnn" ? [data.Test.Count, 1, 28, 28] : [data.Test.Count, features];
        var testX = tensor(data.Test.Features, testShape);
        var testY = tensor(data.Test.Labels.Select(l => (long)l).ToArray());

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
            train.StartEpoch(epoch - 1); // the NearML side's shuffle seeds
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

                float loss;
                using (var scope = NewDisposeScope())
                {
                    var count = batch.Count;
                    batch.Features.AsSpan(0, count * features).CopyTo(MemoryMarshal.Cast<byte, float>(x.bytes));
                    var targets = MemoryMarshal.Cast<byte, long>(y.bytes);
                    for (var i = 0; i < count; i++)
                    {
                        targets[i] = batch.Targets[i];
                    }

                    var xb = count == batchSize ? x : x.narrow(0, 0, count);
                    var yb = count == batchSize ? y : y.narrow(0, 0, count);
                    var lossTensor = nn.functional.cross_entropy(model.forward(xb), yb);
                    optimizer.zero_grad();
                    lossTensor.backward();
                    optimizer.step();
                    stepSeconds[step] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                    loss = lossTensor.item<float>();
                }

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
            var accuracy = Accuracy(model, testX, testY);
            accuracies.Add(accuracy);
            Console.Error.WriteLine($"epoch {epoch}: train loss {lossSum / seen:F4}  test acc {accuracy:F4}  ({epochSeconds:F1} s)");
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
        json.Append(CultureInfo.InvariantCulture, $",\"threads\":{threads},\"engine\":\"{Engine}\",\"omp_wait_policy\":\"{TorchSharpRuntime.OpenMPWaitPolicy ?? "default"}\",\"wall_s\":{wall.Elapsed.TotalSeconds:F1}");
        json.Append(CultureInfo.InvariantCulture, $",\"train_wall_ms_per_step\":{trainWall * 1000 / step:F2},\"train_cpu_ms_per_step\":{trainCpu.TotalMilliseconds / step:F2}");
        json.Append(CultureInfo.InvariantCulture, $",\"peak_rss_mb\":{PeakRssMb():F1}}}");
        Console.WriteLine(json.ToString());
        return 0;
    }

    private static double Accuracy(nn.Module<Tensor, Tensor> model, Tensor x, Tensor y)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        long correct = 0;
        var n = x.shape[0];
        for (long i = 0; i < n; i += 1000)
        {
            var len = Math.Min(1000, n - i);
            var predicted = model.forward(x.narrow(0, i, len)).argmax(1);
            correct += predicted.eq(y.narrow(0, i, len)).sum().item<long>();
        }

        return (double)correct / n;
    }

    // ---------------------------------------------------------------------------------------------------------------
    // char-level GPT: d 128, 4 pre-LN blocks, 4 heads × 32, learned positions, fused QKV with bias, explicit causal
    // softmax attention, MLP 128→512→128 with exact GELU, final LayerNorm, head tied to the token embedding; N(0, 0.02)
    // init, zero biases; AdamW lr 3e-4 wd 0.01; context 128, batch 32; the NearML side's batch and validation sources.
    // ---------------------------------------------------------------------------------------------------------------
    private static int Gpt(string corpus, int warmup, int steps, int window, int seed, int threads)
    {
        var text = TextDataset.FromFile(corpus);
        const int context = 128, batchSize = 32;
        random.manual_seed(seed);
        var model = new CharGpt(text.VocabularySize, context, 128, 4, 4);
        var parameters = model.parameters().ToArray();
        var parameterCount = parameters.Sum(p => p.numel());
        using var optimizer = new AdamW(parameters, lr: 3e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01);
        var train = new TextWindowBatchSource(text.Train, batchSize, context, warmup + steps, (ulong)seed);
        var validation = TextWindowBatchSource.ForValidation(text.Validation, batchSize, context, 4, 1234);
        var batch = train.CreateBatch();
        var x = empty([batchSize, context], ScalarType.Int64);
        var y = empty([batchSize, context], ScalarType.Int64);
        train.StartEpoch(0);

        void Fill(Batch b)
        {
            var xs = MemoryMarshal.Cast<byte, long>(x.bytes);
            var ys = MemoryMarshal.Cast<byte, long>(y.bytes);
            for (var i = 0; i < batchSize * context; i++)
            {
                xs[i] = b.Tokens[i];
                ys[i] = b.Targets[i];
            }
        }

        double ValidationLoss()
        {
            using var noGrad = no_grad();
            var vb = validation.CreateBatch();
            validation.StartEpoch(0);
            double sum = 0;
            var count = 0;
            while (validation.TryFill(vb))
            {
                using var scope = NewDisposeScope();
                Fill(vb);
                sum += model.Loss(x, y).item<float>();
                count++;
            }

            return sum / count;
        }

        var val0 = ValidationLoss();
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

            float loss;
            double dt;
            using (var scope = NewDisposeScope())
            {
                Fill(batch);
                var lossTensor = model.Loss(x, y);
                optimizer.zero_grad();
                lossTensor.backward();
                optimizer.step();
                dt = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                loss = lossTensor.item<float>();
            }

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
        var valN = ValidationLoss();
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
        json.Append(CultureInfo.InvariantCulture, $",\"params\":{parameterCount},\"managed_bytes_per_step\":{perStep:F1},\"steps\":{warmup + steps}");
        json.Append(CultureInfo.InvariantCulture, $",\"threads\":{threads},\"engine\":\"{Engine}\",\"omp_wait_policy\":\"{TorchSharpRuntime.OpenMPWaitPolicy ?? "default"}\",\"wall_s\":{wall.Elapsed.TotalSeconds:F1}");
        json.Append(CultureInfo.InvariantCulture, $",\"peak_rss_mb\":{PeakRssMb():F1}}}");
        Console.WriteLine(json.ToString());
        return 0;
    }

    private static double Median(List<double> sorted) =>
        sorted.Count == 0 ? double.NaN
        : sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;

    /// <summary>Peak resident set of this process so far (VmHWM), in MB; -1 where /proc is absent.</summary>
    private static double PeakRssMb()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                {
                    return long.Parse(line["VmHWM:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) / 1024.0;
                }
            }
        }
        catch (IOException)
        {
        }

        return -1;
    }

    private sealed class Options(string[] args)
    {
        public int Threads { get; } = Index(args, "--threads") is var i and >= 0 ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : Environment.ProcessorCount;

        public bool Has(string name) => Array.IndexOf(args, name) >= 0;

        public string? Str(string name) => Index(args, name) is var i and >= 0 ? args[i + 1] : null;

        public int Int(string name, int fallback) => Str(name) is { } s ? int.Parse(s, CultureInfo.InvariantCulture) : fallback;

        public double Double(string name, double fallback) => Str(name) is { } s ? double.Parse(s, CultureInfo.InvariantCulture) : fallback;

        private static int Index(string[] a, string name)
        {
            var i = Array.IndexOf(a, name);
            if (i >= 0 && i + 1 >= a.Length)
            {
                throw new ArgumentException($"option '{name}' needs a value");
            }

            return i;
        }
    }

    /// <summary>The GPT of ../shared/bench/pytorch/bench_gpt.py, in TorchSharp.</summary>
    private sealed class CharGpt : nn.Module<Tensor, Tensor>
    {
        private readonly Embedding _tok;
        private readonly Embedding _pos;
        private readonly ModuleList<Block> _blocks;
        private readonly LayerNorm _lnF;
        private readonly Tensor _positions;

        public CharGpt(int vocab, int context, int dModel, int layers, int heads)
            : base("CharGpt")
        {
            _tok = nn.Embedding(vocab, dModel);
            _pos = nn.Embedding(context, dModel);
            _blocks = nn.ModuleList(Enumerable.Range(0, layers).Select(_ => new Block(dModel, heads, context)).ToArray());
            _lnF = nn.LayerNorm(dModel);
            _positions = arange(context, ScalarType.Int64);
            RegisterComponents();
            using var noGrad = no_grad();
            foreach (var m in modules())
            {
                if (m is Linear linear)
                {
                    nn.init.normal_(linear.weight!, 0.0, 0.02);
                    if (linear.bias is not null)
                    {
                        nn.init.zeros_(linear.bias);
                    }
                }
                else if (m is Embedding embedding)
                {
                    nn.init.normal_(embedding.weight!, 0.0, 0.02);
                }
            }
        }

        public override Tensor forward(Tensor idx)
        {
            var t = idx.shape[1];
            var h = _tok.forward(idx) + _pos.forward(_positions.narrow(0, 0, t));
            foreach (var b in _blocks)
            {
                h = b.forward(h);
            }

            return nn.functional.linear(_lnF.forward(h), _tok.weight!); // head tied to the token embedding, no bias
        }

        public Tensor Loss(Tensor idx, Tensor targets)
        {
            var logits = forward(idx);
            return nn.functional.cross_entropy(logits.view(-1, logits.shape[^1]), targets.view(-1));
        }
    }

    private sealed class Block : nn.Module<Tensor, Tensor>
    {
        private readonly LayerNorm _ln1;
        private readonly LayerNorm _ln2;
        private readonly Linear _qkv;
        private readonly Linear _proj;
        private readonly Linear _fc;
        private readonly Linear _fcOut;
        private readonly Tensor _causal;
        private readonly int _heads;

        public Block(int dModel, int heads, int context)
            : base("Block")
        {
            _heads = heads;
            _ln1 = nn.LayerNorm(dModel);
            _ln2 = nn.LayerNorm(dModel);
            _qkv = nn.Linear(dModel, 3 * dModel);
            _proj = nn.Linear(dModel, dModel);
            _fc = nn.Linear(dModel, 4 * dModel);
            _fcOut = nn.Linear(4 * dModel, dModel);
            _causal = ones(context, context, ScalarType.Bool).tril().logical_not().view(1, 1, context, context); // true = masked
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            var (b, t, c) = (x.shape[0], x.shape[1], x.shape[2]);
            var hs = c / _heads;
            var parts = _qkv.forward(_ln1.forward(x)).split(c, 2);
            var q = parts[0].view(b, t, _heads, hs).transpose(1, 2);
            var k = parts[1].view(b, t, _heads, hs).transpose(1, 2);
            var v = parts[2].view(b, t, _heads, hs).transpose(1, 2);
            var att = q.matmul(k.transpose(-2, -1)) * (1.0 / Math.Sqrt(hs));
            att = att.masked_fill(_causal.narrow(2, 0, t).narrow(3, 0, t), double.NegativeInfinity);
            att = nn.functional.softmax(att, -1);
            var y = att.matmul(v).transpose(1, 2).contiguous().view(b, t, c);
            x = x + _proj.forward(y);
            return x + _fcOut.forward(nn.functional.gelu(_fc.forward(_ln2.forward(x))));
        }
    }
}
