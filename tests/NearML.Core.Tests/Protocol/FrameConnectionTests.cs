using System.Security.Cryptography;
using Google.Protobuf;
using NearML.Core.Contracts;
using NearML.Core.Protocol;

namespace NearML.Core.Tests.Protocol;

[TestClass]
public sealed class FrameConnectionTests
{
    public TestContext TestContext { get; set; } = null!;

    private static async Task<(FrameConnection A, FrameConnection B)> ConnectedAsync(FrameConnectionOptions? options = null)
    {
        var (left, right) = await TestSockets.PairAsync();
        return (new FrameConnection(left, options), new FrameConnection(right, options));
    }

    [TestMethod]
    public async Task Messages_round_trip_with_their_types()
    {
        var (a, b) = await ConnectedAsync();
        await using var _a = a;
        await using var _b = b;
        var job = new JobAssignment
        {
            JobId = "fashion-mnist",
            Round = 7,
            ParameterVersion = 6,
            ParameterRoot = ByteString.CopyFrom(new byte[32]),
            Model = new ModelConfig { Architecture = "mlp", Tensors = { new TensorSpec { Name = "w", Shape = { 3, 4 } } } },
            HyperParameters = new HyperParameters { SyncStrategy = SyncStrategy.Diloco, InnerSteps = 500, UpdateEncoding = UpdateEncoding.Int4, RoundProtocol = "diloco" },
            ShardIds = { 1, 5, 9 },
        };
        var ct = TestContext.CancellationToken;
        await a.SendAsync(job, ct);
        await a.SendAsync(new Heartbeat { Sequence = 1 }, ct);
        await a.SendAsync(new Goodbye { Message = "bye", RejoinLater = true }, ct);

        Assert.AreEqual(job, await b.ReceiveAsync(ct));
        var frame = await b.ReceiveFrameAsync(ct);
        Assert.IsNotNull(frame);
        Assert.AreEqual(FrameType.Heartbeat, frame.Value.Type);
        Assert.AreEqual(new Goodbye { Message = "bye", RejoinLater = true }, await b.ReceiveAsync<Goodbye>(ct));
        Assert.AreEqual(b.BytesReceived, a.BytesSent);
    }

    [TestMethod]
    public async Task Clean_close_at_a_frame_boundary_returns_null()
    {
        var (a, b) = await ConnectedAsync();
        await using var _b = b;
        await a.SendAsync(new Progress { Step = 3 }, TestContext.CancellationToken);
        await a.DisposeAsync();
        Assert.AreEqual(3u, (await b.ReceiveAsync<Progress>(TestContext.CancellationToken)).Step);
        Assert.IsNull(await b.ReceiveFrameAsync(TestContext.CancellationToken));
    }

    [TestMethod]
    public async Task Concurrent_senders_never_interleave_frames()
    {
        var (a, b) = await ConnectedAsync();
        await using var _a = a;
        await using var _b = b;
        const int Senders = 8, PerSender = 100;
        var ct = TestContext.CancellationToken;
        var send = Enumerable.Range(0, Senders).Select(s => Task.Run(async () =>
        {
            var rng = new Random(s);
            for (var i = 0; i < PerSender; i++)
            {
                var payload = new byte[rng.Next(0, 100_000)];
                rng.NextBytes(payload);
                await a.SendAsync(new Update { Round = (ulong)s, PartIndex = (uint)i, Payload = ByteString.CopyFrom(payload), PayloadSha256 = ByteString.CopyFrom(SHA256.HashData(payload)) }, ct);
            }
        }, ct)).ToArray();

        var next = new int[Senders];
        for (var n = 0; n < Senders * PerSender; n++)
        {
            var update = await b.ReceiveAsync<Update>(ct);
            CollectionAssert.AreEqual(update.PayloadSha256.ToByteArray(), SHA256.HashData(update.Payload.Span));
            Assert.AreEqual(next[update.Round]++, (int)update.PartIndex, "per-sender order is kept");
        }

        await Task.WhenAll(send);
    }

    [TestMethod]
    public async Task Oversized_frame_is_refused_from_its_header()
    {
        var options = new FrameConnectionOptions { MaxFrameSize = 64 * 1024 };
        var (left, right) = await TestSockets.PairAsync();
        await using var left_ = left;
        await using var b = new FrameConnection(right, options);
        await left.WriteAsync(TestSockets.Header(64 * 1024 + 1, (ushort)FrameType.Update), TestContext.CancellationToken);

        var ex = await Assert.ThrowsExactlyAsync<ProtocolException>(async () => await b.ReceiveFrameAsync(TestContext.CancellationToken));
        Assert.AreEqual(ErrorCode.FrameTooLarge, ex.Code);
        StringAssert.Contains(ex.Message, "65537");
        Assert.IsFalse(ex.IsTransient);

        // The connection stays faulted.
        var again = await Assert.ThrowsExactlyAsync<ProtocolException>(async () => await b.ReceiveFrameAsync(TestContext.CancellationToken));
        Assert.AreEqual(ErrorCode.FrameTooLarge, again.Code);
    }

