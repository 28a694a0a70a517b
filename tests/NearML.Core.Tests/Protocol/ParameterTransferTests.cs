using System.Buffers;
using System.IO.Pipelines;
using System.Security.Cryptography;
using Google.Protobuf;
using NearML.Core.Contracts;
using NearML.Core.Protocol;
using NearML.Core.Protocol.Internal;

namespace NearML.Core.Tests.Protocol;

[TestClass]
public sealed class ParameterTransferTests
{
    public TestContext TestContext { get; set; } = null!;

    private static ParameterSet Make(int floats, int seed)
    {
        var set = ParameterSet.Create(("w", [floats - 7]), ("b", [7]));
        var rng = new Random(seed);
        for (var i = 0; i < set.Length; i++)
        {
            set.Data[i] = (float)rng.NextDouble() - 0.5f;
        }

        return set;
    }

    private static async Task<(FrameConnection A, FrameConnection B)> ConnectedAsync()
    {
        var (left, right) = await TestSockets.PairAsync();
        return (new FrameConnection(left), new FrameConnection(right));
    }

    [TestMethod]
    public async Task Set_round_trips_with_a_partial_last_chunk()
    {
        var (a, b) = await ConnectedAsync();
        await using var _a = a;
        await using var _b = b;
        var source = Make(1_000_003, 1); // 4,000,012 bytes: 3 full 1 MiB chunks and a partial one
        var destination = source.CreateZeros();
        var send = ParameterTransfer.SendAsync(a, source, 42, cancellationToken: TestContext.CancellationToken);
        var received = await ParameterTransfer.ReceiveAsync(b, destination, 42, cancellationToken: TestContext.CancellationToken);
        var sent = await send;

        CollectionAssert.AreEqual(source.Buffer, destination.Buffer);
        Assert.AreEqual(4, received.ChunkCount);
        Assert.AreEqual(4_000_012, received.TotalBytes);
        CollectionAssert.AreEqual(sent.GetRoot(), received.GetRoot());
        CollectionAssert.AreEqual(ParameterManifest.Compute(source).GetRoot(), received.GetRoot());
    }

    [TestMethod]
    public async Task Precomputed_manifest_and_expected_root_are_used()
    {
        var (a, b) = await ConnectedAsync();
        await using var _a = a;
        await using var _b = b;
        var source = Make(50_000, 2);
        var manifest = ParameterManifest.Compute(source, 16 * 1024);
        var destination = source.CreateZeros();
        var send = ParameterTransfer.SendAsync(a, source, 1, manifest, TestContext.CancellationToken);
        var received = await ParameterTransfer.ReceiveAsync(b, destination, 1, manifest.GetRoot(), TestContext.CancellationToken);
        await send;
        Assert.AreEqual(13, received.ChunkCount);
        Assert.AreEqual(16 * 1024, received.ChunkSize);
        CollectionAssert.AreEqual(source.Buffer, destination.Buffer);
    }

    [TestMethod]
    public async Task Root_differing_from_the_assignment_is_refused()
    {
        var (a, b) = await ConnectedAsync();
        await using var _a = a;
        await using var _b = b;
        var source = Make(10_000, 3);
        var other = ParameterManifest.Compute(Make(10_000, 4)).GetRoot();
        var send = ParameterTransfer.SendAsync(a, source, 1, cancellationToken: TestContext.CancellationToken);
        var ex = await Assert.ThrowsExactlyAsync<ProtocolException>(
            () => ParameterTransfer.ReceiveAsync(b, source.CreateZeros(), 1, other, TestContext.CancellationToken));
        Assert.AreEqual(ErrorCode.HashMismatch, ex.Code);
        StringAssert.Contains(ex.Message, "differs from the assignment's");
        await send;
    }

    [TestMethod]
    public async Task Corrupted_chunk_is_refused_and_its_bytes_do_not_stay_in_the_destination()
    {
        var (a, b) = await ConnectedAsync();
        await using var _a = a;
        await using var _b = b;
        var data = new byte[4096];
        new Random(8).NextBytes(data);
        var hash = global::Blake3.Hasher.Hash(data).AsSpan().ToArray();
        data[100] ^= 1; // the bytes no longer match the hash
        await a.SendAsync(new ParameterChunk { Offset = 0, Data = ByteString.CopyFrom(data), Blake3 = ByteString.CopyFrom(hash) }, TestContext.CancellationToken);
        var destination = ParameterSet.Create(("w", [2048]));
        destination.Data.Fill(7f);
        var ex = await Assert.ThrowsExactlyAsync<ProtocolException>(
            () => ParameterTransfer.ReceiveAsync(b, destination, 1, cancellationToken: TestContext.CancellationToken));
        Assert.AreEqual(ErrorCode.HashMismatch, ex.Code);
        StringAssert.Contains(ex.Message, "offset 0");
        Assert.IsTrue(destination.Buffer.AsSpan(0, 1024).IndexOfAnyExcept(0f) < 0, "the failed chunk's bytes are zeroed, not left in place");
        Assert.IsTrue(destination.Buffer.AsSpan(1024).IndexOfAnyExcept(7f) < 0, "nothing past the chunk is touched");
    }

