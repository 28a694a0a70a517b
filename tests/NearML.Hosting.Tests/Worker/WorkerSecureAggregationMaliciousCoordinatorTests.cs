using System.Globalization;
using Google.Protobuf;
using NearML.Aggregation;
using NearML.Core.Contracts;
using NearML.Core.Contracts.Aggregation;
using NearML.Core.Protocol;
using NearML.Hosting.Worker;

namespace NearML.Hosting.Tests.Worker;

/// <summary>
/// A real worker against a scripted malicious coordinator: it refuses weak or semi-honest configurations with the
/// reason, signs its keys with its handshake identity, and refuses a roster whose keys were substituted.
/// </summary>
[TestClass]
public sealed class WorkerSecureAggregationMaliciousCoordinatorTests
{
    private const uint Steps = 2;

    [TestInitialize]
    public void RequireDataset() => TestJob.RequireDataset();

    private static async Task AssignAsync(FakeSession session, AggregationConfig config, uint clientId)
    {
        var job = TestJob.Instance;
        var assignment = job.Assignment(round: 1, steps: Steps);
        assignment.HyperParameters.SecureAggregation = new SecureAggregationSettings
        {
            ClientId = clientId, Config = config, ClipRange = 0.5f, ValueBits = 16, MaxWeight = Steps,
        };
        await session.SendAsync(assignment);
        await session.ReceiveUntilAsync<ParameterRequest>();
        await ParameterTransfer.SendAsync(session.Connection, job.Parameters, 1, job.Manifest);
    }

    private static AggregationConfig Config(byte[][]? identityKeys, int clients = 3, int? degree = null, int? threshold = null)
    {
        var encoder = new FixedPointEncoder(0.5f, 16, clients, (int)Steps);
        int length = FixedPointEncoder.EncodedLength(TestJob.Instance.Parameters.Length);
        return degree is null
            ? AggregationRound.CreateConfig(TestJob.JobId, 1, AggregationProtocol.Secagg, clients, length, encoder.RingBits, identityKeys: identityKeys)
            : AggregationRound.CreateConfig(TestJob.JobId, 1, AggregationProtocol.Secagg, clients, length, encoder.RingBits, degree.Value, threshold!.Value, identityKeys);
    }

    private static async Task<ClientMessage> NextAggregationMessageAsync(FakeSession session)
    {
        var envelope = await session.ReceiveUntilAsync<AggregationEnvelope>();
        return AggregationRound.ParseClientMessage(envelope.Payload.Span);
    }

    private async Task WithWorkerAsync(Action<NearMLWorkerOptions>? configure, Func<FakeSession, Task> body)
    {
        await using var coordinator = new FakeCoordinator();
        await using var worker = new WorkerTestHost(coordinator, o =>
        {
            o.WorkerId = "worker-0";
            configure?.Invoke(o);
        });
        await worker.StartAsync();
        var session = await coordinator.NextSessionAsync();
        try
        {
            await body(session);
        }
        finally
        {
            session.End();
        }
    }

    [TestMethod]
    [Timeout(300_000, CooperativeCancellation = true)]
    public Task SemiHonestConfiguration_IsRefusedWithTheReason() => WithWorkerAsync(null, async session =>
    {
        await AssignAsync(session, Config(identityKeys: null), 0);
        var message = await NextAggregationMessageAsync(session);
        Assert.AreEqual(ClientMessage.BodyOneofCase.Refusal, message.BodyCase);
        StringAssert.Contains(message.Refusal.Reason, "semi-honest");
        Assert.AreEqual(0u, message.Sender);
    });

    [TestMethod]
    [Timeout(300_000, CooperativeCancellation = true)]
    public Task AnotherIdentityAtTheWorkersId_IsRefused() => WithWorkerAsync(null, async session =>
    {
        var keys = Enumerable.Range(0, 3).Select(_ => AggregationRound.CreateIdentityKey().PublicKey).ToArray();
        await AssignAsync(session, Config(keys), 1);
        var message = await NextAggregationMessageAsync(session);
        Assert.AreEqual(ClientMessage.BodyOneofCase.Refusal, message.BodyCase);
        StringAssert.Contains(message.Refusal.Reason, "not this client's identity key");
    });

    [TestMethod]
    [Timeout(300_000, CooperativeCancellation = true)]
    public Task ThresholdBelowTheWorkersMinimum_IsRefused() => WithWorkerAsync(o => o.SecureAggregationMinimum.MinimumThreshold = 4, async session =>
    {
        var keys = Enumerable.Range(0, 5).Select(_ => AggregationRound.CreateIdentityKey().PublicKey).ToArray();
        keys[2] = session.Worker.PublicKey.ToArray();
        await AssignAsync(session, Config(keys, clients: 5), 2); // complete graph of 5: k = 4, t = 3
        var message = await NextAggregationMessageAsync(session);
        Assert.AreEqual(ClientMessage.BodyOneofCase.Refusal, message.BodyCase);
        StringAssert.Contains(message.Refusal.Reason, "threshold 3 is below the local minimum 4");
    });

    [TestMethod]
    [Timeout(300_000, CooperativeCancellation = true)]
    public Task SignedKeys_AndASubstitutedRosterIsRefused_NoMaskedInputLeaves() => WithWorkerAsync(null, async session =>
    {
        // The worker is client 0 of 3; clients 1 and 2 are simulated here with their own identities.
        var peers = Enumerable.Range(0, 3).Select(_ => AggregationRound.CreateIdentityKey()).ToArray();
        var keys = new[] { session.Worker.PublicKey.ToArray(), peers[1].PublicKey, peers[2].PublicKey };
        var config = Config(keys);
        await AssignAsync(session, config, 0);
        var advertise = await NextAggregationMessageAsync(session);
        Assert.AreEqual(ClientMessage.BodyOneofCase.AdvertiseKeys, advertise.BodyCase);

        // The worker's AdvertiseKeys carries a valid signature under its handshake key: the honest server accepts it.
        var server = new SecureAggregationServer(config);
        server.Receive(advertise);
        var others = new[] { 1u, 2u }.Select(i => new SecureAggregationClient(config, i, new uint[config.VectorLength], peers[i].PrivateKey)).ToArray();
        foreach (var c in others)
        {
            server.Receive(c.Start());
        }

        var roster = server.Advance().Single(m => m.Recipient == 0);

        // The malicious coordinator substitutes its own keys for client 1 (keeping client 1's signature).
        var attacker = new SecureAggregationClient(config, 1, new uint[config.VectorLength], peers[1].PrivateKey).Start().AdvertiseKeys;
        var forged = roster.Clone();
        var entry = forged.KeysRoster.Peers.Single(p => p.ClientId == 1);
        entry.Keys = new AdvertiseKeys { EncryptionPublicKey = attacker.EncryptionPublicKey, MaskingPublicKey = attacker.MaskingPublicKey, Signature = entry.Keys.Signature };
        await session.SendAsync(new AggregationEnvelope { JobId = TestJob.JobId, Round = 1, Payload = forged.ToByteString(), PartCount = 1 });

        var answer = await NextAggregationMessageAsync(session);
        Assert.AreEqual(ClientMessage.BodyOneofCase.Refusal, answer.BodyCase);
        StringAssert.Contains(answer.Refusal.Reason, "invalid signature");
    });
}
