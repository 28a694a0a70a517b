using System.Security.Cryptography;
using Google.Protobuf;
using NearML.Aggregation.Internal;
using NearML.Core.Contracts.Aggregation;

namespace NearML.Aggregation;

/// <summary>
/// The server of SecAgg / SecAgg+ as a transport-agnostic state machine. Feed it client messages with
/// <see cref="Receive"/>; when a phase's deadline passes call <see cref="Advance"/>, which drops the silent clients and
/// returns the next phase's messages; after Unmasking, <see cref="Advance"/> reconstructs the dropped clients' masking
/// keys and the survivors' self-mask seeds from the revealed shares, removes every mask and makes the exact sum of the
/// survivors' inputs available through <see cref="Finish"/>. Beyond the tolerated dropouts the round fails with
/// <see cref="AggregationFailedException"/> and no partial sum.
/// </summary>
public sealed class SecureAggregationServer : IAggregationServer
{
    private readonly AggregationConfig _config;
    private readonly Session _session;
    private readonly HararyGraph _graph;
    private readonly int _threshold;
    private readonly int _bits;
    private readonly Dictionary<uint, AdvertiseKeys> _keys = [];
    private readonly Dictionary<uint, ShareKeys> _shares = [];
    private readonly Dictionary<uint, List<uint>> _delivered = [];
    private readonly Dictionary<uint, byte[]> _inputHashes = [];
    private readonly Dictionary<uint, byte[]> _consistency = [];
    private readonly Dictionary<uint, UnmaskingShares> _unmasking = [];
    private readonly Dictionary<uint, string> _refusals = [];
    private readonly Dictionary<string, ulong[]> _lagrangeCache = new(StringComparer.Ordinal);
    private HashSet<uint> _u1 = [];
    private HashSet<uint> _u2 = [];
    private uint[] _u3 = [];
    private HashSet<uint> _responders = [];
    private uint[]? _sum;
    private AggregationResult? _result;
    private string? _failure;

    /// <summary>Initializes a new server for one round.</summary>
    /// <param name="config">The round configuration (validated).</param>
    public SecureAggregationServer(AggregationConfig config)
    {
        AggregationRound.Validate(config);
        if (config.Protocol == AggregationProtocol.Plain)
        {
            throw new ArgumentException("use PlainAggregationServer for the plain protocol", nameof(config));
        }

        _config = config;
        _session = new Session(config);
        _threshold = (int)config.Threshold;
        _bits = (int)config.RingBits;
        _graph = new HararyGraph((int)config.NumClients, (int)config.Degree, config.GraphSeed.Span);
    }

    /// <inheritdoc/>
    public AggregationPhase Phase { get; private set; } = AggregationPhase.AdvertiseKeys;

    /// <summary>Gets the clients that refused, with their reasons.</summary>
    public IReadOnlyDictionary<uint, string> Refusals => _refusals;

    /// <summary>Gets the time spent removing masks in the last phase (the server's hot path), for benchmarks.</summary>
    public TimeSpan UnmaskingTime { get; private set; }

