using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using NearML.Hosting;
using NearML.Hosting.Coordinator;
using NearML.Hosting.Worker;
using NearML.Training.Data;
using NearML.Training.Engines;

namespace NearML.TorchSharp.Tests;

/// <summary>
/// §4b over the real stack: a coordinator host and four worker hosts (AddNearMLWorker) in this process, joined over
/// loopback TLS, training one Fashion-MNIST MLP DiLoCo job. In the mixed run two workers register the model key
/// <c>mlp</c> with a TorchSharp factory (<see cref="NearMLBuilderExtensions.AddModel{TBuilder}(TBuilder, string, Func{ModelBuildContext, ITrainableModel}, string)"/>),
/// the other two keep the built-in managed one; the coordinator admits them because the layout fingerprints agree.
/// The same recipe with four managed workers is the reference.
/// </summary>
[TestClass]
public sealed class MixedEngineTlsTests
{
    private const string Config = """{"hidden":128}""";
    private const int Rounds = 10;
    private const int InnerSteps = 25;
    private const int BatchSize = 64;
    private static long _torchSteps;
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(4);

    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    [TestCategory("Slow")]
    [Timeout(900_000, CooperativeCancellation = true)]
    public async Task Two_Managed_And_Two_TorchSharp_Workers_Over_TLS_Reach_Four_Managed_Workers_Accuracy_Within_Half_A_Point()
    {
        TorchEnv.Require();
        TorchSharpRuntime.SetThreads(1);
        if (!File.Exists(Path.Combine(FashionMnist.DefaultDirectory, "train-images-idx3-ubyte.gz")))
        {
            Assert.Inconclusive($"Fashion-MNIST is not installed in {FashionMnist.DefaultDirectory} (apt-get install dataset-fashion-mnist).");
        }

        var sw = Stopwatch.StartNew();
        var managed = await RunAsync(torchWorkers: 0);
        Assert.AreEqual(0, Interlocked.Read(ref _torchSteps));
        var mixed = await RunAsync(torchWorkers: 2);
        Assert.IsTrue(Interlocked.Read(ref _torchSteps) >= 2L * Rounds * InnerSteps, $"the TorchSharp workers trained through LibTorch ({_torchSteps} steps)");
        TestContext.WriteLine($"4 managed: {managed:P2}; 2 managed + 2 TorchSharp: {mixed:P2}; {sw.Elapsed.TotalSeconds:F0} s");
        Console.WriteLine($"4 managed: {managed:P2}; 2 managed + 2 TorchSharp: {mixed:P2}; {sw.Elapsed.TotalSeconds:F0} s");
        Assert.IsTrue(managed > 0.75, $"the recipe trains: {managed:P2}");
        Assert.IsTrue(Math.Abs(mixed - managed) <= 0.005, $"mixed {mixed:P2} vs managed-only {managed:P2}: more than 0.5 pt apart");
    }

    private async Task<double> RunAsync(int torchWorkers)
    {
        var root = Path.Combine(Path.GetTempPath(), $"nearml-mixed-{Guid.NewGuid():N}");
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = TimeSpan.FromSeconds(20));
        builder.Services.AddNearMLCoordinator(o =>
        {
            o.Port = 0;
            o.DataDirectory = Path.Combine(root, "coordinator");
            o.DatasetDirectory = FashionMnist.DefaultDirectory;
            o.ShardCount = 60;
            o.Model = "mlp";
            o.ModelConfigJson = Config;
            o.MinWorkers = 4;
            o.Rounds = Rounds;
            o.InnerSteps = InnerSteps;
            o.BatchSize = BatchSize;
            o.InnerLearningRate = 1e-3;
            o.WeightDecay = 0.01;
            o.UpdateEncoding = "fp32";
            o.EvaluateEveryRounds = Rounds;
            o.EvaluationSamples = 0; // the whole test set
            o.RoundTimeout = TimeSpan.FromMinutes(3);
            o.HeartbeatInterval = TimeSpan.FromSeconds(2);
            o.AllowSimulatedAttestation = true;
            o.SettleEveryRounds = 1000;
        });
        using var coordinator = builder.Build();
        using (var cts = new CancellationTokenSource(Timeout))
        {
            await coordinator.StartAsync(cts.Token);
        }

