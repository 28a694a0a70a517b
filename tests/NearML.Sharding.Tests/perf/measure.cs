#:project ../../../src/NearML.Training/NearML.Training.csproj
#:project ../../../src/NearML.Sharding/NearML.Sharding.csproj
#:property TreatWarningsAsErrors=false
#:property PublishAot=false
#:property NoWarn=CA1303;CA1305;CA1307;CA1310;CA1515;CA1852;CA5394;CA2000;CA1031;CS1591;CA1861;CA1707;CA1822

// Data/optimizer/sharding throughput figures for docs/data-and-sharding.md (a console harness, not a test).
// Run from the repository root:  dotnet run tests/NearML.Sharding.Tests/perf/measure.cs -c Release
using System.Diagnostics;
using System.Security.Cryptography;
using NearML.Core;
using NearML.Sharding;
using NearML.Training.Data;
using NearML.Training.Optim;

static double Time(Action a, int reps)
{
    a();
    var sw = Stopwatch.StartNew();
    for (var i = 0; i < reps; i++)
    {
        a();
    }

    return sw.Elapsed.TotalMilliseconds / reps;
}

Console.WriteLine($"cores={Environment.ProcessorCount} loadavg={File.ReadAllText("/proc/loadavg").Trim()}");
var layout = new ParameterLayout([("w", [1024, 1024])]); // 1 Mi parameters
var p = new ParameterSet(layout);
var g = new ParameterSet(layout);
var rng = new SeededRandom(1);
for (var i = 0; i < g.Length; i++)
{
    p.Data[i] = (float)rng.NextDouble();
    g.Data[i] = (float)(rng.NextDouble() - 0.5);
}

foreach (var (name, opt) in new (string, Optimizer)[]
{
    ("sgd", new Sgd(layout, new SgdOptions { LearningRate = 1e-3 })),
    ("sgd-nesterov", new Sgd(layout, new SgdOptions { LearningRate = 1e-3, Momentum = 0.9, Nesterov = true, WeightDecay = 1e-4 })),
    ("adamw", new AdamW(layout)),
})
{
    var before = GC.GetAllocatedBytesForCurrentThread();
    var ms = Time(() => opt.Step(p, g), 200);
    var alloc = GC.GetAllocatedBytesForCurrentThread() - before;
    Console.WriteLine($"{{\"workload\":\"{name} step, 1M params\",\"ms\":{ms:F3},\"Mparams_per_s\":{1.0 / ms * 1000:F0},\"alloc_bytes_total\":{alloc}}}");
}

var sw = Stopwatch.StartNew();
var fm = FashionMnist.Load();
Console.WriteLine($"{{\"workload\":\"FashionMnist.Load (gzip, 70k images)\",\"ms\":{sw.Elapsed.TotalMilliseconds:F0}}}");
var src = new ClassificationBatchSource(fm.Train, 128, 7);
var batch = src.CreateBatch();
var epochMs = Time(() =>
{
    src.StartEpoch(1);
    while (src.TryFill(batch))
    {
    }
}, 5);
Console.WriteLine($"{{\"workload\":\"ClassificationBatchSource epoch (60k, batch 128)\",\"ms\":{epochMs:F1},\"samples_per_s\":{60000 / epochMs * 1000:F0}}}");

var dir = Path.Combine(Path.GetTempPath(), "nearml-measure-" + Guid.NewGuid().ToString("N"));
sw.Restart();
var manifest = ShardBuilder.BuildIdx("fm", "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz", 1000, dir);
Console.WriteLine($"{{\"workload\":\"ShardBuilder.BuildIdx Fashion-MNIST train, 60 shards of 1000\",\"ms\":{sw.Elapsed.TotalMilliseconds:F0}}}");
var reader = new ShardReader(manifest, new DirectoryShardStore(dir));
var readMs = Time(() => reader.ReadIdx(7), 20);
Console.WriteLine($"{{\"workload\":\"ShardReader.ReadIdx (1000 records, 785 KB, SHA-256 verified)\",\"ms\":{readMs:F2}}}");
Directory.Delete(dir, true);

var root = SHA256.HashData("x"u8);
var workers = Enumerable.Range(0, 16).Select(i => new WorkerCapacity($"w{i}", 1 + (i % 3))).ToList();
var hrwMs = Time(() => RendezvousHashing.Assign(root, 10_000, workers), 5);
Console.WriteLine($"{{\"workload\":\"RendezvousHashing.Assign 10k shards x 16 workers\",\"ms\":{hrwMs:F1}}}");