    /// <inheritdoc/>
    public void Receive(ClientMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (message.JobId != _config.JobId || message.Round != _config.Round)
        {
            throw new AggregationReplayException(message.Sender, $"message for job '{message.JobId}' round {message.Round}, this round is job '{_config.JobId}' round {_config.Round}");
        }

        uint u = message.Sender;
        if (u >= _config.NumClients)
        {
            throw new AggregationProtocolException(u, $"sender id {u} is not below num_clients = {_config.NumClients}");
        }

        if (Phase is AggregationPhase.Completed or AggregationPhase.Failed)
        {
            throw new AggregationProtocolException(u, $"round is {Phase}; no more messages are accepted");
        }

        if (message.BodyCase == ClientMessage.BodyOneofCase.Refusal)
        {
            if (!IsExpectedSender(u))
            {
                throw new AggregationProtocolException(u, $"refusal from a client not taking part in {Phase}");
            }

            _refusals.TryAdd(u, message.Refusal.Reason);
            return;
        }

        if (_refusals.ContainsKey(u))
        {
            throw new AggregationProtocolException(u, "client refused earlier in this round");
        }

        switch (message.BodyCase)
        {
            case ClientMessage.BodyOneofCase.AdvertiseKeys when Phase == AggregationPhase.AdvertiseKeys:
                OnAdvertise(u, message.AdvertiseKeys);
                break;
            case ClientMessage.BodyOneofCase.ShareKeys when Phase == AggregationPhase.ShareKeys:
                OnShareKeys(u, message.ShareKeys);
                break;
            case ClientMessage.BodyOneofCase.MaskedInput when Phase == AggregationPhase.MaskedInputCollection:
                OnMaskedInput(u, message.MaskedInput);
                break;
            case ClientMessage.BodyOneofCase.ConsistencySignature when Phase == AggregationPhase.ConsistencyCheck:
                OnConsistency(u, message.ConsistencySignature);
                break;
            case ClientMessage.BodyOneofCase.UnmaskingShares when Phase == AggregationPhase.Unmasking:
                OnUnmaskingShares(u, message.UnmaskingShares);
                break;
            default:
                throw new AggregationProtocolException(u, $"unexpected {message.BodyCase} during {Phase}");
        }
    }

    /// <inheritdoc/>
    public IReadOnlyList<ServerMessage> Advance()
    {
        try
        {
            return Phase switch
            {
                AggregationPhase.AdvertiseKeys => CloseAdvertise(),
                AggregationPhase.ShareKeys => CloseShareKeys(),
                AggregationPhase.MaskedInputCollection => CloseMaskedInput(),
                AggregationPhase.ConsistencyCheck => CloseConsistency(),
                AggregationPhase.Unmasking => CloseUnmasking(),
                _ => throw new InvalidOperationException($"round is {Phase}"),
            };
        }
        catch (AggregationFailedException ex)
        {
            Phase = AggregationPhase.Failed;
            _failure = ex.Reason;
            _sum = null;
            throw;
        }
    }

    /// <inheritdoc/>
    public AggregationResult Finish()
    {
        if (Phase == AggregationPhase.Failed)
        {
            throw new InvalidOperationException($"the round failed: {_failure}");
        }

        return _result ?? throw new InvalidOperationException($"the round is in {Phase}, not complete");
    }

    private bool IsExpectedSender(uint u) => Phase switch
    {
        AggregationPhase.AdvertiseKeys => true,
        AggregationPhase.ShareKeys => _u1.Contains(u),
        AggregationPhase.MaskedInputCollection => _u2.Contains(u),
        _ => Array.BinarySearch(_u3, u) >= 0,
    };

    private void OnAdvertise(uint u, AdvertiseKeys keys)
    {
        if (keys.EncryptionPublicKey.Length != KeyAgreement.KeySize || keys.MaskingPublicKey.Length != KeyAgreement.KeySize)
        {
            throw new AggregationProtocolException(u, $"AdvertiseKeys: public keys must be {KeyAgreement.KeySize} bytes, got {keys.EncryptionPublicKey.Length} and {keys.MaskingPublicKey.Length}");
        }

        if (_keys.TryGetValue(u, out var earlier))
        {
            if (earlier.Equals(keys))
            {
                return;
            }

            throw new AggregationEquivocationException(u, "sent two different AdvertiseKeys; the first stands");
        }

        if (keys.EncryptionPublicKey.Equals(keys.MaskingPublicKey))
        {
            throw new AggregationProtocolException(u, "AdvertiseKeys: encryption and masking keys must differ");
        }

        if (_config.Active && !Signatures.Verify(
                _config.IdentityKeys[(int)u].Span,
                Protocol.AdvertiseTranscript(_session, u, keys.EncryptionPublicKey.ToByteArray(), keys.MaskingPublicKey.ToByteArray()),
                keys.Signature.Span))
        {
            throw new AggregationSignatureException(u, "AdvertiseKeys signature does not verify under the client's identity key");
        }

        foreach (var other in _keys.Values)
        {
            if (other.EncryptionPublicKey.Equals(keys.EncryptionPublicKey) || other.MaskingPublicKey.Equals(keys.MaskingPublicKey)
                || other.EncryptionPublicKey.Equals(keys.MaskingPublicKey) || other.MaskingPublicKey.Equals(keys.EncryptionPublicKey))
            {
                throw new AggregationProtocolException(u, "AdvertiseKeys reuses another client's public key");
            }
        }

        _keys[u] = keys;
    }

