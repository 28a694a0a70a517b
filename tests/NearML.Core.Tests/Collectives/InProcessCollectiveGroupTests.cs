using NearML.Core;
using NearML.Core.Collectives;

namespace NearML.Core.Tests.Collectives;

[TestClass]
public sealed class InProcessCollectiveGroupTests
{
    private static float[] Values(int n, float start) => [.. Enumerable.Range(0, n).Select(i => start + i)];

    [TestMethod]
    public async Task Reduce_IsWeightedMean_AndCountsPayloadBytes()
    {
        var group = new InProcessCollectiveGroup();
        var a = group.Join("a");
        var b = group.Join("b");
        var ra = new float[3];
        var rb = new float[3];
        var ta = a.AllReduceMeanAsync(0, new float[] { 1, 2, 3 }, 1, Float32Codec.Instance, ra).AsTask();
        var tb = b.AllReduceMeanAsync(0, new float[] { 5, 6, 7 }, 3, Float32Codec.Instance, rb).AsTask();
        var results = await Task.WhenAll(ta, tb);
        CollectionAssert.AreEqual(new float[] { 4, 5, 6 }, ra);
        CollectionAssert.AreEqual(ra, rb);
        Assert.AreEqual(4.0, results[0].TotalWeight);
        CollectionAssert.AreEqual(new[] { "a", "b" }, results[0].Participants.ToArray());
        Assert.AreEqual(12, results[0].BytesSent);
        Assert.AreEqual(12, results[0].BytesReceived);
        Assert.AreEqual(12, a.Statistics.BytesSent);
        Assert.AreEqual(12, a.Statistics.PeakBytesSentPerSync);
        Assert.AreEqual(1, a.Statistics.SyncCount);
    }

    [TestMethod]
    public async Task Reduce_IsBitIdenticalWhateverTheArrivalOrder()
    {
        var rng = new Random(7);
        var inputs = Enumerable.Range(0, 5).Select(_ => Enumerable.Range(0, 257).Select(_ => (float)(rng.NextDouble() * 2 - 1) * 1e3f).ToArray()).ToArray();
        byte[]? reference = null;
        for (var trial = 0; trial < 20; trial++)
        {
            var group = new InProcessCollectiveGroup();
            var eps = Enumerable.Range(0, 5).Select(i => group.Join("w" + i)).ToArray();
            var order = Enumerable.Range(0, 5).OrderBy(_ => rng.Next()).ToArray();
            var outputs = new float[5][];
            var tasks = new List<Task>();
            foreach (var i in order)
            {
                outputs[i] = new float[257];
                var index = i;
                tasks.Add(Task.Run(async () =>
                {
                    await Task.Delay(rng.Next(0, 3));
                    await eps[index].AllReduceMeanAsync(42, inputs[index], index + 1, Float32Codec.Instance, outputs[index]);
                }));
            }

            await Task.WhenAll(tasks);
            var bytes = outputs[0].SelectMany(BitConverter.GetBytes).ToArray();
            foreach (var o in outputs)
            {
                CollectionAssert.AreEqual(bytes, o.SelectMany(BitConverter.GetBytes).ToArray());
            }

            reference ??= bytes;
            CollectionAssert.AreEqual(reference, bytes, $"trial {trial} differs");
        }
    }

    [TestMethod]
    public async Task Reduce_UsesOnlyWorkersThatContributed_WhenOthersAbstainOrLeave()
    {
        var group = new InProcessCollectiveGroup();
        var a = group.Join("a");
        var b = group.Join("b");
        var c = group.Join("c");
        var ra = new float[2];
        var ta = a.AllReduceMeanAsync(1, new float[] { 2, 4 }, 1, Float32Codec.Instance, ra).AsTask();
        await b.AbstainAsync(1);
        Assert.IsFalse(ta.IsCompleted, "the round must still wait for c");
        await c.DisposeAsync();
        var r = await ta.WaitAsync(TimeSpan.FromSeconds(10));
        CollectionAssert.AreEqual(new[] { "a" }, r.Participants.ToArray());
        CollectionAssert.AreEqual(new float[] { 2, 4 }, ra);
        CollectionAssert.AreEqual(new[] { "a", "b" }, group.Members.ToArray());
    }

