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
        long afterFirst = 0;
        for (var run = 0; run < 5; run++)
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
        // Later transfers reuse the first one's blocks (a little slack for a different interleaving of the two loops).
        Assert.IsLessThanOrEqualTo(afterFirst + 16, pool.AllocatedBlocks, $"first transfer allocated {afterFirst} blocks, five {pool.AllocatedBlocks}");
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
        Assert.ThrowsExactly<ObjectDisposedException>(() => _ = owners[0].Memory);
    }
}
