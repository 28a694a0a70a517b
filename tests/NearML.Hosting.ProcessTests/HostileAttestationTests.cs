using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Google.Protobuf;
using NearML.Core.Contracts;
using NearML.Core.Protocol;
using NearML.Enclave;
using NearML.Hosting.Worker;

namespace NearML.Hosting.ProcessTests;

/// <summary>
/// A worker presents a real Intel TDX quote (go-tdx-guest's SPR E4 production quote from <c>../shared/fixtures</c>) that
/// it has tampered with, the way a hostile worker can: certificate fields inside the embedded PCK chain that the platform's
/// X.509 code cannot decode (an impossible validity date, a non-DER basicConstraints), an outer signature algorithm that
/// differs from the signed one, altered PEM separators, a flipped body byte, a truncation. The real coordinator process must
/// answer each with a Refusal that gives the reason, and keep training with an honest worker process afterwards.
/// </summary>
[TestClass]
public sealed class HostileAttestationTests
{
    public TestContext TestContext { get; set; } = null!;

    private static TimeSpan Wait => TimeSpan.FromSeconds(45);

    [TestMethod]
    [TestCategory("Process")]
    [TestCategory("Slow")]
    [TestCategory("Conformance")]
    [Timeout(240_000, CooperativeCancellation = true)]
    public async Task Mutated_real_TDX_quotes_are_refused_with_a_reason_and_the_coordinator_keeps_serving()
    {
        string? fixtures = FindFixtures();
        if (fixtures is null)
        {
            Assert.Inconclusive("../shared/fixtures/attestation not found next to the repository");
        }

        byte[] quote = File.ReadAllBytes(Path.Combine(fixtures!, "tdx", "go-tdx-guest_tdx_prod_quote_SPR_E4.dat"));
        var variants = new List<(string Name, byte[] Quote)>
        {
            ("PCK leaf notBefore month 13", MutatePckCertificate(quote, 0, BadNotBeforeMonth)),
            ("PCK intermediate notBefore month 13", MutatePckCertificate(quote, 1, BadNotBeforeMonth)),
            ("PCK intermediate basicConstraints that does not decode", MutatePckCertificate(quote, 1, BasicConstraintsNotASequence)),
            ("PCK leaf outer signatureAlgorithm ecdsa-with-SHA384, TBS says SHA256", MutatePckCertificate(quote, 0, OuterAlgorithmSha384)),
            ("PEM separator between certificates replaced by a space", ReplaceSecondSeparator(quote)),
            ("TD report body byte 0x3C flipped", Flip(quote, 0x3C)),
            ("truncated inside the signature data", quote[..2000]),
        };

        await using var cluster = new TestCluster(TestContext, "hostile-attestation");
        SampleProcess coordinator = await cluster.StartCoordinatorAsync(0, "--rounds", "1000", "--steps", "20", "--batch-size", "32", "--min-workers", "1", "--round-timeout", "00:00:30");
        SampleProcess honest = cluster.StartWorker("honest");
        await honest.WaitForStdoutAsync(@"^RECEIPT id=honest ", TimeSpan.FromSeconds(90), 0, TestContext.CancellationToken);

        // The job is checked before the evidence: a worker that does not offer the job's model, dataset and layout is
        // refused for that. Learn them from a Challenge, as a worker would, so the refusals below are about the evidence.
        JobDescriptor job = await ProbeJobAsync(cluster);

        int coordinatorMark = coordinator.StdoutCount;
        int honestMark = honest.StdoutCount;
        for (int i = 0; i < variants.Count; i++)
        {
            (string name, byte[] evidence) = variants[i];
            Refusal refusal = await PresentAsync(cluster, $"hostile-{i}", evidence, job);
            TestContext.WriteLine($"{name}: {refusal.Reason}: {refusal.Message}");
            Assert.AreEqual(RefusalReason.AttestationFailed, refusal.Reason, $"{name}: {refusal.Message}");
            StringAssert.Contains(refusal.Message, $"hostile-{i}", name);
            Assert.IsFalse(coordinator.HasExited, $"the coordinator exited after: {name}");
        }

        // The honest worker still earns receipts for rounds completed after the attacks.
        var done = await coordinator.WaitForStdoutAsync(@"^ROUND (\d+) COMPLETE", Wait, coordinatorMark, TestContext.CancellationToken);
        long round = long.Parse(done.Groups[1].Value, CultureInfo.InvariantCulture);
        await honest.WaitForStdoutAsync($@"^RECEIPT id=honest round=({round}|{round + 1}) ", Wait, honestMark, TestContext.CancellationToken);
        Assert.IsFalse(coordinator.StderrLines.Any(l => l.Contains("CryptographicException", StringComparison.Ordinal)),
            "a CryptographicException reached the coordinator's log: " + string.Join("\n", coordinator.StderrLines.Where(l => l.Contains("Cryptographic", StringComparison.Ordinal))));
        cluster.Passed();
    }

    private async Task<JobDescriptor> ProbeJobAsync(TestCluster cluster)
    {
        using var identity = Ed25519Identity.Generate();
        await using var client = await RawClient.ConnectAsync(cluster.Port, cluster.Fingerprint, TestContext.CancellationToken);
        await client.WriteAsync(RawClient.Frame(FrameType.Hello, Transcript.Hello("probe", identity).ToByteArray()), TestContext.CancellationToken);
        var challengeFrame = await client.ReadFrameAsync(Wait, TestContext.CancellationToken);
        Assert.IsNotNull(challengeFrame, "no Challenge");
        var challenge = Challenge.Parser.ParseFrom(challengeFrame.Value.Payload);
        Assert.IsNotNull(challenge.Job, "the Challenge names no job");
        return challenge.Job;
    }

