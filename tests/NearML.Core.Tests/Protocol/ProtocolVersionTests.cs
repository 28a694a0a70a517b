using System.Buffers.Binary;
using Google.Protobuf;
using NearML.Core.Contracts;
using NearML.Core.Protocol;

namespace NearML.Core.Tests.Protocol;

/// <summary>
/// The worker's side of the version bumps (2.0: typed job settings; 3.0: BLAKE3 chunk hashes): a 1.x or 2.x coordinator,
/// played by a raw socket that reads the Hello frame and writes its Challenge frame by hand, is refused with an Error naming
/// both versions.
/// </summary>
[TestClass]
public sealed class ProtocolVersionTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public void Version_3_0_is_current_and_every_1_x_and_2_x_is_incompatible()
    {
        Assert.AreEqual(3u, WireProtocol.MajorVersion);
        Assert.AreEqual("3.0", WireProtocol.Format(WireProtocol.CurrentVersion));
        Assert.IsTrue(WireProtocol.IsCompatible(new ProtocolVersion { Major = 3, Minor = 9 }));
        foreach (var major in new uint[] { 1, 2 })
        {
            foreach (var minor in new uint[] { 0, 1, 5, uint.MaxValue })
            {
                Assert.IsFalse(WireProtocol.IsCompatible(new ProtocolVersion { Major = major, Minor = minor }), $"{major}.{minor}");
            }
        }

        Assert.IsFalse(WireProtocol.IsCompatible(null));
        Assert.IsFalse(WireProtocol.IsCompatible(new ProtocolVersion()));
    }

    [TestMethod]
    [Timeout(30_000, CooperativeCancellation = true)]
    [DataRow(1u)]
    [DataRow(2u)]
    public async Task A_worker_refuses_an_older_coordinator_naming_both_versions(uint oldMajor)
    {
        var ct = TestContext.CancellationToken;
        var (left, right) = await TestSockets.PairAsync();
        await using var worker = new FrameConnection(left);
        await using var oldCoordinator = right;
        using var identity = Ed25519Identity.Generate();
        var run = WorkerHandshake.RunAsync(worker, identity, new WorkerHandshakeOptions { WorkerId = "w" }, ct);

        // Read the worker's Hello by hand: a 3.0 worker announces 3.0.
        var header = new byte[6];
        await oldCoordinator.ReadExactlyAsync(header, ct);
        Assert.AreEqual((ushort)FrameType.Hello, BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(4)));
        var body = new byte[BinaryPrimitives.ReadUInt32BigEndian(header)];
        await oldCoordinator.ReadExactlyAsync(body, ct);
        Assert.AreEqual(3u, Hello.Parser.ParseFrom(body).Version.Major);

        // Answer as an older coordinator would.
        var challenge = new Challenge { Version = new ProtocolVersion { Major = oldMajor, Minor = 0 }, CoordinatorNonce = ByteString.CopyFrom(new byte[32]) }.ToByteArray();
        await oldCoordinator.WriteAsync(TestSockets.Header((uint)challenge.Length, (ushort)FrameType.Challenge), ct);
        await oldCoordinator.WriteAsync(challenge, ct);

        var ex = await Assert.ThrowsExactlyAsync<ProtocolException>(() => run);
        Assert.AreEqual(ErrorCode.IncompatibleVersion, ex.Code);
        StringAssert.Contains(ex.Message, $"the coordinator speaks protocol {oldMajor}.0; this worker speaks 3.0");

        // The worker tells the old coordinator why, in an Error frame (same layout in 1.x and 2.x).
        await oldCoordinator.ReadExactlyAsync(header, ct);
        Assert.AreEqual((ushort)FrameType.Error, BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(4)));
        body = new byte[BinaryPrimitives.ReadUInt32BigEndian(header)];
        await oldCoordinator.ReadExactlyAsync(body, ct);
        var error = Error.Parser.ParseFrom(body);
        Assert.AreEqual(ErrorCode.IncompatibleVersion, error.Code);
        StringAssert.Contains(error.Message, $"{oldMajor}.0");
        StringAssert.Contains(error.Message, "3.0");
    }
}