    [TestMethod]
    public async Task Unknown_frame_type_is_refused()
    {
        var (left, right) = await TestSockets.PairAsync();
        await using var left_ = left;
        await using var b = new FrameConnection(right);
        await left.WriteAsync(TestSockets.Header(0, 999), TestContext.CancellationToken);
        var ex = await Assert.ThrowsExactlyAsync<ProtocolException>(async () => await b.ReceiveFrameAsync(TestContext.CancellationToken));
        Assert.AreEqual(ErrorCode.UnknownFrameType, ex.Code);
        StringAssert.Contains(ex.Message, "999");
    }

    [TestMethod]
    [DataRow(0, DisplayName = "inside the header")]
    [DataRow(10, DisplayName = "inside the payload")]
    public async Task Truncated_frame_is_reported_with_its_position(int payloadBytesSent)
    {
        var (left, right) = await TestSockets.PairAsync();
        await using var b = new FrameConnection(right);
        var header = TestSockets.Header(100, (ushort)FrameType.Progress);
        byte[] bytes = payloadBytesSent == 0 ? header[..3] : [.. header, .. new byte[payloadBytesSent]];
        await left.WriteAsync(bytes, TestContext.CancellationToken);
        await left.DisposeAsync();
        var ex = await Assert.ThrowsExactlyAsync<ProtocolException>(async () => await b.ReceiveFrameAsync(TestContext.CancellationToken));
        Assert.AreEqual(ErrorCode.TruncatedFrame, ex.Code);
        StringAssert.Contains(ex.Message, payloadBytesSent == 0 ? "after 3 of 6 header bytes" : "10 bytes into a 100-byte");
    }

    [TestMethod]
    public async Task Malformed_payload_is_refused_naming_the_type()
    {
        var (left, right) = await TestSockets.PairAsync();
        await using var left_ = left;
        await using var b = new FrameConnection(right);
        byte[] garbage = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        byte[] frame = [.. TestSockets.Header((uint)garbage.Length, (ushort)FrameType.Hello), .. garbage];
        await left.WriteAsync(frame, TestContext.CancellationToken);
        var ex = await Assert.ThrowsExactlyAsync<ProtocolException>(async () => await b.ReceiveAsync(TestContext.CancellationToken));
        Assert.AreEqual(ErrorCode.MalformedFrame, ex.Code);
        StringAssert.Contains(ex.Message, "Hello");
    }

    [TestMethod]
    public async Task FailAsync_tells_the_peer_the_reason_and_closes()
    {
        var (a, b) = await ConnectedAsync();
        await using var _b = b;
        await a.FailAsync(new ProtocolException(ErrorCode.HashMismatch, "chunk 3 is wrong"));
        var frame = await b.ReceiveFrameAsync(TestContext.CancellationToken);
        Assert.AreEqual(FrameType.Error, frame?.Type);
        Assert.IsNull(await b.ReceiveFrameAsync(TestContext.CancellationToken), "FailAsync closes the connection");
        await Assert.ThrowsExactlyAsync<ProtocolException>(async () => await a.SendAsync(new Heartbeat(), TestContext.CancellationToken));
    }

    [TestMethod]
    public async Task Error_from_the_peer_is_raised_by_typed_receive_and_faults_the_connection()
    {
        var (a, b) = await ConnectedAsync();
        await using var _b = b;
        await a.FailAsync(new ProtocolException(ErrorCode.HashMismatch, "chunk 3 is wrong"));
        var ex = await Assert.ThrowsExactlyAsync<ProtocolException>(async () => await b.ReceiveAsync<Progress>(TestContext.CancellationToken));
        Assert.IsTrue(ex.IsRemote);
        Assert.AreEqual(ErrorCode.HashMismatch, ex.Code);
        StringAssert.Contains(ex.Message, "chunk 3 is wrong");
        var again = await Assert.ThrowsExactlyAsync<ProtocolException>(async () => await b.ReceiveFrameAsync(TestContext.CancellationToken));
        Assert.AreSame(ex, again, "a connection that received an Error stays faulted");
    }

