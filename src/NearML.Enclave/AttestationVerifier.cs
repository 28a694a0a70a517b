using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace NearML.Enclave;

/// <summary>
/// Verifies evidence end to end for a session: parses and verifies it (TDX: quote + collateral; SNP: report + VCEK chain;
/// simulated: self-signature only), checks the binding (report data = <see cref="AttestationBinding"/> of the expected key,
/// nonce and label), consumes the nonce (unknown, expired and replayed nonces are refused), and applies the policy. The
/// verdict lists every rule with pass/fail. Evaluation time comes from the injected <see cref="TimeProvider"/>.
/// </summary>
public sealed partial class AttestationVerifier
{
    private readonly IOptionsMonitor<AttestationPolicy>? _policyMonitor;
    private readonly AttestationPolicy? _policy;
    private readonly AttestationNonceStore _nonces;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly TdxQuoteVerifier _tdx;
    private readonly SnpReportVerifier _snp;

    /// <summary>Initializes a verifier with a fixed policy.</summary>
    /// <param name="policy">The policy.</param>
    /// <param name="nonces">The nonce store that issued the session's nonces.</param>
    /// <param name="timeProvider">The clock (evaluation time for certificates and collateral).</param>
    /// <param name="logger">Logger, or <see langword="null"/>.</param>
    /// <param name="tdxVerifier">TDX verifier (default: pins Intel's root).</param>
    /// <param name="snpVerifier">SNP verifier (default: pins AMD's ARKs).</param>
    public AttestationVerifier(AttestationPolicy policy, AttestationNonceStore nonces, TimeProvider timeProvider, ILogger<AttestationVerifier>? logger = null,
        TdxQuoteVerifier? tdxVerifier = null, SnpReportVerifier? snpVerifier = null)
        : this(nonces, timeProvider, logger, tdxVerifier, snpVerifier)
    {
        ArgumentNullException.ThrowIfNull(policy);
        string? error = policy.Validate();
        _policy = error is null ? policy : throw new ArgumentException(error, nameof(policy));
    }

    /// <summary>Initializes a verifier whose policy follows configuration (options pattern; see <see cref="EnclaveServiceCollectionExtensions"/>).</summary>
    /// <param name="policy">The policy monitor.</param>
    /// <param name="nonces">The nonce store.</param>
    /// <param name="timeProvider">The clock.</param>
    /// <param name="logger">Logger, or <see langword="null"/>.</param>
    public AttestationVerifier(IOptionsMonitor<AttestationPolicy> policy, AttestationNonceStore nonces, TimeProvider timeProvider, ILogger<AttestationVerifier>? logger = null)
        : this(nonces, timeProvider, logger, null, null)
    {
        ArgumentNullException.ThrowIfNull(policy);
        _policyMonitor = policy;
    }

    private AttestationVerifier(AttestationNonceStore nonces, TimeProvider timeProvider, ILogger? logger, TdxQuoteVerifier? tdx, SnpReportVerifier? snp)
    {
        ArgumentNullException.ThrowIfNull(nonces);
        ArgumentNullException.ThrowIfNull(timeProvider);
        _nonces = nonces;
        _time = timeProvider;
        _logger = logger ?? NullLogger.Instance;
        _tdx = tdx ?? new TdxQuoteVerifier();
        _snp = snp ?? new SnpReportVerifier();
    }

    /// <summary>Gets or sets the TDX collateral used for quotes (refresh it from Intel PCS before it goes stale).</summary>
    public TdxCollateral? TdxCollateral { get; set; }

    /// <summary>Gets or sets how to find the VCEK/VLEK and ASK/ARK for an SNP report (for example from a KDS cache keyed by CHIP_ID and REPORTED_TCB).</summary>
    public Func<SnpReport, SnpCertificates?>? SnpCertificateResolver { get; set; }

    /// <summary>
    /// Gets or sets where to find a TDX quote's event log when the evidence carries none (<see cref="AttestationEvidence.EventLog"/>):
    /// when set and returning a log, RTMR0–3 must replay from it.
    /// </summary>
    public Func<TdxQuote, TdxEventLog?>? TdxEventLogResolver { get; set; }

    /// <summary>Gets the policy in force (the fixed one, or the configuration's current value).</summary>
    public AttestationPolicy Policy => _policy ?? _policyMonitor!.CurrentValue;

    /// <summary>Issues a fresh single-use nonce from this verifier's <see cref="AttestationNonceStore"/>, the store <c>Verify</c> consumes from.</summary>
    /// <returns>32 random bytes.</returns>
    public byte[] IssueNonce() => _nonces.Issue();

