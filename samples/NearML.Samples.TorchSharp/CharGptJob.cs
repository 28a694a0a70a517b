using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NearML.Core;
using NearML.Hosting;
using NearML.Hosting.Coordinator;
using NearML.Hosting.Worker;
using NearML.Training;
using NearML.Training.Data;
using NearML.Training.Engines;
using NearML.Training.Optim;
using NearML.TorchSharp;

namespace NearML.Samples.TorchSharp;

/// <summary>One char-GPT job's settings: the model, the data and the recipe (both strategies use the same).</summary>
internal sealed record CharGptSettings
{
    /// <summary>The model key the sample registers on the coordinator and every worker.</summary>
    public const string ModelKey = "torch-chargpt";

    /// <summary>Gets the UTF-8 text (first 90 % training, last 10 % validation).</summary>
    public required string TextFile { get; init; }

    /// <summary>Gets the worker hosts started in this process.</summary>
    public int Workers { get; init; } = 2;

    /// <summary>Gets the inner steps each worker runs in the whole job (both strategies).</summary>
    public int Steps { get; init; } = 500;

    /// <summary>Gets H, DiLoCo's inner steps per round.</summary>
    public int InnerSteps { get; init; } = 125;

    /// <summary>Gets the windows per worker batch.</summary>
    public int BatchSize { get; init; } = 16;

    /// <summary>Gets the tokens per window.</summary>
    public int Context { get; init; } = 64;

    /// <summary>Gets the embedding width.</summary>
    public int DModel { get; init; } = 64;

    /// <summary>Gets the transformer blocks.</summary>
    public int Layers { get; init; } = 2;

    /// <summary>Gets the attention heads.</summary>
    public int Heads { get; init; } = 4;

    /// <summary>Gets the AdamW learning rate (DiLoCo's inner optimizer and DDP's optimizer).</summary>
    public double LearningRate { get; init; } = 2e-3;

    /// <summary>Gets the AdamW weight decay.</summary>
    public double WeightDecay { get; init; } = 0.01;

    /// <summary>Gets DiLoCo's outer (Nesterov) learning rate.</summary>
    public double OuterLearningRate { get; init; } = 1.0;

    /// <summary>Gets DiLoCo's outer momentum.</summary>
    public double OuterMomentum { get; init; } = 0.5;

    /// <summary>Gets DiLoCo's update encoding.</summary>
    public string UpdateEncoding { get; init; } = "int8";

    /// <summary>Gets the seed (initial parameters, shard order, data order).</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Gets LibTorch's threads (process-wide; every worker trains on its own .NET thread).</summary>
    public int Threads { get; init; } = 1;

    /// <summary>Gets the validation windows evaluated (0: the whole validation split).</summary>
    public int EvaluationWindows { get; init; }

    /// <summary>Checks the settings (one message per problem).</summary>
    /// <returns>The problems; empty when the settings are usable.</returns>
    public IReadOnlyList<string> Problems()
    {
        var p = new List<string>();
        if (!File.Exists(TextFile))
        {
            p.Add($"text file '{TextFile}' does not exist");
        }

        if (Workers < 1)
        {
            p.Add($"--workers {Workers} must be at least 1");
        }

        if (Steps < 1 || InnerSteps < 1 || Steps % InnerSteps != 0)
        {
            p.Add($"--steps {Steps} must be a positive multiple of --h {InnerSteps}");
        }

        if (BatchSize < 1 || Context < 2 || DModel < 1 || Layers < 1 || Heads < 1 || DModel % Heads != 0)
        {
            p.Add($"model/batch shape (batch {BatchSize}, context {Context}, width {DModel}, layers {Layers}, heads {Heads}) is invalid: all positive, context ≥ 2, width a multiple of heads");
        }

        if (!(LearningRate > 0) || !(OuterLearningRate > 0) || !(OuterMomentum > 0 && OuterMomentum < 1) || !(WeightDecay >= 0))
        {
            p.Add("learning rates must be positive, the outer momentum in (0, 1), the weight decay non-negative");
        }

        if (Threads < 1)
        {
            p.Add($"--threads {Threads} must be at least 1");
        }

        return p;
    }
}

/// <summary>The outcome of one job.</summary>
/// <param name="Strategy"><c>diloco</c> or <c>ddp</c>.</param>
/// <param name="ValidationLoss">The coordinator's evaluation of the final global model (mean cross-entropy, nats/char).</param>
/// <param name="Evaluations">Every evaluation of the run, in order (round, loss).</param>
/// <param name="WorkerBytesSent">Bytes all workers sent to the coordinator (WorkerStatus.BytesSent: every frame on the TLS stream).</param>
/// <param name="CoordinatorBytesSent">Bytes the coordinator sent to all workers (CoordinatorStatus.TotalBytesDown).</param>
/// <param name="Rounds">Rounds run.</param>
/// <param name="Steps">Inner steps each worker ran.</param>
/// <param name="Parameters">Trainable parameters of the model.</param>
/// <param name="Elapsed">Wall time.</param>
internal sealed record CharGptResult(
    string Strategy, double ValidationLoss, IReadOnlyList<(long Round, double Loss)> Evaluations, long WorkerBytesSent, long CoordinatorBytesSent,
    int Rounds, int Steps, long Parameters, TimeSpan Elapsed);

