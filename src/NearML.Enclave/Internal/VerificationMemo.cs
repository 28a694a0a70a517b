using System.Security.Cryptography;

namespace NearML.Enclave.Internal;

/// <summary>
/// Remembers the outcome of signature verifications whose inputs are immutable (certificate links, CRLs, collateral
/// documents, QE reports): keyed by SHA-256 over the signer's certificate fingerprint, the algorithm, the signed bytes and
/// the signature, so the same check is never paid twice even when its inputs arrive in new objects (a re-parsed
/// collateral bundle, another quote from the same platform). Bounded: cleared when full.
/// </summary>
internal static class VerificationMemo
{
    private const int Capacity = 4096;
    private static readonly Dictionary<UInt128, bool> Outcomes = [];
    private static readonly Lock Gate = new();

    public static UInt128 Key(ReadOnlySpan<byte> signerFingerprint, string algorithm, ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> len = stackalloc byte[8];
        h.AppendData(signerFingerprint);
        h.AppendData(System.Text.Encoding.UTF8.GetBytes(algorithm));
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(len, data.Length);
        h.AppendData(len);
        h.AppendData(data);
        h.AppendData(signature);
        Span<byte> digest = stackalloc byte[32];
        h.GetHashAndReset(digest);
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt128LittleEndian(digest);
    }

    public static bool TryGet(UInt128 key, out bool outcome)
    {
        lock (Gate)
        {
            return Outcomes.TryGetValue(key, out outcome);
        }
    }

    public static bool Remember(UInt128 key, bool outcome)
    {
        lock (Gate)
        {
            if (Outcomes.Count >= Capacity)
            {
                Outcomes.Clear();
            }

            Outcomes[key] = outcome;
        }

        return outcome;
    }
}
