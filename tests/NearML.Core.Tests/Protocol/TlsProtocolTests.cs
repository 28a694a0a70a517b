using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Google.Protobuf;
using NearML.Core.Contracts;
using NearML.Core.Protocol;
using NearML.Core.Protocol.Internal;

namespace NearML.Core.Tests.Protocol;

[TestClass]
public sealed class TlsProtocolTests
{
    private static X509Certificate2 s_certificate = null!;

    public TestContext TestContext { get; set; } = null!;

    [ClassInitialize]
    public static void CreateCertificate(TestContext context) => s_certificate = CoordinatorCertificate.CreateDevelopment();

    [ClassCleanup]
    public static void DisposeCertificate() => s_certificate.Dispose();

    private static CoordinatorTrust Pin => CoordinatorTrust.Pinned(CoordinatorCertificate.GetFingerprint(s_certificate));

    /// <summary>A coordinator on 127.0.0.1:0: handshake, then serves ParameterRequests until Goodbye or close.</summary>
    private sealed class TestCoordinator : IAsyncDisposable
    {
        public ConcurrentQueue<(EndPoint? Remote, Exception Fault)> Faults { get; } = new();

        public ConcurrentQueue<AdmittedWorker> Admitted { get; } = new();

        public ProtocolListener Listener { get; }

        public CoordinatorHandshakeOptions Handshake { get; } = new() { Policy = AdmissionPolicies.AdmitAnyIdentity };

        public ParameterSet? Parameters { get; set; }

        public TestCoordinator()
        {
            Listener = new ProtocolListener(
                new IPEndPoint(IPAddress.Loopback, 0),
                s_certificate,
                ServeAsync,
                new ProtocolListenerOptions { ConnectionFaulted = (remote, ex) => Faults.Enqueue((remote, ex)) });
            Listener.Start();
        }

        public int Port => Listener.LocalEndPoint.Port;

        // The coordinator records the worker just after sending Admission, so the worker may see it first.
        public async Task<AdmittedWorker> NextAdmittedAsync()
        {
            for (var i = 0; i < 500; i++)
            {
                if (Admitted.TryDequeue(out var worker))
                {
                    return worker;
                }

                await Task.Delay(10);
            }

            throw new AssertFailedException("no worker was admitted within 5 s");
        }

        public async Task WaitForAdmittedCountAsync(int count)
        {
            for (var i = 0; i < 500 && Admitted.Count < count; i++)
            {
                await Task.Delay(10);
            }

            Assert.AreEqual(count, Admitted.Count);
        }

        private async Task ServeAsync(FrameConnection connection, CancellationToken cancellationToken)
        {
            Admitted.Enqueue(await CoordinatorHandshake.RunAsync(connection, Handshake, cancellationToken));
            while (true)
            {
                switch (await connection.ReceiveAsync(cancellationToken))
                {
                    case null or Goodbye:
                        return;
                    case ParameterRequest request:
                        await ParameterTransfer.SendAsync(connection, Parameters!, request.ParameterVersion, cancellationToken: cancellationToken);
                        break;
                    case Heartbeat:
                        break;
                    case var other:
                        throw new ProtocolException(ErrorCode.UnexpectedMessage, $"unexpected {other!.GetType().Name}");
                }
            }
        }

        public ValueTask DisposeAsync() => Listener.DisposeAsync();
    }

    private async Task<(FrameConnection Connection, Admission Admission, Ed25519Identity Identity)> JoinAsync(
        TestCoordinator coordinator, string id = "worker-1", WorkerHandshakeOptions? options = null)
    {
        var connection = await ProtocolConnector.ConnectAsync("127.0.0.1", coordinator.Port, Pin, cancellationToken: TestContext.CancellationToken);
        var identity = Ed25519Identity.Generate();
        var admission = await WorkerHandshake.RunAsync(connection, identity, options ?? new WorkerHandshakeOptions { WorkerId = id }, TestContext.CancellationToken);
        return (connection, admission, identity);
    }

