using System.Globalization;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;
using NearML.Core.Contracts;
using NearML.Core.Protocol;
using NearML.Enclave;

namespace NearML.Hosting.ProcessTests;

/// <summary>
/// One coordinator and two honest workers keep training while each test attacks the coordinator: every attack must be
/// refused or dropped with a logged reason, and the honest workers must still earn a receipt for a round completed after it.
/// </summary>
[TestClass]
public sealed class BadInputTests
{
    private static TestCluster? s_cluster;
    private static SampleProcess? s_coordinator;
    private static SampleProcess? s_honest0;
    private static SampleProcess? s_honest1;

    public TestContext TestContext { get; set; } = null!;

    private static TimeSpan Wait => TimeSpan.FromSeconds(45);

    [ClassInitialize]
    public static async Task StartAsync(TestContext context)
    {
        s_cluster = new TestCluster(context, "bad-input");
        s_coordinator = await s_cluster.StartCoordinatorAsync(0, "--rounds", "1000", "--steps", "20", "--batch-size", "32", "--min-workers", "2", "--round-timeout", "00:00:30");
        s_honest0 = s_cluster.StartWorker("h0");
        s_honest1 = s_cluster.StartWorker("h1");
        await s_honest0.WaitForStdoutAsync(@"^RECEIPT id=h0 ", TimeSpan.FromSeconds(90), 0, context.CancellationToken);
    }

    private static bool s_allPassed = true;

    [TestCleanup]
    public void RecordOutcome() => s_allPassed &= TestContext.CurrentTestOutcome == UnitTestOutcome.Passed;

    [ClassCleanup]
    public static async Task StopAsync()
    {
        if (s_cluster is not null)
        {
            if (s_allPassed)
            {
                s_cluster.Passed();
            }

            await s_cluster.DisposeAsync();
        }
    }

    [TestMethod]
    [TestCategory("Process")]
    [TestCategory("Slow")]
    [Timeout(90_000, CooperativeCancellation = true)]
    public async Task Garbage_bytes_before_TLS_are_dropped()
    {
        var mark = Mark();
        using (var tcp = new System.Net.Sockets.TcpClient())
        {
            await tcp.ConnectAsync("127.0.0.1", s_cluster!.Port, TestContext.CancellationToken);
            var garbage = new byte[4096];
            new Random(1).NextBytes(garbage);
            await tcp.GetStream().WriteAsync(garbage, TestContext.CancellationToken);
            var buffer = new byte[1024];
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(TestContext.CancellationToken);
            deadline.CancelAfter(Wait);
            try
            {
                while (await tcp.GetStream().ReadAsync(buffer, deadline.Token) > 0)
                {
                }
            }
            catch (IOException)
            {
                // reset: closed by the coordinator
            }
        }

        await s_coordinator!.WaitForStderrAsync(@"(?i)(tls|ssl|authentication|handshake)", Wait, mark.Stderr, TestContext.CancellationToken);
        await AssertHonestWorkersContinueAsync(mark);
    }

    [TestMethod]
    [TestCategory("Process")]
    [TestCategory("Slow")]
    [Timeout(90_000, CooperativeCancellation = true)]
    public async Task Garbage_frame_inside_TLS_gets_an_error_and_is_closed()
    {
        var mark = Mark();
        await using (var client = await RawClient.ConnectAsync(s_cluster!.Port, s_cluster.Fingerprint, TestContext.CancellationToken))
        {
            var garbage = new byte[64];
            new Random(2).NextBytes(garbage);
            await client.WriteAsync([.. RawClient.Header(64, 0x7A7A), .. garbage], TestContext.CancellationToken);
            var error = await client.ReadUntilErrorAsync(Wait, TestContext.CancellationToken);
            Assert.IsNotNull(error, "the coordinator closed without an Error frame");
            Assert.AreEqual(ErrorCode.UnknownFrameType, error.Code, error.Message);
        }

        await s_coordinator!.WaitForStderrAsync(@"(?i)unknown.?frame.?type", Wait, mark.Stderr, TestContext.CancellationToken);
        await AssertHonestWorkersContinueAsync(mark);
    }

