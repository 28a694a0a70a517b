using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NearML.Hosting.Coordinator;
using NearML.Hosting.Tests.Coordinator;
using NearML.Hosting.Worker;
using NearML.Training.Data;
using NearML.Training.Engines;
using NearML.Training.Modules;
using NearML.Training.Tensors;

namespace NearML.Hosting.Tests.ByoModel;

/// <summary>
/// A managed model written in this test assembly, which has no access to NearML.Training's internals: two linear
/// layers declared through the public constructors and a raw parameter declared with AddParameter.
/// </summary>
internal sealed class TinyClassifier : Model
{
    private readonly Linear _hidden;
    private readonly Tensor _outWeight;
    private readonly Tensor _outBias;
    private readonly bool _poisoned;

    public TinyClassifier(int features, int hidden, int classes, int seed, bool poisoned = false)
    {
        Features = features;
        Classes = classes;
        _poisoned = poisoned;
        _hidden = new Linear(this, "hidden", features, hidden);
        _outWeight = AddParameter("out_weight", [classes, hidden], ParameterInit.Uniform(1f / MathF.Sqrt(hidden)));
        _outBias = AddParameter("out_bias", [classes], ParameterInit.Zeros);
        InitializeParameters(seed);
    }

    public int Features { get; }

    public override int Classes { get; }

    public override Tensor Forward(Tape tape, Batch batch)
    {
        ArgumentNullException.ThrowIfNull(tape);
        CheckFeatures(batch, Features);
        var x = tape.Input(batch.Features, 0, batch.Count, Features);
        var logits = tape.Linear(_hidden.Forward(tape, x, Activation.Relu), _outWeight, _outBias);
        return _poisoned ? tape.Scale(logits, float.NaN) : logits;
    }
}

internal static class ByoModelFixtures
{
    public const int Features = 6;
    public const int ClassCount = 3;

    /// <summary>Three Gaussian blobs; labels are the blob. Deterministic for a seed.</summary>
    public static LabeledDataset Blobs(int count, int seed, int corruptRecord = -1)
    {
        var rng = new Random(seed);
        var features = new float[count * Features];
        var labels = new int[count];
        for (var i = 0; i < count; i++)
        {
            var c = i % ClassCount;
            labels[i] = c;
            for (var j = 0; j < Features; j++)
            {
                features[(i * Features) + j] = (j == c ? 2.5f : 0f) + (float)((rng.NextDouble() * 2) - 1);
            }
        }

        if (corruptRecord >= 0)
        {
            features[corruptRecord * Features] += 0.5f;
        }

        return new LabeledDataset(features, labels, [Features], ClassCount);
    }

    public static TrainingDataset BlobsDataset(int corruptRecord = -1) =>
        new ClassificationDataset("blobs", Blobs(240, 1, corruptRecord), Blobs(90, 2), RecordEncoding.Npy);

    public static ITrainableModel Tiny(ModelBuildContext c, int hidden = 12, bool poisoned = false) =>
        new ManagedTrainableModel(new TinyClassifier(Features, hidden, ClassCount, c.Seed, poisoned), c.Optimizer);

    public static void CoordinatorDefaults(NearMLCoordinatorOptions o, string data)
    {
        CoordinatorHarness.Defaults(o, data);
        o.Model = "tiny";
        o.ModelConfigJson = null;
        o.Dataset = "blobs";
        o.ShardCount = 4;
        o.Rounds = 3;
        o.InnerSteps = 8;
        o.BatchSize = 16;
        o.InnerLearningRate = 0.01;
        o.EvaluationSamples = 0;
        o.EvaluateEveryRounds = 1;
    }

    public static async Task<(IHost Host, CoordinatorStatus Status, CapturingLoggerProvider Logs)> StartCoordinatorAsync(
        Action<NearMLCoordinatorBuilder> register, Action<NearMLCoordinatorOptions>? configure = null)
    {
        var data = TestAssembly.NewTempDirectory("byom-coord");
        var logs = new CapturingLoggerProvider();
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.AddProvider(logs);
        builder.Logging.SetMinimumLevel(LogLevel.Debug);
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = TimeSpan.FromSeconds(20));
        register(builder.Services.AddNearMLCoordinator(o =>
        {
            CoordinatorDefaults(o, data);
            configure?.Invoke(o);
        }));
        var host = builder.Build();
        using var cts = new CancellationTokenSource(CoordinatorHarness.Timeout);
        await host.StartAsync(cts.Token);
        var status = host.Services.GetRequiredService<CoordinatorStatus>();
        await status.Listening.WaitAsync(CoordinatorHarness.Timeout);
        return (host, status, logs);
    }

    public static async Task<(IHost Host, WorkerStatus Status, CapturingLoggerProvider Logs)> StartWorkerAsync(
        CoordinatorStatus coordinator, string id, Action<NearMLWorkerBuilder> register)
    {
        var logs = new CapturingLoggerProvider();
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.AddProvider(logs);
        builder.Logging.SetMinimumLevel(LogLevel.Debug);
        register(builder.Services.AddNearMLWorker(o =>
        {
            o.WorkerId = id;
            o.CoordinatorPort = coordinator.Port;
            o.CoordinatorFingerprint = coordinator.Fingerprint;
            o.DataDirectory = TestAssembly.NewTempDirectory("byom-" + id);
            o.AttestationProvider = "simulated";
            o.InitialReconnectDelay = TimeSpan.FromMilliseconds(50);
            o.MaxReconnectDelay = TimeSpan.FromMilliseconds(500);
        }));
        var host = builder.Build();
        using var cts = new CancellationTokenSource(CoordinatorHarness.Timeout);
        await host.StartAsync(cts.Token);
        return (host, host.Services.GetRequiredService<WorkerStatus>(), logs);
    }

    public static async Task StopAsync(params IHost[] hosts)
    {
        foreach (var h in hosts)
        {
            using var cts = new CancellationTokenSource(CoordinatorHarness.Timeout);
            await h.StopAsync(cts.Token);
            h.Dispose();
        }
    }

    public static async Task WaitForAsync(Func<bool> condition, string what)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > CoordinatorHarness.Timeout)
            {
                Assert.Fail("Timed out waiting for " + what);
            }

            await Task.Delay(50);
        }
    }
}
