using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using NearML.Hosting.Coordinator;
using NearML.Hosting.Rounds;
using NearML.Hosting.Tests.Coordinator;

namespace NearML.Hosting.Tests.Rounds;

/// <summary>The secure (SecAgg+) protocol decodes every round's mean into one buffer kept for the job, not a new one per round.</summary>
[TestClass]
public sealed class SecureMeanBufferTests
{
    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task Secure_rounds_decode_their_mean_into_one_kept_buffer()
    {
        SecureDiLoCoRoundProtocol? protocol = null;
        await using var c = await CoordinatorHarness.StartAsync(
            o =>
            {
                o.SecureAggregation = true;
                o.Rounds = 3;
                o.MinWorkers = 3;
                o.InnerSteps = 4;
            },
            services: s => s.AddSingleton<IRoundProtocol>(sp => protocol = new SecureDiLoCoRoundProtocol(
                sp.GetRequiredService<IOptions<NearMLCoordinatorOptions>>().Value, NullLogger.Instance)));
        var workers = new List<FakeWorker>();
        try
        {
            foreach (var id in new[] { "m1", "m2", "m3" })
            {
                workers.Add(await FakeWorker.StartAsync(c, id, FakeBehavior.Secure));
            }

            await c.Status.CompletedTask.WaitAsync(CoordinatorHarness.Timeout);
            Assert.HasCount(3, c.Status.Rounds);
            Assert.IsTrue(c.Status.Rounds.All(r => r.Accepted == 3), "every round summed every masked input");
            Assert.IsNotNull(protocol, "the registered protocol ran the rounds");
            Assert.AreEqual(1, protocol.MeanBuffersAllocated, "three rounds, one mean buffer");
        }
        finally
        {
            foreach (var w in workers)
            {
                await w.DisposeAsync();
            }
        }
    }
}