    private List<ServerMessage> CloseAdvertise()
    {
        _u1 = _keys.Keys.Where(u => !_refusals.ContainsKey(u)).ToHashSet();
        RequireAtLeast(_u1.Count, _threshold + 1, "clients advertised keys");
        var messages = new List<ServerMessage>(_u1.Count);
        foreach (var u in _u1.Order())
        {
            var roster = new KeysRoster();
            foreach (var v in _graph.Neighbours(u))
            {
                if (_u1.Contains(v))
                {
                    roster.Peers.Add(new PeerKeys { ClientId = v, Keys = _keys[v] });
                }
            }

            messages.Add(NewMessage(u, m => m.KeysRoster = roster));
        }

        Phase = AggregationPhase.ShareKeys;
        return messages;
    }

    private void OnShareKeys(uint u, ShareKeys shareKeys)
    {
        if (!_u1.Contains(u))
        {
            throw new AggregationProtocolException(u, "ShareKeys from a client that did not advertise keys");
        }

        if (_shares.TryGetValue(u, out var earlier))
        {
            if (earlier.Equals(shareKeys))
            {
                return;
            }

            throw new AggregationEquivocationException(u, "sent two different ShareKeys; the first stands");
        }

        if (shareKeys.SelfMaskCommitment.Length != 32)
        {
            throw new AggregationProtocolException(u, $"ShareKeys.self_mask_commitment has {shareKeys.SelfMaskCommitment.Length} bytes, 32 expected");
        }

        int expectedSize = ShareCipher.CiphertextSize(2 * Shamir.ShareSize);
        var recipients = new HashSet<uint>();
        foreach (var s in shareKeys.Shares)
        {
            if (s.Sender != u)
            {
                throw new AggregationProtocolException(u, $"ShareKeys contains a share claiming sender {s.Sender}");
            }

            if (s.Recipient >= _config.NumClients || !_u1.Contains(s.Recipient) || !_graph.AreNeighbours(u, s.Recipient))
            {
                throw new AggregationProtocolException(u, $"ShareKeys contains a share for client {s.Recipient}, which is not in its roster");
            }

            if (!recipients.Add(s.Recipient))
            {
                throw new AggregationProtocolException(u, $"ShareKeys contains two shares for client {s.Recipient}");
            }

            if (s.Ciphertext.Length != expectedSize)
            {
                throw new AggregationProtocolException(u, $"share for client {s.Recipient} has {s.Ciphertext.Length} bytes, {expectedSize} expected");
            }
        }

        int rosterSize = _graph.Neighbours(u).Count(_u1.Contains);
        if (recipients.Count != rosterSize)
        {
            throw new AggregationProtocolException(u, $"ShareKeys has {recipients.Count} shares, the client's roster has {rosterSize} peers");
        }

        _shares[u] = shareKeys;
    }

