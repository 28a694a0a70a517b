using Google.Protobuf;
using NearML.Core;
using NearML.Core.Contracts.Aggregation;

namespace NearML.Aggregation.Tests;

[TestClass]
public sealed class BadInputTests
{
    private static AggregationConfig SmallConfig(IReadOnlyList<byte[]>? ids = null)
        => AggregationRound.CreateConfig("job-b", 3, AggregationProtocol.SecaggPlus, 20, 64, 16, 8, 5, ids);

    /// <summary>Drives the round to the point where the server collects <paramref name="phase"/> and returns the pending client answers.</summary>
    private static (SecureAggregationServer Server, SecureAggregationClient[] Clients, List<ClientMessage> Pending) RunUntil(AggregationConfig config, AggregationPhase phase, Func<int, byte[]?>? ids = null)
    {
        int n = (int)config.NumClients;
        var clients = Enumerable.Range(0, n).Select(i => new SecureAggregationClient(config, (uint)i, new uint[config.VectorLength], ids?.Invoke(i))).ToArray();
        var server = new SecureAggregationServer(config);
        var pending = clients.Select(c => c.Start()).ToList();
        while (server.Phase != phase)
        {
            foreach (var m in pending)
            {
                server.Receive(m);
            }

            pending = server.Advance().Select(m => clients[m.Recipient].Handle(m)).ToList();
        }

        return (server, clients, pending);
    }

