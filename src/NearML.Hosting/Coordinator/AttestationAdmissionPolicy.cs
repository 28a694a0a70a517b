using NearML.Core.Contracts;
using NearML.Core.Protocol;
using NearML.Enclave;
using NearML.Hosting.Worker;

namespace NearML.Hosting.Coordinator;

/// <summary>
/// The coordinator's default admission policy: a thin adapter from the handshake to NearML.Enclave's
/// <see cref="AttestationVerifier"/>, which parses and verifies the evidence (TDX quote against its collateral, SEV-SNP report
/// against its VCEK chain, or — only when the policy allows it — NearML's INSECURE simulated evidence), replays the TDX event
/// log the worker sent into the quote's RTMRs, checks that the report data is this handshake's, consumes the handshake's
/// coordinator nonce in its <see cref="AttestationNonceStore"/> (evidence for a used nonce is a replay) and applies its
/// <see cref="AttestationPolicy"/>. The coordinator registers that verifier with <see cref="EffectivePolicy"/> of its options.
/// A worker without evidence is refused unless <see cref="NearMLCoordinatorOptions.AllowUnattestedWorkers"/> is set.
/// </summary>
public sealed class AttestationAdmissionPolicy : IAdmissionPolicy
{
    private readonly AttestationVerifier _verifier;
    private readonly bool _allowUnattested;

    /// <summary>Initializes the policy.</summary>
    /// <param name="options">The coordinator's options (for <see cref="NearMLCoordinatorOptions.AllowUnattestedWorkers"/>).</param>
    /// <param name="verifier">The verifier (its policy, nonce store, collateral and resolvers are used as they are).</param>
    public AttestationAdmissionPolicy(NearMLCoordinatorOptions options, AttestationVerifier verifier)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(verifier);
        _verifier = verifier;
        _allowUnattested = options.AllowUnattestedWorkers;
    }

    /// <summary>Gets the verifier every piece of evidence goes through.</summary>
    public AttestationVerifier Verifier => _verifier;

    /// <summary>Gets the evidence format names announced in the Challenge: those of the vendors the verifier's policy accepts.</summary>
    public IReadOnlyList<string> AcceptedFormats
    {
        get
        {
            AttestationPolicy policy = _verifier.Policy;
            return [.. policy.EffectiveVendors.Where(v => v != AttestationVendor.InsecureSimulated || policy.AllowSimulated).Select(WorkerAttestation.GetFormat)];
        }
    }

    /// <summary>Gets a value indicating whether evidence is required.</summary>
    public bool EvidenceRequired => !_allowUnattested;

    /// <summary>
    /// Gets the policy a coordinator's verifier applies: a copy of <see cref="NearMLCoordinatorOptions.Attestation"/> (every
    /// property, see <see cref="AttestationPolicy.Clone"/>) with, when <see cref="NearMLCoordinatorOptions.SimulatedAttestationAccepted"/>
    /// (<see cref="NearMLCoordinatorOptions.AllowSimulatedAttestation"/>, or the policy accepting simulated evidence itself),
    /// <see cref="AttestationPolicy.AllowSimulated"/> on and <see cref="AttestationVendor.InsecureSimulated"/> added to
    /// the accepted vendors.
    /// </summary>
    /// <param name="options">The coordinator's options.</param>
    /// <returns>A new policy; the options are not changed.</returns>
    public static AttestationPolicy EffectivePolicy(NearMLCoordinatorOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        AttestationPolicy policy = (options.Attestation ?? new AttestationPolicy()).Clone();
        if (options.SimulatedAttestationAccepted)
        {
            policy.AllowSimulated = true;
            if (!policy.EffectiveVendors.Contains(AttestationVendor.InsecureSimulated))
            {
                policy.AllowedVendors = [.. policy.EffectiveVendors, AttestationVendor.InsecureSimulated];
            }
        }

        return policy;
    }

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
        return ValueTask.FromResult(Evaluate(request.WorkerId, request.EvidenceFormat, request.Evidence, request.EventLog, request.ReportData.Span, request.CoordinatorNonce.Span));
    }

    /// <summary>Judges evidence for a handshake.</summary>
    /// <param name="workerId">The worker (for messages).</param>
    /// <param name="format">The evidence format, empty for none.</param>
    /// <param name="evidence">The evidence bytes (<see cref="WorkerAttestation.EncodeEvidence"/>).</param>
    /// <param name="eventLog">The TDX event log sent with it, empty for none.</param>
    /// <param name="reportData">The handshake's 64-byte report data.</param>
    /// <param name="nonce">The handshake's coordinator nonce, issued by the verifier (<see cref="AttestationVerifier.IssueNonce"/>).</param>
    /// <returns>The decision, with the first failed rule as the reason. Every evidence outcome is a decision: nothing the
    /// evidence does to the verifier escapes as an exception.</returns>
    public AdmissionDecision Evaluate(string workerId, string format, ReadOnlyMemory<byte> evidence, ReadOnlyMemory<byte> eventLog, ReadOnlySpan<byte> reportData, ReadOnlySpan<byte> nonce)
    {
        ArgumentNullException.ThrowIfNull(workerId);
        ArgumentNullException.ThrowIfNull(format);
        if (format.Length == 0)
        {
            return _allowUnattested
                ? AdmissionDecision.Admit
                : AdmissionDecision.Refuse(RefusalReason.AttestationRequired, $"worker '{workerId}' presented no attestation evidence; this coordinator requires {string.Join(" or ", AcceptedFormats)} evidence.");
        }

        if (VendorOf(format) is null)
        {
            return AdmissionDecision.Refuse(RefusalReason.AttestationFailed, $"worker '{workerId}': unknown evidence format '{format}' (accepted: {string.Join(", ", AcceptedFormats)}).");
        }

        if (reportData.Length != AttestationBinding.ReportDataLength || nonce.IsEmpty)
        {
            return AdmissionDecision.Refuse(RefusalReason.AttestationFailed, $"worker '{workerId}': the handshake gave {reportData.Length} bytes of report data and a {nonce.Length}-byte nonce; evidence cannot be bound to it.");
        }

        NearML.Enclave.AttestationEvidence decoded;
        try
        {
            decoded = WorkerAttestation.DecodeEvidence(format, evidence, eventLog);
        }
        catch (FormatException ex)
        {
            return AdmissionDecision.Refuse(RefusalReason.AttestationFailed, $"worker '{workerId}': {format} evidence does not parse: {ex.Message}");
        }

        AttestationVerdict verdict = _verifier.VerifyWithReportData(decoded, reportData, nonce);
        if (verdict.Accepted)
        {
            return AdmissionDecision.Admit;
        }

        AttestationCheck[] failed = [.. verdict.Failures];
        AttestationCheck first = failed[0];
        var reason = first.Name.StartsWith("policy.", StringComparison.Ordinal) ? RefusalReason.Policy : RefusalReason.AttestationFailed;
        string more = failed.Length > 1 ? $" (also failed: {string.Join(", ", failed.Skip(1).Select(f => f.Name))})" : string.Empty;
        return AdmissionDecision.Refuse(reason, $"worker '{workerId}': {format} evidence refused by rule {first.Name}: {first.Detail}{more}");
    }
}
