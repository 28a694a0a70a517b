using System.Collections.Concurrent;
using Google.Protobuf;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using NearML.Core;
using NearML.Core.Contracts;
using NearML.Core.Protocol;
using NearML.Enclave;
using NearML.Hosting.Coordinator;
using NearML.Hosting.Jobs;
using NearML.Hosting.Tests.Jobs;

namespace NearML.Hosting.Tests.Coordinator;

[TestClass]
public static class TestAssembly
{
    public static string DatasetDirectory { get; private set; } = null!;

    [AssemblyInitialize]
    public static void Init(TestContext context) => DatasetDirectory = SyntheticFashionMnist.CreateTemp(1200, 300);

    [AssemblyCleanup]
    public static void Cleanup()
    {
        try
        {
            Directory.Delete(DatasetDirectory, true);
        }
        catch (IOException)
        {
        }
    }

    public static string NewTempDirectory(string prefix) => Path.Combine(Path.GetTempPath(), $"nearml-{prefix}-{Guid.NewGuid():N}");
}

/// <summary>Collects formatted log lines.</summary>
internal sealed class CapturingLoggerProvider : ILoggerProvider
{
    public ConcurrentQueue<string> Lines { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    public bool Contains(string text) => Lines.Any(l => l.Contains(text, StringComparison.Ordinal));

    private sealed class Logger(CapturingLoggerProvider owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner.Lines.Enqueue($"{logLevel} {category}: {formatter(state, exception)}{(exception is null ? string.Empty : " | " + exception.Message)}");
    }
}

/// <summary>A coordinator in a real host, on an ephemeral loopback port.</summary>
internal sealed class CoordinatorHarness : IAsyncDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private CoordinatorHarness(IHost host, CoordinatorStatus status, CapturingLoggerProvider logs, string dataDirectory)
    {
        Host = host;
        Status = status;
        Logs = logs;
        DataDirectory = dataDirectory;
    }

    public IHost Host { get; }

    public CoordinatorStatus Status { get; }

    public CapturingLoggerProvider Logs { get; }

    public string DataDirectory { get; }

    public int Port => Status.Port;

    public string Fingerprint => Status.Fingerprint!;

    public static void Defaults(NearMLCoordinatorOptions o, string dataDirectory)
    {
        o.Port = 0;
        o.DataDirectory = dataDirectory;
        o.DatasetDirectory = TestAssembly.DatasetDirectory;
        o.ShardCount = 12;
        o.Model = "mlp";
        o.ModelConfigJson = """{"hidden":16}""";
        o.Rounds = 3;
        o.InnerSteps = 5;
        o.BatchSize = 16;
        o.UpdateEncoding = "fp32";
        o.InnerLearningRate = 0.01; // the default norm bound H·η·√P (0.05·√P) then admits the fake workers' constant deltas (≤ 0.04)
        o.MinWorkers = 1;
        o.RoundTimeout = TimeSpan.FromSeconds(20);
        o.HeartbeatInterval = TimeSpan.FromSeconds(1);
        o.AllowSimulatedAttestation = true;
        o.EvaluationSamples = 100;
        o.SettleEveryRounds = 2;
    }

    public static IHost Build(Action<NearMLCoordinatorOptions> configure, CapturingLoggerProvider logs, Action<IServiceCollection>? services = null)
    {
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.AddProvider(logs);
        builder.Logging.SetMinimumLevel(LogLevel.Debug);
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = TimeSpan.FromSeconds(20));
        services?.Invoke(builder.Services);
        builder.Services.AddNearMLCoordinator(configure);
        return builder.Build();
    }

    public static async Task<CoordinatorHarness> StartAsync(Action<NearMLCoordinatorOptions>? configure = null, string? dataDirectory = null, Action<IServiceCollection>? services = null)
    {
        var data = dataDirectory ?? TestAssembly.NewTempDirectory("coord");
        var logs = new CapturingLoggerProvider();
        var host = Build(
            o =>
            {
                Defaults(o, data);
                configure?.Invoke(o);
            },
            logs,
            services);
        using var cts = new CancellationTokenSource(Timeout);
        await host.StartAsync(cts.Token);
        var status = host.Services.GetRequiredService<CoordinatorStatus>();
        await status.Listening.WaitAsync(Timeout);
        return new CoordinatorHarness(host, status, logs, data);
    }

    public async Task StopAsync()
    {
        using var cts = new CancellationTokenSource(Timeout);
        await Host.StopAsync(cts.Token);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        Host.Dispose();
    }
}

/// <summary>Produces NearML.Enclave simulated evidence for the handshake (or evidence bound to other report data).</summary>
internal sealed class SimulatedEvidence(bool bindOtherReportData = false) : IAttestationEvidenceProvider, IDisposable
{
    private readonly InsecureSimulatedAttestationProvider _provider = new(NullLogger<InsecureSimulatedAttestationProvider>.Instance);