    private List<ServerMessage> CloseShareKeys()
    {
        _u2 = _shares.Keys.Where(u => !_refusals.ContainsKey(u)).ToHashSet();
        RequireAtLeast(_u2.Count, _threshold + 1, "clients completed ShareKeys");
        var inbox = new Dictionary<uint, SharesDelivery>();
        foreach (var v in _u2)
        {
            inbox[v] = new SharesDelivery();
            _delivered[v] = [];
        }

        foreach (var u in _u2.Order())
        {
            foreach (var s in _shares[u].Shares)
            {
                if (inbox.TryGetValue(s.Recipient, out var box))
                {
                    box.Shares.Add(s);
                    _delivered[s.Recipient].Add(u);
                }
            }
        }

        _sum = new uint[_config.VectorLength];
        Phase = AggregationPhase.MaskedInputCollection;
        return inbox.OrderBy(p => p.Key).Select(p => NewMessage(p.Key, m => m.SharesDelivery = p.Value)).ToList();
    }

    private void OnMaskedInput(uint u, MaskedInput input)
    {
        if (!_u2.Contains(u))
        {
            throw new AggregationProtocolException(u, "masked input from a client that did not complete ShareKeys");
        }

        int expected = RingPacking.PackedLength((int)_config.VectorLength, _bits);
        if (input.MaskedVector.Length != expected)
        {
            throw new AggregationProtocolException(u, $"masked_vector has {input.MaskedVector.Length} bytes, {expected} expected ({_config.VectorLength} elements of {_bits} bits)");
        }

        var hash = SHA256.HashData(input.MaskedVector.Span);
        if (_inputHashes.TryGetValue(u, out var earlier))
        {
            if (earlier.AsSpan().SequenceEqual(hash))
            {
                return;
            }

            throw new AggregationEquivocationException(u, "sent two different masked inputs; the first stands");
        }

        _inputHashes[u] = hash;
        RingPacking.UnpackAdd(input.MaskedVector.Span, _bits, _sum);
    }

    private List<ServerMessage> CloseMaskedInput()
    {
        _u3 = _inputHashes.Keys.Order().ToArray();
        RequireAtLeast(_u3.Length, _threshold, "clients sent masked inputs");
        if (_config.Active)
        {
            Phase = AggregationPhase.ConsistencyCheck;
            return _u3.Select(u => NewMessage(u, m => m.ConsistencyRequest = new ConsistencyRequest { Survivors = { _u3 } })).ToList();
        }

        Phase = AggregationPhase.Unmasking;
        _responders = _u3.ToHashSet();
        return _u3.Select(u => NewMessage(u, m => m.UnmaskingRequest = new UnmaskingRequest { Survivors = { _u3 } })).ToList();
    }

    private void OnConsistency(uint u, ConsistencySignature signature)
    {
        if (Array.BinarySearch(_u3, u) < 0)
        {
            throw new AggregationProtocolException(u, "consistency signature from a client not in the survivor set");
        }

        if (!Signatures.Verify(_config.IdentityKeys[(int)u].Span, Protocol.SurvivorTranscript(_session, _u3), signature.Signature.Span))
        {
            throw new AggregationSignatureException(u, "signature over the survivor set does not verify");
        }

        _consistency.TryAdd(u, signature.Signature.ToByteArray());
    }

    private List<ServerMessage> CloseConsistency()
    {
        var signers = _consistency.Keys.Where(u => !_refusals.ContainsKey(u)).Order().ToArray();
        RequireAtLeast(signers.Length, _threshold, "survivors signed the survivor set");
        var request = new UnmaskingRequest { Survivors = { _u3 } };
        foreach (var s in signers)
        {
            request.Signatures.Add(new SignedView { ClientId = s, Signature = ByteString.CopyFrom(_consistency[s]) });
        }

        Phase = AggregationPhase.Unmasking;
        _responders = signers.ToHashSet();
        return signers.Select(u => NewMessage(u, m => m.UnmaskingRequest = request)).ToList();
    }

