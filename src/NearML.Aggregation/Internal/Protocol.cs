using System.Security.Cryptography;
using NearML.Core.Contracts.Aggregation;

namespace NearML.Aggregation.Internal;

/// <summary>The protocol's derivations and transcripts, shared by client and server.</summary>
internal static class Protocol
{
    public static byte[] AdvertiseTranscript(AggregationConfig c, uint id, byte[] encPk, byte[] maskPk)
        => Transcript.Build("advertise", c.JobId, c.Round, [id], encPk, maskPk);

    public static byte[] SurvivorTranscript(AggregationConfig c, uint[] survivors)
        => Transcript.Build("survivors", c.JobId, c.Round, survivors);

    public static byte[] ShareAad(AggregationConfig c, uint sender, uint recipient)
        => Transcript.Build("share-aad", c.JobId, c.Round, [sender, recipient]);

    /// <summary>AES-256-GCM key for shares between two clients (symmetric in the pair; the AAD fixes the direction).</summary>
    public static byte[] ShareKey(AggregationConfig c, byte[] secret, uint a, uint b)
        => Transcript.DeriveKey(secret, 32, "share-key", c.JobId, c.Round, [Math.Min(a, b), Math.Max(a, b)]);

    public static byte[] PairwiseMaskKey(AggregationConfig c, byte[] secret, uint a, uint b)
        => Transcript.DeriveKey(secret, MaskPrg.KeySize, "pairwise-mask", c.JobId, c.Round, [Math.Min(a, b), Math.Max(a, b)]);

    public static byte[] SelfMaskKey(AggregationConfig c, byte[] seed, uint id)
        => Transcript.DeriveKey(seed, MaskPrg.KeySize, "self-mask", c.JobId, c.Round, [id]);

    public static byte[] Commit(byte[] seed)
    {
        var tag = "nearml/secagg/v1/self-mask-commitment"u8;
        var buf = new byte[tag.Length + seed.Length];
        tag.CopyTo(buf);
        seed.CopyTo(buf, tag.Length);
        return SHA256.HashData(buf);
    }
}
