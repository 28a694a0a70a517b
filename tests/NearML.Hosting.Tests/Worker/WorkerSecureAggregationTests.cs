using System.Globalization;
using System.Security.Cryptography;
using Google.Protobuf;
using NearML.Aggregation;
using NearML.Core.Contracts;
using NearML.Core.Contracts.Aggregation;
using NearML.Core.Protocol;
using NearML.Hosting.Worker;

namespace NearML.Hosting.Tests.Worker;

/// <summary>Three real workers run a secure (SecAgg) round whose server is NearML.Aggregation's state machine, driven by the test.</summary>
[TestClass]
public sealed class WorkerSecureAggregationTests
{
    [TestInitialize]
    public void RequireDataset() => TestJob.RequireDataset();

    [TestMethod]
    [Timeout(300_000, CooperativeCancellation = true)]
    public async Task Secure_round_over_AggregationEnvelopes_yields_the_weighted_mean_and_receipts_credit_the_masked_input()
    {
        const int clients = 3;
        const uint steps = 2;
        var job = TestJob.Instance;
        var encoder = new FixedPointEncoder(0.5f, 16, clients, (int)steps);
        AggregationConfig config = null!;
        await using var coordinator = new FakeCoordinator();
        var workers = new List<WorkerTestHost>();
        var sessions = new FakeSession[clients];
        try
        {
            for (var i = 0; i < clients; i++)
            {
                var worker = new WorkerTestHost(coordinator, o => o.WorkerId = "worker-" + i.ToString(CultureInfo.InvariantCulture));
                workers.Add(worker);
                await worker.StartAsync();
            }

            for (var i = 0; i < clients; i++)
            {
                var session = await coordinator.NextSessionAsync();
                var id = int.Parse(session.Worker.WorkerId["worker-".Length..], CultureInfo.InvariantCulture);
                sessions[id] = session;
            }

            // The signed variant with each worker's handshake key, as the coordinator creates it (workers refuse anything weaker).
            config = AggregationRound.CreateConfig(
                TestJob.JobId, 1, AggregationProtocol.Secagg, clients, FixedPointEncoder.EncodedLength(job.Parameters.Length), encoder.RingBits,
                identityKeys: sessions.Select(s => s.Worker.PublicKey.ToArray()).ToArray());
            for (uint i = 0; i < clients; i++)
            {
                var assignment = job.Assignment(round: 1, steps: steps);
                assignment.HyperParameters.SecureAggregation = new SecureAggregationSettings
                {
                    ClientId = i, Config = config, ClipRange = 0.5f, ValueBits = 16, MaxWeight = steps,
                };
                await sessions[i].SendAsync(assignment);
                await sessions[i].ReceiveUntilAsync<ParameterRequest>();
                await ParameterTransfer.SendAsync(sessions[i].Connection, job.Parameters, 1, job.Manifest);
            }

            var server = new SecureAggregationServer(config);
            var masked = new byte[clients][];
            while (server.Phase is not (AggregationPhase.Completed or AggregationPhase.Failed))
            {
                for (var i = 0; i < clients; i++)
                {
                    var envelope = await sessions[i].ReceiveUntilAsync<AggregationEnvelope>();
                    Assert.AreEqual(1UL, envelope.Round);
                    var message = AggregationRound.ParseClientMessage(envelope.Payload.Span);
                    Assert.AreEqual((uint)i, message.Sender);
                    if (message.BodyCase == ClientMessage.BodyOneofCase.MaskedInput)
                    {
                        masked[i] = envelope.Payload.ToByteArray();
                    }

                    server.Receive(message);
                }

                foreach (var reply in server.Advance())
                {
                    await sessions[reply.Recipient].SendAsync(new AggregationEnvelope { JobId = TestJob.JobId, Round = 1, Payload = reply.ToByteString(), PartCount = 1 });
                }
            }

            Assert.AreEqual(AggregationPhase.Completed, server.Phase, string.Join("; ", server.Refusals.Values));
            var result = server.Finish();
            CollectionAssert.AreEquivalent(new uint[] { 0, 1, 2 }, result.Contributors.ToArray());
            var mean = new float[job.Parameters.Length];
            Assert.AreEqual(clients * (long)steps, encoder.DecodeMean(result.Sum, mean), "the sum of weights is the steps done by all three");
            Assert.IsTrue(mean.All(float.IsFinite));
            Assert.IsTrue(mean.Any(static m => m != 0), "training moved the parameters");

            for (var i = 0; i < clients; i++)
            {
                Assert.IsNotNull(masked[i], $"worker {i} sent a masked input");
                await sessions[i].SendReceiptAsync(TestJob.JobId, 1, masked[i], steps * 32);
            }

            foreach (var worker in workers)
            {
                await worker.WaitUntilAsync(static s => s.Receipts == 1, "the receipt for the masked input is logged");
            }
        }
        finally
        {
            foreach (var session in sessions)
            {
                session?.End();
            }

            foreach (var worker in workers)
            {
                await worker.DisposeAsync();
            }
        }
    }
}
