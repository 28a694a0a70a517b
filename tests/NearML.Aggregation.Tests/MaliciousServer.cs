using Google.Protobuf;
using NearML.Aggregation.Internal;
using NearML.Core.Contracts.Aggregation;

namespace NearML.Aggregation.Tests;

/// <summary>
/// A scripted malicious server with real cryptography. It runs one round against honest
/// <see cref="SecureAggregationClient"/>s, controls a set of corrupt clients completely (their private keys, identity
/// keys and every share they hold), and follows a random schedule of the attacks a malicious coordinator has:
/// substituted roster keys (unsigned, forged, signed by another identity, or replayed from another session), omitted and
/// non-neighbour roster entries, withheld, forged and misdirected shares, a different survivor set for every client (split
/// views), unmasking requests with another set than the one signed, forged and corrupt signatures, and replayed
/// requests. Afterwards <see cref="Leaks"/> takes everything the adversary holds, reconstructs every secret it can
/// (real Shamir reconstruction, checked against the commitment or public key), and for every honest client whose masked
/// input it holds tries to strip all masks off it.
/// </summary>
internal sealed class MaliciousServer
{
    private readonly AggregationConfig _config;
    private readonly Session _session;
    private readonly HararyGraph _graph;
    private readonly Random _rng;
    private readonly int _n;
    private readonly int _t;
    private readonly (byte[] Sk, byte[] Pk)[] _identities;
    private readonly SecureAggregationClient[] _clients;
    private readonly HashSet<uint> _corrupt;
    private readonly Dictionary<uint, AdvertiseKeys> _advertised = [];
    private readonly Dictionary<uint, ShareKeys> _shareKeys = [];
    private readonly Dictionary<uint, byte[]> _masked = [];
    private readonly Dictionary<uint, HashSet<uint>> _maskSet = [];
    private readonly Dictionary<(uint Owner, uint Peer), (byte[] EncSk, byte[] MaskSk)> _substituted = [];
    private readonly Dictionary<uint, (uint[] View, byte[] Signature)> _signed = [];
    private readonly List<(uint Holder, RevealedShare Share)> _revealed = [];
    private readonly HashSet<uint> _alive = [];
    private readonly HashSet<(uint Owner, uint Peer)> _genuine = [];
    private readonly IReadOnlyList<AdvertiseKeys>? _staleKeys;
    private readonly Dictionary<uint, NearML.Core.Protocol.Ed25519Identity> _signers = [];

    /// <param name="config">The round (active or, for the control runs, semi-honest).</param>
    /// <param name="identities">Identity key pairs per client (null for a semi-honest config).</param>
    /// <param name="corrupt">Clients the adversary controls.</param>
    /// <param name="rng">Drives the schedule.</param>
    /// <param name="staleKeys">Signed AdvertiseKeys of every client from another session, for replays (optional).</param>
    public MaliciousServer(AggregationConfig config, (byte[] Sk, byte[] Pk)[]? identities, IEnumerable<uint> corrupt, Random rng, IReadOnlyList<AdvertiseKeys>? staleKeys = null)
    {
        _config = config;
        _session = new Session(config);
        _graph = new HararyGraph((int)config.NumClients, (int)config.Degree, config.GraphSeed.Span);
        _rng = rng;
        _n = (int)config.NumClients;
        _t = (int)config.Threshold;
        _identities = identities ?? [];
        _corrupt = corrupt.ToHashSet();
        _staleKeys = staleKeys;
        Inputs = new uint[_n][];
        uint mask = config.RingBits == 32 ? uint.MaxValue : (1u << (int)config.RingBits) - 1;
        _clients = new SecureAggregationClient[_n];
        for (int i = 0; i < _n; i++)
        {
            Inputs[i] = Enumerable.Range(0, (int)config.VectorLength).Select(_ => (uint)rng.NextInt64() & mask).ToArray();
            _clients[i] = new SecureAggregationClient(config, (uint)i, Inputs[i], identities?[i].Sk);
        }
    }

    public uint[][] Inputs { get; }

    /// <summary>Probability that a roster entry of an honest client is replaced by adversary keys.</summary>
    public double SubstituteRate { get; init; } = 0.2;

    /// <summary>Clients whose rosters and deliveries are tampered with (null: every honest client).</summary>
    public IReadOnlySet<uint>? Attacked { get; init; }

    private bool Tampered(uint u) => Honest(u) && (Attacked is null || Attacked.Contains(u));

    /// <summary>Probability that a roster entry of an honest client is left out.</summary>
    public double OmitRate { get; init; } = 0.1;