    /// <summary>A real handshake (Hello, Challenge, signed Evidence) that presents <paramref name="quote"/> as TDX evidence; returns the Refusal.</summary>
    private async Task<Refusal> PresentAsync(TestCluster cluster, string workerId, byte[] quote, JobDescriptor job)
    {
        using var identity = Ed25519Identity.Generate();
        await using var client = await RawClient.ConnectAsync(cluster.Port, cluster.Fingerprint, TestContext.CancellationToken);
        var helloMessage = Transcript.Hello(workerId, identity);
        helloMessage.Capabilities.EvidenceFormats.Clear();
        helloMessage.Capabilities.EvidenceFormats.Add(WorkerAttestation.TdxFormat);
        helloMessage.Capabilities.ModelKeys.Add(job.ModelKey);
        helloMessage.Capabilities.DatasetKeys.Add(job.DatasetKey);
        byte[] hello = helloMessage.ToByteArray();
        await client.WriteAsync(RawClient.Frame(FrameType.Hello, hello), TestContext.CancellationToken);
        var challengeFrame = await client.ReadFrameAsync(Wait, TestContext.CancellationToken);
        Assert.IsNotNull(challengeFrame, "no Challenge");
        Assert.AreEqual(FrameType.Challenge, challengeFrame.Value.Type);
        var challenge = Challenge.Parser.ParseFrom(challengeFrame.Value.Payload);
        CollectionAssert.Contains(challenge.AcceptedEvidenceFormats.ToList(), WorkerAttestation.TdxFormat);
        byte[] transcript = Transcript.Compute(hello, challengeFrame.Value.Payload, client.ChannelBinding);
        await client.WriteAsync(RawClient.Frame(FrameType.Evidence, new Evidence
        {
            Format = WorkerAttestation.TdxFormat,
            Evidence_ = ByteString.CopyFrom(Transcript.EncodeEvidence(quote, [])),
            IdentitySignature = ByteString.CopyFrom(identity.Sign(Transcript.SignedMessage(transcript))),
            LayoutFingerprint = job.LayoutFingerprint,
        }.ToByteArray()), TestContext.CancellationToken);
        var verdict = await client.ReadFrameAsync(Wait, TestContext.CancellationToken);
        Assert.IsNotNull(verdict, $"{workerId}: the coordinator closed the connection without a verdict");
        Assert.AreEqual(FrameType.Refusal, verdict.Value.Type, $"{workerId}: tampered evidence was not refused");
        return Refusal.Parser.ParseFrom(verdict.Value.Payload);
    }

    private static string? FindFixtures()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string candidate = Path.Combine(d.FullName, "shared", "fixtures", "attestation");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    private static byte[] Flip(byte[] quote, int offset)
    {
        byte[] b = (byte[])quote.Clone();
        b[offset] ^= 0x01;
        return b;
    }

    private static byte[] ReplaceSecondSeparator(byte[] quote)
    {
        byte[] b = (byte[])quote.Clone();
        int end = b.AsSpan().IndexOf("-----END CERTIFICATE-----\n-----BEGIN"u8);
        b[end + "-----END CERTIFICATE-----".Length] = (byte)' ';
        return b;
    }

    /// <summary>A copy of the quote whose PCK-chain certificate <paramref name="index"/> was changed by <paramref name="mutate"/> (same length, so every length field still holds).</summary>
    private static byte[] MutatePckCertificate(byte[] quote, int index, Action<byte[]> mutate)
    {
        byte[] result = (byte[])quote.Clone();
        Assert.IsTrue(MemoryMarshal.TryGetArray(TdxQuote.Parse(quote).PckCertificationData, out ArraySegment<byte> seg));
        Span<byte> pem = result.AsSpan(seg.Offset, seg.Count);
        int pos = 0, start = 0, end = 0;
        for (int i = 0; i <= index; i++)
        {
            start = pos + pem[pos..].IndexOf("-----BEGIN CERTIFICATE-----\n"u8) + 28;
            end = start + pem[start..].IndexOf("-----END CERTIFICATE-----"u8);
            pos = end;
        }

        byte[] der = Convert.FromBase64String(Encoding.ASCII.GetString(pem[start..end]));
        mutate(der);
        string encoded = Convert.ToBase64String(der);
        int k = 0;
        for (int i = start; i < end; i++)
        {
            if (pem[i] != (byte)'\n')
            {
                pem[i] = (byte)encoded[k++];
            }
        }

        return result;
    }

    private static void BadNotBeforeMonth(byte[] der)
    {
        int t = der.AsSpan().IndexOf(new byte[] { 0x17, 0x0D });
        der[t + 4] = (byte)'1';
        der[t + 5] = (byte)'3';
    }

    private static void BasicConstraintsNotASequence(byte[] der)
    {
        int oid = der.AsSpan().IndexOf(new byte[] { 0x06, 0x03, 0x55, 0x1D, 0x13 });
        int octets = oid + 5 + der.AsSpan(oid + 5).IndexOf((byte)0x04);
        der[octets + 2] = 0x31; // the extension's SEQUENCE becomes a SET: loads, but does not decode
    }

    private static void OuterAlgorithmSha384(byte[] der)
    {
        byte[] oid = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02];
        int first = der.AsSpan().IndexOf(oid);
        int outer = first + 1 + der.AsSpan(first + 1).IndexOf(oid);
        der[outer + oid.Length - 1] = 0x03;
    }
}
