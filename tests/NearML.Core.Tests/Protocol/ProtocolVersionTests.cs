using System.Buffers.Binary;
using Google.Protobuf;
using NearML.Core.Contracts;
using NearML.Core.Protocol;

namespace NearML.Core.Tests.Protocol;

/// <summary>
/// The worker's side of the 2.0 version bump: a 1.x coordinator, played by a raw socket that reads the Hello frame and writes
/// its 1.0 Challenge frame by hand, is refused with an Error naming both versions.
/// </summary>
[TestClass]
public sealed class ProtocolVersionTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public void Version_2_0_is_current_and_every_1_x_is_incompatible()
    {
        Assert.AreEqual(2u, WireProtocol.MajorVersion);
        Assert.AreEqual("2.0", WireProtocol.Format(WireProtocol.CurrentVersion));
        Assert.IsTrue(WireProtocol.IsCompatible(new ProtocolVersion { Major = 2, Minor = 9 }));
        foreach (var minor in new uint[] { 0, 1, 5, uint.MaxValue })
        {
            Assert.IsFalse(WireProtocol.IsCompatible(new ProtocolVersion { Major = 1, Minor = minor }), $"1.{minor}");
        }

        Assert.IsFalse(WireProtocol.IsCompatible(null));
        Assert.IsFalse(WireProtocol.IsCompatible(new ProtocolVersion()));
    }

    [TestMethod]
    [Timeout(30_000, CooperativeCancellation = true)]
    public async Task A_worker_refuses_a_1_0_coordinator_naming_both_versions()
    {
        var ct = TestContext.CancellationToken;
        var (left, right) = await TestSockets.PairAsync();
        await using var worker = new FrameConnection(left);
        await using var oldCoordinator = right;
        using var identity = Ed25519Identity.Generate();
        var run = WorkerHandshake.RunAsync(worker, identity, new WorkerHandshakeOptions { WorkerId = "w" }, ct);

        // Read the worker's Hello by hand: a 2.0 worker announces 2.0.
        var header = new byte[6];
        await oldCoordinator.ReadExactlyAsync(header, ct);
        Assert.AreEqual((ushort)FrameType.Hello, BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(4)));
        var body = new byte[BinaryPrimitives.ReadUInt32BigEndian(header)];
        await oldCoordinator.ReadExactlyAsync(body, ct);
        Assert.AreEqual(2u, Hello.Parser.ParseFrom(body).Version.Major);

        // Answer as a 1.0 coordinator would.
        var challenge = new Challenge { Version = new ProtocolVersion { Major = 1, Minor = 0 }, CoordinatorNonce = ByteString.CopyFrom(new byte[32]) }.ToByteArray();
        await oldCoordinator.WriteAsync(TestSockets.Header((uint)challenge.Length, (ushort)FrameType.Challenge), ct);
        await oldCoordinator.WriteAsync(challenge, ct);

        var ex = await Assert.ThrowsExactlyAsync<ProtocolException>(() => run);
        Assert.AreEqual(ErrorCode.IncompatibleVersion, ex.Code);
        StringAssert.Contains(ex.Message, "the coordinator speaks protocol 1.0; this worker speaks 2.0");

        // The worker tells the old coordinator why, in an Error frame (same layout in 1.x).
        await oldCoordinator.ReadExactlyAsync(header, ct);
        Assert.AreEqual((ushort)FrameType.Error, BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(4)));
        body = new byte[BinaryPrimitives.ReadUInt32BigEndian(header)];
        await oldCoordinator.ReadExactlyAsync(body, ct);
        var error = Error.Parser.ParseFrom(body);
        Assert.AreEqual(ErrorCode.IncompatibleVersion, error.Code);
        StringAssert.Contains(error.Message, "1.0");
        StringAssert.Contains(error.Message, "2.0");
    }
}