    [TestMethod]
    public void MalformedAndTruncatedBytes_ThrowInvalidDataFormat()
    {
        var m = new ClientMessage { JobId = "job-b", Round = 3, Sender = 1, MaskedInput = new MaskedInput { MaskedVector = ByteString.CopyFrom(new byte[100]) } };
        var bytes = m.ToByteArray();
        var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => AggregationRound.ParseClientMessage(bytes.AsSpan(0, bytes.Length - 10)));
        Assert.AreEqual("ClientMessage", ex.Source);
        Assert.ThrowsExactly<InvalidDataFormatException>(() => AggregationRound.ParseServerMessage([0xFF, 0xFF, 0xFF]));
    }

    [TestMethod]
    public void WrongJobOrRound_IsRejectedAsReplay_BothSides()
    {
        var (server, clients, pending) = RunUntil(SmallConfig(), AggregationPhase.ShareKeys);
        var replay = pending[0].Clone();
        replay.Round = 2;
        var ex = Assert.ThrowsExactly<AggregationReplayException>(() => server.Receive(replay));
        Assert.AreEqual(pending[0].Sender, ex.ClientId);
        replay.Round = 3;
        replay.JobId = "job-other";
        Assert.ThrowsExactly<AggregationReplayException>(() => server.Receive(replay));

        foreach (var m in pending)
        {
            server.Receive(m);
        }

        var delivery = server.Advance()[0];
        var stale = delivery.Clone();
        stale.Round = 99;
        var client = clients[delivery.Recipient];
        Assert.ThrowsExactly<AggregationReplayException>(() => client.Handle(stale));
        // The client's state is unchanged: the genuine message still works.
        Assert.AreEqual(ClientMessage.BodyOneofCase.MaskedInput, client.Handle(delivery).BodyCase);
    }

    [TestMethod]
    public void WrongLengths_AndWrongPhase_AreRejected_RoundContinues()
    {
        var config = SmallConfig();
        var (server, clients, pending) = RunUntil(config, AggregationPhase.MaskedInputCollection);
        var shortInput = pending[0].Clone();
        shortInput.MaskedInput.MaskedVector = ByteString.CopyFrom(new byte[10]);
        var ex = Assert.ThrowsExactly<AggregationProtocolException>(() => server.Receive(shortInput));
        StringAssert.Contains(ex.Message, "masked_vector");

        var wrongPhase = new ClientMessage { JobId = "job-b", Round = 3, Sender = 2, AdvertiseKeys = new AdvertiseKeys() };
        Assert.ThrowsExactly<AggregationProtocolException>(() => server.Receive(wrongPhase));
        var badSender = pending[0].Clone();
        badSender.Sender = 500;
        Assert.ThrowsExactly<AggregationProtocolException>(() => server.Receive(badSender));

        foreach (var m in pending)
        {
            server.Receive(m);
        }

        var answers = server.Advance().Select(m => clients[m.Recipient].Handle(m)).ToList();
        foreach (var a in answers)
        {
            server.Receive(a);
        }

        server.Advance();
        Assert.IsTrue(server.Finish().Sum.All(x => x == 0));
    }

    [TestMethod]
    public void BadKeyLengths_AndBadShareMessages_AreRejected()
    {
        var config = SmallConfig();
        var server = new SecureAggregationServer(config);
        var bad = new ClientMessage { JobId = "job-b", Round = 3, Sender = 0, AdvertiseKeys = new AdvertiseKeys { EncryptionPublicKey = ByteString.CopyFrom(new byte[31]), MaskingPublicKey = ByteString.CopyFrom(new byte[32]) } };
        Assert.ThrowsExactly<AggregationProtocolException>(() => server.Receive(bad));

        var (server2, _, pending) = RunUntil(config, AggregationPhase.ShareKeys);
        var tampered = pending[0].Clone();
        tampered.ShareKeys.Shares[0].Ciphertext = ByteString.CopyFrom(new byte[5]);
        Assert.ThrowsExactly<AggregationProtocolException>(() => server2.Receive(tampered));
        var missing = pending[0].Clone();
        missing.ShareKeys.Shares.RemoveAt(0);
        Assert.ThrowsExactly<AggregationProtocolException>(() => server2.Receive(missing));
        var foreign = pending[0].Clone();
        foreign.ShareKeys.Shares[0].Sender = 7;
        Assert.ThrowsExactly<AggregationProtocolException>(() => server2.Receive(foreign));
    }

    [TestMethod]
    public void TwoDifferentMaskedInputs_SecondRejected_FirstStands()
    {
        var config = SmallConfig();
        var (server, clients, pending) = RunUntil(config, AggregationPhase.MaskedInputCollection);
        foreach (var m in pending)
        {
            server.Receive(m);
        }

        server.Receive(pending[3]); // identical resend is idempotent
        var forged = pending[3].Clone();
        var bytes = forged.MaskedInput.MaskedVector.ToByteArray();
        bytes[0] ^= 1;
        forged.MaskedInput.MaskedVector = ByteString.CopyFrom(bytes);
        var ex = Assert.ThrowsExactly<AggregationEquivocationException>(() => server.Receive(forged));
        Assert.AreEqual(pending[3].Sender, ex.ClientId);

        foreach (var a in server.Advance().Select(m => clients[m.Recipient].Handle(m)).ToList())
        {
            server.Receive(a);
        }

        server.Advance();
        Assert.IsTrue(server.Finish().Sum.All(x => x == 0), "the first (genuine) input stands and the sum is exact");
    }

    [TestMethod]
    public void ActiveVariant_ForgedSignatures_RejectedAndRoundContinues()
    {
        int n = 20;
        var keys = Enumerable.Range(0, n).Select(_ => AggregationRound.CreateIdentityKey()).ToArray();
        var config = SmallConfig(keys.Select(k => k.PublicKey).ToArray());
        var clients = Enumerable.Range(0, n).Select(i => new SecureAggregationClient(config, (uint)i, Enumerable.Repeat((uint)i, 64).ToArray(), keys[i].PrivateKey)).ToArray();
        var server = new SecureAggregationServer(config);
        var starts = clients.Select(c => c.Start()).ToList();
        var forged = starts[4].Clone();
        var sig = forged.AdvertiseKeys.Signature.ToByteArray();
        sig[0] ^= 1;
        forged.AdvertiseKeys.Signature = ByteString.CopyFrom(sig);
        Assert.ThrowsExactly<AggregationSignatureException>(() => server.Receive(forged));
        // Client 4's genuine keys never arrive: it counts as dropped before the round.
        foreach (var m in starts.Where(m => m.Sender != 4))
        {
            server.Receive(m);
        }

        var pending = server.Advance().Select(m => clients[m.Recipient].Handle(m)).ToList();
        foreach (var m in pending)
        {
            server.Receive(m);
        }

        pending = server.Advance().Select(m => clients[m.Recipient].Handle(m)).ToList();
        foreach (var m in pending)
        {
            server.Receive(m);
        }

        var consistency = server.Advance();
        Assert.AreEqual(ServerMessage.BodyOneofCase.ConsistencyRequest, consistency[0].BodyCase);
        var answers = consistency.Select(m => clients[m.Recipient].Handle(m)).ToList();
        var badView = answers[0].Clone();
        badView.ConsistencySignature.Signature = answers[1].ConsistencySignature.Signature;
        Assert.ThrowsExactly<AggregationSignatureException>(() => server.Receive(badView));
        foreach (var m in answers)
        {
            server.Receive(m);
        }

        foreach (var m in server.Advance().Select(m => clients[m.Recipient].Handle(m)).ToList())
        {
            server.Receive(m);
        }

        server.Advance();
        var result = server.Finish();
        Assert.DoesNotContain(4u, result.Contributors);
        Assert.AreEqual((uint)Enumerable.Range(0, n).Where(i => i != 4).Sum(), result.Sum[0]);
    }
}

