// Package smoke test: a coordinator (AddNearMLCoordinator) and one worker (AddNearMLWorker), each in its own generic
// host in this process, over loopback TLS, using only the packed NearML packages. Exit code 0 when the worker holds a
// signed receipt for every round; 1 otherwise.
using System.Buffers.Binary;
using System.Diagnostics;
using System.Reflection;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NearML.Hosting;
using NearML.Hosting.Coordinator;
using NearML.Hosting.Worker;

const int Rounds = 2;
var clock = Stopwatch.StartNew();
var root = Path.Combine(Path.GetTempPath(), "nearml-package-smoke-" + Guid.NewGuid().ToString("N"));
var data = WriteSyntheticFashionMnist(Path.Combine(root, "data"), 600, 100);
var version = typeof(NearMLCoordinatorOptions).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
Console.WriteLine($"NearML.Hosting {version}");
if (args.Length > 0 && (version is null || !(version == args[0] || version.StartsWith(args[0] + "+", StringComparison.Ordinal))))
{
    Console.Error.WriteLine($"the assembly's informational version {version} does not match the package version {args[0]}");
    return 1;
}

// ed25519/X25519 must run through libsodium, whose native library reaches the consumer through NearML.Core's
// NSec.Cryptography dependency (docs/performance.md, "Crypto paths"); BouncyCastle would mean it did not.
Console.WriteLine($"ed25519/X25519: {NearML.Core.Crypto.Ed25519.Implementation}");
if (!NearML.Core.Crypto.Ed25519.IsNativeAccelerated && Environment.GetEnvironmentVariable("NEARML_ED25519_MANAGED") != "1")
{
    Console.Error.WriteLine("libsodium did not load from the packages: ed25519 fell back to BouncyCastle");
    return 1;
}

using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
var coordinatorBuilder = NewBuilder();
coordinatorBuilder.Services.AddNearMLCoordinator(o =>
{
    o.Port = 0;
    o.DataDirectory = Path.Combine(root, "coordinator");
    o.DatasetDirectory = data;
    o.ShardCount = 4;
    o.Model = "mlp";
    o.ModelConfigJson = """{"hidden":16}""";
    o.Rounds = Rounds;
    o.InnerSteps = 5;
    o.BatchSize = 16;
    o.UpdateEncoding = "int8";
    o.MinWorkers = 1;
    o.RoundTimeout = TimeSpan.FromSeconds(30);
    o.AllowSimulatedAttestation = true;
    o.EvaluationSamples = 0;
});
using var coordinator = coordinatorBuilder.Build();
await coordinator.StartAsync(timeout.Token);
var status = coordinator.Services.GetRequiredService<CoordinatorStatus>();
await status.Listening.WaitAsync(timeout.Token);

var workerBuilder = NewBuilder();
workerBuilder.Services.AddNearMLWorker(o =>
{
    o.WorkerId = "smoke.near";
    o.CoordinatorHost = "127.0.0.1";
    o.CoordinatorPort = status.Port;
    o.CoordinatorFingerprint = status.Fingerprint;
    o.DataDirectory = Path.Combine(root, "worker");
    o.DatasetDirectory = data;
    o.AttestationProvider = NearMLWorkerOptions.SimulatedProvider;
    o.ThreadCount = 1;
});
using var worker = workerBuilder.Build();
var receipts = 0L;
try
{
    await worker.StartAsync(timeout.Token);
    var workerStatus = worker.Services.GetRequiredService<WorkerStatus>();
    await status.CompletedTask.WaitAsync(timeout.Token);
    while (workerStatus.Receipts < Rounds && !timeout.IsCancellationRequested)
    {
        await Task.Delay(50, CancellationToken.None);
    }

    receipts = workerStatus.Receipts;
}
catch (OperationCanceledException)
{
    Console.Error.WriteLine($"timed out after {clock.Elapsed.TotalSeconds:F1} s; coordinator round {status.Round}, last error: {status.LastError}");
}
finally
{
    using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(20));
    await worker.StopAsync(stop.Token);
    await coordinator.StopAsync(stop.Token);
    try
    {
        Directory.Delete(root, true);
    }
    catch (IOException)
    {
    }
}

var ok = receipts == Rounds && status.Rounds.Count == Rounds;
Console.WriteLine($"package smoke: {status.Rounds.Count} rounds, worker receipts {receipts}, ledger entries {status.LedgerEntries}, {clock.Elapsed.TotalSeconds:F1} s: {(ok ? "ok" : "FAILED")}");
return ok ? 0 : 1;

static HostApplicationBuilder NewBuilder()
{
    var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
    builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning);
    builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = TimeSpan.FromSeconds(20));
    return builder;
}

// A small learnable stand-in for Fashion-MNIST (the same four IDX files): class c lights rows 2c+4..2c+6.
static string WriteSyntheticFashionMnist(string directory, int trainCount, int testCount)
{
    Directory.CreateDirectory(directory);
    var rng = new Random(7);
    foreach (var (prefix, count) in new[] { ("train", trainCount), ("t10k", testCount) })
    {
        var pixels = new byte[count * 784];
        var labels = new byte[count];
        for (var i = 0; i < count; i++)
        {
            var c = rng.Next(10);
            labels[i] = (byte)c;
            for (var p = 0; p < 784; p++)
            {
                var row = p / 28;
                pixels[(i * 784) + p] = (byte)Math.Clamp((row >= (2 * c) + 4 && row <= (2 * c) + 6 ? 200 : 20) + rng.Next(-20, 21), 0, 255);
            }
        }

        WriteIdx(Path.Combine(directory, $"{prefix}-images-idx3-ubyte"), [count, 28, 28], pixels);
        WriteIdx(Path.Combine(directory, $"{prefix}-labels-idx1-ubyte"), [count], labels);
    }

    return directory;
}

static void WriteIdx(string path, int[] dims, byte[] bytes)
{
    using var fs = File.Create(path);
    var header = new byte[4 + (4 * dims.Length)];
    header[2] = 0x08;
    header[3] = (byte)dims.Length;
    for (var i = 0; i < dims.Length; i++)
    {
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4 + (4 * i)), dims[i]);
    }

    fs.Write(header);
    fs.Write(bytes);
}
