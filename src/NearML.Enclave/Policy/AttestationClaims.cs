namespace NearML.Enclave;

/// <summary>The kind of TEE that produced evidence.</summary>
public enum AttestationVendor
{
    /// <summary>Intel TDX (quote v4/v5).</summary>
    IntelTdx,

    /// <summary>AMD SEV-SNP (attestation report).</summary>
    AmdSevSnp,

    /// <summary>NearML's insecure simulated evidence, for development only: proves nothing about the machine.</summary>
    InsecureSimulated,
}

/// <summary>What verified evidence says about a workload, in a vendor-neutral form a policy can judge.</summary>
public sealed class AttestationClaims
{
    /// <summary>Gets the vendor.</summary>
    public required AttestationVendor Vendor { get; init; }

    /// <summary>Gets the verification checks (signatures, chains, collateral).</summary>
    public required IReadOnlyList<AttestationCheck> VerificationChecks { get; init; }

    /// <summary>Gets a value indicating whether the evidence is authentic (signatures and chain to a pinned vendor root).</summary>
    public required bool Authentic { get; init; }

    /// <summary>Gets the TCB status (TDX: from collateral; SNP and simulated: <see cref="TcbStatus.Unknown"/>).</summary>
    public required TcbStatus TcbStatus { get; init; }

    /// <summary>Gets the advisory ids that apply.</summary>
    public IReadOnlyList<string> AdvisoryIds { get; init; } = [];

    /// <summary>Gets the 64-byte report data bound into the evidence.</summary>
    public required ReadOnlyMemory<byte> ReportData { get; init; }

    /// <summary>Gets the launch measurement: MRTD (TDX) or MEASUREMENT (SNP).</summary>
    public required ReadOnlyMemory<byte> Measurement { get; init; }

    /// <summary>Gets RTMR0–3 (TDX only; empty otherwise).</summary>
    public IReadOnlyList<ReadOnlyMemory<byte>> Rtmrs { get; init; } = [];

    /// <summary>Gets a value indicating whether the guest is debuggable (TDX TDATTRIBUTES.DEBUG, SNP POLICY.DEBUG).</summary>
    public required bool Debug { get; init; }

    /// <summary>Gets a value indicating whether an SNP migration agent may be associated (SNP only).</summary>
    public bool SnpMigrationAgentAllowed { get; init; }

    /// <summary>Gets a value indicating whether SNP policy allows SMT (SNP only).</summary>
    public bool SnpSmtAllowed { get; init; }

    /// <summary>Gets the SNP REPORTED_TCB (SNP only).</summary>
    public SnpTcbVersion? SnpReportedTcb { get; init; }

    /// <summary>Builds claims from a verified TDX quote.</summary>
    /// <param name="quote">The quote.</param>
    /// <param name="result">Its verification result.</param>
    /// <returns>The claims.</returns>
    public static AttestationClaims FromTdx(TdxQuote quote, TdxVerificationResult result)
    {
        ArgumentNullException.ThrowIfNull(quote);
        ArgumentNullException.ThrowIfNull(result);
        return new AttestationClaims
        {
            Vendor = AttestationVendor.IntelTdx,
            VerificationChecks = result.Checks,
            Authentic = result.SignaturesValid,
            TcbStatus = result.TcbStatus,
            AdvisoryIds = result.AdvisoryIds,
            ReportData = quote.Body.ReportData,
            Measurement = quote.Body.MrTd,
            Rtmrs = [quote.Body.Rtmr(0), quote.Body.Rtmr(1), quote.Body.Rtmr(2), quote.Body.Rtmr(3)],
            Debug = quote.Body.IsDebug,
        };
    }

    /// <summary>Builds claims from a verified SEV-SNP report.</summary>
    /// <param name="report">The report.</param>
    /// <param name="result">Its verification result.</param>
    /// <returns>The claims.</returns>
    public static AttestationClaims FromSnp(SnpReport report, SnpVerificationResult result)
    {
        ArgumentNullException.ThrowIfNull(report);
        ArgumentNullException.ThrowIfNull(result);
        return new AttestationClaims
        {
            Vendor = AttestationVendor.AmdSevSnp,
            VerificationChecks = result.Checks,
            Authentic = result.Checks.Where(c => c.Name is not "snp-chain.validity").All(c => c.Passed),
            TcbStatus = TcbStatus.Unknown,
            ReportData = report.ReportData,
            Measurement = report.Measurement,
            Debug = report.PolicyDebugAllowed,
            SnpMigrationAgentAllowed = report.PolicyMigrationAgentAllowed,
            SnpSmtAllowed = report.PolicySmtAllowed,
            SnpReportedTcb = result.ReportedTcb,
        };
    }
}
