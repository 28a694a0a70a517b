using System.Runtime.InteropServices;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;
using NearML.Core;
using NearML.Core.Collectives;
using NearML.Core.Contracts;
using NearML.Core.Protocol;
using NearML.Hosting.Coordinator;
using NearML.Hosting.Rounds;
using NearML.Training.Sync;

namespace NearML.Hosting.Tests.Relay;

/// <summary>
/// The coordinator relay's steady state (issue 15 leftovers): a DDP step — every worker's fp32 contribution reduced and the
/// mean sent back to each — allocates nothing the size of the model once warm (decode buffers and mean kept, the result
/// encoded once into a pooled buffer the sends share), and its result is bit-identical to decoding each contribution into
/// a new array, reducing with Core's one reducer into a new mean and encoding that.
/// </summary>
[TestClass]
[DoNotParallelize] // measures the process's allocated bytes
public sealed class RelayAllocationTests
{
    private const string Job = "relay-alloc";

    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task A_warm_relay_step_allocates_far_less_than_its_payload_and_its_result_is_bit_identical()
    {
        const int Length = 262_144; // 1 MiB of fp32 per contribution
        const int Workers = 3;
        await using var relay = await RelayUnderTest.StartAsync(Workers, TestContext.CancellationToken);

        // Bit-identity, with a rejected contribution and unequal weights: step 0 against the reference computation.
        var rng = new Random(11);
        var values = Enumerable.Range(0, Workers).Select(_ => Enumerable.Range(0, Length).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray()).ToArray();
        values[1][77] = float.NaN;
        double[] weights = [1, 2, 3.5];
        var contributions = Enumerable.Range(0, Workers).Select(i => Contribution(0, values[i], weights[i])).ToArray();
        relay.Capture();
        relay.Step(contributions);
        var first = await relay.CapturedResultAsync(0, TestContext.CancellationToken);
        var (expected, expectedWeight, expectedParticipants) = Reference(values, weights);
        CollectionAssert.AreEqual(expectedParticipants, first.Participants.ToArray());
        Assert.AreEqual(expectedWeight, first.TotalWeight);
        CollectionAssert.AreEqual(expected, first.Payload.ToByteArray(), "the relay's result equals decode → reduce → encode into new arrays");
        Assert.HasCount(1, first.Rejections);
        StringAssert.StartsWith(first.Rejections[0], "w1: NonFinite");

        // Steady state: the same contributions (payload objects reused, as parsed frames are not the relay's to pool).
        values[1][77] = 0.25f;
        for (var i = 0; i < Workers; i++)
        {
            contributions[i] = Contribution(0, values[i], weights[i]);
        }

        const int Warmup = 8;
        const int Measured = 24;
        long tag = 1;
        for (var s = 0; s < Warmup; s++)
        {
            relay.Step(contributions, tag++);
        }

        var buffersAfterWarmup = relay.Protocol.BuffersAllocated;
        var before = GC.GetTotalAllocatedBytes(precise: true);
        for (var s = 0; s < Measured; s++)
        {
            relay.Step(contributions, tag++);
        }

        var perStep = (GC.GetTotalAllocatedBytes(precise: true) - before) / Measured;
        var payload = Length * 4L;
        TestContext.WriteLine($"relay step: {perStep:N0} bytes allocated per step for {Workers} × {payload:N0}-byte contributions and {Workers} × {payload:N0}-byte results ({(double)perStep / payload:P2} of one payload)");
        Assert.AreEqual(buffersAfterWarmup, relay.Protocol.BuffersAllocated, "no decode or mean buffer is allocated once warm");
        Assert.IsLessThan(payload / 16, perStep, $"{perStep:N0} bytes allocated per step; the payload is {payload:N0} bytes");

        // The last step's result is still the reference's (the kept buffers are overwritten whole, the pooled one too).
        relay.Capture();
        relay.Step(contributions, tag);
        var last = await relay.CapturedResultAsync(tag, TestContext.CancellationToken);
        var (again, _, _) = Reference(values, weights);
        CollectionAssert.AreEqual(again, last.Payload.ToByteArray());
    }

