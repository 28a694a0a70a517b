namespace NearML.Enclave;

/// <summary>Evidence as produced by an <see cref="IAttestationProvider"/>: the vendor's bytes plus any auxiliary certificates.</summary>
public sealed class AttestationEvidence
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="vendor">Which TEE produced it.</param>
    /// <param name="evidence">The quote, report or simulated evidence.</param>
    /// <param name="auxiliary">Auxiliary data (configfs-tsm <c>auxblob</c>, e.g. the SNP certificate table), or empty.</param>
    /// <param name="providerName">The provider that produced it (configfs-tsm <c>provider</c>, e.g. <c>tdx_guest</c>).</param>
    public AttestationEvidence(AttestationVendor vendor, ReadOnlyMemory<byte> evidence, ReadOnlyMemory<byte> auxiliary, string providerName)
    {
        ArgumentNullException.ThrowIfNull(providerName);
        if (evidence.IsEmpty)
        {
            throw new ArgumentException("evidence is empty", nameof(evidence));
        }

        Vendor = vendor;
        Evidence = evidence;
        Auxiliary = auxiliary;
        ProviderName = providerName;
    }

    /// <summary>Gets the vendor.</summary>
    public AttestationVendor Vendor { get; }

    /// <summary>Gets the evidence bytes.</summary>
    public ReadOnlyMemory<byte> Evidence { get; }

    /// <summary>Gets the auxiliary bytes, possibly empty.</summary>
    public ReadOnlyMemory<byte> Auxiliary { get; }

    /// <summary>Gets the provider name.</summary>
    public string ProviderName { get; }

    /// <summary>
    /// Gets the TDX event log (TCG crypto-agile, as in the ACPI CCEL area) that explains the quote's RTMR0–3, or empty when
    /// none is sent. When present, <see cref="AttestationVerifier"/> replays it and refuses the evidence unless every RTMR
    /// matches the quote (rules <c>event-log.rtmr0</c> … <c>event-log.rtmr3</c>); with any other vendor it is refused.
    /// </summary>
    /// <value>The default value is empty.</value>
    public ReadOnlyMemory<byte> EventLog { get; init; }
}

/// <summary>Produces TEE evidence whose report data the caller chooses (see <see cref="AttestationBinding"/>).</summary>
public interface IAttestationProvider
{
    /// <summary>Gets a short name for logs (for example <c>configfs-tsm</c>).</summary>
    string Name { get; }

    /// <summary>Requests evidence binding <paramref name="reportData"/>.</summary>
    /// <param name="reportData">Exactly 64 bytes.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    /// <returns>The evidence.</returns>
    Task<AttestationEvidence> GetEvidenceAsync(ReadOnlyMemory<byte> reportData, CancellationToken cancellationToken = default);
}
