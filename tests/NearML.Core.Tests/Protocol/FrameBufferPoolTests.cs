using System.Buffers;
using NearML.Core.Protocol;

namespace NearML.Core.Tests.Protocol;

[TestClass]
public sealed class FrameBufferPoolTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public async Task Repeated_transfers_through_a_shared_pool_reuse_its_blocks_and_arrive_intact()
    {
        using var pool = new FrameBufferPool(64 << 10, 64L << 20);
        var options = new FrameConnectionOptions { BufferPool = pool };
        var (left, right) = await TestSockets.PairAsync();
        await using var a = new FrameConnection(left, options);
        await using var b = new FrameConnection(right, options);
        var source = ParameterSet.Create(("w", [1_000_003]));
        for (var i = 0; i < source.Length; i++)
        {
            source.Data[i] = i * 0.25f;
        }

        var destination = source.CreateZeros();
        const int Runs = 8;
        const int BlockSize = 64 << 10;
        long afterFirst = 0;
        for (var run = 0; run < Runs; run++)
        {
            destination.Data.Clear();
            var send = ParameterTransfer.SendAsync(a, source, (ulong)run, cancellationToken: TestContext.CancellationToken);
            await ParameterTransfer.ReceiveAsync(b, destination, (ulong)run, cancellationToken: TestContext.CancellationToken);
            await send;
            CollectionAssert.AreEqual(source.Buffer, destination.Buffer, $"run {run}");
            if (run == 0)
            {
                afterFirst = pool.AllocatedBlocks;
            }
        }

        Assert.IsGreaterThan(0, afterFirst, "the connections' pipes rent from the given pool");
        // Without reuse every transfer would rent at least its own bytes' worth of new blocks (≥ Runs × perTransfer in all).
        // With reuse the pool holds at most about one transfer's bytes in flight in each of the two pipes (the sender's and
        // the receiver's) plus partly filled segments, whatever the interleaving of the two loops (a fresh-clone run saw
        // 68 blocks after the first transfer and 130 after five): a bound that does not grow with the runs.
        var perTransfer = (source.Length * sizeof(float) / BlockSize) + 1;
        Assert.IsLessThanOrEqualTo(3 * perTransfer, pool.AllocatedBlocks,
            $"first transfer allocated {afterFirst} blocks, {Runs} transfers {pool.AllocatedBlocks} (one transfer's bytes fill {perTransfer})");
    }

    [TestMethod]
    public void Returned_blocks_are_kept_up_to_the_cap_and_a_block_is_returned_once()
    {
        using var pool = new FrameBufferPool(4096, 3 * 4096);
        var owners = Enumerable.Range(0, 5).Select(_ => pool.Rent(100)).ToList();
        Assert.AreEqual(5, pool.AllocatedBlocks);
        Assert.IsTrue(owners.All(o => o.Memory.Length == 4096));
        foreach (var o in owners)
        {
            o.Dispose();
            o.Dispose(); // a second dispose must not return the block twice
        }

        Assert.AreEqual(3 * 4096, pool.RetainedBytes, "kept up to the cap, the rest left to the GC");
        var again = Enumerable.Range(0, 4).Select(_ => pool.Rent()).ToList();
        Assert.AreEqual(6, pool.AllocatedBlocks, "three reused, one new");
        Assert.AreEqual(4, again.Select(o => o.Memory).Distinct().Count());
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => pool.Rent(4097));
        Assert.ThrowsExactly<ObjectDisposedException>(() => _ = owners[4].Memory); // dropped past the cap (the first three went back out, owners and all)
        again[0].Dispose();
        Assert.ThrowsExactly<ObjectDisposedException>(() => _ = again[0].Memory);
    }
}