[TestClass]
public sealed class ClientRefusalTests
{
    private static (SecureAggregationServer, SecureAggregationClient[], IReadOnlyList<ServerMessage>) ToUnmasking(AggregationConfig config)
    {
        int n = (int)config.NumClients;
        var clients = Enumerable.Range(0, n).Select(i => new SecureAggregationClient(config, (uint)i, new uint[config.VectorLength])).ToArray();
        var server = new SecureAggregationServer(config);
        var pending = clients.Select(c => c.Start()).ToList();
        IReadOnlyList<ServerMessage> outgoing = [];
        while (server.Phase != AggregationPhase.Unmasking)
        {
            foreach (var m in pending)
            {
                server.Receive(m);
            }

            outgoing = server.Advance();
            if (server.Phase != AggregationPhase.Unmasking)
            {
                pending = outgoing.Select(m => clients[m.Recipient].Handle(m)).ToList();
            }
        }

        return (server, clients, outgoing);
    }

    private static AggregationConfig Config() => AggregationRound.CreateConfig("job-r", 1, AggregationProtocol.SecaggPlus, 20, 16, 16, 8, 5);

    [TestMethod]
    public void AskingForBothShareKindsOfOnePeer_IsRefused()
    {
        var (_, clients, requests) = ToUnmasking(Config());
        var request = requests[0];
        var client = clients[request.Recipient];
        var first = client.Handle(request);
        Assert.AreEqual(ClientMessage.BodyOneofCase.UnmaskingShares, first.BodyCase);
        // Same request again: same answer, nothing new revealed.
        Assert.AreEqual(first, client.Handle(request));
        // A second request that declares one of its neighbours dropped would reveal that neighbour's masking key too.
        var neighbour = first.UnmaskingShares.Shares[0].Owner;
        var second = request.Clone();
        second.UnmaskingRequest.Survivors.Remove(neighbour);
        var refusal = client.Handle(second);
        Assert.AreEqual(ClientMessage.BodyOneofCase.Refusal, refusal.BodyCase);
        StringAssert.Contains(refusal.Refusal.Reason, "different survivor set");
    }

    [TestMethod]
    public void TooFewSurvivors_OrClaimingThisClientDropped_IsRefused()
    {
        var (_, clients, requests) = ToUnmasking(Config());
        var r0 = requests[0].Clone();
        var me = r0.Recipient;
        r0.UnmaskingRequest.Survivors.Clear();
        r0.UnmaskingRequest.Survivors.Add(me);
        var refusal = clients[me].Handle(r0);
        Assert.AreEqual(ClientMessage.BodyOneofCase.Refusal, refusal.BodyCase);
        StringAssert.Contains(refusal.Refusal.Reason, "threshold");
        Assert.AreEqual(AggregationPhase.Failed, clients[me].Phase);

        var r1 = requests[1].Clone();
        r1.UnmaskingRequest.Survivors.Remove(r1.Recipient);
        var refusal1 = clients[r1.Recipient].Handle(r1);
        StringAssert.Contains(refusal1.Refusal.Reason, "dropped");
    }

