using System.Buffers;
using System.IO.Pipelines;
using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Google.Protobuf;
using NearML.Core.Contracts;
using NearML.Core.Protocol;
using NearML.Core.Protocol.Internal;

namespace NearML.Core.Tests.Protocol;

/// <summary>
/// The streaming paths of <see cref="ParameterTransfer"/>: chunk bytes written to the stream from the parameter buffer and
/// received into the destination while they arrive. Real loopback sockets, real TLS 1.3 where the peer's timing matters.
/// </summary>
[TestClass]
[DoNotParallelize]
public sealed class ParameterTransferStreamingTests
{
    private const int Chunk = 4096;
    private static X509Certificate2 s_certificate = null!;

    public TestContext TestContext { get; set; } = null!;

    [ClassInitialize]
    public static void CreateCertificate(TestContext context) => s_certificate = CoordinatorCertificate.CreateDevelopment();

    [ClassCleanup]
    public static void DisposeCertificate() => s_certificate.Dispose();

    [TestMethod]
    public async Task Large_set_over_TLS_arrives_intact_with_heartbeats_sent_between_chunks()
    {
        var (client, server, _, _) = await TlsPairAsync();
        await using var a = new FrameConnection(server);
        await using var b = new FrameConnection(client);
        var source = Make(3_000_017, 1); // 12,000,068 bytes: 11 full 1 MiB chunks and a partial one
        var destination = source.CreateZeros();
        var manifest = ParameterManifest.Compute(source);
        using var stop = new CancellationTokenSource();

        // Another task sends frames on the same connection while chunk bodies are being written from the parameter buffer.
        var heartbeats = a.RunHeartbeatsAsync(TimeSpan.FromMilliseconds(1), stop.Token);
        var send = ParameterTransfer.SendAsync(a, source, 9, manifest, TestContext.CancellationToken);
        var received = await ParameterTransfer.ReceiveAsync(b, destination, 9, manifest.GetRoot(), TestContext.CancellationToken);
        await send;
        await stop.CancelAsync();
        await heartbeats;

        CollectionAssert.AreEqual(source.Buffer, destination.Buffer);
        CollectionAssert.AreEqual(manifest.GetRoot(), received.GetRoot());

        // The same connection carries another transfer afterwards (the stream is still at a frame boundary), without a manifest.
        var again = source.CreateZeros();
        var second = ParameterTransfer.SendAsync(a, source, 10, cancellationToken: TestContext.CancellationToken);
        await ParameterTransfer.ReceiveAsync(b, again, 10, manifest.GetRoot(), TestContext.CancellationToken);
        await second;
        CollectionAssert.AreEqual(source.Buffer, again.Buffer);
    }

    [TestMethod]
    public async Task Chunks_drip_fed_one_byte_per_TLS_record_arrive_intact()
    {
        var (client, server, _, _) = await TlsPairAsync();
        await using var b = new FrameConnection(client);
        await using var _server = server;
        var source = Make(2 * Chunk / 4, 2);
        var bytes = MemoryMarshal.AsBytes(source.Buffer.AsSpan()).ToArray();
        var manifest = ParameterManifest.Compute(source, Chunk);

        // The first chunk in the streaming layout, the second as generated protobuf writes it (data before hash).
        byte[] stream =
        [
            .. CanonicalFrame(0, bytes.AsSpan(0, Chunk)),
            .. Frame(FrameType.ParameterChunk, new ParameterChunk { Offset = Chunk, Data = ByteString.CopyFrom(bytes, Chunk, Chunk), Blake3 = ByteString.CopyFrom(manifest.GetChunkHash(1)) }.ToByteArray()),
            .. Frame(FrameType.ParameterDone, Done(manifest, 4).ToByteArray()),
        ];
        var drip = Task.Run(async () =>
        {
            for (var i = 0; i < stream.Length; i++)
            {
                await server.WriteAsync(stream.AsMemory(i, 1), TestContext.CancellationToken);
                await server.FlushAsync(TestContext.CancellationToken);
            }
        });
        var destination = source.CreateZeros();
        var received = await ParameterTransfer.ReceiveAsync(b, destination, 4, manifest.GetRoot(), TestContext.CancellationToken);
        await drip;
        CollectionAssert.AreEqual(source.Buffer, destination.Buffer);
        Assert.AreEqual(2, received.ChunkCount);
    }

