using System.Security.Cryptography;
using Google.Protobuf;
using NearML.Core;
using NearML.Core.Contracts;
using NearML.Core.Protocol;
using NearML.Hosting.Coordinator;
using NearML.Hosting.Jobs;
using NearML.Hosting.Rounds;

namespace NearML.Hosting.Tests.Rounds;

/// <summary>Issue 15 §2 "Copies": the coordinator's reused buffers keep every result and never hand out a buffer in use.</summary>
[TestClass]
public sealed class CopiesTests
{
    [TestMethod]
    public void A_published_snapshot_is_never_overwritten_while_held_and_two_buffers_alternate_in_steady_state()
    {
        var layout = new ParameterLayout([("w", [64]), ("b", [8])]);
        var global = new ParameterSet(layout);
        var published = new PublishedParameters();
        global.Data.Clear();
        published.Publish(global, 0);
        for (var version = 1; version <= 20; version++)
        {
            // A download (or checkpoint) holds the current version while the next one is published.
            var held = published.Acquire();
            var expected = held.Parameters.Buffer.ToArray();
            Assert.AreEqual(version - 1, held.Version);
            global.Data.Fill(version);
            published.Publish(global, version);
            CollectionAssert.AreEqual(expected, held.Parameters.Buffer, $"version {version - 1} changed while held");
            Assert.AreEqual(version, published.Current.Version);
            Assert.IsTrue(published.Current.Parameters.Buffer.All(v => v == version));
            CollectionAssert.AreEqual(ParameterManifest.Compute(published.Current.Parameters).Root.ToArray(), published.Current.Manifest.Root.ToArray());
            held.Release();
        }

        Assert.AreEqual(2, published.Allocated, "the current version and the one a reader held alternate between two buffers");

        // Two readers of old versions at once need a third buffer, and only then.
        var a = published.Acquire();
        global.Data.Fill(100);
        published.Publish(global, 100);
        var b = published.Acquire();
        global.Data.Fill(101);
        published.Publish(global, 101);
        Assert.AreEqual(3, published.Allocated);
        Assert.IsTrue(a.Parameters.Buffer.All(v => v == 20) && b.Parameters.Buffer.All(v => v == 100));
        a.Release();
        b.Release();
        Assert.ThrowsExactly<InvalidOperationException>(() => b.Release(), "a double release is a bug, not a silent reuse");
    }

    [TestMethod]
    public async Task Uploads_decode_into_one_buffer_per_worker_with_the_same_values_and_a_late_update_is_ignored()
    {
        const int Count = 5000;
        await using var connection = new FrameConnection(new MemoryStream());
        var admitted = new AdmittedWorker("w1", new byte[32], new WorkerCapabilities(), "s", string.Empty, WireProtocol.CurrentVersion);
        var session = new WorkerSession(connection, admitted, "w1.near", verified: false, CancellationToken.None);
        var time = TimeProvider.System;
        float[]? previous = null;
        var rng = new Random(3);
        foreach (var (round, encoding, parts) in new[] { (0L, "fp32", 1), (1L, "fp32", 3), (2L, "int8", 1), (3L, "int8", 2), (4L, "fp32", 4) })
        {
            var delta = Enumerable.Range(0, Count).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
            var payload = UpdateEncoding.Encode(encoding, delta);
            var expected = new float[Count];
            UpdateEncoding.Decode(encoding, payload, expected);
            _ = session.BeginRound(round, round, time.GetTimestamp());
            var per = (payload.Length + parts - 1) / parts;
            for (var i = 0; i < parts; i++)
            {
                var slice = payload.AsSpan(i * per, Math.Min(per, payload.Length - (i * per)));
                Assert.IsNull(session.Receive(Update(round, encoding, slice, i, parts, payload), encoding, Count, time.GetTimestamp(), time));
            }

            var u = session.TakeUpdate(round);
            Assert.IsNotNull(u?.Values, u?.Detail);
            CollectionAssert.AreEqual(expected, u.Values, $"round {round} ({encoding}, {parts} parts)");
            CollectionAssert.AreEqual(SHA256.HashData(payload), u.PayloadSha256);
            if (previous is not null && previous.Length == Count)
            {
                Assert.AreSame(previous, u.Values, "one decode buffer per worker, reused every round");
            }

            previous = u.Values;

            // The round is closed once its update was taken: another Update for it must not be decoded into the buffer the
            // protocol is reducing.
            var before = u.Values.ToArray();
            var again = session.Receive(Update(round, encoding, payload, 0, 1, payload), encoding, Count, time.GetTimestamp(), time);
            StringAssert.Contains(again, "after the round closed", StringComparison.Ordinal);
            CollectionAssert.AreEqual(before, u.Values);
            Assert.IsNull(session.TakeUpdate(round));
        }

        session.Dispose();
    }

    private static Update Update(long round, string encoding, ReadOnlySpan<byte> part, int index, int count, byte[] whole) => new()
    {
        Round = (ulong)round,
        BaseParameterVersion = (ulong)round,
        Encoding = encoding,
        Payload = ByteString.CopyFrom(part),
        SampleCount = 10,
        Loss = 1f,
        PartIndex = (uint)index,
        PartCount = (uint)count,
        PayloadSha256 = ByteString.CopyFrom(SHA256.HashData(whole)),
    };
}
