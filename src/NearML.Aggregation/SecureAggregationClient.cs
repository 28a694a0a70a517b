using System.Security.Cryptography;
using Google.Protobuf;
using NearML.Aggregation.Internal;
using NearML.Core.Contracts.Aggregation;
using NearML.Core.Protocol;

namespace NearML.Aggregation;

/// <summary>
/// The client of SecAgg (Bonawitz et al. 2017) and SecAgg+ (Bell et al. 2020) as a transport-agnostic state machine:
/// <see cref="Start"/> gives the AdvertiseKeys message, and <see cref="Handle"/> answers each server message with the next
/// (ShareKeys, MaskedInput, ConsistencySignature, UnmaskingShares) or with a <see cref="Refusal"/> naming the reason when the
/// server asks for something unsafe. The client never reveals both the self-mask share and the masking-key share of one peer.
/// </summary>
public sealed class SecureAggregationClient : IAggregationClient
{
    private readonly AggregationConfig _config;
    private readonly HararyGraph _graph;
    private readonly Session _session;
    private readonly ReadOnlyMemory<uint> _input;
    private readonly IWorkerIdentity? _identity;
    private readonly int _threshold;
    private readonly byte[] _encSk;
    private readonly byte[] _encPk;
    private readonly byte[] _maskSk;
    private readonly byte[] _maskPk;
    private readonly Dictionary<uint, (byte[] EncPk, byte[] MaskPk)> _roster = [];
    private readonly Dictionary<uint, (byte[] MaskKeyShare, byte[] SeedShare)> _heldShares = [];
    private readonly Dictionary<uint, ShareKind> _revealed = [];
    private readonly Dictionary<uint, (byte[] ShareKey, byte[] MaskKey)> _peerKeys = [];
    private byte[]? _selfSeed;
    private uint[]? _signedSurvivors;
    private uint[]? _answeredSurvivors;
    private ClientMessage? _unmaskingAnswer;

    /// <summary>Initializes a new client for one round.</summary>
    /// <param name="config">The round configuration (validated).</param>
    /// <param name="clientId">This client's id, 0 .. n−1.</param>
    /// <param name="input">The encoded input: exactly vector_length ring elements (see <see cref="FixedPointEncoder"/>).</param>
    /// <param name="identityPrivateKey">The 32-byte ed25519 identity key; required when the configuration is active.</param>
    public SecureAggregationClient(AggregationConfig config, uint clientId, ReadOnlySpan<uint> input, byte[]? identityPrivateKey = null)
        : this(config, clientId, input.ToArray().AsMemory(), identityPrivateKey)
    {
    }

    /// <summary>Initializes a new client for one round that signs with a worker identity (its handshake key).</summary>
    /// <param name="config">The round configuration (validated).</param>
    /// <param name="clientId">This client's id, 0 .. n−1.</param>
    /// <param name="input">The encoded input (vector_length ring elements); not copied, so it must not change until the masked input is produced.</param>
    /// <param name="identity">The ed25519 identity whose public key is identity_keys[clientId]; required when the configuration is active.</param>
    public SecureAggregationClient(AggregationConfig config, uint clientId, ReadOnlyMemory<uint> input, IWorkerIdentity? identity)
        : this(config, clientId, input, identity, ownsIdentity: false)
    {
    }

    /// <summary>Initializes a new client for one round without copying the input.</summary>
    /// <param name="config">The round configuration (validated).</param>
    /// <param name="clientId">This client's id, 0 .. n−1.</param>
    /// <param name="input">The encoded input (vector_length ring elements); not copied, so it must not change until the masked input is produced.</param>
    /// <param name="identityPrivateKey">The 32-byte ed25519 identity key; required when the configuration is active.</param>
    public SecureAggregationClient(AggregationConfig config, uint clientId, ReadOnlyMemory<uint> input, byte[]? identityPrivateKey = null)
        : this(config, clientId, input, IdentityFromKey(config, identityPrivateKey), ownsIdentity: true)
    {
    }

