using Google.Protobuf;
using Microsoft.Extensions.DependencyInjection;
using NearML.Core;
using NearML.Core.Collectives;
using NearML.Core.Contracts;
using NearML.Hosting.Coordinator;
using NearML.Hosting.Rounds;
using NearML.Hosting.Tests.Coordinator;
using NearML.Training.Optim;
using NearML.Training.Sync;

namespace NearML.Hosting.Tests.Rounds;

/// <summary>
/// The round-protocol seam: a fourth protocol driven by the real session host, and the coordinator's DiLoCo rounds
/// (plain and secure) against <see cref="DiLoCoStrategy"/> in process, bit for bit.
/// </summary>
[TestClass]
public sealed class RoundProtocolTests
{
    /// <summary>The fixed-point step of the secure rounds below: clip = 32767 / 2^16 makes the encoder's scale exactly 2^16.</summary>
    private const float Resolution = 1f / 65536;

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task A_fourth_protocol_registered_in_the_container_runs_every_round_through_the_real_host()
    {
        var protocol = new CoordinateMedianProtocol();
        await using var c = await CoordinatorHarness.StartAsync(
            o =>
            {
                o.Rounds = 2;
                o.MinWorkers = 1; // the protocol's MinimumCohort (3) governs
            },
            services: s => s.AddSingleton<IRoundProtocol>(protocol));
        await using var a = await FakeWorker.StartAsync(c, "m1", deltaValue: 0.01f);
        await using var b = await FakeWorker.StartAsync(c, "m2", deltaValue: 0.02f);
        await using var d = await FakeWorker.StartAsync(c, "m3", deltaValue: 0.09f);
        await c.Status.CompletedTask.WaitAsync(CoordinatorHarness.Timeout);
        foreach (var w in new[] { a, b, d })
        {
            await w.WaitForReceiptsAsync(2);
        }

        // The host waited for the protocol's minimum cohort, ran it each round, published what it changed and recorded it.
        Assert.AreEqual(2, protocol.Rounds);
        Assert.IsTrue(c.Status.Rounds.All(r => r.Cohort == 3 && r.Accepted == 3));
        Assert.IsTrue(a.Assignments.All(x => x.HyperParameters.RoundProtocol == "coordinate-median"));
        Assert.IsTrue(a.Assignments.All(x => x.HyperParameters.UpdateEncoding == UpdateEncoding.Fp32));
        var v0 = a.Downloaded[0];
        var v1 = a.Downloaded[1];
        for (var i = 0; i < v0.Length; i++)
        {
            Assert.AreEqual(v0[i] - 0.02f, v1[i], $"v1[{i}] is v0 minus the coordinate-wise median");
        }

        Assert.AreEqual(6L, c.Status.LedgerEntries, "one receipt per credited contribution per round");
    }

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task Plain_rounds_equal_DiLoCoStrategy_in_process_bit_for_bit()
    {
        // Three workers with different weights; each sends Δ = x(θ_global), chosen so that the in-process DiLoCo worker that
        // steps θ_local = θ_global − x computes exactly the same Δ = θ_global − θ_local (see Exact below). The coordinator
        // receives the same float32 contributions (fp32 encoding), so its global model after each round must equal the
        // in-process one bit for bit: same reducer (ContributionScreen.Reduce, ascending worker id), same outer optimizer.
        var ids = new[] { "pa", "pb", "pc" };
        var steps = new[] { 655, 1311, 1966 };
        var samples = new ulong[] { 10, 20, 30 };
        await using var c = await CoordinatorHarness.StartAsync(o =>
        {
            o.Rounds = 3; // round 2's download is version 2, the global model after round 1
            o.ShardCount = 48; // with 12, rendezvous gives 'pa' no shard (its update would be refused: NoAssignedWork)
            o.MinWorkers = 3;
            o.InnerSteps = 4;
            o.UpdateEncoding = "fp32";
            o.OuterLearningRate = 0.7;
            o.OuterMomentum = 0.9;
        });
        var workers = new List<FakeWorker>();
        try
        {
            for (var i = 0; i < ids.Length; i++)
            {
                var k = steps[i];
                workers.Add(await FakeWorker.StartAsync(c, ids[i], samples: samples[i], deltaOf: g => Exact(g, k)));
            }

            await c.Status.CompletedTask.WaitAsync(CoordinatorHarness.Timeout);
            Assert.IsTrue(c.Status.Rounds.All(r => r.Accepted == 3), "every contribution was accepted: " + string.Join(" | ", c.Logs.Lines.Where(l => l.Contains("reject", StringComparison.OrdinalIgnoreCase) || l.Contains("screened", StringComparison.OrdinalIgnoreCase))));
            foreach (var w in workers)
            {
                await w.WaitForReceiptsAsync(3);
            }

            Assert.IsTrue(c.Status.Rounds.All(r => r.Accepted == 3), "every contribution was accepted");
            await AssertInProcessDiLoCoMatchesAsync(workers[0], ids, steps, [.. samples.Select(s => (int)s)], rounds: 2, 0.7, 0.9);
        }
        finally
        {
            foreach (var w in workers)
            {
                await w.DisposeAsync();
            }
        }
    }

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task Secure_rounds_equal_DiLoCoStrategy_fed_the_dequantized_contributions_bit_for_bit()
    {
        // SecAgg+ sums fixed-point integers exactly; the coordinator decodes Σ w·q / (s·Σ w). With the scale s = 2^16
        // (clip 32767/2^16), equal weights (H = 4 each, 4 workers) and contributions on the 2^-16 grid, both that decoding
        // and DiLoCoStrategy's float32 weighted mean of the dequantized contributions (q/2^16, the values the workers sent)
        // are exact, so the outer steps see the same mean and the global models must match bit for bit.
        var ids = new[] { "sa", "sb", "sc", "sd" };
        var steps = new[] { 655, 1311, 1966, 983 };
        await using var c = await CoordinatorHarness.StartAsync(o =>
        {
            o.SecureAggregation = true;
            o.SecureClipRange = 32767f / 65536f;
            o.SecureValueBits = 16;
            o.Rounds = 3;
            o.MinWorkers = 4;
            o.InnerSteps = 4;
            o.OuterLearningRate = 0.7;
            o.OuterMomentum = 0.9;
        });
        var workers = new List<FakeWorker>();
        try
        {
            for (var i = 0; i < ids.Length; i++)
            {
                var k = steps[i];
                workers.Add(await FakeWorker.StartAsync(c, ids[i], FakeBehavior.Secure, deltaOf: g => Exact(g, k)));
            }

            await c.Status.CompletedTask.WaitAsync(CoordinatorHarness.Timeout);
            foreach (var w in workers)
            {
                await w.WaitForReceiptsAsync(3);
            }

            Assert.IsTrue(c.Status.Rounds.All(r => r.Accepted == 4), "every masked input was summed");
            await AssertInProcessDiLoCoMatchesAsync(workers[0], ids, steps, [1, 1, 1, 1], rounds: 2, 0.7, 0.9);
        }
        finally
        {
            foreach (var w in workers)
            {
                await w.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// A pseudo-gradient on the 2^-16 grid that survives θ_local = θ − x, Δ = θ − θ_local exactly: each x_j has θ_j's sign,
    /// |x_j| ≤ |θ_j| (any size when θ_j = 0) and is a multiple of 2^-16, hence of ulp(θ_j) (|θ_j| &lt; 2^7), so both
    /// differences are representable.
    /// </summary>
    private static float[] Exact(float[] global, int steps)
    {
        var x = new float[global.Length];
        for (var j = 0; j < global.Length; j++)
        {
            var g = global[j];
            Assert.IsTrue(MathF.Abs(g) < 128f, "the grid argument needs |θ| < 2^7");
            var limit = g == 0 ? steps : Math.Min(steps, (int)MathF.Floor(MathF.Abs(g) / Resolution));
            x[j] = (g < 0 ? -limit : limit) * Resolution;
        }

        return x;
    }

    private static async Task AssertInProcessDiLoCoMatchesAsync(FakeWorker observer, string[] ids, int[] steps, int[] weights, int rounds, double outerLr, double outerMomentum)
    {
        var assignment = observer.Assignments.First();
        var layout = new ParameterLayout(assignment.Model.Tensors.Select(t => (t.Name, t.Shape.ToArray())));
        var group = new InProcessCollectiveGroup();
        var strategies = new List<DiLoCoStrategy>();
        foreach (var id in ids)
        {
            var parameters = new ParameterSet(layout);
            observer.Downloaded[0].CopyTo(parameters.Data);
            var inner = new Sgd(layout, new SgdOptions { LearningRate = 1 });
            strategies.Add(new DiLoCoStrategy(group.Join(id), parameters, inner, new DiLoCoOptions
            {
                InnerSteps = 1,
                OuterLearningRate = outerLr,
                OuterMomentum = outerMomentum,
                Nesterov = true,
                Encoding = PseudoGradientEncoding.Fp32,
            }));
        }

        for (var round = 0; round < rounds; round++)
        {
            var global = observer.Downloaded[(ulong)round];
            CollectionAssert.AreEqual(global, strategies[0].GlobalParameters.Buffer, $"round {round} starts from the coordinator's version {round}");
            var syncs = new List<Task<SyncStepResult>>();
            for (var i = 0; i < strategies.Count; i++)
            {
                // One inner SGD step of rate 1 with gradient x: θ_local = θ − x (exact), then the outer step.
                var gradient = new ParameterSet(layout);
                Exact(global, steps[i]).CopyTo(gradient.Data);
                syncs.Add(strategies[i].StepAsync(gradient, weights[i]).AsTask());
            }

            var results = await Task.WhenAll(syncs);
            Assert.IsTrue(results.All(r => r.Synchronized && r.Participants == ids.Length && r.Rejected == 0));
            var expected = strategies[0].GlobalParameters.Buffer;
            var actual = observer.Downloaded[(ulong)round + 1];
            for (var j = 0; j < expected.Length; j++)
            {
                if (BitConverter.SingleToInt32Bits(expected[j]) != BitConverter.SingleToInt32Bits(actual[j]))
                {
                    Assert.Fail($"after round {round}, parameter {j}: coordinator {actual[j]:R}, DiLoCoStrategy {expected[j]:R}");
                }
            }
        }

        foreach (var s in strategies)
        {
            await s.Collective.DisposeAsync();
        }
    }

    /// <summary>
    /// The test double: a protocol no built-in resembles — global ← global − the coordinate-wise median of the cohort's
    /// updates — written against the public seam only (RoundContext, RoundParticipant, RoundResult).
    /// </summary>
    private sealed class CoordinateMedianProtocol : IRoundProtocol
    {
        public int Rounds { get; private set; }

        public string Name => "coordinate-median";

        public int MinimumCohort => 3;

        public UpdateEncoding UpdateEncoding => UpdateEncoding.Fp32;

        public async Task<RoundResult> RunAsync(RoundContext context, CancellationToken cancellationToken)
        {
            Rounds++;
            await Task.WhenAll(context.Cohort.Select(p => context.AssignAsync(p, null, cancellationToken)));
            var remaining = context.Deadline - context.Time.GetUtcNow();
            await Task.WhenAny(Task.WhenAll(context.Cohort.Select(p => p.Submitted)), Task.Delay(remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero, cancellationToken));
            var accepted = new List<RoundContribution>();
            var rejected = 0;
            foreach (var p in context.Cohort)
            {
                if (p.TakeUpdate(context.Round) is not { } u)
                {
                    continue;
                }

                if (u.Values is null)
                {
                    context.Reject(p, u.Reason!, u.Detail!);
                    rejected++;
                    continue;
                }

                accepted.Add(new RoundContribution(p, u));
            }

            if (accepted.Count == 0)
            {
                return RoundResult.Empty(rejected);
            }

            var column = new float[accepted.Count];
            var parameters = context.Parameters.Data;
            for (var j = 0; j < parameters.Length; j++)
            {
                for (var i = 0; i < accepted.Count; i++)
                {
                    column[i] = accepted[i].Update.Values![j];
                }

                Array.Sort(column);
                parameters[j] -= column[column.Length / 2];
            }

            return new RoundResult(true, accepted, rejected, double.NaN, accepted.Sum(a => a.Update.PayloadBytes));
        }

        public bool OnMessage(RoundParticipant from, IMessage message) => false;
    }
}
