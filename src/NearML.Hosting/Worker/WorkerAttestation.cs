using NearML.Core.Protocol;
using NearML.Enclave;
using CoreEvidence = NearML.Core.Protocol.AttestationEvidence;
using EnclaveEvidence = NearML.Enclave.AttestationEvidence;

namespace NearML.Hosting.Worker;

/// <summary>
/// How TEE evidence from NearML.Enclave travels in the handshake's <c>Evidence</c> message: the format is
/// <c>tdx</c>, <c>sev-snp</c> or <c>simulated</c>, and the bytes are the vendor evidence itself (TDX quote, SEV-SNP report,
/// simulated blob), as the coordinator's attestation policy reads them. The configfs-tsm auxiliary blob (for SEV-SNP, the
/// host-provided certificate table) is not sent: the coordinator resolves VCEK/ASK/ARK itself (for example from AMD KDS by
/// chip id and reported TCB).
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
        return new CoreEvidence(GetFormat(evidence.Vendor), evidence.Evidence.ToArray());
    }

    /// <summary>Decodes evidence received in a handshake (the coordinator's side of <see cref="EncodeEvidence"/>).</summary>
    /// <param name="format">The format name.</param>
    /// <param name="bytes">The evidence bytes.</param>
    /// <returns>The evidence (without auxiliary bytes), for <see cref="AttestationVerifier"/>.</returns>
    /// <exception cref="FormatException">Unknown format or empty evidence; the message says which.</exception>
    public static EnclaveEvidence DecodeEvidence(string format, ReadOnlyMemory<byte> bytes)
    {
        ArgumentNullException.ThrowIfNull(format);
        var vendor = format switch
        {
            TdxFormat => AttestationVendor.IntelTdx,
            SevSnpFormat => AttestationVendor.AmdSevSnp,
            SimulatedFormat => AttestationVendor.InsecureSimulated,
            _ => throw new FormatException($"evidence format '{format}' is not one of '{TdxFormat}', '{SevSnpFormat}', '{SimulatedFormat}'"),
        };
        if (bytes.IsEmpty)
        {
            throw new FormatException($"{format} evidence is empty");
        }

        return new EnclaveEvidence(vendor, bytes, ReadOnlyMemory<byte>.Empty, format);
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