    [TestMethod]
    public async Task Joiner_TakesPartFromTheNextRound()
    {
        var group = new InProcessCollectiveGroup();
        var a = group.Join("a");
        var ra = new float[1];
        var other = group.Join("other");
        var pending = a.AllReduceMeanAsync(5, new float[] { 1 }, 1, Float32Codec.Instance, ra).AsTask();
        var late = group.Join("late");
        await Assert.ThrowsExactlyAsync<InvalidOperationException>(async () =>
            await late.AllReduceMeanAsync(5, new float[] { 9 }, 1, Float32Codec.Instance, new float[1]));
        await other.AbstainAsync(5);
        await pending;
        Assert.AreEqual(1f, ra[0]);
        await Assert.ThrowsExactlyAsync<InvalidOperationException>(async () =>
            await late.AllReduceMeanAsync(5, new float[] { 9 }, 1, Float32Codec.Instance, new float[1]));
        await other.DisposeAsync();
        var rl = new float[1];
        await Task.WhenAll(
            a.AllReduceMeanAsync(6, new float[] { 1 }, 1, Float32Codec.Instance, ra).AsTask(),
            late.AllReduceMeanAsync(6, new float[] { 3 }, 1, Float32Codec.Instance, rl).AsTask());
        Assert.AreEqual(2f, ra[0]);
        Assert.AreEqual(2f, rl[0]);
    }

    [TestMethod]
    public async Task NonFiniteAndAbsurdNormContributions_AreRejectedWithReason_NeverAveraged()
    {
        var group = new InProcessCollectiveGroup(new ContributionPolicy { MaxNormToMedianRatio = 10 });
        var eps = new[] { "a", "b", "c", "d" }.Select(id => group.Join(id)).ToArray();
        var inputs = new[] { new float[] { 1, 1 }, new float[] { 3, 3 }, new float[] { float.NaN, 0 }, new float[] { 1e6f, 1e6f } };
        var outs = inputs.Select(_ => new float[2]).ToArray();
        var results = await Task.WhenAll(eps.Select((e, i) => e.AllReduceMeanAsync(0, inputs[i], 1, Float32Codec.Instance, outs[i]).AsTask()));
        CollectionAssert.AreEqual(new float[] { 2, 2 }, outs[0]);
        CollectionAssert.AreEqual(new[] { "a", "b" }, results[0].Participants.ToArray());
        var rej = results[0].Rejections.OrderBy(r => r.WorkerId).ToArray();
        Assert.HasCount(2, rej);
        Assert.AreEqual(RejectionReason.NonFinite, rej[0].Reason);
        StringAssert.Contains(rej[0].Detail, "index 0");
        Assert.AreEqual("d", rej[1].WorkerId);
        Assert.AreEqual(RejectionReason.NormFarAboveMedian, rej[1].Reason);
        Assert.AreEqual(1, eps[2].Statistics.RejectedContributions);
        Assert.AreEqual(0, eps[0].Statistics.RejectedContributions);
        Assert.HasCount(2, group.Rejections);
    }

    [TestMethod]
    public async Task AbsoluteNormLimit_AndInvalidWeight_AreRejected()
    {
        var group = new InProcessCollectiveGroup(new ContributionPolicy { MaxNorm = 10, MaxNormToMedianRatio = null });
        var a = group.Join("a");
        var b = group.Join("b");
        var c = group.Join("c");
        var ra = new float[1];
        var results = await Task.WhenAll(
            a.AllReduceMeanAsync(0, new float[] { 1 }, 1, Float32Codec.Instance, ra).AsTask(),
            b.AllReduceMeanAsync(0, new float[] { 11 }, 1, Float32Codec.Instance, new float[1]).AsTask(),
            c.AllReduceMeanAsync(0, new float[] { 2 }, -1, Float32Codec.Instance, new float[1]).AsTask());
        Assert.AreEqual(1f, ra[0]);
        CollectionAssert.AreEquivalent(new[] { RejectionReason.NormAboveLimit, RejectionReason.InvalidWeight }, results[0].Rejections.Select(r => r.Reason).ToArray());
    }

