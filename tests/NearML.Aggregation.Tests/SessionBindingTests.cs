using Google.Protobuf;
using NearML.Aggregation.Internal;
using NearML.Core.Contracts.Aggregation;

namespace NearML.Aggregation.Tests;

/// <summary>
/// Replays across rounds and sessions: every signature, share AAD and key derivation binds the session id, SHA-256 of
/// the whole configuration including a fresh session nonce; an old round's roster relabelled as the current round is
/// refused.
/// </summary>
[TestClass]
public sealed class SessionBindingTests
{
    private static (byte[] PrivateKey, byte[] PublicKey)[] Ids(int n) => Enumerable.Range(0, n).Select(_ => AggregationRound.CreateIdentityKey()).ToArray();

    private static AggregationConfig Config(ulong round, (byte[] PrivateKey, byte[] PublicKey)[]? ids, int n = 9)
        => AggregationRound.CreateConfig("job-r", round, AggregationProtocol.Secagg, n, 8, 12, n - 1, (n / 2) + 1, ids?.Select(i => i.PublicKey).ToArray());

    /// <summary>Runs the round's AdvertiseKeys phase and returns the roster the server sends to client 0.</summary>
    private static ServerMessage RosterFor0(AggregationConfig config, (byte[] PrivateKey, byte[] PublicKey)[]? ids)
    {
        var server = new SecureAggregationServer(config);
        for (int i = 0; i < config.NumClients; i++)
        {
            server.Receive(new SecureAggregationClient(config, (uint)i, new uint[config.VectorLength], ids?[i].PrivateKey).Start());
        }

        return server.Advance().Single(m => m.Recipient == 0);
    }

    [TestMethod]
    public void OldRoundsRoster_RelabelledAsTheCurrentRound_IsRefused()
    {
        var ids = Ids(9);
        var old = RosterFor0(Config(4, ids), ids);
        var current = Config(5, ids);
        var client = new SecureAggregationClient(current, 0, new uint[8], ids[0].PrivateKey);
        client.Start();
        var relabelled = old.Clone();
        relabelled.Round = 5;
        var answer = client.Handle(relabelled);
        Assert.AreEqual(ClientMessage.BodyOneofCase.Refusal, answer.BodyCase);
        StringAssert.Contains(answer.Refusal.Reason, "invalid signature");
    }