    /// <summary>Probability that a genuine share is delivered to an honest recipient.</summary>
    public double DeliverRate { get; init; } = 0.9;

    /// <summary>Probability that a client is shown its own (split) survivor set instead of the common one.</summary>
    public double SplitRate { get; init; } = 0.5;

    /// <summary>
    /// When set, the split views are targeted at this client: every other client is put in group A (shown the full
    /// survivor set) or group B (shown it without the victim), so that each group's views agree and collect signatures.
    /// </summary>
    public uint? Victim { get; init; }

    private readonly List<HashSet<uint>> _candidates = [];
    private readonly Dictionary<uint, int> _choice = [];

    /// <summary>Refusals by honest clients, with their reasons.</summary>
    public List<string> Refusals { get; } = [];

    /// <summary>Gets the number of clients that answered an unmasking request (revealed shares).</summary>
    public int Answered => _revealed.Select(r => r.Holder).Distinct().Count();

    /// <summary>Every AdvertiseKeys a client sent (for replaying them in another session).</summary>
    public IReadOnlyList<AdvertiseKeys> Advertised => Enumerable.Range(0, _n).Select(i => _advertised[(uint)i]).ToList();

    private bool Honest(uint u) => !_corrupt.Contains(u);

    public void Run()
    {
        for (uint u = 0; u < _n; u++)
        {
            _advertised[u] = _clients[u].Start().AdvertiseKeys;
            _alive.Add(u);
        }

        // Rosters.
        for (uint u = 0; u < _n; u++)
        {
            var roster = new KeysRoster();
            foreach (var v in _graph.Neighbours(u))
            {
                if (!Tampered(u) || _rng.NextDouble() >= SubstituteRate + OmitRate)
                {
                    roster.Peers.Add(new PeerKeys { ClientId = v, Keys = _advertised[v] });
                    _genuine.Add((u, v));
                }
                else if (_rng.NextDouble() < SubstituteRate / (SubstituteRate + OmitRate))
                {
                    roster.Peers.Add(new PeerKeys { ClientId = v, Keys = Substitute(u, v) });
                }

                // else: omitted
            }

            if (Tampered(u) && _rng.NextDouble() < 0.05)
            {
                // A non-neighbour's keys.
                var stranger = Enumerable.Range(0, _n).Select(i => (uint)i).FirstOrDefault(w => w != u && !_graph.AreNeighbours(u, w), u);
                if (stranger != u)
                {
                    roster.Peers.Add(new PeerKeys { ClientId = stranger, Keys = _advertised[stranger] });
                }
            }

            var answer = Send(u, m => m.KeysRoster = roster);
            if (answer?.BodyCase == ClientMessage.BodyOneofCase.ShareKeys)
            {
                _shareKeys[u] = answer.ShareKeys;
            }
        }

        // Share deliveries: honest clients get a random subset (corrupt ones everything), plus forgeries now and then.
        foreach (var u in _alive.Order().ToArray())
        {
            var delivery = new SharesDelivery();
            var senders = new HashSet<uint>();
            foreach (var (sender, sk) in _shareKeys)
            {
                foreach (var s in sk.Shares)
                {
                    // Only a share both ends agreed a key for decrypts: the recipient lists the sender's genuine keys and the
                    // sender listed the recipient's.
                    if (s.Recipient == u && _genuine.Contains((u, sender)) && _genuine.Contains((sender, u)) && (!Tampered(u) || _rng.NextDouble() < DeliverRate))
                    {
                        delivery.Shares.Add(s);
                        senders.Add(sender);
                    }
                }
            }

            // For a substituted peer the adversary can make a share the victim accepts (it knows the agreed key).
            foreach (var ((owner, peer), keys) in _substituted)
            {
                if (owner == u && !senders.Contains(peer) && _rng.NextDouble() < 0.7)
                {
                    delivery.Shares.Add(ForgeShare(peer, u, keys.EncSk));
                    senders.Add(peer);
                }
            }

            if (Tampered(u) && _rng.NextDouble() < 0.03 && delivery.Shares.Count > 0)
            {
                var bad = delivery.Shares[0].Clone();
                bad.Ciphertext = ByteString.CopyFrom(new byte[bad.Ciphertext.Length]);
                delivery.Shares[0] = bad;
            }

            var answer = Send(u, m => m.SharesDelivery = delivery);
            if (answer?.BodyCase == ClientMessage.BodyOneofCase.MaskedInput)
            {
                _masked[u] = answer.MaskedInput.MaskedVector.ToByteArray();
                _maskSet[u] = senders;
            }
        }

        if (!_config.Active)
        {
            Unmask(u => SplitView(u), consistency: false);
            return;
        }

        // Consistency: every client may be shown its own survivor set.
        var views = new Dictionary<uint, uint[]>();
        foreach (var u in _alive.Order().ToArray())
        {
            var view = SplitView(u);
            var answer = Send(u, m => m.ConsistencyRequest = new ConsistencyRequest { Survivors = { view } });
            if (answer?.BodyCase == ClientMessage.BodyOneofCase.ConsistencySignature)
            {
                _signed[u] = (view, answer.ConsistencySignature.Signature.ToByteArray());
                views[u] = view;
            }
        }

        Unmask(u => views.TryGetValue(u, out var v) && _rng.NextDouble() < 0.9 ? v : SplitView(u, other: true), consistency: true);
    }