    /// <summary>The relay's result computed the way it was before buffers were kept: new arrays throughout.</summary>
    private static (byte[] Bytes, double TotalWeight, string[] Participants) Reference(float[][] values, double[] weights)
    {
        var candidates = values.Select((v, i) =>
        {
            var bytes = MemoryMarshal.AsBytes(v.AsSpan()).ToArray();
            var decoded = new float[bytes.Length / 4];
            Float32Codec.Instance.Decode(bytes, decoded);
            return new ScreenCandidate($"w{i}", decoded, weights[i]);
        }).ToList();
        var mean = new float[values[0].Length];
        var reduced = ContributionScreen.Reduce(0, candidates, new ContributionPolicy { RejectNonFinite = true, MaxNormToMedianRatio = null }, mean);
        var encoded = new byte[mean.Length * 4];
        Float32Codec.Instance.Encode(mean, encoded);
        return (encoded, reduced.TotalWeight, [.. reduced.Screen.Accepted.Select(a => candidates[a.Index].WorkerId)]);
    }

    private static RelayContribution Contribution(long tag, float[] values, double weight) => new()
    {
        JobId = Job,
        Round = 0,
        Tag = tag,
        Kind = RelayKind.Reduce,
        Weight = weight,
        Encoding = UpdateEncoding.Fp32,
        Payload = ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan())),
    };

    /// <summary>A relay round over real <see cref="FrameConnection"/>s whose peers only count (and optionally keep) the bytes sent.</summary>
    private sealed class RelayUnderTest : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop;
        private readonly Task<RoundResult> _round;
        private readonly SinkStream[] _streams;
        private readonly WorkerSession[] _sessions;
        private readonly FrameConnection[] _connections;

        private RelayUnderTest(RelayRoundProtocol protocol, SinkStream[] streams, FrameConnection[] connections, WorkerSession[] sessions, Task<RoundResult> round, CancellationTokenSource stop)
        {
            Protocol = protocol;
            _streams = streams;
            _connections = connections;
            _sessions = sessions;
            _round = round;
            _stop = stop;
        }

        public RelayRoundProtocol Protocol { get; }

        public static Task<RelayUnderTest> StartAsync(int workers, CancellationToken cancellationToken)
        {
            var options = new NearMLCoordinatorOptions { JobId = Job, SyncStrategy = "ddp" };
            var metrics = new NearMLMetrics(new NullMeterFactory());
            var protocol = new RelayRoundProtocol(options, NullLogger.Instance, metrics);
            var pool = new FrameBufferPool();
            var streams = new SinkStream[workers];
            var connections = new FrameConnection[workers];
            var sessions = new WorkerSession[workers];
            for (var i = 0; i < workers; i++)
            {
                streams[i] = new SinkStream();
                connections[i] = new FrameConnection(streams[i], new FrameConnectionOptions { BufferPool = pool, MaxFrameSize = 8 << 20, SendBufferLimit = 8 << 20, ReceiveBufferLimit = 8 << 20 });
                var admitted = new AdmittedWorker($"w{i}", new byte[32], new WorkerCapabilities(), "s", string.Empty, WireProtocol.CurrentVersion);
                sessions[i] = new WorkerSession(connections[i], admitted, $"w{i}.near", verified: false, CancellationToken.None);
            }

            var layout = new ParameterLayout([("w", [4])]);
            var time = TimeProvider.System;
            var context = new RoundContext(
                0,
                0,
                [.. sessions.Select(s => s.Participant)],
                time.GetUtcNow() + TimeSpan.FromMinutes(5),
                time.GetTimestamp(),
                options,
                new ParameterSet(layout),
                new NesterovOuterOptimizer(layout, 0.7, 0.9, nesterov: true),
                time,
                NullLogger.Instance,
                (p, _, _) =>
                {
                    p.BeginRound(0, 0, time.GetTimestamp());
                    return Task.CompletedTask;
                },
                _ => 0,
                (_, _, _) => { });
            var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);

            // RunAsync begins the relay round before its first await: contributions are accepted from here on.
            var round = protocol.RunAsync(context, stop.Token);
            return Task.FromResult(new RelayUnderTest(protocol, streams, connections, sessions, round, stop));
        }

        /// <summary>Keeps the bytes sent to worker 0 from now on (the next result frame).</summary>
        public void Capture() => _streams[0].StartCapture();

        /// <summary>Offers every worker's contribution to exchange <paramref name="tag"/> and waits until every result was written.</summary>
        public void Step(RelayContribution[] contributions, long tag = 0)
        {
            Span<long> frames = stackalloc long[_streams.Length];
            for (var i = 0; i < _streams.Length; i++)
            {
                frames[i] = _streams[i].Frames;
            }

            for (var i = 0; i < contributions.Length; i++)
            {
                contributions[i].Tag = tag;
                Assert.IsTrue(Protocol.OnMessage(_sessions[i].Participant, contributions[i]));
            }

            var deadline = Environment.TickCount64 + 30_000;
            for (var i = 0; i < _streams.Length; i++)
            {
                while (_streams[i].Frames <= frames[i])
                {
                    Assert.IsLessThan(deadline, Environment.TickCount64, $"no result reached worker {i}");
                    Thread.Sleep(1);
                }
            }
        }

        public async Task<RelayResult> CapturedResultAsync(long tag, CancellationToken cancellationToken)
        {
            var bytes = _streams[0].StopCapture();
            await using var reader = new FrameConnection(new MemoryStream(bytes), new FrameConnectionOptions { MaxFrameSize = 8 << 20, ReceiveBufferLimit = 8 << 20 });
            var result = await reader.ReceiveAsync<RelayResult>(cancellationToken);
            Assert.AreEqual(tag, result.Tag);
            return result;
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await Assert.ThrowsAsync<OperationCanceledException>(() => _round);
            foreach (var s in _sessions)
            {
                s.Dispose();
            }

            foreach (var c in _connections)
            {
                await c.DisposeAsync();
            }

            _stop.Dispose();
        }
    }

    /// <summary>A peer that never sends and swallows (counts, optionally keeps) what it receives.</summary>
    private sealed class SinkStream : Stream
    {
        private readonly byte[] _header = new byte[WireProtocol.FrameHeaderSize];
        private int _headerFill;
        private long _bodyLeft;
        private long _frames;
        private readonly Lock _gate = new();
        private MemoryStream? _capture;

        /// <summary>Gets the number of whole frames written (the connection's send loop is the only writer).</summary>
        public long Frames => Volatile.Read(ref _frames);

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public void StartCapture()
        {
            lock (_gate)
            {
                _capture = new MemoryStream();
            }
        }

        public byte[] StopCapture()
        {
            lock (_gate)
            {
                var bytes = _capture!.ToArray();
                _capture = null;
                return bytes;
            }
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return 0;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Write(buffer.Span);
            return ValueTask.CompletedTask;
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        {
            Write(buffer.AsSpan(offset, count));
            return Task.CompletedTask;
        }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (_capture is not null)
            {
                lock (_gate)
                {
                    _capture?.Write(buffer);
                }
            }

            while (!buffer.IsEmpty)
            {
                if (_bodyLeft > 0)
                {
                    var take = (int)Math.Min(_bodyLeft, buffer.Length);
                    _bodyLeft -= take;
                    buffer = buffer[take..];
                    if (_bodyLeft == 0)
                    {
                        Interlocked.Increment(ref _frames);
                    }

                    continue;
                }

                var copy = Math.Min(_header.Length - _headerFill, buffer.Length);
                buffer[..copy].CopyTo(_header.AsSpan(_headerFill));
                _headerFill += copy;
                buffer = buffer[copy..];
                if (_headerFill == _header.Length)
                {
                    _headerFill = 0;
                    _bodyLeft = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(_header);
                    if (_bodyLeft == 0)
                    {
                        Interlocked.Increment(ref _frames);
                    }
                }
            }
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }

    private sealed class NullMeterFactory : System.Diagnostics.Metrics.IMeterFactory
    {
        public System.Diagnostics.Metrics.Meter Create(System.Diagnostics.Metrics.MeterOptions options) => new(options);

        public void Dispose()
        {
        }
    }
}