    [TestMethod]
    public void SameRoundAnotherSession_RosterIsRefused()
    {
        // A restarted round (same job and round number, fresh session nonce): the first session's roster does not verify.
        var ids = Ids(9);
        var first = Config(5, ids);
        var second = first.Clone();
        second.SessionNonce = ByteString.CopyFrom(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        var roster = RosterFor0(first, ids);
        var client = new SecureAggregationClient(second, 0, new uint[8], ids[0].PrivateKey);
        client.Start();
        Assert.AreEqual(ClientMessage.BodyOneofCase.Refusal, client.Handle(roster).BodyCase);

        // Control: the genuine session's client accepts the same roster.
        var genuine = new SecureAggregationClient(first, 0, new uint[8], ids[0].PrivateKey);
        genuine.Start();
        Assert.AreEqual(ClientMessage.BodyOneofCase.ShareKeys, genuine.Handle(roster).BodyCase);
    }

    [TestMethod]
    public void SemiHonestVariant_CannotTellARelabelledRoster_WhichIsWhyWorkersRefuseIt()
    {
        // The semi-honest client has nothing to check a roster against; the worker's policy refuses the variant.
        var old = RosterFor0(Config(4, null), null);
        var current = Config(5, null);
        var client = new SecureAggregationClient(current, 0, new uint[8]);
        client.Start();
        var relabelled = old.Clone();
        relabelled.Round = 5;
        Assert.AreEqual(ClientMessage.BodyOneofCase.ShareKeys, client.Handle(relabelled).BodyCase);
        StringAssert.Contains(new SecureAggregationPolicy().Check(current, 0, new byte[32]), "semi-honest");
    }

    [TestMethod]
    public void SurvivorSignatureFromAnotherSession_IsRefused()
    {
        var ids = Ids(9);
        var config = Config(5, ids);
        var other = Config(5, ids);
        var h = new RoundHarness(config, identity: i => ids[i].PrivateKey);
        ServerMessage? captured = null;
        h.Intercept = m =>
        {
            if (m.BodyCase == ServerMessage.BodyOneofCase.UnmaskingRequest && m.Recipient == 0 && captured is null)
            {
                // Replace client 1's signature with its signature over the same set in another session of the round.
                captured = m.Clone();
                var survivors = m.UnmaskingRequest.Survivors.ToArray();
                var forged = m.Clone();
                var view = forged.UnmaskingRequest.Signatures.First(s => s.ClientId == 1);
                using var key1 = NearML.Core.Protocol.Ed25519Identity.FromSeed(ids[1].PrivateKey);
                view.Signature = ByteString.CopyFrom(Signatures.Sign(key1, Protocol.SurvivorTranscript(new Session(other), survivors)));
                return forged;
            }

            return m;
        };
        h.Run();
        Assert.IsNotNull(captured);
        Assert.AreEqual(AggregationPhase.Failed, h.Clients[0].Phase);
        StringAssert.Contains(h.Clients[0].RefusalReason, "signature over the survivor set is invalid");
    }

    [TestMethod]
    public void SessionId_BindsEveryConfigurationField()
    {
        // Exhaustive single-field mutation: any change of any field gives another session id.
        var ids = Ids(5);
        var baseConfig = AggregationRound.CreateConfig("job-r", 5, AggregationProtocol.Secagg, 5, 8, 12, 4, 3, ids.Select(i => i.PublicKey).ToArray());
        var baseId = Session.ComputeId(baseConfig);
        var mutations = new List<(string Field, Action<AggregationConfig> Mutate)>
        {
            ("job_id", c => c.JobId = "job-s"),
            ("round", c => c.Round++),
            ("protocol", c => c.Protocol = AggregationProtocol.SecaggPlus),
            ("num_clients", c => c.NumClients++),
            ("degree", c => c.Degree--),
            ("threshold", c => c.Threshold++),
            ("ring_bits", c => c.RingBits++),
            ("vector_length", c => c.VectorLength++),
            ("active", c => c.Active = false),
            ("graph_seed", c => c.GraphSeed = Flip(c.GraphSeed, 31)),
            ("session_nonce", c => c.SessionNonce = Flip(c.SessionNonce, 0)),
        };
        for (int i = 0; i < ids.Length; i++)
        {
            int j = i;
            mutations.Add(($"identity_keys[{j}]", c => c.IdentityKeys[j] = Flip(c.IdentityKeys[j], 7)));
        }

        mutations.Add(("identity_keys order", c => (c.IdentityKeys[0], c.IdentityKeys[1]) = (c.IdentityKeys[1], c.IdentityKeys[0])));
        var seen = new HashSet<string>(StringComparer.Ordinal) { Convert.ToHexString(baseId) };
        foreach (var (field, mutate) in mutations)
        {
            var c = baseConfig.Clone();
            mutate(c);
            Assert.IsTrue(seen.Add(Convert.ToHexString(Session.ComputeId(c))), $"{field} is not bound into the session id");
        }
    }

    [TestMethod]
    public void ShareCiphertextFromAnotherSession_DoesNotDecrypt()
    {
        // Same keys, same pair, another session: the AAD and the derived key differ, so the share is refused.
        var (aSk, _) = KeyAgreement.Generate();
        var (_, bPk) = KeyAgreement.Generate();
        var secret = new byte[32];
        Assert.IsTrue(KeyAgreement.TryAgree(aSk, bPk, secret));
        var ids = Ids(9);
        var s1 = new Session(Config(5, ids));
        var s2 = new Session(Config(5, ids));
        var plaintext = new byte[80];
        var ct = ShareCipher.Encrypt(Protocol.ShareKey(s1, secret, 0, 1), Protocol.ShareAad(s1, 0, 1), plaintext);
        Assert.IsTrue(ShareCipher.TryDecrypt(Protocol.ShareKey(s1, secret, 0, 1), Protocol.ShareAad(s1, 0, 1), ct, plaintext));
        Assert.IsFalse(ShareCipher.TryDecrypt(Protocol.ShareKey(s1, secret, 0, 1), Protocol.ShareAad(s2, 0, 1), ct, plaintext), "AAD binds the session");
        Assert.IsFalse(ShareCipher.TryDecrypt(Protocol.ShareKey(s2, secret, 0, 1), Protocol.ShareAad(s1, 0, 1), ct, plaintext), "the key binds the session");
    }

    private static ByteString Flip(ByteString b, int index)
    {
        var bytes = b.ToByteArray();
        bytes[index] ^= 1;
        return ByteString.CopyFrom(bytes);
    }
}
