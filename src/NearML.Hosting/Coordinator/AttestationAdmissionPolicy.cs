using System.Security.Cryptography;
using NearML.Core.Contracts;
using NearML.Core.Protocol;
using NearML.Enclave;
using NearML.Hosting.Worker;

namespace NearML.Hosting.Coordinator;

/// <summary>
/// The coordinator's default admission policy: the worker's evidence is parsed and verified with NearML.Enclave
/// (TDX quote against <see cref="TdxCollateral"/>, SEV-SNP report against <see cref="SnpCertificateResolver"/>, or —
/// only when <see cref="NearMLCoordinatorOptions.AllowSimulatedAttestation"/> is set — NearML's INSECURE simulated
/// evidence), its report data must equal this handshake's report data (so it was made for this session and this
/// identity key, not replayed), and the claims must satisfy <see cref="NearMLCoordinatorOptions.Attestation"/>.
/// A worker without evidence is refused unless <see cref="NearMLCoordinatorOptions.AllowUnattestedWorkers"/> is set.
/// </summary>
public sealed class AttestationAdmissionPolicy : IAdmissionPolicy
{
    private readonly AttestationPolicy _policy;
    private readonly bool _allowUnattested;
    private readonly TimeProvider _time;
    private readonly TdxQuoteVerifier _tdx = new();
    private readonly SnpReportVerifier _snp = new();

    /// <summary>Initializes the policy from the coordinator's options.</summary>
    /// <param name="options">The options.</param>
    /// <param name="timeProvider">The clock used as the evaluation time of certificates and collateral.</param>
    public AttestationAdmissionPolicy(NearMLCoordinatorOptions options, TimeProvider timeProvider)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(timeProvider);
        var source = options.Attestation ?? new AttestationPolicy();
        _policy = new AttestationPolicy
        {
            AllowedVendors = source.AllowedVendors.Count > 0 ? [.. source.AllowedVendors] : [AttestationVendor.IntelTdx, AttestationVendor.AmdSevSnp],
            AllowSimulated = options.AllowSimulatedAttestation,
            ForbidDebug = source.ForbidDebug,
            MinimumTcbStatus = source.MinimumTcbStatus,
            RequireFullVerification = source.RequireFullVerification,
            AllowedMrTd = [.. source.AllowedMrTd],
            AllowedRtmr0 = [.. source.AllowedRtmr0],
            AllowedRtmr1 = [.. source.AllowedRtmr1],
            AllowedRtmr2 = [.. source.AllowedRtmr2],
            AllowedRtmr3 = [.. source.AllowedRtmr3],
            AllowedSnpMeasurements = [.. source.AllowedSnpMeasurements],
            ForbidSnpMigrationAgent = source.ForbidSnpMigrationAgent,
            ForbidSnpSmt = source.ForbidSnpSmt,
            MinimumSnpTcb = source.MinimumSnpTcb,
        };
        if (options.AllowSimulatedAttestation && !_policy.AllowedVendors.Contains(AttestationVendor.InsecureSimulated))
        {
            _policy.AllowedVendors.Add(AttestationVendor.InsecureSimulated);
        }