    private void OnUnmaskingShares(uint r, UnmaskingShares answer)
    {
        if (!_responders.Contains(r))
        {
            throw new AggregationProtocolException(r, "unmasking shares from a client that was not asked");
        }

        if (_unmasking.TryGetValue(r, out var earlier))
        {
            if (earlier.Equals(answer))
            {
                return;
            }

            throw new AggregationEquivocationException(r, "sent two different unmasking answers; the first stands");
        }

        var held = _delivered[r].ToHashSet();
        var owners = new HashSet<uint>();
        foreach (var s in answer.Shares)
        {
            if (!held.Contains(s.Owner))
            {
                throw new AggregationProtocolException(r, $"revealed a share of client {s.Owner}, which it was never sent");
            }

            if (!owners.Add(s.Owner))
            {
                throw new AggregationProtocolException(r, $"revealed two shares of client {s.Owner}");
            }

            var expected = Array.BinarySearch(_u3, s.Owner) >= 0 ? ShareKind.SelfMaskSeed : ShareKind.MaskingKey;
            if (s.Kind != expected)
            {
                throw new AggregationProtocolException(r, $"share of client {s.Owner} is {s.Kind}, {expected} expected");
            }

            if (s.Share.Length != Shamir.ShareSize)
            {
                throw new AggregationProtocolException(r, $"share of client {s.Owner} has {s.Share.Length} bytes, {Shamir.ShareSize} expected");
            }
        }

        _unmasking[r] = answer;
    }

    private List<ServerMessage> CloseUnmasking()
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        var responders = _unmasking.Keys.Where(r => !_refusals.ContainsKey(r)).Order().ToArray();
        RequireAtLeast(responders.Length, _threshold, "survivors answered the unmasking request");

        // owner → shares (ordered by holder id, so the holder sets, and their Lagrange coefficients, repeat).
        var byOwner = new Dictionary<uint, List<(uint Holder, byte[] Share)>>();
        foreach (var r in responders)
        {
            foreach (var s in _unmasking[r].Shares)
            {
                if (!byOwner.TryGetValue(s.Owner, out var list))
                {
                    byOwner[s.Owner] = list = [];
                }

                list.Add((r, s.Share.ToByteArray()));
            }
        }

        var masks = new List<(MaskPrg Prg, bool Subtract)>();
        var secret = new byte[Shamir.SecretSize];
        foreach (var u in _u3)
        {
            Reconstruct(u, byOwner, secret, "self-mask seed");
            if (!Protocol.Commit(secret).AsSpan().SequenceEqual(_shares[u].SelfMaskCommitment.Span))
            {
                throw Fail($"reconstructed self-mask seed of client {u} does not match its commitment (corrupted shares)");
            }

            masks.Add((new MaskPrg(Protocol.SelfMaskKey(_session, secret, u)), true));
        }

        // Dropped clients (sent shares, no masked input): their pairwise masks sit in the inputs of their surviving
        // neighbours. Reconstruct each masking key, then run the key agreements for all affected pairs in parallel.
        var pairs = new List<(uint Dropped, uint Survivor, byte[] MaskingKey)>();
        var droppedKeys = new List<byte[]>();
        foreach (var u in _u2.Where(u => Array.BinarySearch(_u3, u) < 0).Order())
        {
            var affected = _u3.Where(v => _delivered[v].Contains(u)).ToArray();
            if (affected.Length == 0)
            {
                continue;
            }

            Reconstruct(u, byOwner, secret, "masking key");
            var sk = (byte[])secret.Clone();
            droppedKeys.Add(sk);
            if (!KeyAgreement.PublicKeyOf(sk).AsSpan().SequenceEqual(_keys[u].MaskingPublicKey.Span))
            {
                throw Fail($"reconstructed masking key of client {u} does not match its public key (corrupted shares)");
            }

            foreach (var v in affected)
            {
                pairs.Add((u, v, sk));
            }
        }