    private SecureAggregationClient(AggregationConfig config, uint clientId, ReadOnlyMemory<uint> input, IWorkerIdentity? identity, bool ownsIdentity)
    {
        AggregationRound.Validate(config);
        if (config.Protocol == AggregationProtocol.Plain)
        {
            throw new ArgumentException("use PlainAggregationClient for the plain protocol", nameof(config));
        }

        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(clientId, config.NumClients);
        if (input.Length != config.VectorLength)
        {
            throw new ArgumentException($"input has {input.Length} elements, vector_length is {config.VectorLength}", nameof(input));
        }

        if (config.Active)
        {
            ArgumentNullException.ThrowIfNull(identity);
            if (!identity.PublicKey.Span.SequenceEqual(config.IdentityKeys[(int)clientId].Span))
            {
                throw new ArgumentException($"identity key does not match identity_keys[{clientId}]", ownsIdentity ? "identityPrivateKey" : nameof(identity));
            }

            _identity = identity;
        }

        _config = config;
        _session = new Session(config);
        ClientId = clientId;
        _threshold = (int)config.Threshold;
        _graph = new HararyGraph((int)config.NumClients, (int)config.Degree, config.GraphSeed.Span);
        _input = input;
        (_encSk, _encPk) = KeyAgreement.Generate();
        (_maskSk, _maskPk) = KeyAgreement.Generate();
    }

    /// <inheritdoc/>
    public uint ClientId { get; }

    private static Ed25519Identity? IdentityFromKey(AggregationConfig config, byte[]? identityPrivateKey)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (!config.Active)
        {
            return null;
        }

        ArgumentNullException.ThrowIfNull(identityPrivateKey);
        if (identityPrivateKey.Length != 32)
        {
            throw new ArgumentException($"identity key has {identityPrivateKey.Length} bytes, 32 expected", nameof(identityPrivateKey));
        }

