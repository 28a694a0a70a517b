using System.Buffers.Binary;
using NearML.Core.Protocol;
using NearML.Enclave;
using CoreEvidence = NearML.Core.Protocol.AttestationEvidence;
using EnclaveEvidence = NearML.Enclave.AttestationEvidence;

namespace NearML.Hosting.Worker;

/// <summary>
/// How TEE evidence from NearML.Enclave travels in the handshake's <c>Evidence</c> message: the format is
/// <c>tdx</c>, <c>sev-snp</c> or <c>simulated</c>, and the bytes are a 4-byte little-endian length of the vendor evidence
/// (TDX quote, SEV-SNP report, simulated blob), the vendor evidence, then the auxiliary bytes (configfs-tsm
/// <c>auxblob</c>, such as the SEV-SNP certificate table; possibly empty). A TDX event log travels beside it, in
/// <c>Evidence.event_log</c>.
/// </summary>
public static class WorkerAttestation
{
    /// <summary>Format name of Intel TDX quotes.</summary>
    public const string TdxFormat = "tdx";

    /// <summary>Format name of AMD SEV-SNP attestation reports.</summary>
    public const string SevSnpFormat = "sev-snp";

    /// <summary>Format name of NearML's insecure simulated evidence.</summary>
    public const string SimulatedFormat = "simulated";

    /// <summary>Gets the wire format name of a vendor.</summary>
    /// <param name="vendor">The vendor.</param>
    /// <returns>The format name.</returns>
    public static string GetFormat(AttestationVendor vendor) => vendor switch
    {
        AttestationVendor.IntelTdx => TdxFormat,
        AttestationVendor.AmdSevSnp => SevSnpFormat,
        AttestationVendor.InsecureSimulated => SimulatedFormat,
        _ => throw new ArgumentOutOfRangeException(nameof(vendor), vendor, "Unknown attestation vendor."),
    };

    /// <summary>Encodes evidence for the handshake.</summary>
    /// <param name="evidence">The evidence.</param>
    /// <returns>The format name and bytes.</returns>
    public static CoreEvidence EncodeEvidence(EnclaveEvidence evidence)
    {
        ArgumentNullException.ThrowIfNull(evidence);
        var bytes = new byte[4 + evidence.Evidence.Length + evidence.Auxiliary.Length];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, evidence.Evidence.Length);
        evidence.Evidence.Span.CopyTo(bytes.AsSpan(4));
        evidence.Auxiliary.Span.CopyTo(bytes.AsSpan(4 + evidence.Evidence.Length));
        return new CoreEvidence(GetFormat(evidence.Vendor), bytes) { EventLog = evidence.EventLog };
    }

    /// <summary>Decodes evidence received in a handshake (the coordinator's side of <see cref="EncodeEvidence"/>).</summary>
    /// <param name="format">The format name.</param>
    /// <param name="bytes">The evidence bytes.</param>
    /// <param name="eventLog">The event log received with it (<c>Evidence.event_log</c>), empty for none.</param>
    /// <returns>The evidence, for <see cref="AttestationVerifier"/>.</returns>
    /// <exception cref="FormatException">Unknown format or malformed bytes; the message says which.</exception>
    public static EnclaveEvidence DecodeEvidence(string format, ReadOnlyMemory<byte> bytes, ReadOnlyMemory<byte> eventLog = default)
    {
        ArgumentNullException.ThrowIfNull(format);
        var vendor = format switch
        {
            TdxFormat => AttestationVendor.IntelTdx,
            SevSnpFormat => AttestationVendor.AmdSevSnp,
            SimulatedFormat => AttestationVendor.InsecureSimulated,
            _ => throw new FormatException($"evidence format '{format}' is not one of '{TdxFormat}', '{SevSnpFormat}', '{SimulatedFormat}'"),
        };
        if (bytes.Length < 4)
        {
            throw new FormatException($"{format} evidence has {bytes.Length} bytes; at least a 4-byte length is needed");
        }

        var length = BinaryPrimitives.ReadInt32LittleEndian(bytes.Span);
        if (length <= 0 || length > bytes.Length - 4)
        {
            throw new FormatException($"{format} evidence announces {length} bytes of vendor evidence but only {bytes.Length - 4} follow");
        }

        return new EnclaveEvidence(vendor, bytes.Slice(4, length), bytes[(4 + length)..], format) { EventLog = eventLog };
    }

    /// <summary>Adapts an Enclave provider to the handshake's evidence seam.</summary>
    /// <param name="provider">The provider.</param>
    /// <returns>The adapter.</returns>
    internal static IAttestationEvidenceProvider ToEvidenceProvider(IAttestationProvider provider) => new Adapter(provider);

    private sealed class Adapter(IAttestationProvider provider) : IAttestationEvidenceProvider
    {
        public async ValueTask<CoreEvidence?> GetEvidenceAsync(ReadOnlyMemory<byte> reportData, IReadOnlyList<string> acceptedFormats, CancellationToken cancellationToken)
        {
            var evidence = await provider.GetEvidenceAsync(reportData, cancellationToken).ConfigureAwait(false);
            return EncodeEvidence(evidence);
        }
    }
}