        // Key agreements for all affected pairs: chunks of eight (one AVX-512 batch each) spread over the cores.
        var pairwise = new (MaskPrg Prg, bool Subtract)[pairs.Count];
        uint lowOrder = uint.MaxValue;
        const int Chunk = 8; // X25519's AVX-512 batch width
        int chunks = (pairs.Count + Chunk - 1) / Chunk;
        Parallel.For(0, chunks, c =>
        {
            int start = c * Chunk;
            int m = Math.Min(Chunk, pairs.Count - start);
            var sks = new byte[m][];
            var pks = new byte[m][];
            for (int j = 0; j < m; j++)
            {
                sks[j] = pairs[start + j].MaskingKey;
                pks[j] = _keys[pairs[start + j].Survivor].MaskingPublicKey.ToByteArray();
            }

            var agreed = new byte[m * KeyAgreement.KeySize];
            var ok = new bool[m];
            KeyAgreement.AgreeMany(sks, pks, agreed, ok);
            var one = new byte[KeyAgreement.KeySize];
            for (int j = 0; j < m; j++)
            {
                var (u, v, _) = pairs[start + j];
                if (!ok[j])
                {
                    lowOrder = v;
                    continue;
                }

                // v added +PRG(s_uv) when v < u, −PRG when v > u; remove it.
                agreed.AsSpan(j * KeyAgreement.KeySize, KeyAgreement.KeySize).CopyTo(one);
                pairwise[start + j] = (new MaskPrg(Protocol.PairwiseMaskKey(_session, one, u, v)), v < u);
            }

            CryptographicOperations.ZeroMemory(agreed);
            CryptographicOperations.ZeroMemory(one);
        });
        foreach (var sk in droppedKeys)
        {
            CryptographicOperations.ZeroMemory(sk);
        }

        if (lowOrder != uint.MaxValue)
        {
            throw Fail($"client {lowOrder}'s masking key is a low-order point");
        }

        masks.AddRange(pairwise);
        CryptographicOperations.ZeroMemory(secret);
        var sum = _sum!;
        MaskApplier.ApplyAll(masks, sum);
        if (_bits < 32)
        {
            System.Numerics.Tensors.TensorPrimitives.BitwiseAnd(sum, (1u << _bits) - 1, sum);
        }

        _result = new AggregationResult(sum, _bits, _u3);
        UnmaskingTime = System.Diagnostics.Stopwatch.GetElapsedTime(start);
        Phase = AggregationPhase.Completed;
        return [];
    }

    private void Reconstruct(uint owner, Dictionary<uint, List<(uint Holder, byte[] Share)>> byOwner, byte[] secret, string what)
    {
        if (!byOwner.TryGetValue(owner, out var list) || list.Count < _threshold)
        {
            throw Fail($"only {list?.Count ?? 0} shares of client {owner}'s {what} arrived; threshold is {_threshold}");
        }

        var chosen = list.Take(_threshold).ToList();
        var cacheKey = string.Join(',', chosen.Select(c => c.Holder));
        if (!_lagrangeCache.TryGetValue(cacheKey, out var lambda))
        {
            lambda = Shamir.LagrangeAtZero(chosen.Select(c => (ulong)c.Holder + 1).ToArray());
            _lagrangeCache[cacheKey] = lambda;
        }

        if (!Shamir.TryReconstruct(chosen.Select(c => c.Share).ToList(), lambda, secret))
        {
            throw Fail($"shares of client {owner}'s {what} are inconsistent (corrupted shares)");
        }
    }

    private void RequireAtLeast(int count, int needed, string what)
    {
        if (count < needed)
        {
            throw Fail($"only {count} {what}; at least {needed} needed");
        }
    }

    private AggregationFailedException Fail(string reason) => new(Phase, reason);

    private ServerMessage NewMessage(uint recipient, Action<ServerMessage> body)
    {
        var m = new ServerMessage { JobId = _config.JobId, Round = _config.Round, Recipient = recipient };
        body(m);
        return m;
    }
}