        return Ed25519Identity.FromSeed(identityPrivateKey);
    }

    /// <inheritdoc/>
    public AggregationPhase Phase { get; private set; } = AggregationPhase.AdvertiseKeys;

    /// <inheritdoc/>
    public string? RefusalReason { get; private set; }

    /// <summary>Gets the time spent computing the masked input (the client's hot path), for benchmarks.</summary>
    public TimeSpan MaskingTime { get; private set; }

    /// <inheritdoc/>
    public ClientMessage Start()
    {
        if (Phase != AggregationPhase.AdvertiseKeys || _roster.Count != 0)
        {
            throw new InvalidOperationException("Start was already called");
        }

        var keys = new AdvertiseKeys
        {
            EncryptionPublicKey = ByteString.CopyFrom(_encPk),
            MaskingPublicKey = ByteString.CopyFrom(_maskPk),
        };
        if (_identity is not null)
        {
            keys.Signature = ByteString.CopyFrom(_identity.Sign(Protocol.AdvertiseTranscript(_session, ClientId, _encPk, _maskPk)));
        }

        Phase = AggregationPhase.ShareKeys;
        return NewMessage(m => m.AdvertiseKeys = keys);
    }

    /// <inheritdoc/>
    public ClientMessage Handle(ServerMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (message.JobId != _config.JobId || message.Round != _config.Round)
        {
            throw new AggregationReplayException(ClientId, $"message for job '{message.JobId}' round {message.Round}, this round is job '{_config.JobId}' round {_config.Round}");
        }

        if (message.Recipient != ClientId)
        {
            throw new AggregationProtocolException(ClientId, $"message addressed to client {message.Recipient}");
        }

        if (Phase is AggregationPhase.Failed)
        {
            throw new AggregationProtocolException(ClientId, $"client refused earlier: {RefusalReason}");
        }

        return message.BodyCase switch
        {
            ServerMessage.BodyOneofCase.KeysRoster when Phase == AggregationPhase.ShareKeys => OnRoster(message.KeysRoster),
            ServerMessage.BodyOneofCase.SharesDelivery when Phase == AggregationPhase.MaskedInputCollection => OnShares(message.SharesDelivery),
            ServerMessage.BodyOneofCase.ConsistencyRequest when Phase == AggregationPhase.ConsistencyCheck => OnConsistency(message.ConsistencyRequest),
            ServerMessage.BodyOneofCase.UnmaskingRequest when Phase == AggregationPhase.Unmasking || (Phase == AggregationPhase.Completed && _unmaskingAnswer is not null) => OnUnmasking(message.UnmaskingRequest),
            ServerMessage.BodyOneofCase.UnmaskingRequest when Phase == AggregationPhase.ConsistencyCheck
                => Refuse("server asked for unmasking shares without the consistency check the active variant requires"),
            _ => throw new AggregationProtocolException(ClientId, $"unexpected {message.BodyCase} while awaiting {Phase}"),
        };
    }

    private ClientMessage OnRoster(KeysRoster roster)
    {
        var peers = new Dictionary<uint, (byte[], byte[])>();
        var seenKeys = new HashSet<string>(StringComparer.Ordinal) { Convert.ToBase64String(_encPk), Convert.ToBase64String(_maskPk) };
        foreach (var peer in roster.Peers)
        {
            uint id = peer.ClientId;
            if (id >= _config.NumClients || id == ClientId)
            {
                throw new AggregationProtocolException(ClientId, $"roster lists client {id}, which is not a peer");
            }

            if (!_graph.AreNeighbours(ClientId, id))
            {
                return Refuse($"roster lists client {id}, which is not a neighbour in the agreed graph");
            }

            if (peer.Keys is null || peer.Keys.EncryptionPublicKey.Length != KeyAgreement.KeySize || peer.Keys.MaskingPublicKey.Length != KeyAgreement.KeySize)
            {
                throw new AggregationProtocolException(ClientId, $"roster entry for client {id}: public keys must be {KeyAgreement.KeySize} bytes");
            }

            if (peers.ContainsKey(id))
            {
                throw new AggregationProtocolException(ClientId, $"roster lists client {id} twice");
            }

            var enc = peer.Keys.EncryptionPublicKey.ToByteArray();
            var mask = peer.Keys.MaskingPublicKey.ToByteArray();
            if (!seenKeys.Add(Convert.ToBase64String(enc)) || !seenKeys.Add(Convert.ToBase64String(mask)))
            {
                return Refuse($"roster entry for client {id} reuses a public key of another participant");
            }

            if (_config.Active && !Signatures.Verify(_config.IdentityKeys[(int)id].Span, Protocol.AdvertiseTranscript(_session, id, enc, mask), peer.Keys.Signature.Span))
            {
                return Refuse($"roster entry for client {id} carries an invalid signature");
            }

            peers[id] = (enc, mask);
        }

        if (peers.Count < _threshold)
        {
            return Refuse($"only {peers.Count} neighbours advertised keys; threshold is {_threshold}");
        }

        foreach (var (id, keys) in peers)
        {
            _roster[id] = keys;
        }

        _selfSeed = new byte[Shamir.SecretSize];
        RandomNumberGenerator.Fill(_selfSeed);
        var ids = _roster.Keys.Order().ToArray();
        var xs = ids.Select(i => (ulong)i + 1).ToArray();
        var maskKeyShares = Shamir.Split(_maskSk, _threshold, xs);
        var seedShares = Shamir.Split(_selfSeed, _threshold, xs);
        var shareKeys = new ShareKeys { SelfMaskCommitment = ByteString.CopyFrom(Protocol.Commit(_selfSeed)) };
        var plaintext = new byte[2 * Shamir.ShareSize];

        // Both agreements with every roster peer in one batch (eight at a time where AVX-512 is available). The pairwise
        // mask key is agreed now, while the update may still be training, so the masking step after training only
        // expands PRGs. Both keys are kept until masking and then zeroed.
        var privateKeys = new List<byte[]>(2 * ids.Length);
        var peerKeys = new List<byte[]>(2 * ids.Length);
        foreach (var v in ids)
        {
            privateKeys.Add(_encSk);
            peerKeys.Add(_roster[v].EncPk);
            privateKeys.Add(_maskSk);
            peerKeys.Add(_roster[v].MaskPk);
        }

        var secrets = new byte[2 * ids.Length * KeyAgreement.KeySize];
        var agreed = new bool[2 * ids.Length];
        KeyAgreement.AgreeMany(privateKeys, peerKeys, secrets, agreed);
        var secret = new byte[KeyAgreement.KeySize];
        for (int i = 0; i < ids.Length; i++)
        {
            uint v = ids[i];
            if (!agreed[2 * i])
            {
                CryptographicOperations.ZeroMemory(secrets);
                return Refuse($"client {v}'s encryption key is a low-order point");
            }

            if (!agreed[(2 * i) + 1])
            {
                CryptographicOperations.ZeroMemory(secrets);
                return Refuse($"client {v}'s masking key is a low-order point");
            }

            secrets.AsSpan(2 * i * KeyAgreement.KeySize, KeyAgreement.KeySize).CopyTo(secret);
            var key = Protocol.ShareKey(_session, secret, ClientId, v);
            secrets.AsSpan(((2 * i) + 1) * KeyAgreement.KeySize, KeyAgreement.KeySize).CopyTo(secret);
            _peerKeys[v] = (key, Protocol.PairwiseMaskKey(_session, secret, ClientId, v));
            maskKeyShares[i].CopyTo(plaintext, 0);
            seedShares[i].CopyTo(plaintext, Shamir.ShareSize);
            shareKeys.Shares.Add(new EncryptedShare
            {
                Sender = ClientId,
                Recipient = v,
                Ciphertext = ByteString.CopyFrom(ShareCipher.Encrypt(key, Protocol.ShareAad(_session, ClientId, v), plaintext)),
            });
        }

        CryptographicOperations.ZeroMemory(plaintext);
        CryptographicOperations.ZeroMemory(secret);
        CryptographicOperations.ZeroMemory(secrets);
        Phase = AggregationPhase.MaskedInputCollection;
        return NewMessage(m => m.ShareKeys = shareKeys);
    }

    private ClientMessage OnShares(SharesDelivery delivery)
    {
        var received = new Dictionary<uint, (byte[], byte[])>();
        var plaintext = new byte[2 * Shamir.ShareSize];
        foreach (var share in delivery.Shares)
        {
            uint u = share.Sender;
            if (share.Recipient != ClientId)
            {
                throw new AggregationProtocolException(ClientId, $"share from {u} is addressed to {share.Recipient}");
            }

            if (!_roster.ContainsKey(u))
            {
                return Refuse($"server delivered a share from client {u}, which is not in this client's roster");
            }

            if (received.ContainsKey(u))
            {
                throw new AggregationProtocolException(ClientId, $"two shares from client {u}");
            }

            if (share.Ciphertext.Length != ShareCipher.CiphertextSize(plaintext.Length))
            {
                throw new AggregationProtocolException(ClientId, $"share from {u} has {share.Ciphertext.Length} bytes, {ShareCipher.CiphertextSize(plaintext.Length)} expected");
            }

            if (!ShareCipher.TryDecrypt(_peerKeys[u].ShareKey, Protocol.ShareAad(_session, u, ClientId), share.Ciphertext.Span, plaintext))
            {
                return Refuse($"share from client {u} does not decrypt (forged, or bound to another sender, recipient, job or round)");
            }

            received[u] = (plaintext.AsSpan(0, Shamir.ShareSize).ToArray(), plaintext.AsSpan(Shamir.ShareSize).ToArray());
        }

        CryptographicOperations.ZeroMemory(plaintext);
        if (received.Count < _threshold)
        {
            return Refuse($"only {received.Count} neighbours completed ShareKeys; threshold is {_threshold}");
        }

        foreach (var (u, s) in received)
        {
            _heldShares[u] = s;
        }

        // Masked input: y = x + PRG(b_u) + Σ_{v ∈ U2 ∩ N(u)} ±PRG(s_uv), + when u < v.
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        var masks = new List<(MaskPrg, bool)>(received.Count + 1) { (new MaskPrg(Protocol.SelfMaskKey(_session, _selfSeed!, ClientId)), false) };
        foreach (var v in received.Keys)
        {
            masks.Add((new MaskPrg(_peerKeys[v].MaskKey), ClientId > v));
        }

        foreach (var (shareKey, maskKey) in _peerKeys.Values)
        {
            CryptographicOperations.ZeroMemory(shareKey);
            CryptographicOperations.ZeroMemory(maskKey);
        }

        _peerKeys.Clear();
        var y = _input.ToArray();
        MaskApplier.ApplyAll(masks, y);
        var packed = new byte[RingPacking.PackedLength(y.Length, (int)_config.RingBits)];
        RingPacking.Pack(y, (int)_config.RingBits, packed);
        MaskingTime = System.Diagnostics.Stopwatch.GetElapsedTime(start);
        Phase = _config.Active ? AggregationPhase.ConsistencyCheck : AggregationPhase.Unmasking;
        return NewMessage(m => m.MaskedInput = new MaskedInput { MaskedVector = UnsafeByteOperations.UnsafeWrap(packed) });
    }

    private ClientMessage OnConsistency(ConsistencyRequest request)
    {
        var survivors = CheckSurvivors(request.Survivors, out var problem);
        if (survivors is null)
        {
            return Refuse(problem!);
        }

        _signedSurvivors = survivors;
        Phase = AggregationPhase.Unmasking;
        var sig = _identity!.Sign(Protocol.SurvivorTranscript(_session, survivors));
        return NewMessage(m => m.ConsistencySignature = new ConsistencySignature { Signature = ByteString.CopyFrom(sig) });
    }

    private ClientMessage OnUnmasking(UnmaskingRequest request)
    {
        var survivors = CheckSurvivors(request.Survivors, out var problem);
        if (survivors is null)
        {
            return Refuse(problem!);
        }

        if (_answeredSurvivors is not null)
        {
            // Answer a repeated request only with the same answer; never reveal the other share kind.
            return survivors.AsSpan().SequenceEqual(_answeredSurvivors)
                ? _unmaskingAnswer!
                : Refuse("server sent a second unmasking request with a different survivor set");
        }

        if (_config.Active)
        {
            if (!survivors.AsSpan().SequenceEqual(_signedSurvivors))
            {
                return Refuse("unmasking survivor set differs from the set signed in the consistency check");
            }

            var transcript = Protocol.SurvivorTranscript(_session, survivors);
            var survivorSet = survivors.ToHashSet();
            var signers = new HashSet<uint>();
            int neighbourSigners = 0;
            foreach (var view in request.Signatures)
            {
                if (!survivorSet.Contains(view.ClientId) || !signers.Add(view.ClientId))
                {
                    return Refuse($"signature from client {view.ClientId}, which is not a survivor or signed twice");
                }

                if (!Signatures.Verify(_config.IdentityKeys[(int)view.ClientId].Span, transcript, view.Signature.Span))
                {
                    return Refuse($"client {view.ClientId}'s signature over the survivor set is invalid");
                }

                if (_graph.AreNeighbours(ClientId, view.ClientId))
                {
                    neighbourSigners++;
                }
            }

            if (neighbourSigners < _threshold)
            {
                return Refuse($"only {neighbourSigners} neighbours signed the survivor set; threshold is {_threshold}");
            }
        }

        var alive = survivors.ToHashSet();
        var answer = new UnmaskingShares();
        foreach (var (owner, shares) in _heldShares.OrderBy(p => p.Key))
        {
            var kind = alive.Contains(owner) ? ShareKind.SelfMaskSeed : ShareKind.MaskingKey;
            if (_revealed.TryGetValue(owner, out var earlier) && earlier != kind)
            {
                return Refuse($"server asks for both the self-mask share and the masking-key share of client {owner}");
            }

            _revealed[owner] = kind;
            answer.Shares.Add(new RevealedShare
            {
                Owner = owner,
                Kind = kind,
                Share = ByteString.CopyFrom(kind == ShareKind.SelfMaskSeed ? shares.SeedShare : shares.MaskKeyShare),
            });
        }

        _answeredSurvivors = survivors;
        _unmaskingAnswer = NewMessage(m => m.UnmaskingShares = answer);
        Phase = AggregationPhase.Completed;
        return _unmaskingAnswer;
    }

    /// <summary>Checks a survivor set U3: sorted, distinct, includes this client, a subset of U2 among neighbours, at least t neighbours.</summary>
    private uint[]? CheckSurvivors(IList<uint> list, out string? problem)
    {
        var survivors = list.ToArray();
        for (int i = 0; i < survivors.Length; i++)
        {
            if (survivors[i] >= _config.NumClients || (i > 0 && survivors[i] <= survivors[i - 1]))
            {
                throw new AggregationProtocolException(ClientId, "survivor list must be strictly ascending client ids below num_clients");
            }
        }

        if (Array.BinarySearch(survivors, ClientId) < 0)
        {
            problem = "server claims this client dropped although it sent its masked input";
            return null;
        }

        int neighbours = 0;
        foreach (var v in survivors)
        {
            if (v == ClientId || !_graph.AreNeighbours(ClientId, v))
            {
                continue;
            }

            if (!_heldShares.ContainsKey(v))
            {
                problem = $"survivor set lists neighbour {v}, which did not complete ShareKeys";
                return null;
            }

            neighbours++;
        }

        if (neighbours < _threshold)
        {
            problem = $"only {neighbours} neighbours survived; threshold is {_threshold}";
            return null;
        }

        problem = null;
        return survivors;
    }

    /// <summary>What an adversary that corrupts this client learns: its masking private key and the shares it holds (tests of the malicious-server model).</summary>
    internal (byte[] MaskingPrivateKey, IReadOnlyDictionary<uint, (byte[] MaskKeyShare, byte[] SeedShare)> HeldShares) CorruptionView() => (_maskSk, _heldShares);

    private ClientMessage Refuse(string reason)
    {
        RefusalReason = reason;
        Phase = AggregationPhase.Failed;
        return NewMessage(m => m.Refusal = new Refusal { Reason = reason });
    }

    private ClientMessage NewMessage(Action<ClientMessage> body)
    {
        var m = new ClientMessage { JobId = _config.JobId, Round = _config.Round, Sender = ClientId };
        body(m);
        return m;
    }
}