    /// <summary>Verifies evidence for a session.</summary>
    /// <param name="evidence">The evidence.</param>
    /// <param name="identityPublicKey">The key the worker claims; the report data must bind it.</param>
    /// <param name="nonce">The nonce this verifier issued for the session.</param>
    /// <param name="contextLabel">The context label both sides use.</param>
    /// <returns>
    /// The verdict with every rule. Every input ends in a verdict: malformed evidence gives a refused verdict with the
    /// <c>evidence.format</c> rule, evidence whose verification fails in any other way one with <c>evidence.verification</c>.
    /// </returns>
    /// <exception cref="ArgumentNullException"><paramref name="evidence"/> or <paramref name="contextLabel"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="identityPublicKey"/> or <paramref name="nonce"/> is empty.</exception>
    public AttestationVerdict Verify(AttestationEvidence evidence, ReadOnlySpan<byte> identityPublicKey, ReadOnlySpan<byte> nonce, string contextLabel)
    {
        ArgumentNullException.ThrowIfNull(evidence);
        ArgumentNullException.ThrowIfNull(contextLabel);
        Span<byte> expected = stackalloc byte[AttestationBinding.ReportDataLength];
        AttestationBinding.ComputeReportData(identityPublicKey, nonce, contextLabel, expected);
        return Verify(
            evidence,
            expected,
            nonce,
            "report data = SHA-512(identity key ‖ nonce ‖ context label)",
            "report data does not bind this identity key, nonce and context label (evidence for another key or session)");
    }

    /// <summary>
    /// Verifies evidence for a session whose protocol derives the report data itself (NearML's handshake: SHA-512 over a
    /// transcript holding both nonces, the identity key and the TLS channel binding). Everything else is as in
    /// <see cref="Verify(AttestationEvidence, ReadOnlySpan{byte}, ReadOnlySpan{byte}, string)"/>: parse and verify, the
    /// event log, the binding (report data = <paramref name="expectedReportData"/>), the nonce consumed once, the policy.
    /// </summary>
    /// <param name="evidence">The evidence.</param>
    /// <param name="expectedReportData">The 64 bytes the evidence must carry; the caller's derivation must commit to <paramref name="nonce"/>.</param>
    /// <param name="nonce">The nonce this verifier issued (<see cref="IssueNonce"/>) for the session.</param>
    /// <returns>The verdict with every rule (malformed or unverifiable evidence gives a refused verdict, never an exception).</returns>
    /// <exception cref="ArgumentNullException"><paramref name="evidence"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="expectedReportData"/> is not 64 bytes or <paramref name="nonce"/> is empty.</exception>
    public AttestationVerdict VerifyWithReportData(AttestationEvidence evidence, ReadOnlySpan<byte> expectedReportData, ReadOnlySpan<byte> nonce)
    {
        ArgumentNullException.ThrowIfNull(evidence);
        if (expectedReportData.Length != AttestationBinding.ReportDataLength)
        {
            throw new ArgumentException($"the expected report data must be {AttestationBinding.ReportDataLength} bytes, got {expectedReportData.Length}", nameof(expectedReportData));
        }

        if (nonce.IsEmpty)
        {
            throw new ArgumentException("the nonce is empty", nameof(nonce));
        }

        return Verify(
            evidence,
            expectedReportData,
            nonce,
            "report data = the session's report data",
            "report data does not bind this handshake (evidence made for another session or identity key)");
    }

    private AttestationVerdict Verify(AttestationEvidence evidence, ReadOnlySpan<byte> expected, ReadOnlySpan<byte> nonce, string boundDetail, string unboundDetail)
    {
        AttestationPolicy policy = Policy;
        DateTimeOffset at = _time.GetUtcNow();
        var rules = new List<AttestationCheck>(24);

        AttestationClaims claims;
        try
        {
            claims = BuildClaims(evidence, at, rules);
        }
        catch (AttestationFormatException e)
        {
            rules.Add(new AttestationCheck("evidence.format", false, e.Message));
            LogRefused(_logger, evidence.Vendor, "evidence.format", e.Message);
            return new AttestationVerdict(rules, null);
        }
        catch (Exception e) when (e is not (OutOfMemoryException or StackOverflowException or AccessViolationException))
        {
            // Evidence comes from the peer, resolvers from the integrator: whatever fails while verifying it (a certificate
            // the platform's crypto cannot use, a resolver that throws) refuses this evidence and never the verifier's caller.
            string why = $"verification failed: {e.GetType().Name}: {e.Message}";
            rules.Add(new AttestationCheck("evidence.verification", false, why));
            LogVerificationFailed(_logger, e, evidence.Vendor);
            return new AttestationVerdict(rules, null);
        }

        if (claims.Vendor == AttestationVendor.InsecureSimulated)
        {
            LogSimulatedEvidence(_logger, policy.AllowSimulated);
        }

        policy.AddEvidenceRules(rules, claims);

        bool bound = claims.ReportData.Length == expected.Length && CryptographicOperations.FixedTimeEquals(expected, claims.ReportData.Span);
        rules.Add(new AttestationCheck("binding.report-data", bound, bound ? boundDetail : unboundDetail));

        if (bound && claims.Authentic)
        {
            NonceStatus ns = _nonces.Consume(nonce);
            rules.Add(new AttestationCheck("binding.nonce", ns == NonceStatus.Valid, ns switch
            {
                NonceStatus.Valid => "nonce issued by this verifier, unexpired, first use",
                NonceStatus.Expired => "nonce expired: evidence is stale",
                NonceStatus.Replayed => "nonce already used: evidence is replayed",
                _ => "nonce was not issued by this verifier",
            }));
        }
        else
        {
            rules.Add(new AttestationCheck("binding.nonce", false, "not consumed: the evidence is not authentic or not bound to it"));
        }

        policy.Evaluate(claims, rules);
        var verdict = new AttestationVerdict(rules, claims);
        if (!verdict.Accepted)
        {
            AttestationCheck first = verdict.Failures.First();
            LogRefused(_logger, claims.Vendor, first.Name, first.Detail);
        }

        return verdict;
    }