    public async ValueTask<NearML.Core.Protocol.AttestationEvidence?> GetEvidenceAsync(ReadOnlyMemory<byte> reportData, IReadOnlyList<string> acceptedFormats, CancellationToken cancellationToken)
    {
        var data = bindOtherReportData ? new byte[64] : reportData;
        var e = await _provider.GetEvidenceAsync(data, cancellationToken);
        return NearML.Hosting.Worker.WorkerAttestation.EncodeEvidence(e);
    }

    public void Dispose() => _provider.Dispose();
}

internal enum FakeBehavior
{
    Normal,
    NaN,
    Silent,
    MultiPart,
    BadHash,
    Secure,
    SecureDropAfterKeys,
}

/// <summary>
/// A minimal worker written directly against NearML.Core's protocol (WorkerHandshake, ParameterTransfer): it downloads
/// the global parameters of each assignment and answers with a fixed pseudo-gradient, so rounds can be driven without the
/// real worker service.
/// </summary>
internal sealed class FakeWorker : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;
    private Task? _heartbeats;
    private NearML.Aggregation.SecureAggregationClient? _secure;
    private JobAssignment? _secureJob;
    private int _secureReplies;
    private byte[] _identitySeed = [];

    private FakeWorker(string id, FrameConnection connection, Admission admission, FakeBehavior behavior, float deltaValue, ulong samples)
    {
        Id = id;
        Connection = connection;
        Admission = admission;
        Behavior = behavior;
        DeltaValue = deltaValue;
        Samples = samples;
    }

    public string Id { get; }

    public FrameConnection Connection { get; }

    public Admission Admission { get; }

    public FakeBehavior Behavior { get; set; }

    public float DeltaValue { get; }

    public ulong Samples { get; }

    /// <summary>Gets the pseudo-gradient as a function of the downloaded global parameters (instead of <see cref="DeltaValue"/> everywhere).</summary>
    public Func<float[], float[]>? DeltaOf { get; private init; }

    public ConcurrentQueue<JobAssignment> Assignments { get; } = new();

    public ConcurrentQueue<Receipt> Receipts { get; } = new();

    public ConcurrentQueue<RelayResult> RelayResults { get; } = new();

    public ConcurrentDictionary<ulong, float[]> Downloaded { get; } = new();

    public Goodbye? Goodbye { get; private set; }

    public Exception? Fault { get; private set; }

    public Task Finished => _loop ?? Task.CompletedTask;

    /// <summary>
    /// Handshake options of a protocol-level test worker: it announces the built-in model and dataset keys and answers the
    /// announced job with the job's own layout fingerprint (it never builds the model; it only sends fixed deltas).
    /// </summary>
    public static WorkerHandshakeOptions JoinOptions(string id, IAttestationEvidenceProvider? evidence, KeyRotation? rotation = null) => new()
    {
        WorkerId = id,
        EvidenceProvider = evidence,
        KeyRotation = rotation,
        Capabilities = new WorkerCapabilities { ModelKeys = { "mlp", "cnn", "gpt" }, DatasetKeys = { JobDataset.FashionMnistName } },
        LayoutFingerprint = job => job.LayoutFingerprint,
    };

    public static async Task<FrameConnection> ConnectAsync(int port, string fingerprint) =>
        await ProtocolConnector.ConnectAsync("127.0.0.1", port, CoordinatorTrust.Pinned(fingerprint)).WaitAsync(CoordinatorHarness.Timeout);

    public static async Task<FakeWorker> StartAsync(CoordinatorHarness coordinator, string id, FakeBehavior behavior = FakeBehavior.Normal, float deltaValue = 0.01f, ulong samples = 100, IAttestationEvidenceProvider? evidence = null, Func<float[], float[]>? deltaOf = null)
    {
        var connection = await ConnectAsync(coordinator.Port, coordinator.Fingerprint);
        // One key per worker id (the coordinator binds an id to its first key for good): a fake worker that rejoins is the same
        // worker. The seed is kept for signing in secure rounds (the coordinator's configurations are the signed variant).
        var identitySeed = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes("fake-worker:" + id));
        using var identity = Ed25519Identity.FromSeed(identitySeed);
        using var simulated = new SimulatedEvidence();
        var admission = await WorkerHandshake.RunAsync(
            connection,
            identity,
            JoinOptions(id, evidence ?? simulated)).WaitAsync(CoordinatorHarness.Timeout);
        var worker = new FakeWorker(id, connection, admission, behavior, deltaValue, samples) { _identitySeed = identitySeed, DeltaOf = deltaOf };
        worker._heartbeats = connection.RunHeartbeatsAsync(TimeSpan.FromMilliseconds(admission.HeartbeatIntervalMs), worker._stop.Token);
        worker._loop = Task.Run(worker.LoopAsync);
        return worker;
    }

    public async Task WaitForReceiptsAsync(int count)
    {
        using var cts = new CancellationTokenSource(CoordinatorHarness.Timeout);
        while (Receipts.Count < count)
        {
            await Task.Delay(20, cts.Token);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await Finished.WaitAsync(CoordinatorHarness.Timeout);
        }
        catch (Exception ex) when (ex is OperationCanceledException or ProtocolException)
        {
        }

        if (_heartbeats is not null)
        {
            await _heartbeats.WaitAsync(CoordinatorHarness.Timeout);
        }

        await Connection.DisposeAsync();
        _stop.Dispose();
    }

    public async Task SayGoodbyeAsync()
    {
        await Connection.SendAsync(new Goodbye { Message = "test worker leaving" });
    }

    private async Task LoopAsync()
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var message = await Connection.ReceiveAsync(_stop.Token);
                switch (message)
                {
                    case null:
                        return;
                    case Goodbye bye:
                        Goodbye = bye;
                        return;
                    case Receipt r:
                        Receipts.Enqueue(r);
                        break;
                    case RelayResult relay:
                        RelayResults.Enqueue(relay);
                        break;
                    case AggregationEnvelope env when _secure is not null && _secureJob is not null && env.Round == _secureJob.Round:
                        if (Behavior == FakeBehavior.SecureDropAfterKeys && ++_secureReplies >= 2)
                        {
                            break;
                        }

                        var reply = _secure.Handle(NearML.Aggregation.AggregationRound.ParseServerMessage(env.Payload.Span));
                        await Connection.SendAsync(new AggregationEnvelope { JobId = env.JobId, Round = env.Round, Payload = reply.ToByteString(), PartCount = 1 }, _stop.Token);
                        break;
                    case JobAssignment a:
                        Assignments.Enqueue(a);
                        if (Behavior != FakeBehavior.Silent)
                        {
                            await AnswerAsync(a);
                        }

                        break;
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            Fault = ex;
        }
    }

    private async Task AnswerAsync(JobAssignment a)
    {
        var layout = new ParameterLayout(a.Model.Tensors.Select(t => (t.Name, t.Shape.ToArray())));
        var parameters = new ParameterSet(layout);
        await Connection.SendAsync(new ParameterRequest { ParameterVersion = a.ParameterVersion }, _stop.Token);
        await ParameterTransfer.ReceiveAsync(Connection, parameters, a.ParameterVersion, a.ParameterRoot.Memory, _stop.Token);
        Downloaded[a.ParameterVersion] = parameters.Buffer.ToArray();
        await Connection.SendAsync(new Progress { Round = a.Round, Step = 1, TotalSteps = a.HyperParameters.InnerSteps, Loss = 1.5f, SamplesPerSecond = 1000 }, _stop.Token);
        var delta = new float[parameters.Length];
        Array.Fill(delta, DeltaValue);
        if (DeltaOf is not null)
        {
            delta = DeltaOf(parameters.Buffer.ToArray());
        }

        if (a.HyperParameters.SecureAggregation is { } secure)
        {
            var config = secure.Config;
            var encoder = new NearML.Aggregation.FixedPointEncoder(secure.ClipRange, (int)secure.ValueBits, (int)config.NumClients, (int)secure.MaxWeight);
            Assert.AreEqual(encoder.RingBits, (int)config.RingBits);
            var input = new uint[NearML.Aggregation.FixedPointEncoder.EncodedLength(delta.Length)];
            encoder.Encode(delta, (int)a.HyperParameters.InnerSteps, input);
            _secureJob = a;
            _secureReplies = 0;
            _secure = new NearML.Aggregation.SecureAggregationClient(config, secure.ClientId, input, _identitySeed);
            await Connection.SendAsync(new AggregationEnvelope { JobId = a.JobId, Round = a.Round, Payload = _secure.Start().ToByteString(), PartCount = 1 }, _stop.Token);
            return;
        }

        if (Behavior == FakeBehavior.NaN)
        {
            delta[delta.Length / 2] = float.NaN;
        }

        var encoding = a.HyperParameters.UpdateEncoding;
        var payload = UpdateEncodings.Encode(encoding, delta);
        var sha = System.Security.Cryptography.SHA256.HashData(payload);
        var parts = Behavior is FakeBehavior.MultiPart or FakeBehavior.BadHash ? 3 : 1;
        if (Behavior == FakeBehavior.BadHash)
        {
            sha[0] ^= 1;
        }

        var per = (payload.Length + parts - 1) / parts;
        for (var i = 0; i < parts; i++)
        {
            var slice = payload.AsMemory(i * per, Math.Min(per, payload.Length - (i * per)));
            await Connection.SendAsync(
                new Update
                {
                    Round = a.Round,
                    BaseParameterVersion = a.ParameterVersion,
                    Encoding = encoding,
                    Payload = ByteString.CopyFrom(slice.Span),
                    SampleCount = Samples,
                    Loss = 1.25f,
                    PartIndex = (uint)i,
                    PartCount = (uint)parts,
                    PayloadSha256 = ByteString.CopyFrom(sha),
                },
                _stop.Token);
        }
    }
}
