using System.Diagnostics;
using System.Globalization;
using NearML.Training.Data;
using NearML.Training.Engines;
using NearML.TorchSharp;
using TorchSharp;
using static TorchSharp.torch;

// NearML.TorchSharp adapter overhead: one training step through ITrainableModel vs the same plain TorchSharp loop,
// the sync-point copies, and managed bytes allocated per steady-state step. `compare …` runs the LibTorch side of
// benchmarks/compare-all.sh instead (LibTorchCompare.cs).
if (args.Length > 0 && args[0] == "compare")
{
    return LibTorchCompare.Run(args[1..]);
}

var steps = Arg("--steps", 300);
var threads = Arg("--threads", 1);
var reps = Arg("--reps", 5);
TorchSharpRuntime.SetThreads(threads);
var settings = new InnerOptimizerSettings("adamw", LearningRate: 1e-3, WeightDecay: 0.01);
const int Batch = 64, Features = 784;
var rng = new Random(1);
var batch = new Batch(Batch, Features, 0, 1) { Count = Batch };
for (var i = 0; i < batch.Features.Length; i++)
{
    batch.Features[i] = (float)rng.NextDouble();
}

for (var i = 0; i < Batch; i++)
{
    batch.Targets[i] = rng.Next(10);
}

static nn.Module<Tensor, Tensor> Mlp() => nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10));

random.manual_seed(1);
using var adapted = new TorchSharpTrainableModel(Mlp(), settings);

// the plain loop: the same module and optimizer, input tensors filled in place (the fastest plain way)
random.manual_seed(1);
var module = Mlp();
var parameters = module.parameters().ToArray();
using var optimizer = new TorchSharp.Modules.AdamW(parameters, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01);
var x = empty([Batch, Features], ScalarType.Float32, CPU);
var y = empty([Batch], ScalarType.Int64, CPU);
void Fill()
{
    batch.Features.AsSpan().CopyTo(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(x.bytes));
    var t = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(y.bytes);
    for (var i = 0; i < Batch; i++)
    {
        t[i] = batch.Targets[i];
    }
}

float PlainStep()
{
    using var scope = NewDisposeScope();
    optimizer.zero_grad();
    Fill();
    var output = module.forward(x);
    var loss = nn.functional.cross_entropy(output, y);
    var v = loss.item<float>();
    loss.backward();
    optimizer.step();
    return v;
}

float AdaptedStep() => adapted.TrainStep(batch);

// warm-up (JIT, LibTorch allocator, optimizer state)
for (var i = 0; i < 50; i++)
{
    PlainStep();
    AdaptedStep();
}

double TimeSteps(Func<float> step, int n)
{
    var sw = Stopwatch.StartNew();
    for (var i = 0; i < n; i++)
    {
        step();
    }

    return sw.Elapsed.TotalMilliseconds * 1000 / n; // µs per step
}

long AllocatedPerStep(Func<float> step, int n)
{
    var before = GC.GetAllocatedBytesForCurrentThread();
    for (var i = 0; i < n; i++)
    {
        step();
    }

    return (GC.GetAllocatedBytesForCurrentThread() - before) / n;
}

// interleaved repetitions: A B A B … so that machine noise hits both alike; medians reported
var plainTimes = new List<double>();
var adaptedTimes = new List<double>();
for (var r = 0; r < reps; r++)
{
    plainTimes.Add(TimeSteps(PlainStep, steps));
    adaptedTimes.Add(TimeSteps(AdaptedStep, steps));
}

var plainUs = Median(plainTimes);
var adaptedUs = Median(adaptedTimes);
var plainBytes = AllocatedPerStep(PlainStep, steps);
var adaptedBytes = AllocatedPerStep(AdaptedStep, steps);

// the sync-point copies on a 1M-parameter model (Linear 1000 → 1000: 1,001,000 parameters)
using var big = new TorchSharpTrainableModel(nn.Sequential(nn.Linear(1000, 1000)), settings);
var bigParams = big.Layout.TotalLength;
for (var i = 0; i < 20; i++)
{
    big.PullParameters();
    big.PushParameters();
}

double CopyMs(Action copy)
{
    var times = new List<double>();
    for (var i = 0; i < 50; i++)
    {
        var sw = Stopwatch.StartNew();
        copy();
        times.Add(sw.Elapsed.TotalMilliseconds);
    }

    return Median(times) * 1_000_000 / bigParams;
}

var pullMs = CopyMs(big.PullParameters);
var pushMs = CopyMs(big.PushParameters);
var pullGradMs = CopyMs(big.PullGradients);
var pushGradMs = CopyMs(big.PushGradients);
var syncBytesBefore = GC.GetAllocatedBytesForCurrentThread();
for (var i = 0; i < 10; i++)
{
    big.PullParameters();
    big.PushParameters();
}

var syncBytes = (GC.GetAllocatedBytesForCurrentThread() - syncBytesBefore) / 20;

var ratio = adaptedUs / plainUs;
string F(double v, string f = "F1") => v.ToString(f, CultureInfo.InvariantCulture);
Console.WriteLine($"# NearML.TorchSharp adapter overhead — MLP 784-256-256-10, batch {Batch}, AdamW, {threads} LibTorch thread(s), {steps} steps × {reps} interleaved reps (median)");
Console.WriteLine();
Console.WriteLine("| measure | plain TorchSharp | through NearML | target |");
Console.WriteLine("|---|---:|---:|---|");
Console.WriteLine($"| training step (µs) | {F(plainUs)} | {F(adaptedUs)} ({(ratio - 1) * 100:+0.0;-0.0} %) | ≤ +2 % |");
Console.WriteLine($"| managed bytes allocated per step | {plainBytes:N0} | {adaptedBytes:N0} ({adaptedBytes - plainBytes:+#,0;-#,0;0}) | 0 beyond TorchSharp's own |");
Console.WriteLine($"| PullParameters per 1M parameters (ms) | | {F(pullMs, "F3")} | ≤ 1 ms |");
Console.WriteLine($"| PushParameters per 1M parameters (ms) | | {F(pushMs, "F3")} | ≤ 1 ms |");
Console.WriteLine($"| PullGradients per 1M parameters (ms) | | {F(pullGradMs, "F3")} | ≤ 1 ms |");
Console.WriteLine($"| PushGradients per 1M parameters (ms) | | {F(pushGradMs, "F3")} | ≤ 1 ms |");
Console.WriteLine($"| managed bytes per sync-point copy | | {syncBytes:N0} | 0 |");
Console.WriteLine();
Console.WriteLine($"{{\"bench\":\"torchsharp-adapter\",\"plain_us\":{F(plainUs, "F2")},\"nearml_us\":{F(adaptedUs, "F2")},\"ratio\":{F(ratio, "F4")},\"plain_bytes_per_step\":{plainBytes},\"nearml_bytes_per_step\":{adaptedBytes},\"pull_ms_per_1m\":{F(pullMs, "F4")},\"push_ms_per_1m\":{F(pushMs, "F4")},\"pull_grad_ms_per_1m\":{F(pullGradMs, "F4")},\"push_grad_ms_per_1m\":{F(pushGradMs, "F4")},\"sync_bytes\":{syncBytes},\"threads\":{threads},\"steps\":{steps},\"reps\":{reps}}}");

return 0;

int Arg(string name, int fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
}

static double Median(List<double> v)
{
    var s = v.Order().ToArray();
    return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
}