    [TestMethod]
    public async Task Unexpected_message_is_named()
    {
        var (a, b) = await ConnectedAsync();
        await using var _a = a;
        await using var _b = b;
        await a.SendAsync(new Progress(), TestContext.CancellationToken);
        var ex = await Assert.ThrowsExactlyAsync<ProtocolException>(async () => await b.ReceiveAsync<Admission>(TestContext.CancellationToken));
        Assert.AreEqual(ErrorCode.UnexpectedMessage, ex.Code);
        StringAssert.Contains(ex.Message, "expected Admission but received Progress");
    }

    [TestMethod]
    public async Task Outgoing_message_over_the_limit_is_refused_before_sending()
    {
        var (a, b) = await ConnectedAsync(new FrameConnectionOptions { MaxFrameSize = 8192 });
        await using var _a = a;
        await using var _b = b;
        var ex = await Assert.ThrowsExactlyAsync<ProtocolException>(
            async () => await a.SendAsync(new Update { Payload = ByteString.CopyFrom(new byte[9000]) }, TestContext.CancellationToken));
        Assert.AreEqual(ErrorCode.FrameTooLarge, ex.Code);
        Assert.AreEqual(0, a.BytesSent);
    }

    [TestMethod]
    public async Task Sender_waits_when_the_peer_does_not_read_and_resumes_when_it_does()
    {
        var options = new FrameConnectionOptions { SendBufferLimit = 256 * 1024, ReceiveBufferLimit = 256 * 1024, MaxFrameSize = 256 * 1024 };
        var (a, b) = await ConnectedAsync(options);
        await using var _a = a;
        await using var _b = b;
        var payload = ByteString.CopyFrom(new byte[128 * 1024]);
        var ct = TestContext.CancellationToken;
        long sent = 0;
        Task pending = Task.CompletedTask;
        var blocked = false;
        while (sent < 512L * 1024 * 1024)
        {
            pending = a.SendAsync(new Update { Payload = payload }, ct).AsTask();
            if (!await CompletesWithin(pending, TimeSpan.FromSeconds(1)))
            {
                blocked = true;
                break;
            }

            sent += payload.Length;
        }

        Assert.IsTrue(blocked, "sending never waited although nobody read 512 MB");
        Assert.IsLessThan(256L * 1024 * 1024, sent, "memory is bounded: the sender stopped early");
        var received = 0L;
        var drain = Task.Run(async () =>
        {
            while (received <= sent)
            {
                received += (await b.ReceiveAsync<Update>(ct)).Payload.Length;
            }
        }, ct);
        await pending;
        await drain;
    }

    private static async Task<bool> CompletesWithin(Task task, TimeSpan time) => await Task.WhenAny(task, Task.Delay(time)) == task;

    [TestMethod]
    public async Task Heartbeats_are_sent_periodically_and_skipped_by_typed_receive()
    {
        var (a, b) = await ConnectedAsync();
        await using var _a = a;
        await using var _b = b;
        using var stop = new CancellationTokenSource();
        var loop = a.RunHeartbeatsAsync(TimeSpan.FromMilliseconds(20), stop.Token);
        var first = await b.ReceiveAsync<Heartbeat>(TestContext.CancellationToken);
        var second = await b.ReceiveAsync<Heartbeat>(TestContext.CancellationToken);
        Assert.AreEqual(first.Sequence + 1, second.Sequence);
        await a.SendAsync(new Progress { Step = 9 }, TestContext.CancellationToken);
        Assert.AreEqual(9u, (await b.ReceiveAsync<Progress>(TestContext.CancellationToken)).Step);
        await stop.CancelAsync();
        await loop;
    }

    [TestMethod]
    public async Task Cancelled_receive_leaves_the_connection_usable()
    {
        var (a, b) = await ConnectedAsync();
        await using var _a = a;
        await using var _b = b;
        using (var soon = new CancellationTokenSource(TimeSpan.FromMilliseconds(50)))
        {
            await Assert.ThrowsAsync<OperationCanceledException>(async () => await b.ReceiveFrameAsync(soon.Token));
        }

        await a.SendAsync(new Progress { Step = 4 }, TestContext.CancellationToken);
        Assert.AreEqual(4u, (await b.ReceiveAsync<Progress>(TestContext.CancellationToken)).Step);
    }

    [TestMethod]
    public void Options_are_validated()
    {
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new FrameConnectionOptions { MaxFrameSize = 10 }.Validate());
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new FrameConnectionOptions { SegmentSize = 65536, SendBufferLimit = 1000 }.Validate());
        Assert.AreEqual("SendBufferLimit", ex.ParamName);
    }
}