        _allowUnattested = options.AllowUnattestedWorkers;
        _time = timeProvider;
        AcceptedFormats = options.AllowSimulatedAttestation
            ? [WorkerAttestation.TdxFormat, WorkerAttestation.SevSnpFormat, WorkerAttestation.SimulatedFormat]
            : [WorkerAttestation.TdxFormat, WorkerAttestation.SevSnpFormat];
    }

    /// <summary>Gets the evidence format names announced in the Challenge.</summary>
    public IReadOnlyList<string> AcceptedFormats { get; }

    /// <summary>Gets a value indicating whether evidence is required.</summary>
    public bool EvidenceRequired => !_allowUnattested;

    /// <summary>Gets or sets the TDX collateral (TCB info, QE identity, CRLs) used to verify quotes.</summary>
    public TdxCollateral? TdxCollateral { get; set; }

    /// <summary>Gets or sets how to find the VCEK/VLEK chain of an SNP report.</summary>
    public Func<SnpReport, SnpCertificates?>? SnpCertificateResolver { get; set; }

    /// <summary>Maps an evidence format name (see <see cref="WorkerAttestation"/>) to its vendor.</summary>
    /// <param name="format">The format from the worker's <c>Evidence</c>.</param>
    /// <returns>The vendor, or <see langword="null"/> when unknown.</returns>
    public static AttestationVendor? VendorOf(string format) => format switch
    {
        WorkerAttestation.TdxFormat => AttestationVendor.IntelTdx,
        WorkerAttestation.SevSnpFormat => AttestationVendor.AmdSevSnp,
        WorkerAttestation.SimulatedFormat => AttestationVendor.InsecureSimulated,
        _ => null,
    };

    /// <inheritdoc/>
    public ValueTask<AdmissionDecision> EvaluateAsync(AdmissionRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        return ValueTask.FromResult(Evaluate(request.WorkerId, request.EvidenceFormat, request.Evidence, request.ReportData.Span));
    }

    /// <summary>Judges evidence for a handshake.</summary>
    /// <param name="workerId">The worker (for messages).</param>
    /// <param name="format">The evidence format, empty for none.</param>
    /// <param name="evidence">The evidence bytes.</param>
    /// <param name="reportData">The handshake's 64-byte report data.</param>
    /// <returns>The decision, with the first failed rule as the reason. Every evidence outcome is a decision: nothing the
    /// evidence does to the verifiers escapes as an exception.</returns>
    public AdmissionDecision Evaluate(string workerId, string format, ReadOnlyMemory<byte> evidence, ReadOnlySpan<byte> reportData)
    {
        if (format.Length == 0)
        {
            return _allowUnattested
                ? AdmissionDecision.Admit
                : AdmissionDecision.Refuse(RefusalReason.AttestationRequired, $"worker '{workerId}' presented no attestation evidence; this coordinator requires TDX or SEV-SNP evidence{(_policy.AllowSimulated ? " (or simulated evidence, allowed for development)" : string.Empty)}.");
        }

        if (VendorOf(format) is null)
        {
            return AdmissionDecision.Refuse(RefusalReason.AttestationFailed, $"worker '{workerId}': unknown evidence format '{format}' (accepted: {string.Join(", ", AcceptedFormats)}).");
        }

        AttestationClaims claims;
        try
        {
            var decoded = WorkerAttestation.DecodeEvidence(format, evidence);
            claims = decoded.Vendor switch
            {
                AttestationVendor.IntelTdx => TdxClaims(decoded.Evidence),
                AttestationVendor.AmdSevSnp => SnpClaims(decoded.Evidence),
                _ => InsecureSimulatedEvidence.ToClaims(decoded.Evidence),
            };
        }
        catch (Exception ex) when (ex is AttestationFormatException or FormatException)
        {
            return AdmissionDecision.Refuse(RefusalReason.AttestationFailed, $"worker '{workerId}': {format} evidence does not parse: {ex.Message}");
        }
        catch (Exception ex) when (ex is not (OutOfMemoryException or StackOverflowException or AccessViolationException))
        {
            // The evidence comes from the worker: nothing in it (a certificate the platform's crypto rejects, a resolver that
            // throws on it) may escape admission and take the coordinator's handshake down. Refuse with what went wrong.
            return AdmissionDecision.Refuse(RefusalReason.AttestationFailed, $"worker '{workerId}': {format} evidence could not be verified: {ex.GetType().Name}: {ex.Message}");
        }

        if (claims.ReportData.Length != reportData.Length || !CryptographicOperations.FixedTimeEquals(claims.ReportData.Span, reportData))
        {
            return AdmissionDecision.Refuse(
                RefusalReason.AttestationFailed,
                $"worker '{workerId}': the {format} evidence's report data does not bind this handshake (evidence made for another session or key, or replayed).");
        }

        var verdict = _policy.Evaluate(claims);
        if (verdict.Accepted)
        {
            return AdmissionDecision.Admit;
        }

        var first = verdict.Failures.First();
        var reason = first.Name.StartsWith("policy.", StringComparison.Ordinal) ? RefusalReason.Policy : RefusalReason.AttestationFailed;
        return AdmissionDecision.Refuse(reason, $"worker '{workerId}': attestation refused by rule {first.Name}: {first.Detail}");
    }

    private AttestationClaims TdxClaims(ReadOnlyMemory<byte> evidence)
    {
        var quote = TdxQuote.Parse(evidence);
        return AttestationClaims.FromTdx(quote, _tdx.Verify(quote, TdxCollateral, _time.GetUtcNow()));
    }

    private AttestationClaims SnpClaims(ReadOnlyMemory<byte> evidence)
    {
        var report = SnpReport.Parse(evidence);
        if (SnpCertificateResolver?.Invoke(report) is not { } certs)
        {
            return new AttestationClaims
            {
                Vendor = AttestationVendor.AmdSevSnp,
                VerificationChecks = [new AttestationCheck("snp.certificates", false, "no VCEK/VLEK and ASK/ARK are configured for this report (set SnpCertificateResolver)")],
                Authentic = false,
                TcbStatus = TcbStatus.Unknown,
                ReportData = report.ReportData,
                Measurement = report.Measurement,
                Debug = report.PolicyDebugAllowed,
            };
        }

        return AttestationClaims.FromSnp(report, _snp.Verify(report, certs, _time.GetUtcNow()));
    }
}