    [TestMethod]
    public async Task MismatchedLengths_AreALayoutMismatch_ForEveryContributor()
    {
        var group = new InProcessCollectiveGroup();
        var a = group.Join("a");
        var b = group.Join("b");
        var ta = a.AllReduceMeanAsync(0, new float[3], 1, Float32Codec.Instance, new float[3]).AsTask();
        var tb = b.AllReduceMeanAsync(0, new float[4], 1, Float32Codec.Instance, new float[4]).AsTask();
        var ex = await Assert.ThrowsExactlyAsync<LayoutMismatchException>(() => ta);
        StringAssert.Contains(ex.Message, "'b' contributed 4 values");
        await Assert.ThrowsExactlyAsync<LayoutMismatchException>(() => tb);
    }

    [TestMethod]
    public async Task Gather_ReturnsPayloadsInWorkerOrder_AndCountsOthersBytesAsReceived()
    {
        var group = new InProcessCollectiveGroup();
        var z = group.Join("z");
        var a = group.Join("a");
        var results = await Task.WhenAll(
            z.AllGatherAsync(3, new byte[] { 1, 2, 3 }).AsTask(),
            a.AllGatherAsync(3, new byte[] { 9 }).AsTask());
        CollectionAssert.AreEqual(new[] { "a", "z" }, results[0].Payloads.Select(p => p.WorkerId).ToArray());
        CollectionAssert.AreEqual(new byte[] { 9 }, results[0].Payloads[0].Payload.ToArray());
        Assert.AreEqual(3, results[0].BytesSent);
        Assert.AreEqual(1, results[0].BytesReceived);
        Assert.AreEqual(1, results[1].BytesSent);
        Assert.AreEqual(3, results[1].BytesReceived);
    }

    [TestMethod]
    public async Task Guards_RejectBadArguments()
    {
        var group = new InProcessCollectiveGroup();
        Assert.ThrowsExactly<ArgumentException>(() => group.Join(""));
        var a = group.Join("a");
        Assert.ThrowsExactly<ArgumentException>(() => group.Join("a"));
        await Assert.ThrowsExactlyAsync<LayoutMismatchException>(async () => await a.AllReduceMeanAsync(0, new float[2], 1, Float32Codec.Instance, new float[3]));
        await a.DisposeAsync();
        await Assert.ThrowsExactlyAsync<ObjectDisposedException>(async () => await a.AllGatherAsync(0, new byte[1]));
    }

    [TestMethod]
    public void Float32Codec_RejectsWrongLength()
    {
        var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => Float32Codec.Instance.Decode(new byte[7], new float[2]));
        StringAssert.Contains(ex.Message, "expected 8 bytes");
    }
}

[TestClass]
public sealed class InProcessCollectiveGroupRejoinTests
{
    [TestMethod]
    public async Task Join_WithFirstRound_IsExpectedOnlyFromThatRound()
    {
        var group = new InProcessCollectiveGroup();
        var a = group.Join("a");
        var b = group.Join("b", firstRound: 2);
        var r = new float[1];
        var r1 = await a.AllReduceMeanAsync(1, new float[] { 1 }, 1, Float32Codec.Instance, r);
        CollectionAssert.AreEqual(new[] { "a" }, r1.Participants.ToArray());
        var ta = a.AllReduceMeanAsync(2, new float[] { 1 }, 1, Float32Codec.Instance, r).AsTask();
        await Task.Delay(50);
        Assert.IsFalse(ta.IsCompleted, "round 2 waits for b");
        await b.AllReduceMeanAsync(2, new float[] { 3 }, 1, Float32Codec.Instance, new float[1]);
        Assert.HasCount(2, (await ta).Participants);
        Assert.AreEqual(2f, r[0]);
    }
}
