using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Threading.Channels;
using Google.Protobuf;
using NearML.Core;
using NearML.Core.Contracts;
using NearML.Core.Protocol;
using NearML.Hosting.Jobs;
using NearML.Ledger;

namespace NearML.Hosting.Tests.Worker;

/// <summary>
/// A scripted coordinator for worker tests: a real <see cref="ProtocolListener"/> on 127.0.0.1:0 with TLS 1.3 and
/// <see cref="CoordinatorHandshake"/>; each admitted connection is handed to the test as a <see cref="FakeSession"/> that the
/// test drives frame by frame. Every wait is bounded by <see cref="WaitTimeout"/>.
/// </summary>
internal sealed class FakeCoordinator : IAsyncDisposable
{
    public static readonly TimeSpan WaitTimeout = TimeSpan.FromSeconds(120);

    private readonly X509Certificate2 _certificate;
    private readonly ProtocolListener _listener;
    private readonly Channel<FakeSession> _sessions = Channel.CreateUnbounded<FakeSession>();
    private readonly bool _ownsCertificate;
    private readonly bool _ownsReceiptKey;
    private int _connections;

    public FakeCoordinator(IAdmissionPolicy? policy = null, X509Certificate2? certificate = null, int port = 0, NearKeyPair? receiptKey = null)
    {
        _certificate = certificate ?? CoordinatorCertificate.CreateDevelopment();
        _ownsCertificate = certificate is null;
        ReceiptKey = receiptKey ?? NearKeyPair.Generate();
        _ownsReceiptKey = receiptKey is null;
        Fingerprint = CoordinatorCertificate.GetFingerprint(_certificate);
        Handshake = new CoordinatorHandshakeOptions { Policy = policy ?? AdmissionPolicies.AdmitAnyIdentity };
        _listener = new ProtocolListener(new IPEndPoint(IPAddress.Loopback, port), _certificate, ServeAsync);
        _listener.Start();
    }

    /// <summary>Gets the TLS certificate (to restart a coordinator with the same identity).</summary>
    public X509Certificate2 Certificate => _certificate;

    public CoordinatorHandshakeOptions Handshake { get; }

    public string Fingerprint { get; }

    public int Port => _listener.LocalEndPoint.Port;

    /// <summary>Gets the number of TCP connections whose handshake started (admitted or refused).</summary>
    public int Connections => Volatile.Read(ref _connections);

    public NearKeyPair ReceiptKey { get; }

    public async Task<FakeSession> NextSessionAsync()
    {
        using var timeout = new CancellationTokenSource(WaitTimeout);
        return await _sessions.Reader.ReadAsync(timeout.Token);
    }

    public async Task WaitForConnectionsAsync(int count)
    {
        using var timeout = new CancellationTokenSource(WaitTimeout);
        while (Connections < count)
        {
            await Task.Delay(20, timeout.Token);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _listener.DisposeAsync();
        if (_ownsCertificate)
        {
            _certificate.Dispose();
        }

        if (_ownsReceiptKey)
        {
            ReceiptKey.Dispose();
        }
    }

    private async Task ServeAsync(FrameConnection connection, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _connections);
        var admitted = await CoordinatorHandshake.RunAsync(connection, Handshake, cancellationToken);
        var session = new FakeSession(this, connection, admitted);
        await _sessions.Writer.WriteAsync(session, cancellationToken);
        await session.Ended.Task.WaitAsync(cancellationToken);
    }
}

/// <summary>One admitted worker connection, driven by the test.</summary>
internal sealed class FakeSession(FakeCoordinator owner, FrameConnection connection, AdmittedWorker worker)
{
    public FrameConnection Connection { get; } = connection;

    public AdmittedWorker Worker { get; } = worker;