    [TestMethod]
    [DataRow(false, ErrorCode.TruncatedFrame, DisplayName = "peer closes the connection mid-chunk")]
    [DataRow(true, ErrorCode.ConnectionClosed, DisplayName = "peer's socket is reset mid-chunk")]
    public async Task Peer_that_dies_mid_chunk_gives_a_typed_error_and_leaves_no_unverified_bytes(bool reset, ErrorCode expected)
    {
        var (client, server, _, serverSocket) = await TlsPairAsync();
        await using var b = new FrameConnection(client);
        var source = Make(2 * Chunk / 4, 3);
        var bytes = MemoryMarshal.AsBytes(source.Buffer.AsSpan()).ToArray();
        var destination = source.CreateZeros();
        destination.Data.Fill(7f);
        var receive = ParameterTransfer.ReceiveAsync(b, destination, 1, cancellationToken: TestContext.CancellationToken);

        var first = CanonicalFrame(0, bytes.AsSpan(0, Chunk));
        await server.WriteAsync(first, TestContext.CancellationToken);
        await WaitForAsync(() => b.BytesReceived >= first.Length);
        var second = CanonicalFrame(Chunk, bytes.AsSpan(Chunk, Chunk));
        await server.WriteAsync(second.AsMemory(0, second.Length / 2), TestContext.CancellationToken);
        await Task.Delay(100, TestContext.CancellationToken);
        if (reset)
        {
            // Closing the socket itself with a zero linger sends RST (NetworkStream.Dispose would shut down cleanly first).
            serverSocket.LingerState = new LingerOption(true, 0);
            serverSocket.Dispose();
        }
        else
        {
            await server.DisposeAsync();
        }

        var ex = await Assert.ThrowsExactlyAsync<ProtocolException>(() => receive);
        Assert.AreEqual(expected, ex.Code, ex.Message);
        CollectionAssert.AreEqual(source.Buffer.AsSpan(0, Chunk / 4).ToArray(), destination.Buffer.AsSpan(0, Chunk / 4).ToArray(), "the verified first chunk stays");
        var unverified = destination.Buffer.AsSpan(Chunk / 4);
        Assert.IsTrue(unverified.IndexOfAnyExcept(0f) < 0 || unverified.IndexOfAnyExcept(7f) < 0, "the unfinished chunk is zeroed (or was never started)");
        if (!reset)
        {
            Assert.IsTrue(unverified.IndexOfAnyExcept(0f) < 0, "half the chunk had arrived: it is zeroed");
            StringAssert.Contains(ex.Message, "truncated");
        }
    }

    [TestMethod]
    public async Task Peer_that_stalls_mid_chunk_times_out_and_the_connection_is_faulted()
    {
        var (client, server, _, _) = await TlsPairAsync();
        await using var b = new FrameConnection(client);
        await using var _server = server;
        var source = Make(Chunk / 4, 4);
        var bytes = MemoryMarshal.AsBytes(source.Buffer.AsSpan()).ToArray();
        var frame = CanonicalFrame(0, bytes);
        await server.WriteAsync(frame.AsMemory(0, frame.Length - 100), TestContext.CancellationToken);
        var destination = source.CreateZeros();
        destination.Data.Fill(7f);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(2)); // ample for the 4 KB already written to be read and streamed into place

        await Assert.ThrowsAsync<OperationCanceledException>(() => ParameterTransfer.ReceiveAsync(b, destination, 1, cancellationToken: timeout.Token));
        Assert.IsTrue(destination.Buffer.AsSpan().IndexOfAnyExcept(0f) < 0, "the chunk's partly received bytes are zeroed");