    [TestMethod]
    [TestCategory("Process")]
    [TestCategory("Slow")]
    [Timeout(90_000, CooperativeCancellation = true)]
    public async Task Oversized_frame_is_refused_before_its_payload_is_read()
    {
        var mark = Mark();
        await using (var client = await RawClient.ConnectAsync(s_cluster!.Port, s_cluster.Fingerprint, TestContext.CancellationToken))
        {
            // Announce 1 GiB; send only the header. The coordinator must answer from the header alone.
            await client.WriteAsync(RawClient.Header(1u << 30, (ushort)FrameType.Hello), TestContext.CancellationToken);
            var error = await client.ReadUntilErrorAsync(Wait, TestContext.CancellationToken);
            Assert.IsNotNull(error, "the coordinator closed without an Error frame");
            Assert.AreEqual(ErrorCode.FrameTooLarge, error.Code, error.Message);
        }

        await s_coordinator!.WaitForStderrAsync(@"(?i)(too.?large|exceeds|oversized|maximum)", Wait, mark.Stderr, TestContext.CancellationToken);
        await AssertHonestWorkersContinueAsync(mark);
    }

    [TestMethod]
    [TestCategory("Process")]
    [TestCategory("Slow")]
    [Timeout(90_000, CooperativeCancellation = true)]
    public async Task Truncated_frame_closes_only_that_connection()
    {
        var mark = Mark();
        await using (var client = await RawClient.ConnectAsync(s_cluster!.Port, s_cluster.Fingerprint, TestContext.CancellationToken))
        {
            var hello = Transcript.Hello("truncated", Ed25519Identity.Generate()).ToByteArray();
            var frame = RawClient.Frame(FrameType.Hello, hello);
            await client.WriteAsync(frame[..(frame.Length / 2)], TestContext.CancellationToken);
            await client.Stream.ShutdownAsync();
        }

        await s_coordinator!.WaitForStderrAsync(@"(?i)truncat", Wait, mark.Stderr, TestContext.CancellationToken);
        await AssertHonestWorkersContinueAsync(mark);
    }

    [TestMethod]
    [TestCategory("Process")]
    [TestCategory("Slow")]
    [Timeout(90_000, CooperativeCancellation = true)]
    public async Task Replayed_handshake_is_refused_with_bad_signature()
    {
        var mark = Mark();
        using var identity = Ed25519Identity.Generate();
        using var simulated = new InsecureSimulatedAttestationProvider(NullLogger<InsecureSimulatedAttestationProvider>.Instance);
        byte[] helloFrame;
        byte[] evidenceFrame;

        // 1. An honest handshake, recorded (this also checks that the transcript here matches docs/protocol.md: it is admitted).
        await using (var first = await RawClient.ConnectAsync(s_cluster!.Port, s_cluster.Fingerprint, TestContext.CancellationToken))
        {
            var hello = Transcript.Hello("replayed", identity).ToByteArray();
            helloFrame = RawClient.Frame(FrameType.Hello, hello);
            await first.WriteAsync(helloFrame, TestContext.CancellationToken);
            var challengeFrame = await first.ReadFrameAsync(Wait, TestContext.CancellationToken);
            Assert.IsNotNull(challengeFrame);
            Assert.AreEqual(FrameType.Challenge, challengeFrame.Value.Type);
            var challenge = Challenge.Parser.ParseFrom(challengeFrame.Value.Payload);
            var transcript = Transcript.Compute(hello, challengeFrame.Value.Payload, first.ChannelBinding);
            var evidence = await simulated.GetEvidenceAsync(Transcript.ReportData(transcript), TestContext.CancellationToken);
            var format = challenge.AcceptedEvidenceFormats.FirstOrDefault(f => f.Contains("simulated", StringComparison.OrdinalIgnoreCase)) ?? "simulated";
            evidenceFrame = RawClient.Frame(FrameType.Evidence, new Evidence
            {
                Format = format,
                Evidence_ = ByteString.CopyFrom(Transcript.EncodeEvidence(evidence.Evidence.Span, evidence.Auxiliary.Span)),
                IdentitySignature = ByteString.CopyFrom(identity.Sign(Transcript.SignedMessage(transcript))),
            }.ToByteArray());
            await first.WriteAsync(evidenceFrame, TestContext.CancellationToken);
            var verdict = await first.ReadFrameAsync(Wait, TestContext.CancellationToken);
            Assert.IsNotNull(verdict);
            Assert.AreEqual(FrameType.Admission, verdict.Value.Type, verdict.Value.Type == FrameType.Refusal ? Refusal.Parser.ParseFrom(verdict.Value.Payload).Message : "not admitted");
            await first.WriteAsync(RawClient.Frame(FrameType.Goodbye, new Goodbye { Message = "recorded" }.ToByteArray()), TestContext.CancellationToken);
        }

        // 2. The same Hello and Evidence bytes on a new connection: the fresh nonce makes the signature invalid.
        await using (var replay = await RawClient.ConnectAsync(s_cluster.Port, s_cluster.Fingerprint, TestContext.CancellationToken))
        {
            await replay.WriteAsync(helloFrame, TestContext.CancellationToken);
            var challengeFrame = await replay.ReadFrameAsync(Wait, TestContext.CancellationToken);
            Assert.IsNotNull(challengeFrame);
            Assert.AreEqual(FrameType.Challenge, challengeFrame.Value.Type);
            await replay.WriteAsync(evidenceFrame, TestContext.CancellationToken);
            var verdict = await replay.ReadFrameAsync(Wait, TestContext.CancellationToken);
            Assert.IsNotNull(verdict, "closed without a verdict");
            Assert.AreEqual(FrameType.Refusal, verdict.Value.Type);
            var refusal = Refusal.Parser.ParseFrom(verdict.Value.Payload);
            Assert.AreEqual(RefusalReason.BadSignature, refusal.Reason, refusal.Message);
        }

        await s_coordinator!.WaitForStderrAsync(@"(?i)(bad.?signature|signature)", Wait, mark.Stderr, TestContext.CancellationToken);
        await AssertHonestWorkersContinueAsync(mark);
    }

