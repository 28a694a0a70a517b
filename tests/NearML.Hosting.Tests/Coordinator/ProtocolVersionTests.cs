using System.Buffers.Binary;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using Google.Protobuf;
using NearML.Core.Contracts;
using NearML.Core.Protocol;

namespace NearML.Hosting.Tests.Coordinator;

/// <summary>
/// Protocol 3.0 (BLAKE3 chunk hashes; 2.0 brought typed job settings) refuses 1.x and 2.x peers. The old worker here is a raw
/// TLS socket that writes its Hello frame byte by byte as an older build would (4-byte big-endian length, 2-byte type, protobuf payload) and
/// reads the coordinator's answer the same way, so nothing of this build's connection code stands between the two versions.
/// </summary>
[TestClass]
public sealed class ProtocolVersionTests
{
    [TestMethod]
    [Timeout(60_000, CooperativeCancellation = true)]
    [DataRow(2u, 0u)]
    [DataRow(1u, 0u)]
    [DataRow(1u, 7u)]
    [DataRow(0u, 0u)]
    public async Task An_old_worker_is_refused_with_a_reason_naming_both_versions(uint major, uint minor)
    {
        await using var c = await CoordinatorHarness.StartAsync(o => o.Rounds = 1);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", c.Port);
        await using var tls = new SslStream(tcp.GetStream(), leaveInnerStreamOpen: false);
        var trust = CoordinatorTrust.Pinned(c.Fingerprint);
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "127.0.0.1",
            EnabledSslProtocols = SslProtocols.Tls13,
            RemoteCertificateValidationCallback = (sender, certificate, chain, errors) => trust.Validate(certificate, chain, errors, out var reason),
        });

        // The 1.x/2.x Hello: same fields as 3.0's (the handshake messages did not change), so only the version tells them apart.
        using var id = Ed25519Identity.Generate();
        var hello = new Hello
        {
            Version = new ProtocolVersion { Major = major, Minor = minor },
            WorkerId = "old-worker",
            IdentityPublicKey = ByteString.CopyFrom(id.PublicKey.Span),
            WorkerNonce = ByteString.CopyFrom(new byte[32]),
            Capabilities = new WorkerCapabilities { Features = { "diloco", "int8" } },
        }.ToByteArray();
        var frame = new byte[6 + hello.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)hello.Length);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(4), (ushort)FrameType.Hello);
        hello.CopyTo(frame, 6);
        await tls.WriteAsync(frame);
        await tls.FlushAsync();

        var header = new byte[6];
        await tls.ReadExactlyAsync(header).AsTask().WaitAsync(CoordinatorHarness.Timeout);
        Assert.AreEqual((ushort)FrameType.Refusal, BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(4)), "the answer is a Refusal frame");
        var payload = new byte[BinaryPrimitives.ReadUInt32BigEndian(header)];
        await tls.ReadExactlyAsync(payload).AsTask().WaitAsync(CoordinatorHarness.Timeout);
        var refusal = Refusal.Parser.ParseFrom(payload);
        Assert.AreEqual(RefusalReason.IncompatibleVersion, refusal.Reason);
        StringAssert.Contains(refusal.Message, $"speaks protocol {major}.{minor}");
        StringAssert.Contains(refusal.Message, $"this coordinator speaks {WireProtocol.MajorVersion}.{WireProtocol.MinorVersion}");
        Assert.AreEqual(3u, refusal.CoordinatorVersion.Major, "3.0 is the version of BLAKE3 chunk hashes");
        Assert.AreEqual(WireProtocol.MinorVersion, refusal.CoordinatorVersion.Minor);

        // The coordinator closes the connection after the refusal.
        var rest = new byte[1];
        var closed = await tls.ReadAsync(rest).AsTask().WaitAsync(CoordinatorHarness.Timeout);
        Assert.AreEqual(0, closed, "nothing follows the refusal");
        Assert.IsTrue(c.Logs.Contains("IncompatibleVersion"));
    }
}