    [TestMethod]
    public void RefusalsCountAsDropouts_AtTheServer()
    {
        var (server, clients, requests) = ToUnmasking(Config());
        foreach (var m in requests)
        {
            var answer = m.Recipient == 0 ? RefuseAll(clients[0], m) : clients[m.Recipient].Handle(m);
            server.Receive(answer);
        }

        Assert.IsTrue(server.Refusals.ContainsKey(0));
        server.Advance();
        Assert.IsTrue(server.Finish().Sum.All(x => x == 0));

        static ClientMessage RefuseAll(SecureAggregationClient c, ServerMessage m)
        {
            var bad = m.Clone();
            bad.UnmaskingRequest.Survivors.Clear();
            bad.UnmaskingRequest.Survivors.Add(c.ClientId);
            return c.Handle(bad);
        }
    }

    [TestMethod]
    public void RosterWithTooFewPeers_OrNonNeighbour_IsRefused()
    {
        var config = Config();
        var clients = Enumerable.Range(0, 20).Select(i => new SecureAggregationClient(config, (uint)i, new uint[16])).ToArray();
        var server = new SecureAggregationServer(config);
        foreach (var c in clients)
        {
            server.Receive(c.Start());
        }

        var rosters = server.Advance();
        var small = rosters[0].Clone();
        while (small.KeysRoster.Peers.Count > 3)
        {
            small.KeysRoster.Peers.RemoveAt(0);
        }

        var r = clients[small.Recipient].Handle(small);
        StringAssert.Contains(r.Refusal.Reason, "threshold");

        var foreign = rosters[1].Clone();
        var me = foreign.Recipient;
        var stranger = Enumerable.Range(0, 20).Select(i => (uint)i).First(v => v != me && foreign.KeysRoster.Peers.All(p => p.ClientId != v));
        foreign.KeysRoster.Peers[0].ClientId = stranger;
        var r2 = clients[me].Handle(foreign);
        StringAssert.Contains(r2.Refusal.Reason, "not a neighbour");

        var reused = rosters[2].Clone();
        reused.KeysRoster.Peers[1].Keys = reused.KeysRoster.Peers[0].Keys;
        Assert.AreEqual(ClientMessage.BodyOneofCase.Refusal, clients[reused.Recipient].Handle(reused).BodyCase);
    }

    [TestMethod]
    public void ActiveVariant_UnmaskingWithoutConsistencyCheck_IsRefused()
    {
        var keys = Enumerable.Range(0, 20).Select(_ => AggregationRound.CreateIdentityKey()).ToArray();
        var config = AggregationRound.CreateConfig("job-r", 1, AggregationProtocol.SecaggPlus, 20, 16, 16, 8, 5, keys.Select(k => k.PublicKey).ToArray());
        var clients = Enumerable.Range(0, 20).Select(i => new SecureAggregationClient(config, (uint)i, new uint[16], keys[i].PrivateKey)).ToArray();
        var server = new SecureAggregationServer(config);
        var pending = clients.Select(c => c.Start()).ToList();
        while (server.Phase != AggregationPhase.ConsistencyCheck)
        {
            foreach (var m in pending)
            {
                server.Receive(m);
            }

            var outgoing = server.Advance();
            if (server.Phase == AggregationPhase.ConsistencyCheck)
            {
                var skip = new ServerMessage { JobId = "job-r", Round = 1, Recipient = outgoing[0].Recipient, UnmaskingRequest = new UnmaskingRequest { Survivors = { outgoing[0].ConsistencyRequest.Survivors } } };
                var r = clients[skip.Recipient].Handle(skip);
                StringAssert.Contains(r.Refusal.Reason, "consistency check");
                break;
            }

            pending = outgoing.Select(m => clients[m.Recipient].Handle(m)).ToList();
        }
    }

    [TestMethod]
    public void ConstructorGuards_NameTheParameter()
    {
        var config = Config();
        Assert.AreEqual("input", Assert.ThrowsExactly<ArgumentException>(() => new SecureAggregationClient(config, 0, new uint[3])).ParamName);
        Assert.AreEqual("clientId", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new SecureAggregationClient(config, 20, new uint[16])).ParamName);
        var bad = config.Clone();
        bad.Threshold = 50;
        Assert.AreEqual("config", Assert.ThrowsExactly<ArgumentException>(() => new SecureAggregationServer(bad)).ParamName);
        bad = config.Clone();
        bad.Active = true;
        Assert.ThrowsExactly<ArgumentException>(() => new SecureAggregationServer(bad));
        Assert.ThrowsExactly<ArgumentNullException>(() => new SecureAggregationServer(config).Receive(null!));
    }
}