    private void Unmask(Func<uint, uint[]> viewOf, bool consistency)
    {
        foreach (var u in _alive.Order().ToArray())
        {
            for (int attempt = 0; attempt < 1 + (_rng.NextDouble() < 0.3 ? 1 : 0); attempt++)
            {
                var view = attempt == 0 ? viewOf(u) : SplitView(u, other: _rng.Next(2) == 0);
                var request = new UnmaskingRequest { Survivors = { view } };
                if (consistency)
                {
                    // Every signature the adversary holds over this exact set, plus the corrupt clients' (they sign anything).
                    foreach (var (signer, (signedView, sig)) in _signed)
                    {
                        if (Honest(signer) && signedView.AsSpan().SequenceEqual(view))
                        {
                            request.Signatures.Add(new SignedView { ClientId = signer, Signature = ByteString.CopyFrom(sig) });
                        }
                    }

                    foreach (var c in _corrupt.Order())
                    {
                        if (view.Contains(c))
                        {
                            request.Signatures.Add(new SignedView { ClientId = c, Signature = ByteString.CopyFrom(Signatures.Sign(Signer(c), Protocol.SurvivorTranscript(_session, view))) });
                        }
                    }

                    if (_rng.NextDouble() < 0.05)
                    {
                        var forger = view.FirstOrDefault(w => Honest(w) && !_signed.ContainsKey(w), uint.MaxValue);
                        if (forger != uint.MaxValue)
                        {
                            request.Signatures.Add(new SignedView { ClientId = forger, Signature = ByteString.CopyFrom(new byte[64]) });
                        }
                    }
                }

                var answer = Send(u, m => m.UnmaskingRequest = request, keepAlive: true);
                if (answer?.BodyCase == ClientMessage.BodyOneofCase.UnmaskingShares)
                {
                    foreach (var s in answer.UnmaskingShares.Shares)
                    {
                        _revealed.Add((u, s));
                    }
                }
            }
        }
    }

    /// <summary>
    /// A survivor set for <paramref name="u"/>: one of a few candidate sets (the clients whose masked input arrived, less
    /// a random part; with a victim, one with and one without it), the same candidate for the same client unless
    /// <paramref name="other"/> asks for a different one. Clients given the same candidate form a group whose views agree.
    /// </summary>
    private uint[] SplitView(uint u, bool other = false)
    {
        if (_candidates.Count == 0)
        {
            var full = _masked.Keys.Concat(_corrupt).ToHashSet();
            if (Victim is { } victim)
            {
                _candidates.Add(full);
                _candidates.Add(full.Where(w => w != victim).ToHashSet());
            }
            else
            {
                int count = _rng.NextDouble() < SplitRate ? _rng.Next(2, 4) : 1;
                for (int i = 0; i < count; i++)
                {
                    _candidates.Add(full.Where(_ => i == 0 || _rng.NextDouble() >= 0.15).ToHashSet());
                }
            }
        }

        if (!_choice.TryGetValue(u, out var choice))
        {
            _choice[u] = choice = u == Victim ? 0 : _rng.Next(_candidates.Count);
        }

        if (other)
        {
            choice = (choice + 1 + _rng.Next(Math.Max(1, _candidates.Count - 1))) % _candidates.Count;
        }

        var set = new HashSet<uint>(_candidates[choice]);

        // A view the client can accept lists, among its neighbours, only those whose shares it was given.
        if (_maskSet.TryGetValue(u, out var delivered))
        {
            set.RemoveWhere(w => w != u && _graph.AreNeighbours(u, w) && !delivered.Contains(w));
        }

        set.Add(u);
        return set.Order().ToArray();
    }