    [TestMethod]
    public async Task Out_of_order_or_out_of_range_chunks_are_refused()
    {
        foreach (var (offset, length, expected) in new[] { (4096UL, 4096, "expected offset 0"), (0UL, 8192, "does not fit") })
        {
            var (a, b) = await ConnectedAsync();
            await using var _a = a;
            await using var _b = b;
            var data = new byte[length];
            await a.SendAsync(new ParameterChunk { Offset = offset, Data = ByteString.CopyFrom(data), Blake3 = ByteString.CopyFrom(global::Blake3.Hasher.Hash(data).AsSpan().ToArray()) }, TestContext.CancellationToken);
            var ex = await Assert.ThrowsExactlyAsync<ProtocolException>(
                () => ParameterTransfer.ReceiveAsync(b, ParameterSet.Create(("w", [1024])), 1, cancellationToken: TestContext.CancellationToken));
            Assert.AreEqual(ErrorCode.MalformedFrame, ex.Code);
            StringAssert.Contains(ex.Message, expected);
        }
    }

    [TestMethod]
    public async Task Layout_of_a_different_size_is_refused()
    {
        var (a, b) = await ConnectedAsync();
        await using var _a = a;
        await using var _b = b;
        var source = Make(5000, 5);
        var send = ParameterTransfer.SendAsync(a, source, 3, cancellationToken: TestContext.CancellationToken);
        var ex = await Assert.ThrowsExactlyAsync<ProtocolException>(
            () => ParameterTransfer.ReceiveAsync(b, ParameterSet.Create(("w", [6000])), 3, cancellationToken: TestContext.CancellationToken));
        StringAssert.Contains(ex.Message, "needs 24000");
        await send;
    }

    [TestMethod]
    public async Task Chunk_codec_is_wire_compatible_with_generated_protobuf()
    {
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 1 << 20, resumeWriterThreshold: 1 << 19));
        var data = new byte[70_000];
        new Random(6).NextBytes(data);
        var hash = global::Blake3.Hasher.Hash(data).AsSpan().ToArray();
        ParameterChunkCodec.Write(pipe.Writer, 123_456_789_012, hash, data, 4096);
        await pipe.Writer.FlushAsync(TestContext.CancellationToken);
        var read = await pipe.Reader.ReadAsync(TestContext.CancellationToken);
        Assert.AreEqual(ParameterChunkCodec.GetPayloadLength(123_456_789_012, data.Length), read.Buffer.Length);
        var parsed = ParameterChunk.Parser.ParseFrom(read.Buffer);
        Assert.AreEqual(123_456_789_012UL, parsed.Offset);
        CollectionAssert.AreEqual(data, parsed.Data.ToByteArray());
        CollectionAssert.AreEqual(hash, parsed.Blake3.ToByteArray());

        // And the other way round, with an unknown field the codec must skip.
        var generated = new ParameterChunk { Offset = 5, Data = ByteString.CopyFrom(data), Blake3 = ByteString.CopyFrom(hash) }.ToByteArray();
        byte[] withUnknown = [.. generated, 0x78, 0x01]; // field 15, varint 1
        var back = new byte[32];
        ParameterChunkCodec.Read(new ReadOnlySequence<byte>(withUnknown), 0, out var offset, out var payload, back);
        Assert.AreEqual(5UL, offset);
        CollectionAssert.AreEqual(data, payload.ToArray());
        CollectionAssert.AreEqual(hash, back);
    }

    [TestMethod]
    [DataRow(new byte[] { 0x12, 0x05, 0x01 }, "claims 5 bytes")]
    [DataRow(new byte[] { 0x12, 0x00 }, "blake3 is missing")]
    [DataRow(new byte[] { 0x1A, 0x02, 0x01, 0x02, 0x12, 0x00 }, "blake3 is 2 bytes")]
    [DataRow(new byte[] { 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01 }, "longer than 10 bytes")]
    [DataRow(new byte[] { 0x0B }, "wire type 3")]
    [DataRow(new byte[] { 0x08, 0x01, 0x08, 0x02 }, "field 1 is repeated")]
    public void Malformed_chunks_are_refused(byte[] payload, string expected)
    {
        var ex = Assert.ThrowsExactly<ProtocolException>(() => ParameterChunkCodec.Read(new ReadOnlySequence<byte>(payload), 77, out _, out _, new byte[32]));
        Assert.AreEqual(ErrorCode.MalformedFrame, ex.Code);
        StringAssert.Contains(ex.Message, expected);
        StringAssert.Contains(ex.Message, "byte 77");
    }

    [TestMethod]
    public void Manifest_root_depends_on_every_chunk()
    {
        var set = Make(10_000, 7);
        var root = ParameterManifest.Compute(set, 4096).GetRoot();
        set.Data[9_999] += 1;
        CollectionAssert.AreNotEqual(root, ParameterManifest.Compute(set, 4096).GetRoot());
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ParameterManifest.Compute(set, 4098));
    }
}