    [TestMethod]
    [TestCategory("Process")]
    [TestCategory("Slow")]
    [Timeout(90_000, CooperativeCancellation = true)]
    public async Task Unattested_worker_is_refused_and_stops_with_a_clear_error()
    {
        var mark = Mark();
        var unattested = s_cluster!.StartWorker("unattested", "--attestation", "none");
        var line = await unattested.WaitForStdoutAsync(@"^(FAILED|REFUSED|ERROR) id=unattested message=(.*)$", Wait, 0, TestContext.CancellationToken);
        StringAssert.Matches(line.Groups[2].Value, new System.Text.RegularExpressions.Regex("(?i)attest"));
        Assert.AreNotEqual(0, await unattested.WaitForExitAsync(Wait, TestContext.CancellationToken), "a refused worker should exit non-zero");
        await s_coordinator!.WaitForStderrAsync(@"(?i)refused worker.*attestation", Wait, mark.Stderr, TestContext.CancellationToken);
        await AssertHonestWorkersContinueAsync(mark);
    }

    [TestMethod]
    [TestCategory("Process")]
    [TestCategory("Slow")]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task NaN_update_is_rejected_and_earns_no_receipt()
    {
        var mark = Mark();
        var poisoned = s_cluster!.StartWorker("poisoned", "--inject-nan-update");
        var rejected = await s_coordinator!.WaitForStderrAsync(@"(?i)update of worker 'poisoned' rejected \((\S*)\)", TimeSpan.FromSeconds(60), mark.Stderr, TestContext.CancellationToken);
        TestContext.WriteLine($"coordinator: {rejected.Value}");

        // A later round completes for the honest workers; the poisoned worker never earns a receipt.
        var after = Mark();
        await AssertHonestWorkersContinueAsync(after);
        Assert.IsFalse(poisoned.StdoutLines.Any(l => l.StartsWith("RECEIPT", StringComparison.Ordinal)), "the NaN worker got a receipt");
        var rounds = TestCluster.CompletedRounds(s_coordinator, mark.Coordinator);
        Assert.IsTrue(rounds.Any(r => r.Cohort == 3 && r.Rejected >= 1 && r.Accepted == 2), "no round shows the NaN worker in the cohort, rejected: " + string.Join(" | ", rounds));
        poisoned.Kill();
    }

    private static (int Stderr, int Coordinator, int H0, int H1) Mark() =>
        (s_coordinator!.StderrCount, s_coordinator.StdoutCount, s_honest0!.StdoutCount, s_honest1!.StdoutCount);

    /// <summary>Both honest workers get a receipt for a round that completes after the attack began.</summary>
    private async Task AssertHonestWorkersContinueAsync((int Stderr, int Coordinator, int H0, int H1) mark)
    {
        var done = await s_coordinator!.WaitForStdoutAsync(@"^ROUND (\d+) COMPLETE", Wait, mark.Coordinator, TestContext.CancellationToken);
        var round = long.Parse(done.Groups[1].Value, CultureInfo.InvariantCulture);
        await s_honest0!.WaitForStdoutAsync($@"^RECEIPT id=h0 round=({round}|{round + 1}) ", Wait, mark.H0, TestContext.CancellationToken);
        await s_honest1!.WaitForStdoutAsync($@"^RECEIPT id=h1 round=({round}|{round + 1}) ", Wait, mark.H1, TestContext.CancellationToken);
    }
}