    private AdvertiseKeys Substitute(uint owner, uint peer)
    {
        var (encSk, encPk) = KeyAgreement.Generate();
        var (maskSk, maskPk) = KeyAgreement.Generate();
        _substituted[(owner, peer)] = (encSk, maskSk);
        var keys = new AdvertiseKeys { EncryptionPublicKey = ByteString.CopyFrom(encPk), MaskingPublicKey = ByteString.CopyFrom(maskPk) };
        if (_config.Active)
        {
            var transcript = Protocol.AdvertiseTranscript(_session, peer, encPk, maskPk);
            switch (_rng.Next(4))
            {
                case 0:
                    break; // unsigned
                case 1:
                    // Signed by a corrupt client's identity (or another honest one's if none is corrupt).
                    var signer = _corrupt.Count > 0 ? _corrupt.First() : (peer + 1) % (uint)_n;
                    if (signer < _identities.Length && _corrupt.Contains(signer))
                    {
                        keys.Signature = ByteString.CopyFrom(Signatures.Sign(Signer(signer), transcript));
                    }

                    break;
                case 2:
                    // Random signature bytes.
                    keys.Signature = ByteString.CopyFrom(Enumerable.Range(0, 64).Select(_ => (byte)_rng.Next(256)).ToArray());
                    break;
                default:
                    // The peer's genuine signed keys from another session (a replay); the adversary has no private keys for them.
                    if (_staleKeys is not null)
                    {
                        _substituted.Remove((owner, peer));
                        return _staleKeys[(int)peer];
                    }

                    break;
            }
        }

        return keys;
    }

    private EncryptedShare ForgeShare(uint fakeSender, uint recipient, byte[] encSk)
    {
        var secret = new byte[32];
        _ = KeyAgreement.TryAgree(encSk, _advertised[recipient].EncryptionPublicKey.ToByteArray(), secret);
        var key = Protocol.ShareKey(_session, secret, fakeSender, recipient);
        var plaintext = new byte[2 * Shamir.ShareSize];
        return new EncryptedShare
        {
            Sender = fakeSender,
            Recipient = recipient,
            Ciphertext = ByteString.CopyFrom(ShareCipher.Encrypt(key, Protocol.ShareAad(_session, fakeSender, recipient), plaintext)),
        };
    }

    private ClientMessage? Send(uint u, Action<ServerMessage> body, bool keepAlive = false)
    {
        if (!_alive.Contains(u))
        {
            return null;
        }

        var m = new ServerMessage { JobId = _config.JobId, Round = _config.Round, Recipient = u };
        body(m);
        ClientMessage answer;
        try
        {
            answer = _clients[u].Handle(m);
        }
        catch (AggregationProtocolException ex)
        {
            Refusals.Add($"{u}: {ex.Message}");
            _alive.Remove(u);
            return null;
        }

        if (answer.BodyCase == ClientMessage.BodyOneofCase.Refusal)
        {
            Refusals.Add($"{u}: {answer.Refusal.Reason}");
            if (!keepAlive || _clients[u].Phase == AggregationPhase.Failed)
            {
                _alive.Remove(u);
            }

            return null;
        }

        return answer;
    }