    public TaskCompletionSource Ended { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Closes the connection (the listener disposes it when the handler returns).</summary>
    public void End() => Ended.TrySetResult();

    public Task SendAsync(IMessage message) => Connection.SendAsync(message).AsTask();

    /// <summary>Receives the next frame that is not a heartbeat (null at a clean close).</summary>
    public async Task<IMessage?> ReceiveAsync()
    {
        using var timeout = new CancellationTokenSource(FakeCoordinator.WaitTimeout);
        while (true)
        {
            var message = await Connection.ReceiveAsync(timeout.Token);
            if (message is not Heartbeat)
            {
                return message;
            }
        }
    }

    /// <summary>Receives frames until one of type <typeparamref name="T"/>, skipping heartbeats and progress.</summary>
    public async Task<T> ReceiveUntilAsync<T>(List<IMessage>? seen = null)
        where T : class, IMessage
    {
        while (true)
        {
            var message = await ReceiveAsync() ?? throw new AssertFailedException($"the worker closed the connection while a {typeof(T).Name} was expected");
            seen?.Add(message);
            if (message is T expected)
            {
                return expected;
            }

            if (message is not Progress)
            {
                throw new AssertFailedException($"expected {typeof(T).Name} but received {message.Descriptor.Name}: {message}");
            }
        }
    }

    /// <summary>Receives all parts of the next update (skipping progress) and reassembles the payload, checking its SHA-256.</summary>
    public async Task<(Update First, byte[] Payload)> ReceiveUpdateAsync(List<IMessage>? seen = null)
    {
        var first = await ReceiveUntilAsync<Update>(seen);
        var parts = new List<Update> { first };
        for (var i = 1; i < first.PartCount; i++)
        {
            parts.Add(await ReceiveUntilAsync<Update>(seen));
        }

        var payload = parts.SelectMany(static p => p.Payload.ToByteArray()).ToArray();
        var hash = System.Security.Cryptography.SHA256.HashData(payload);
        CollectionAssert.AreEqual(hash, first.PayloadSha256.ToByteArray(), "payload_sha256 must be the SHA-256 of the whole payload");
        for (var i = 0; i < parts.Count; i++)
        {
            Assert.AreEqual((uint)i, parts[i].PartIndex);
            Assert.AreEqual(first.PartCount, parts[i].PartCount);
            Assert.IsTrue(parts[i].Payload.Length <= (1 << 20), "parts carry at most 1 MiB of payload");
        }

        return (first, payload);
    }

    /// <summary>Signs a receipt for an update and sends it.</summary>
    public async Task SendReceiptAsync(string jobId, ulong round, byte[] payload, ulong samples, bool corruptSignature = false)
    {
        var receipt = new ContributionReceipt(
            jobId, (long)round, "worker-a.testnet", samples, 0, 5, 100, AttestationVerdict.Unattested, System.Security.Cryptography.SHA256.HashData(payload), 1_700_000_000_000);
        var signed = SignedReceipt.Sign(receipt, owner.ReceiptKey);
        var signature = (byte[])signed.CoordinatorSignature.Clone();
        if (corruptSignature)
        {
            signature[5] ^= 0x40;
            signed = signed with { CoordinatorSignature = signature };
        }

        await SendAsync(new Receipt
        {
            JobId = jobId,
            Round = round,
            Sequence = round,
            Entry = ByteString.CopyFrom(signed.ToBorsh()),
            Signature = ByteString.CopyFrom(signature),
        });
    }
}

/// <summary>A small MLP job on the real Fashion-MNIST, shared by the tests (the dataset loads once per process).</summary>
internal sealed class TestJob
{
    public const string DatasetDirectory = "/usr/share/datasets/fashion-mnist";
    public const string JobId = "job-test";
    public const string ConfigJson = """{"inputs":784,"hidden":16,"classes":10}""";
    public const int ShardCount = 60;
    public const ulong Seed = 7;

    private static readonly Lazy<JobDataset> SharedDataset = new(() => JobDataset.LoadFashionMnist(DatasetDirectory, ShardCount, Seed));
    private static readonly Lazy<TestJob> Shared = new(() => new TestJob(ConfigJson));
    public TestJob(string configJson)
    {
        Dataset = SharedDataset.Value;
        var model = ModelCatalog.Create("mlp", configJson, (int)Seed);
        Parameters = model.Parameters.Clone();
        Config = ModelCatalog.Describe("mlp", configJson, model);
        Manifest = ParameterManifest.Compute(Parameters, 4096);
    }

    /// <summary>Gets the small default job (hidden width 16).</summary>
    public static TestJob Instance => Shared.Value;

    public JobDataset Dataset { get; }

    public ParameterSet Parameters { get; }

    public ModelConfig Config { get; }

    public ParameterManifest Manifest { get; }

    public static bool Available => File.Exists(Path.Combine(DatasetDirectory, "train-images-idx3-ubyte.gz"));

    /// <summary>Makes the calling test Inconclusive, with the install hint, when Fashion-MNIST is not installed.</summary>
    public static void RequireDataset()
    {
        if (!Available)
        {
            Assert.Inconclusive($"Fashion-MNIST is not installed at {DatasetDirectory} (apt-get install dataset-fashion-mnist)");
        }
    }

    public JobAssignment Assignment(ulong round, ulong version = 1, uint steps = 5, long deadlineUnixMs = 0, UpdateEncoding encoding = UpdateEncoding.Int8, byte[]? manifestRoot = null)
    {
        var hp = new HyperParameters
        {
            SyncStrategy = SyncStrategy.Diloco,
            InnerSteps = steps,
            BatchSize = 32,
            InnerLearningRate = 1e-3,
            WeightDecay = 0.01,
            OuterLearningRate = 0.7,
            OuterMomentum = 0.9,
            UpdateEncoding = encoding,
            Seed = Seed,
        };
        var assignment = new JobAssignment
        {
            JobId = JobId,
            Round = round,
            ParameterVersion = version,
            ParameterRoot = ByteString.CopyFrom(Manifest.Root),
            Model = Config,
            HyperParameters = hp,
            DeadlineUnixMs = deadlineUnixMs,
            Dataset = new DatasetSpec
            {
                Key = "fashion-mnist",
                Name = "fashion-mnist",
                ShardCount = (uint)ShardCount,
                RequestedShardCount = (uint)ShardCount,
                ManifestRoot = ByteString.CopyFrom(manifestRoot ?? Dataset.ManifestRoot.ToArray()),
            },
        };
        assignment.ShardIds.Add([0u, 1u, 2u]);
        return assignment;
    }
}