    private AttestationClaims BuildClaims(AttestationEvidence evidence, DateTimeOffset at, List<AttestationCheck> rules)
    {
        if (!evidence.EventLog.IsEmpty && evidence.Vendor != AttestationVendor.IntelTdx)
        {
            rules.Add(new AttestationCheck("event-log.vendor", false, $"an event log came with {evidence.Vendor} evidence; only TDX event logs can be checked"));
        }

        switch (evidence.Vendor)
        {
            case AttestationVendor.IntelTdx:
                var quote = TdxQuote.Parse(evidence.Evidence);
                TdxVerificationResult tr = _tdx.Verify(quote, TdxCollateral, at);
                AttestationClaims c = AttestationClaims.FromTdx(quote, tr);
                TdxEventLog? log = evidence.EventLog.IsEmpty ? TdxEventLogResolver?.Invoke(quote) : TdxEventLog.Parse(evidence.EventLog);
                if (log is not null)
                {
                    // The replay is a rule of its own (not only a verification check), so a policy without
                    // RequireFullVerification still refuses a log that does not explain the quote's RTMRs.
                    IReadOnlyList<AttestationCheck> replay = log.CompareWithQuote(quote);
                    rules.AddRange(replay);
                    var all = new List<AttestationCheck>(c.VerificationChecks);
                    all.AddRange(replay);
                    c = new AttestationClaims
                    {
                        Vendor = c.Vendor, VerificationChecks = all, Authentic = c.Authentic, TcbStatus = c.TcbStatus, AdvisoryIds = c.AdvisoryIds,
                        ReportData = c.ReportData, Measurement = c.Measurement, Rtmrs = c.Rtmrs, Debug = c.Debug,
                    };
                }

                return c;
            case AttestationVendor.AmdSevSnp:
                var report = SnpReport.Parse(evidence.Evidence);
                SnpCertificates? certs = SnpCertificateResolver?.Invoke(report);
                if (certs is null)
                {
                    var missing = new AttestationCheck("snp.certificates", false, "no VCEK/VLEK and ASK/ARK available for this report (set SnpCertificateResolver)");
                    return new AttestationClaims
                    {
                        Vendor = AttestationVendor.AmdSevSnp, VerificationChecks = [missing], Authentic = false, TcbStatus = TcbStatus.Unknown,
                        ReportData = report.ReportData, Measurement = report.Measurement, Debug = report.PolicyDebugAllowed,
                        SnpMigrationAgentAllowed = report.PolicyMigrationAgentAllowed, SnpSmtAllowed = report.PolicySmtAllowed,
                    };
                }

                return AttestationClaims.FromSnp(report, _snp.Verify(report, certs, at));
            case AttestationVendor.InsecureSimulated:
                return InsecureSimulatedEvidence.ToClaims(evidence.Evidence);
            default:
                rules.Add(new AttestationCheck("evidence.vendor", false, $"unknown vendor {evidence.Vendor}"));
                throw new AttestationFormatException("evidence", "vendor", -1, $"unknown vendor {evidence.Vendor}");
        }
    }

    [LoggerMessage(EventId = 5104, EventName = "SimulatedEvidenceVerified", Level = LogLevel.Warning,
        Message = "INSECURE simulated attestation evidence presented (policy AllowSimulated={Allowed}); it proves nothing about the worker's machine")]
    private static partial void LogSimulatedEvidence(ILogger logger, bool allowed);

    [LoggerMessage(EventId = 5106, EventName = "AttestationVerificationFailed", Level = LogLevel.Warning, Message = "attestation from {Vendor} refused: verification threw")]
    private static partial void LogVerificationFailed(ILogger logger, Exception exception, AttestationVendor vendor);

    [LoggerMessage(EventId = 5105, EventName = "AttestationRefused", Level = LogLevel.Information, Message = "attestation from {Vendor} refused: {Rule}: {Reason}")]
    private static partial void LogRefused(ILogger logger, AttestationVendor vendor, string rule, string reason);
}