/// <summary>
/// Runs the char-GPT job with a real coordinator host and <see cref="CharGptSettings.Workers"/> real worker hosts
/// (<c>AddNearMLCoordinator</c> / <c>AddNearMLWorker</c>, each registering <see cref="CharGptSettings.ModelKey"/> with a
/// TorchSharp factory) in this process, joined over loopback TLS.
/// </summary>
internal static class CharGptJob
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(2);

    /// <summary>The model configuration JSON of a job over <paramref name="s"/> (the vocabulary is the text's).</summary>
    /// <param name="s">The settings.</param>
    /// <param name="vocabulary">The text's distinct characters.</param>
    /// <returns>The JSON.</returns>
    public static string ModelConfigJson(CharGptSettings s, int vocabulary) => JsonSerializer.Serialize(new Dictionary<string, int>
    {
        ["vocabulary"] = vocabulary, ["context"] = s.Context, ["dModel"] = s.DModel, ["layers"] = s.Layers, ["heads"] = s.Heads,
    });

    /// <summary>Parses the model configuration JSON that <see cref="ModelConfigJson"/> writes (every key required, no other).</summary>
    /// <param name="json">The JSON.</param>
    /// <returns>The configuration.</returns>
    /// <exception cref="ArgumentException">A key is missing, unknown or not a positive integer.</exception>
    public static CharGptConfig ParseConfig(string json)
    {
        Dictionary<string, int>? v;
        try
        {
            v = JsonSerializer.Deserialize<Dictionary<string, int>>(json);
        }
        catch (JsonException ex)
        {
            throw new ArgumentException($"model '{CharGptSettings.ModelKey}' configuration is not an object of integers: {ex.Message}", nameof(json), ex);
        }

        string[] keys = ["vocabulary", "context", "dModel", "layers", "heads"];
        if (v is null || keys.Any(k => !v.ContainsKey(k)) || v.Keys.Any(k => !keys.Contains(k)))
        {
            throw new ArgumentException($"model '{CharGptSettings.ModelKey}' configuration needs exactly the keys {string.Join(", ", keys)}; got {json}", nameof(json));
        }

        var c = new CharGptConfig(v["vocabulary"], v["context"], v["dModel"], v["layers"], v["heads"]);
        c.Validate();
        return c;
    }

    /// <summary>Builds the TorchSharp model for a job (the factory the coordinator and every worker register).</summary>
    /// <param name="ctx">The build context.</param>
    /// <param name="threads">LibTorch's threads.</param>
    /// <returns>The model.</returns>
    public static TorchSharpTrainableModel Build(ModelBuildContext ctx, int threads)
    {
        var config = ParseConfig(ctx.ConfigJson);
        return TorchSharpTrainableModel.Create(ctx with { Threads = threads }, () => new CharGpt(config));
    }

    /// <summary>Runs one job.</summary>
    /// <param name="s">The settings.</param>
    /// <param name="strategy"><c>diloco</c> (rounds of H steps, one int8 pseudo-gradient each) or <c>ddp</c> (every step's gradients
    /// averaged through the coordinator's relay; one round of all steps, so its AdamW state is never reset).</param>
    /// <param name="progress">Receives one line per evaluation and a heartbeat line every <paramref name="progressEvery"/>.</param>
    /// <param name="progressEvery">How often the workers' step and loss are reported.</param>
    /// <param name="cancellationToken">Stops the job.</param>
    /// <returns>The result.</returns>
    public static async Task<CharGptResult> RunAsync(
        CharGptSettings s, string strategy, Action<string> progress, TimeSpan progressEvery, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(s);
        ArgumentNullException.ThrowIfNull(progress);
        var ddp = strategy switch
        {
            "ddp" => true,
            "diloco" => false,
            _ => throw new ArgumentException($"strategy '{strategy}' is neither diloco nor ddp", nameof(strategy)),
        };
        var text = Path.GetFullPath(s.TextFile);
        var vocabulary = TextDataset.FromFile(text).VocabularySize;
        var modelConfig = ModelConfigJson(s, vocabulary);
        var datasetConfig = JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["file"] = Path.GetFileName(text), ["context"] = s.Context, ["recordTokens"] = Math.Max(1024, s.Context + 1),
        });
        var rounds = ddp ? 1 : s.Steps / s.InnerSteps;
        var root = Path.Combine(Path.GetTempPath(), $"nearml-chargpt-{strategy}-{Guid.NewGuid():N}");
        var evaluations = new List<(long Round, double Loss)>();
        var status = (CoordinatorStatus?)null;
        long parameters = 0;
        var sw = Stopwatch.StartNew();

        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = TimeSpan.FromSeconds(20));
        AddWarningLog(builder);
        builder.Services.AddNearMLCoordinator(o =>
        {
            o.JobId = "chargpt-" + strategy;
            o.Port = 0;
            o.DataDirectory = Path.Combine(root, "coordinator");
            o.Model = CharGptSettings.ModelKey;
            o.ModelConfigJson = modelConfig;
            o.Dataset = "text";
            o.DatasetConfigJson = datasetConfig;
            o.DatasetDirectory = Path.GetDirectoryName(text);
            o.ShardCount = 4 * s.Workers;
            o.MinWorkers = s.Workers;
            o.MaxWorkers = s.Workers;
            o.SyncStrategy = strategy;
            o.Rounds = rounds;
            o.InnerSteps = ddp ? s.Steps : s.InnerSteps;
            o.BatchSize = s.BatchSize;
            o.InnerLearningRate = s.LearningRate;
            o.WeightDecay = s.WeightDecay;
            o.OuterLearningRate = s.OuterLearningRate;
            o.OuterMomentum = s.OuterMomentum;
            o.UpdateEncoding = ddp ? "fp32" : s.UpdateEncoding;
            o.Seed = s.Seed;
            o.EvaluateEveryRounds = 1;
            o.EvaluationSamples = s.EvaluationWindows;
            o.CheckpointEveryRounds = int.MaxValue;
            o.SettleEveryRounds = int.MaxValue;
            o.RoundTimeout = TimeSpan.FromHours(12);
            o.HeartbeatInterval = TimeSpan.FromSeconds(30); // a loaded machine can starve a worker for seconds
            o.AllowSimulatedAttestation = true;
        }).AddModel(CharGptSettings.ModelKey, ctx =>
        {
            // the coordinator's models: the initial global parameters, and the evaluator whose results we record
            var model = Build(ctx, s.Threads);
            Interlocked.Exchange(ref parameters, model.Layout.TotalLength);
            return new RecordingModel(model, r =>
            {
                lock (evaluations)
                {
                    evaluations.Add((status?.Round ?? -1, r.MeanLoss));
                }

                progress($"{strategy}: round {status?.Round + 1}/{rounds} validation loss {r.MeanLoss:F4} ({sw.Elapsed.TotalSeconds:F0} s)");
            });
        });

        using var coordinator = builder.Build();
        status = coordinator.Services.GetRequiredService<CoordinatorStatus>();
        var workers = new List<IHost>();
        try
        {
            using (var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                cts.CancelAfter(StartTimeout);
                await coordinator.StartAsync(cts.Token).ConfigureAwait(false);
                await status.Listening.WaitAsync(cts.Token).ConfigureAwait(false);
                for (var w = 0; w < s.Workers; w++)
                {
                    workers.Add(await StartWorkerAsync(status, s, $"w{w}", Path.Combine(root, "w" + w), cts.Token).ConfigureAwait(false));
                }
            }

            var statuses = workers.Select(h => h.Services.GetRequiredService<WorkerStatus>()).ToList();
            var done = status.CompletedTask;
            while (!done.IsCompleted)
            {
                await Task.WhenAny(done, Task.Delay(progressEvery, cancellationToken)).ConfigureAwait(false);
                cancellationToken.ThrowIfCancellationRequested();
                if (!done.IsCompleted)
                {
                    var w0 = statuses[0];
                    progress($"{strategy}: round {w0.Round + 1}/{rounds} step {w0.Step}/{w0.TotalSteps} training loss {w0.Loss:F3} ({sw.Elapsed.TotalSeconds:F0} s)");
                }
            }

            await done.ConfigureAwait(false);
            var incomplete = status.Rounds.Where(r => r.Accepted != s.Workers).Select(r => $"round {r.Round}: {r.Accepted}/{r.Cohort} accepted").ToList();
            if (incomplete.Count > 0)
            {
                throw new InvalidOperationException($"{strategy}: not every worker's update was accepted ({string.Join("; ", incomplete)})");
            }

            double loss;
            lock (evaluations)
            {
                loss = evaluations.Count > 0 ? evaluations[^1].Loss : throw new InvalidOperationException($"{strategy}: the coordinator did not evaluate the model");
            }

            return new CharGptResult(
                strategy, loss, [.. evaluations], statuses.Sum(w => w.BytesSent), status.TotalBytesDown, rounds, s.Steps,
                Interlocked.Read(ref parameters), sw.Elapsed);
        }
        finally
        {
            foreach (var h in workers)
            {
                using var cts = new CancellationTokenSource(StartTimeout);
                await h.StopAsync(cts.Token).ConfigureAwait(false);
                h.Dispose();
            }

            using (var cts = new CancellationTokenSource(StartTimeout))
            {
                await coordinator.StopAsync(cts.Token).ConfigureAwait(false);
            }

            try
            {
                Directory.Delete(root, true);
            }
            catch (IOException)
            {
                // a file still held open: it is in the temporary folder
            }
        }
    }

    private static async Task<IHost> StartWorkerAsync(CoordinatorStatus coordinator, CharGptSettings s, string id, string data, CancellationToken ct)
    {
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = TimeSpan.FromSeconds(20));
        AddWarningLog(builder);
        builder.Services.AddNearMLWorker(o =>
        {
            o.WorkerId = id;
            o.CoordinatorHost = "127.0.0.1";
            o.CoordinatorPort = coordinator.Port;
            o.CoordinatorFingerprint = coordinator.Fingerprint;
            o.DataDirectory = data;
            o.DatasetDirectory = Path.GetDirectoryName(Path.GetFullPath(s.TextFile));
            o.AttestationProvider = NearMLWorkerOptions.SimulatedProvider;
            o.ThreadCount = s.Threads;
            o.InitialReconnectDelay = TimeSpan.FromMilliseconds(50);
            o.MaxReconnectDelay = TimeSpan.FromMilliseconds(500);
        }).AddModel(CharGptSettings.ModelKey, ctx => Build(ctx, s.Threads));
        var host = builder.Build();
        await host.StartAsync(ct).ConfigureAwait(false);
        return host;
    }

    /// <summary>Warnings and errors of the hosts (a rejected update, a dropped worker) as single lines on stderr.</summary>
    private static void AddWarningLog(HostApplicationBuilder builder)
    {
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
            o.UseUtcTimestamp = true;
        });
        builder.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
    }

    /// <summary>The coordinator's model with its evaluations reported (the coordinator exposes accuracy only).</summary>
    private sealed class RecordingModel(ITrainableModel inner, Action<EvaluationResult> evaluated) : ITrainableModel
    {
        public string Engine => inner.Engine;

        public ParameterLayout Layout => inner.Layout;

        public ParameterSet Parameters => inner.Parameters;

        public ParameterSet Gradients => inner.Gradients;

        public void PullParameters() => inner.PullParameters();

        public void PushParameters() => inner.PushParameters();

        public void PullGradients() => inner.PullGradients();

        public void PushGradients() => inner.PushGradients();

        public float ComputeGradients(Batch batch) => inner.ComputeGradients(batch);

        public void OptimizerStep() => inner.OptimizerStep();

        public EvaluationResult Evaluate(IBatchSource source, CancellationToken cancellationToken = default)
        {
            var r = inner.Evaluate(source, cancellationToken);
            evaluated(r);
            return r;
        }

        public void ResetOptimizer(InnerOptimizerSettings settings) => inner.ResetOptimizer(settings);

        public OptimizerState ExportOptimizerState() => inner.ExportOptimizerState();

        public void ImportOptimizerState(OptimizerState state) => inner.ImportOptimizerState(state);

        public void Dispose() => inner.Dispose();
    }
}