    /// <summary>
    /// The honest clients whose individual input the adversary can compute from everything it holds, each with the
    /// value it computes (which the caller compares with the true input).
    /// </summary>
    public IReadOnlyList<(uint Client, uint[] Computed)> Leaks()
    {
        // Shares per owner and kind: revealed by honest holders, held by corrupt clients (both kinds), and sent to
        // substituted keys (both kinds, decrypted with the adversary's key).
        var pool = new Dictionary<(uint Owner, ShareKind Kind), Dictionary<uint, byte[]>>();
        void Add(uint owner, ShareKind kind, uint holder, byte[] share)
        {
            if (!pool.TryGetValue((owner, kind), out var d))
            {
                pool[(owner, kind)] = d = [];
            }

            d.TryAdd(holder, share);
        }

        foreach (var (holder, s) in _revealed)
        {
            Add(s.Owner, s.Kind, holder, s.Share.ToByteArray());
        }

        foreach (var c in _corrupt)
        {
            foreach (var (owner, (maskShare, seedShare)) in _clients[c].CorruptionView().HeldShares)
            {
                Add(owner, ShareKind.MaskingKey, c, maskShare);
                Add(owner, ShareKind.SelfMaskSeed, c, seedShare);
            }
        }

        foreach (var ((owner, peer), (encSk, _)) in _substituted)
        {
            if (!_shareKeys.TryGetValue(owner, out var sk))
            {
                continue;
            }

            foreach (var s in sk.Shares.Where(s => s.Recipient == peer))
            {
                var secret = new byte[32];
                _ = KeyAgreement.TryAgree(encSk, _advertised[owner].EncryptionPublicKey.ToByteArray(), secret);
                var plaintext = new byte[2 * Shamir.ShareSize];
                if (ShareCipher.TryDecrypt(Protocol.ShareKey(_session, secret, owner, peer), Protocol.ShareAad(_session, owner, peer), s.Ciphertext.Span, plaintext))
                {
                    Add(owner, ShareKind.MaskingKey, peer, plaintext[..Shamir.ShareSize]);
                    Add(owner, ShareKind.SelfMaskSeed, peer, plaintext[Shamir.ShareSize..]);
                }
            }
        }

        byte[]? Recover(uint owner, ShareKind kind)
        {
            if (!pool.TryGetValue((owner, kind), out var d) || d.Count < _t)
            {
                return null;
            }

            var chosen = d.OrderBy(p => p.Key).Take(_t).ToList();
            var secret = new byte[Shamir.SecretSize];
            if (!Shamir.TryReconstruct(chosen.Select(p => p.Value).ToList(), Shamir.LagrangeAtZero(chosen.Select(p => (ulong)p.Key + 1).ToArray()), secret))
            {
                return null;
            }

            bool genuine = kind == ShareKind.SelfMaskSeed
                ? Protocol.Commit(secret).AsSpan().SequenceEqual(_shareKeys[owner].SelfMaskCommitment.Span)
                : KeyAgreement.PublicKeyOf(secret).AsSpan().SequenceEqual(_advertised[owner].MaskingPublicKey.Span);
            return genuine ? secret : null;
        }

        var leaks = new List<(uint, uint[])>();
        foreach (var (x, packed) in _masked)
        {
            if (!Honest(x))
            {
                continue;
            }

            var seed = Recover(x, ShareKind.SelfMaskSeed);
            if (seed is null)
            {
                continue;
            }

            var sx = Recover(x, ShareKind.MaskingKey);
            var masks = new List<(MaskPrg, bool)> { (new MaskPrg(Protocol.SelfMaskKey(_session, seed, x)), true) };
            bool all = true;
            foreach (var v in _maskSet[x])
            {
                var agreed = PairwiseSecret(x, v, sx, Honest(v) ? Recover(v, ShareKind.MaskingKey) : _clients[v].CorruptionView().MaskingPrivateKey);
                if (agreed is null)
                {
                    all = false;
                    break;
                }

                // x added +PRG(s_xv) when x < v: remove it.
                masks.Add((new MaskPrg(Protocol.PairwiseMaskKey(_session, agreed, x, v)), x < v));
            }

            if (!all)
            {
                continue;
            }

            var y = new uint[_config.VectorLength];
            RingPacking.Unpack(packed, (int)_config.RingBits, y);
            MaskApplier.ApplyAll(masks, y, parallel: false);
            uint ring = _config.RingBits == 32 ? uint.MaxValue : (1u << (int)_config.RingBits) - 1;
            for (int i = 0; i < y.Length; i++)
            {
                y[i] &= ring;
            }

            leaks.Add((x, y));
        }

        return leaks;
    }

    /// <summary>The pairwise secret of x and v if the adversary can compute it: a substituted key, s_x, or v's masking key.</summary>
    private byte[]? PairwiseSecret(uint x, uint v, byte[]? sx, byte[]? sv)
    {
        var secret = new byte[32];
        var xPk = _advertised[x].MaskingPublicKey.ToByteArray();
        if (_substituted.TryGetValue((x, v), out var sub))
        {
            return KeyAgreement.TryAgree(sub.MaskSk, xPk, secret) ? secret : null;
        }

        if (sv is not null)
        {
            return KeyAgreement.TryAgree(sv, xPk, secret) ? secret : null;
        }

        if (sx is not null)
        {
            return KeyAgreement.TryAgree(sx, _advertised[v].MaskingPublicKey.ToByteArray(), secret) ? secret : null;
        }

        return null;
    }

    /// <summary>A corrupt client's signing key, imported once and kept (as an honest client keeps its identity).</summary>
    private NearML.Core.Protocol.Ed25519Identity Signer(uint client)
    {
        if (!_signers.TryGetValue(client, out var signer))
        {
            signer = NearML.Core.Protocol.Ed25519Identity.FromSeed(_identities[client].Sk);
            _signers[client] = signer;
        }

        return signer;
    }
}