        var status = coordinator.Services.GetRequiredService<CoordinatorStatus>();
        await status.Listening.WaitAsync(Timeout);
        var workers = new List<IHost>();
        try
        {
            for (var w = 0; w < 4; w++)
            {
                workers.Add(await StartWorkerAsync(status, $"w{w}", Path.Combine(root, "w" + w), torch: w >= 4 - torchWorkers));
            }

            await status.CompletedTask.WaitAsync(TimeSpan.FromMinutes(10));
            Assert.IsTrue(status.Rounds.All(r => r.Accepted == 4), string.Join("; ", status.Rounds.Select(r => $"{r.Round}:{r.Accepted}/{r.Cohort}")));
            return status.LastAccuracy ?? throw new AssertFailedException("the coordinator did not evaluate");
        }
        finally
        {
            foreach (var h in workers)
            {
                using var cts = new CancellationTokenSource(Timeout);
                await h.StopAsync(cts.Token);
                h.Dispose();
            }

            using (var cts = new CancellationTokenSource(Timeout))
            {
                await coordinator.StopAsync(cts.Token);
            }

            try
            {
                Directory.Delete(root, true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static async Task<IHost> StartWorkerAsync(CoordinatorStatus coordinator, string id, string data, bool torch)
    {
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = TimeSpan.FromSeconds(20));
        var worker = builder.Services.AddNearMLWorker(o =>
        {
            o.WorkerId = id;
            o.CoordinatorHost = "127.0.0.1";
            o.CoordinatorPort = coordinator.Port;
            o.CoordinatorFingerprint = coordinator.Fingerprint;
            o.DataDirectory = data;
            o.DatasetDirectory = FashionMnist.DefaultDirectory;
            o.AttestationProvider = NearMLWorkerOptions.SimulatedProvider;
            o.ThreadCount = 1;
            o.InitialReconnectDelay = TimeSpan.FromMilliseconds(50);
            o.MaxReconnectDelay = TimeSpan.FromMilliseconds(500);
        });
        if (torch)
        {
            // the same key as the built-in managed MLP, the same names and shapes: a TorchSharp engine behind it
            worker.AddModel("mlp", ctx =>
            {
                using var doc = JsonDocument.Parse(ctx.ConfigJson);
                int Get(string name, int fallback) => doc.RootElement.TryGetProperty(name, out var v) ? v.GetInt32() : fallback;
                var (inputs, hidden, classes) = (Get("inputs", 784), Get("hidden", 256), Get("classes", 10));
                return new CountingModel(TorchSharpTrainableModel.Create(ctx with { Threads = 1 }, () => TorchModels.Mlp(inputs, hidden, classes)));
            });
        }

        var host = builder.Build();
        using var cts = new CancellationTokenSource(Timeout);
        await host.StartAsync(cts.Token);
        return host;
    }

    /// <summary>Counts the LibTorch steps, so the test knows the TorchSharp engine really trained.</summary>
    private sealed class CountingModel(ITrainableModel inner) : ITrainableModel
    {
        public string Engine => inner.Engine;

        public NearML.Core.ParameterLayout Layout => inner.Layout;

        public NearML.Core.ParameterSet Parameters => inner.Parameters;

        public NearML.Core.ParameterSet Gradients => inner.Gradients;

        public void PullParameters() => inner.PullParameters();

        public void PushParameters() => inner.PushParameters();

        public void PullGradients() => inner.PullGradients();

        public void PushGradients() => inner.PushGradients();

        public float ComputeGradients(Batch batch)
        {
            Interlocked.Increment(ref _torchSteps);
            return inner.ComputeGradients(batch);
        }

        public void OptimizerStep() => inner.OptimizerStep();

        public NearML.Training.EvaluationResult Evaluate(IBatchSource source, CancellationToken cancellationToken = default) => inner.Evaluate(source, cancellationToken);

        public void ResetOptimizer(InnerOptimizerSettings settings) => inner.ResetOptimizer(settings);

        public NearML.Training.Optim.OptimizerState ExportOptimizerState() => inner.ExportOptimizerState();

        public void ImportOptimizerState(NearML.Training.Optim.OptimizerState state) => inner.ImportOptimizerState(state);

        public void Dispose() => inner.Dispose();
    }
}