        // The stream is no longer at a frame boundary: the connection refuses to go on, even once the rest arrives.
        await server.WriteAsync(frame.AsMemory(frame.Length - 100), TestContext.CancellationToken);
        var again = await Assert.ThrowsExactlyAsync<ProtocolException>(async () => await b.ReceiveFrameAsync(TestContext.CancellationToken));
        Assert.AreEqual(ErrorCode.ConnectionClosed, again.Code);
        StringAssert.Contains(again.Message, "cancelled");
    }

    [TestMethod]
    public async Task Cancelling_a_send_while_the_peer_does_not_read_closes_the_connection()
    {
        var (client, server, _, _) = await TlsPairAsync();
        await using var a = new FrameConnection(server);
        await using var _client = client; // never read: socket buffers fill and the chunk write blocks
        var source = Make(16 << 20, 5); // 64 MiB, far more than loopback buffers hold
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(TestContext.CancellationToken);
        var send = ParameterTransfer.SendAsync(a, source, 1, cancellationToken: cancel.Token);

        // Wait until the sender is stuck writing a chunk body (nothing more is queued), then cancel.
        for (long last = -1, stable = 0; stable < 2; stable = a.BytesSent == last ? stable + 1 : 0)
        {
            last = a.BytesSent;
            await Task.Delay(300, TestContext.CancellationToken);
        }

        var clock = System.Diagnostics.Stopwatch.StartNew();
        await cancel.CancelAsync();
        await Assert.ThrowsAsync<OperationCanceledException>(() => send);
        Assert.IsLessThan(30, clock.Elapsed.TotalSeconds, "the blocked write is abandoned, not waited out");
        Assert.IsTrue(a.Closed.IsCancellationRequested, "a half-written frame cannot be finished: the connection is closed");
        var ex = await Assert.ThrowsExactlyAsync<ProtocolException>(async () => await a.SendAsync(new Goodbye(), TestContext.CancellationToken));
        Assert.AreEqual(ErrorCode.ConnectionClosed, ex.Code);
    }

    /// <summary>
    /// Differential, exhaustive over single-byte mutations and truncations of the head and tail of four encodings of one
    /// chunk: the streaming receive reaches the same outcome (success or error code) as parsing the whole frame with the
    /// reference decoder, and no unverified byte ever stays in the destination.
    /// </summary>
    [TestMethod]
    public async Task Every_mutated_or_cut_chunk_frame_gets_the_reference_outcome()
    {
        var data = new byte[Chunk];
        new Random(6).NextBytes(data);
        var hash = global::Blake3.Hasher.Hash(data).AsSpan().ToArray();
        var canonical = CanonicalFrame(0, data)[WireProtocol.FrameHeaderSize..];
        byte[] noOffset = [0x1A, 0x20, .. hash, 0x12, 0x80, 0x20, .. data];
        byte[] withTrailer = [.. canonical, 0x78, 0x01];
        var generated = new ParameterChunk { Offset = 0, Data = ByteString.CopyFrom(data), Blake3 = ByteString.CopyFrom(hash) }.ToByteArray();
        var cases = new List<byte[]>();
        foreach (var encoding in new[] { canonical, noOffset, withTrailer, generated })
        {
            cases.Add(encoding);
            var positions = Enumerable.Range(0, 44).Concat(Enumerable.Range(encoding.Length - 3, 3));
            foreach (var position in positions)
            {
                foreach (var flip in new byte[] { 0x01, 0x80 })
                {
                    var mutated = (byte[])encoding.Clone();
                    mutated[position] ^= flip;
                    cases.Add(mutated);
                }
            }

            foreach (var cut in Enumerable.Range(0, 44))
            {
                cases.Add(encoding[..cut]);
            }
        }

        var streamedLayouts = 0;
        foreach (var payload in cases)
        {
            var reference = Reference(payload, 2 * Chunk);
            if (ParameterChunkCodec.TryReadHead(new ReadOnlySequence<byte>(payload), payload.Length, out _, new byte[32], out _, out _) == ChunkHeadStatus.Complete)
            {
                streamedLayouts++;
            }

            var (left, right) = await TestSockets.PairAsync();
            await using var a = new FrameConnection(left);
            await using var b = new FrameConnection(right);
            var destination = ParameterSet.Create(("w", [2 * Chunk / 4]));
            destination.Data.Fill(7f);
            await a.SendSerializedAsync(FrameType.ParameterChunk, payload, TestContext.CancellationToken);
            await a.SendAsync(new Goodbye(), TestContext.CancellationToken);
            var ex = await Assert.ThrowsExactlyAsync<ProtocolException>(
                () => ParameterTransfer.ReceiveAsync(b, destination, 1, cancellationToken: TestContext.CancellationToken));
            var bytes = MemoryMarshal.AsBytes(destination.Buffer.AsSpan());
            var context = $"payload {Convert.ToHexString(payload.AsSpan(0, Math.Min(48, payload.Length)))}… ({payload.Length} bytes): {ex.Message}";
            if (reference is { } code)
            {
                Assert.AreEqual(code, ex.Code, context);
                Assert.IsTrue(OnlyZeroOr7(destination.Buffer), "no unverified byte stays: " + context);
            }
            else
            {
                Assert.AreEqual(ErrorCode.UnexpectedMessage, ex.Code, context); // the chunk was accepted; the Goodbye after it is not
                ParameterChunkCodec.Read(new ReadOnlySequence<byte>(payload), 0, out _, out var accepted, new byte[32]);
                CollectionAssert.AreEqual(accepted.ToArray(), bytes[..(int)accepted.Length].ToArray(), context);
            }
        }

        Assert.IsGreaterThan(cases.Count / 3, streamedLayouts, "most cases take the streaming path");
    }

    [TestMethod]
    public async Task Steady_state_chunks_allocate_nothing_on_either_side()
    {
        var (left, right) = await TestSockets.PairAsync();
        using var pool = new FrameBufferPool();
        var options = new FrameConnectionOptions { BufferPool = pool };
        await using var a = new FrameConnection(left, options);
        await using var b = new FrameConnection(right, options);
        const int chunk = 64 << 10; // the smallest body written straight from the parameter buffer (SegmentSize)

        async Task<long> TransferAsync(int chunks)
        {
            var source = Make(chunks * chunk / 4, chunks);
            var manifest = ParameterManifest.Compute(source, chunk);
            var destination = source.CreateZeros();
            GC.Collect();
            var blocks = pool.AllocatedBlocks;
            var before = GC.GetTotalAllocatedBytes(precise: true);
            var send = ParameterTransfer.SendAsync(a, source, 1, manifest, TestContext.CancellationToken);
            await ParameterTransfer.ReceiveAsync(b, destination, 1, manifest.GetRoot(), TestContext.CancellationToken);
            await send;
            var allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
            CollectionAssert.AreEqual(source.Buffer, destination.Buffer);

            // Not per chunk: the received manifest's chunk hashes (the result, 32 bytes a chunk) and the pool growing to a new
            // peak of blocks in flight (a 64 KiB block and its owner object each).
            var grown = pool.AllocatedBlocks - blocks;
            TestContext.WriteLine($"{chunks} chunks: pool {pool.AllocatedBlocks} blocks allocated, {pool.RetainedBytes >> 16} retained");
            return allocated - (chunks * 32L) - (grown * ((64 << 10) + 64));
        }

        // Warm-up: JIT, and the buffer pool grows to what a transfer keeps in flight (growth is not per chunk).
        for (var i = 0; i < 3; i++)
        {
            await TransferAsync(220);
        }
        // The least of three transfers of each size, 1,000 chunks apart: a per-chunk allocation shows in every transfer, while
        // the runtime's own occasional allocations (a few KB now and then: an async operation completing asynchronously, a
        // thread-pool queue growing) do not repeat and are spread over 1,000 chunks.
        long small = long.MaxValue, large = long.MaxValue;
        for (var i = 0; i < 3; i++)
        {
            small = Math.Min(small, await TransferAsync(20));
            large = Math.Min(large, await TransferAsync(1020));
        }

        var perChunk = (large - small) / 1000.0;
        TestContext.WriteLine($"20 chunks: {small} B, 1020 chunks: {large} B -> {perChunk:0.0} B per extra chunk");
        Assert.IsLessThan(8, perChunk, $"{perChunk:0.0} bytes allocated per 64 KiB chunk (both sides); one object per chunk would be 24 or more");
    }

    private static bool OnlyZeroOr7(float[] values) => values.All(static v => v is 0f or 7f);

    /// <summary>What the whole-frame decoder and the transfer's checks make of a chunk payload: null when it is accepted.</summary>
    private static ErrorCode? Reference(byte[] payload, long totalBytes)
    {
        var hash = new byte[32];
        try
        {
            ParameterChunkCodec.Read(new ReadOnlySequence<byte>(payload), 0, out var offset, out var data, hash);
            if (offset != 0 || data.Length == 0 || data.Length > totalBytes)
            {
                return ErrorCode.MalformedFrame;
            }

            return global::Blake3.Hasher.Hash(data.ToArray()).AsSpan().SequenceEqual(hash) ? null : ErrorCode.HashMismatch;
        }
        catch (ProtocolException ex)
        {
            return ex.Code;
        }
    }

    private static ParameterSet Make(int floats, int seed)
    {
        var set = ParameterSet.Create(("w", [floats]));
        var rng = new Random(seed);
        for (var i = 0; i < set.Length; i++)
        {
            set.Data[i] = (float)rng.NextDouble() - 0.5f;
        }

        return set;
    }

    private static ParameterDone Done(ParameterManifest manifest, ulong version) => new()
    {
        ParameterVersion = version,
        TotalBytes = (ulong)manifest.TotalBytes,
        ChunkSize = (uint)manifest.ChunkSize,
        ChunkCount = (uint)manifest.ChunkCount,
        TotalSha256 = ByteString.CopyFrom(manifest.Root),
    };

    private static byte[] CanonicalFrame(ulong offset, ReadOnlySpan<byte> data)
    {
        var pipe = new Pipe();
        ParameterChunkCodec.Write(pipe.Writer, offset, global::Blake3.Hasher.Hash(data).AsSpan().ToArray(), data, 4096);
        pipe.Writer.Complete();
        pipe.Reader.TryRead(out var result);
        return Frame(FrameType.ParameterChunk, result.Buffer.ToArray());
    }

    private static byte[] Frame(FrameType type, byte[] payload) => [.. TestSockets.Header((uint)payload.Length, (ushort)type), .. payload];

    private async Task WaitForAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!condition())
        {
            Assert.IsLessThan(deadline, DateTime.UtcNow, "timed out waiting");
            await Task.Delay(5, TestContext.CancellationToken);
        }
    }

    /// <summary>A TLS 1.3 pair over loopback TCP: the client side (for FrameConnection receivers) and the server side.</summary>
    private static async Task<(SslStream Client, SslStream Server, Socket ClientSocket, Socket ServerSocket)> TlsPairAsync()
    {
        var (left, right) = await TestSockets.PairAsync();
        var client = new SslStream(left);
        var server = new SslStream(right);
        var fingerprint = CoordinatorCertificate.GetFingerprint(s_certificate);
        await Task.WhenAll(
            server.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = s_certificate, EnabledSslProtocols = SslProtocols.Tls13 }),
            client.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = "localhost",
                EnabledSslProtocols = SslProtocols.Tls13,
                RemoteCertificateValidationCallback = (_, c, _, _) => c is not null && CoordinatorCertificate.GetFingerprint(c) == fingerprint,
            }));
        return (client, server, left.Socket, right.Socket);
    }
}