/// <summary>Formatting of the comparison.</summary>
internal static class CharGptReport
{
    /// <summary>The lines printed after both runs.</summary>
    /// <param name="diloco">The DiLoCo run.</param>
    /// <param name="ddp">The DDP run.</param>
    /// <returns>The lines.</returns>
    public static IEnumerable<string> Lines(CharGptResult diloco, CharGptResult ddp)
    {
        var inv = CultureInfo.InvariantCulture;
        foreach (var r in new[] { ddp, diloco })
        {
            yield return string.Create(inv, $"{r.Strategy,-7} validation loss {r.ValidationLoss:F4}  workers sent {r.WorkerBytesSent,14:N0} B  coordinator sent {r.CoordinatorBytesSent,14:N0} B  ({r.Rounds} rounds, {r.Steps} steps/worker, {r.Elapsed.TotalSeconds:F0} s)");
        }

        var gap = (diloco.ValidationLoss / ddp.ValidationLoss) - 1;
        yield return string.Create(inv, $"diloco vs ddp: loss {gap:+0.00%;-0.00%}, {(double)ddp.WorkerBytesSent / diloco.WorkerBytesSent:F0}x fewer bytes sent by the workers, {(double)ddp.CoordinatorBytesSent / diloco.CoordinatorBytesSent:F0}x fewer by the coordinator");
    }
}