    private async Task<SslStream> RawTlsAsync(int port)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, port, TestContext.CancellationToken);
        var ssl = new SslStream(new NetworkStream(socket, ownsSocket: true));
        await ssl.AuthenticateAsClientAsync(
            new SslClientAuthenticationOptions { TargetHost = "localhost", EnabledSslProtocols = SslProtocols.Tls13, RemoteCertificateValidationCallback = static (_, certificate, _, _) => certificate is not null && CoordinatorCertificate.GetFingerprint(certificate) == CoordinatorCertificate.GetFingerprint(s_certificate) },
            TestContext.CancellationToken);
        return ssl;
    }

    [TestMethod]
    public async Task Worker_is_admitted_over_TLS_13_with_a_pinned_certificate()
    {
        await using var coordinator = new TestCoordinator();
        var (connection, admission, identity) = await JoinAsync(coordinator);
        await using var _ = connection;
        using var __ = identity;
        Assert.AreEqual(32, admission.SessionId.Length);
        Assert.AreEqual(15000u, admission.HeartbeatIntervalMs);
        Assert.AreEqual(45000u, admission.HeartbeatTimeoutMs);
        Assert.AreEqual(32, connection.ChannelBinding.Length);
        var worker = await coordinator.NextAdmittedAsync();
        Assert.AreEqual("worker-1", worker.WorkerId);
        Assert.AreEqual(admission.SessionId, worker.SessionId);
        CollectionAssert.AreEqual(identity.PublicKey.ToArray(), worker.PublicKey.ToArray());
    }

    [TestMethod]
    public async Task Wrong_pin_is_refused_naming_both_fingerprints()
    {
        await using var coordinator = new TestCoordinator();
        using var other = CoordinatorCertificate.CreateDevelopment();
        var ex = await Assert.ThrowsExactlyAsync<ProtocolException>(() => ProtocolConnector.ConnectAsync(
            "127.0.0.1", coordinator.Port, CoordinatorTrust.Pinned(CoordinatorCertificate.GetFingerprint(other)), cancellationToken: TestContext.CancellationToken));
        Assert.AreEqual(ErrorCode.AuthenticationFailed, ex.Code);
        StringAssert.Contains(ex.Message, "does not match the pinned");
        StringAssert.Contains(ex.Message, CoordinatorCertificate.GetFingerprint(s_certificate));
    }

    [TestMethod]
    public async Task CA_validation_accepts_a_configured_root_and_refuses_an_unknown_one()
    {
        await using var coordinator = new TestCoordinator();
        await using (var ok = await ProtocolConnector.ConnectAsync(
            "127.0.0.1", coordinator.Port, CoordinatorTrust.CertificateAuthority([s_certificate]), cancellationToken: TestContext.CancellationToken))
        {
            Assert.AreEqual(32, ok.ChannelBinding.Length);
        }

        var ex = await Assert.ThrowsExactlyAsync<ProtocolException>(() => ProtocolConnector.ConnectAsync(
            "127.0.0.1", coordinator.Port, CoordinatorTrust.CertificateAuthority(), cancellationToken: TestContext.CancellationToken));
        Assert.AreEqual(ErrorCode.AuthenticationFailed, ex.Code);
        StringAssert.Contains(ex.Message, "failed validation");
    }

    [TestMethod]
    public async Task Incompatible_worker_version_is_refused_with_a_clear_reason()
    {
        await using var coordinator = new TestCoordinator();
        await using var connection = await ProtocolConnector.ConnectAsync("127.0.0.1", coordinator.Port, Pin, cancellationToken: TestContext.CancellationToken);
        using var identity = Ed25519Identity.Generate();
        var ex = await Assert.ThrowsExactlyAsync<AdmissionRefusedException>(() => WorkerHandshake.RunAsync(
            connection, identity, new WorkerHandshakeOptions { WorkerId = "future", VersionOverride = new ProtocolVersion { Major = 4, Minor = 3 } }, TestContext.CancellationToken));
        Assert.AreEqual(RefusalReason.IncompatibleVersion, ex.Reason);
        StringAssert.Contains(ex.Message, "speaks protocol 4.3; this coordinator speaks 3.0");
        Assert.IsFalse(ex.IsTransient);
    }

    [TestMethod]
    public async Task Worker_refuses_a_coordinator_of_another_major_version()
    {
        var (left, right) = await TestSockets.PairAsync();
        await using var worker = new FrameConnection(left);
        await using var coordinator = new FrameConnection(right);
        using var identity = Ed25519Identity.Generate();
        var run = WorkerHandshake.RunAsync(worker, identity, new WorkerHandshakeOptions { WorkerId = "w" }, TestContext.CancellationToken);
        await coordinator.ReceiveAsync<Hello>(TestContext.CancellationToken);
        await coordinator.SendAsync(new Challenge { Version = new ProtocolVersion { Major = 0, Minor = 9 }, CoordinatorNonce = ByteString.CopyFrom(new byte[32]) }, TestContext.CancellationToken);
        var ex = await Assert.ThrowsExactlyAsync<ProtocolException>(() => run);
        Assert.AreEqual(ErrorCode.IncompatibleVersion, ex.Code);
        var told = await Assert.ThrowsExactlyAsync<ProtocolException>(async () => await coordinator.ReceiveAsync<Evidence>(TestContext.CancellationToken));
        Assert.AreEqual(ErrorCode.IncompatibleVersion, told.Code);
        StringAssert.Contains(told.Message, "coordinator speaks protocol 0.9");
    }

    [TestMethod]
    public async Task Replayed_handshake_is_refused()
    {
        await using var coordinator = new TestCoordinator();
        using var identity = Ed25519Identity.Generate();
        var hello = new Hello
        {
            Version = WireProtocol.CurrentVersion,
            WorkerId = "replayed",
            IdentityPublicKey = ByteString.CopyFrom(identity.PublicKey.Span),
            WorkerNonce = ByteString.CopyFrom(new byte[32]),
        }.ToByteArray();

        // A genuine handshake, recorded.
        Evidence recorded;
        await using (var first = await ProtocolConnector.ConnectAsync("127.0.0.1", coordinator.Port, Pin, cancellationToken: TestContext.CancellationToken))
        {
            await first.SendSerializedAsync(FrameType.Hello, hello, TestContext.CancellationToken);
            var challenge = (await first.ReceiveFrameAsync(TestContext.CancellationToken))!.Value.Payload.ToArray();
            var transcript = HandshakeTranscript.Compute(hello, challenge, first.ChannelBinding.Span);
            recorded = new Evidence { IdentitySignature = ByteString.CopyFrom(identity.Sign(HandshakeTranscript.SignedMessage(transcript))) };
            await first.SendAsync(recorded, TestContext.CancellationToken);
            await first.ReceiveAsync<Admission>(TestContext.CancellationToken);
        }

        // The same bytes, replayed on a new connection: the coordinator's fresh nonce makes the old signature worthless.
        await using var second = await ProtocolConnector.ConnectAsync("127.0.0.1", coordinator.Port, Pin, cancellationToken: TestContext.CancellationToken);
        await second.SendSerializedAsync(FrameType.Hello, hello, TestContext.CancellationToken);
        await second.ReceiveAsync<Challenge>(TestContext.CancellationToken);
        await second.SendAsync(recorded, TestContext.CancellationToken);
        var refusal = await second.ReceiveAsync<Refusal>(TestContext.CancellationToken);
        Assert.AreEqual(RefusalReason.BadSignature, refusal.Reason);
        StringAssert.Contains(refusal.Message, "replayed");
        Assert.IsNull(await second.ReceiveFrameAsync(TestContext.CancellationToken), "the coordinator closes after a refusal");
        await coordinator.WaitForAdmittedCountAsync(1);
    }

    [TestMethod]
    public async Task Signature_bound_to_another_TLS_channel_is_refused()
    {
        await using var coordinator = new TestCoordinator();
        using var identity = Ed25519Identity.Generate();
        await using var connection = await ProtocolConnector.ConnectAsync("127.0.0.1", coordinator.Port, Pin, cancellationToken: TestContext.CancellationToken);
        var hello = new Hello
        {
            Version = WireProtocol.CurrentVersion,
            WorkerId = "relayed",
            IdentityPublicKey = ByteString.CopyFrom(identity.PublicKey.Span),
            WorkerNonce = ByteString.CopyFrom(new byte[32]),
        }.ToByteArray();
        await connection.SendSerializedAsync(FrameType.Hello, hello, TestContext.CancellationToken);
        var challenge = (await connection.ReceiveFrameAsync(TestContext.CancellationToken))!.Value.Payload.ToArray();
        var otherChannel = new byte[32]; // what a worker talking to a relaying man-in-the-middle would see
        var transcript = HandshakeTranscript.Compute(hello, challenge, otherChannel);
        await connection.SendAsync(new Evidence { IdentitySignature = ByteString.CopyFrom(identity.Sign(HandshakeTranscript.SignedMessage(transcript))) }, TestContext.CancellationToken);
        Assert.AreEqual(RefusalReason.BadSignature, (await connection.ReceiveAsync<Refusal>(TestContext.CancellationToken)).Reason);
    }

    private sealed class EchoEvidence : IAttestationEvidenceProvider
    {
        public ValueTask<AttestationEvidence?> GetEvidenceAsync(ReadOnlyMemory<byte> reportData, IReadOnlyList<string> acceptedFormats, CancellationToken cancellationToken) =>
            ValueTask.FromResult<AttestationEvidence?>(new AttestationEvidence(acceptedFormats[0], reportData.ToArray()));
    }

    private sealed class BindingPolicy : IAdmissionPolicy
    {
        public ValueTask<AdmissionDecision> EvaluateAsync(AdmissionRequest request, CancellationToken cancellationToken) =>
            ValueTask.FromResult(
                request.WorkerId == "banned" ? AdmissionDecision.Refuse(RefusalReason.Policy, "worker 'banned' is on the deny list")
                : request.ReportData.Length == 64 && request.Evidence.Span.SequenceEqual(request.ReportData.Span) ? AdmissionDecision.Admit
                : AdmissionDecision.Refuse(RefusalReason.AttestationFailed, "report data does not bind this session"));
    }

    [TestMethod]
    public async Task Evidence_binds_the_session_report_data_and_policy_refusals_reach_the_worker()
    {
        await using var coordinator = new TestCoordinator();
        coordinator.Handshake.Policy = new BindingPolicy();
        coordinator.Handshake.EvidenceRequired = true;
        coordinator.Handshake.AcceptedEvidenceFormats.Add("simulated");

        var (connection, _, identity) = await JoinAsync(coordinator, options: new WorkerHandshakeOptions { WorkerId = "attested", EvidenceProvider = new EchoEvidence() });
        await using (connection)
        using (identity)
        {
            var admitted = await coordinator.NextAdmittedAsync();
            Assert.AreEqual("simulated", admitted.EvidenceFormat);
        }

        var banned = await Assert.ThrowsExactlyAsync<AdmissionRefusedException>(
            () => JoinAsync(coordinator, options: new WorkerHandshakeOptions { WorkerId = "banned", EvidenceProvider = new EchoEvidence() }));
        Assert.AreEqual(RefusalReason.Policy, banned.Reason);
        Assert.AreEqual("worker 'banned' is on the deny list", banned.CoordinatorMessage);

        var unattested = await Assert.ThrowsExactlyAsync<AdmissionRefusedException>(() => JoinAsync(coordinator, "plain"));
        Assert.AreEqual(RefusalReason.AttestationRequired, unattested.Reason);
    }

    [TestMethod]
    public async Task Silent_client_times_out_with_a_reason()
    {
        await using var coordinator = new TestCoordinator();
        coordinator.Handshake.Timeout = TimeSpan.FromMilliseconds(300);
        await using var connection = await ProtocolConnector.ConnectAsync("127.0.0.1", coordinator.Port, Pin, cancellationToken: TestContext.CancellationToken);
        var ex = await Assert.ThrowsExactlyAsync<ProtocolException>(async () => await connection.ReceiveAsync<Challenge>(TestContext.CancellationToken));
        Assert.IsTrue(ex.IsRemote);
        Assert.AreEqual(ErrorCode.Timeout, ex.Code);
    }

    [TestMethod]
    public async Task Bad_clients_are_closed_with_a_reason_and_the_listener_keeps_serving_others()
    {
        await using var coordinator = new TestCoordinator { Parameters = ParameterSet.Create(("w", [300_000])) };
        coordinator.Parameters.Data.Fill(0.25f);
        var (good, _, goodIdentity) = await JoinAsync(coordinator, "steady");
        await using var _ = good;
        using var __ = goodIdentity;
        var ct = TestContext.CancellationToken;

        // 1. Not TLS at all.
        using (var raw = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            await raw.ConnectAsync(IPAddress.Loopback, coordinator.Port, ct);
            await raw.SendAsync("GET / HTTP/1.1\r\n\r\n"u8.ToArray(), ct);
            var buffer = new byte[1024];
            while (await raw.ReceiveAsync(buffer, ct) > 0)
            {
            }
        }

        // 2. Garbage after TLS, 3. an oversized frame, 4. a truncated frame: each gets an Error naming the fault, then EOF.
        var garbage = new byte[1000];
        new Random(11).NextBytes(garbage);
        garbage[4] = 0x7F; // an unknown type unless the length check fires first
        var cases = new (byte[] Bytes, bool ShutdownAfter, ErrorCode[] Expected)[]
        {
            (garbage, false, [ErrorCode.FrameTooLarge, ErrorCode.UnknownFrameType]),
            (TestSockets.Header(1 << 30, (ushort)FrameType.Hello), false, [ErrorCode.FrameTooLarge]),
            ([.. TestSockets.Header(100, (ushort)FrameType.Hello), .. new byte[10]], true, [ErrorCode.TruncatedFrame]),
        };
        foreach (var (bytes, shutdown, expected) in cases)
        {
            var ssl = await RawTlsAsync(coordinator.Port);
            await ssl.WriteAsync(bytes, ct);
            await ssl.FlushAsync(ct);
            if (shutdown)
            {
                await ssl.ShutdownAsync();
            }

            // Read to the end of the stream: the coordinator's reply is exactly one Error frame, then it closes.
            await using var reply = new MemoryStream();
            await ssl.CopyToAsync(reply, ct);
            await ssl.DisposeAsync();
            var bytes_ = reply.ToArray();
            Assert.IsGreaterThan(6, bytes_.Length);
            var length = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(bytes_);
            Assert.AreEqual((ushort)FrameType.Error, System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(bytes_.AsSpan(4)));
            Assert.AreEqual(6 + length, (uint)bytes_.Length, "nothing follows the Error frame");
            var error = Error.Parser.ParseFrom(bytes_, 6, (int)length);
            CollectionAssert.Contains(expected, error.Code, error.Message);
        }

        // The listener reported each fault and kept going: the established worker still downloads, a new one still joins.
        Assert.IsGreaterThanOrEqualTo(4, coordinator.Faults.Count, string.Join("\n", coordinator.Faults.Select(f => f.Fault.Message)));
        Assert.IsTrue(coordinator.Faults.Any(f => f.Fault is ProtocolException { Code: ErrorCode.AuthenticationFailed }));
        await good.SendAsync(new ParameterRequest { ParameterVersion = 9 }, ct);
        var copy = coordinator.Parameters.CreateZeros();
        await ParameterTransfer.ReceiveAsync(good, copy, 9, cancellationToken: ct);
        CollectionAssert.AreEqual(coordinator.Parameters.Buffer, copy.Buffer);
        var (late, _, lateIdentity) = await JoinAsync(coordinator, "late");
        await using var ___ = late;
        using var ____ = lateIdentity;
        await coordinator.WaitForAdmittedCountAsync(2);
    }

    [TestMethod]
    public async Task Hundred_megabyte_parameter_set_round_trips_over_TLS_with_hash_check()
    {
        const int Floats = 25 * 1024 * 1024; // 100 MiB
        var source = ParameterSet.Create(("layer0", [Floats / 2]), ("layer1", [Floats / 2]));
        var data = source.Data;
        for (var i = 0; i < data.Length; i++)
        {
            data[i] = (i % 10_007) * 1e-3f;
        }

        await using var coordinator = new TestCoordinator { Parameters = source };
        var (connection, _, identity) = await JoinAsync(coordinator, "big");
        await using var _ = connection;
        using var __ = identity;
        var destination = source.CreateZeros();
        var expectedRoot = ParameterManifest.Compute(source).GetRoot();
        await connection.SendAsync(new ParameterRequest { ParameterVersion = 1 }, TestContext.CancellationToken);
        var manifest = await ParameterTransfer.ReceiveAsync(connection, destination, 1, expectedRoot, TestContext.CancellationToken);
        Assert.AreEqual(100L * 1024 * 1024, manifest.TotalBytes);
        Assert.AreEqual(100, manifest.ChunkCount);
        Assert.IsTrue(source.Buffer.AsSpan().SequenceEqual(destination.Buffer));
        await connection.SendAsync(new Goodbye { Message = "done" }, TestContext.CancellationToken);
    }
}
