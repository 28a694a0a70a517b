using System.Buffers.Binary;
using System.Security.Cryptography;

namespace NearML.Core.Protocol.Internal;

/// <summary>
/// The handshake transcript hash T = SHA-256(domain || len‖Hello bytes || len‖Challenge bytes || len‖channel binding), the
/// signed message ("NearML.HandshakeSignature.v1\0" || T) and the attestation report data SHA-512(domain || T).
/// </summary>
internal static class HandshakeTranscript
{
    private static readonly byte[] TranscriptDomain = "NearML.Handshake.v1\0"u8.ToArray();
    private static readonly byte[] SignatureDomain = "NearML.HandshakeSignature.v1\0"u8.ToArray();
    private static readonly byte[] ReportDataDomain = "NearML.AttestationReportData.v1\0"u8.ToArray();

    public static byte[] Compute(ReadOnlySpan<byte> hello, ReadOnlySpan<byte> challenge, ReadOnlySpan<byte> channelBinding)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(TranscriptDomain);
        AppendWithLength(hash, hello);
        AppendWithLength(hash, challenge);
        AppendWithLength(hash, channelBinding);
        return hash.GetHashAndReset();
    }

    public static byte[] SignedMessage(ReadOnlySpan<byte> transcript) => [.. SignatureDomain, .. transcript];

    public static byte[] ReportData(ReadOnlySpan<byte> transcript) => SHA512.HashData([.. ReportDataDomain, .. transcript]);

    private static void AppendWithLength(IncrementalHash hash, ReadOnlySpan<byte> data)
    {
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(length, (uint)data.Length);
        hash.AppendData(length);
        hash.AppendData(data);
    }
}
