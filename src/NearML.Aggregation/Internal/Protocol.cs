using System.Security.Cryptography;
using NearML.Core.Contracts.Aggregation;

namespace NearML.Aggregation.Internal;

/// <summary>
/// One aggregation session: the job, the round and the 32-byte session id, SHA-256 of the canonical transcript of the
/// whole configuration (protocol, n, k, t, ring bits, vector length, active flag, graph seed, session nonce and every
/// identity key). Everything signed, authenticated or derived in the round binds it, so a message from another round,
/// another session of the same round, or a differently configured view of the same round never verifies.
/// </summary>
internal sealed class Session
{
    public Session(AggregationConfig config)
    {
        JobId = config.JobId;
        Round = config.Round;
        Id = ComputeId(config);
    }

    public string JobId { get; }

    public ulong Round { get; }

    public byte[] Id { get; }

    public static byte[] ComputeId(AggregationConfig c)
    {
        var parts = new byte[2 + c.IdentityKeys.Count][];
        parts[0] = c.GraphSeed.ToByteArray();
        parts[1] = c.SessionNonce.ToByteArray();
        for (int i = 0; i < c.IdentityKeys.Count; i++)
        {
            parts[2 + i] = c.IdentityKeys[i].ToByteArray();
        }

        ReadOnlySpan<uint> fields =
        [
            (uint)c.Protocol, c.NumClients, c.Degree, c.Threshold, c.RingBits, c.VectorLength, c.Active ? 1u : 0u, (uint)c.IdentityKeys.Count,
        ];
        return SHA256.HashData(Transcript.Build("session", c.JobId, c.Round, fields, parts));
    }
}

/// <summary>The protocol's derivations and transcripts, shared by client and server; each binds the session id.</summary>
internal static class Protocol
{
    public static byte[] AdvertiseTranscript(Session s, uint id, byte[] encPk, byte[] maskPk)
        => Transcript.Build("advertise", s.JobId, s.Round, [id], s.Id, encPk, maskPk);

    public static byte[] SurvivorTranscript(Session s, uint[] survivors)
        => Transcript.Build("survivors", s.JobId, s.Round, survivors, s.Id);

    public static byte[] ShareAad(Session s, uint sender, uint recipient)
        => Transcript.Build("share-aad", s.JobId, s.Round, [sender, recipient], s.Id);

    /// <summary>AES-256-GCM key for shares between two clients (symmetric in the pair; the AAD fixes the direction).</summary>
    public static byte[] ShareKey(Session s, byte[] secret, uint a, uint b)
        => Transcript.DeriveKey(secret, 32, "share-key", s, [Math.Min(a, b), Math.Max(a, b)]);

    public static byte[] PairwiseMaskKey(Session s, byte[] secret, uint a, uint b)
        => Transcript.DeriveKey(secret, MaskPrg.KeySize, "pairwise-mask", s, [Math.Min(a, b), Math.Max(a, b)]);

    public static byte[] SelfMaskKey(Session s, byte[] seed, uint id)
        => Transcript.DeriveKey(seed, MaskPrg.KeySize, "self-mask", s, [id]);

    public static byte[] Commit(byte[] seed)
    {
        var tag = "nearml/secagg/v1/self-mask-commitment"u8;
        var buf = new byte[tag.Length + seed.Length];
        tag.CopyTo(buf);
        seed.CopyTo(buf, tag.Length);
        return SHA256.HashData(buf);
    }
}
