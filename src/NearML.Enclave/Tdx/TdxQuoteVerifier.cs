using System.Security.Cryptography;
using NearML.Enclave.Internal;

namespace NearML.Enclave;

/// <summary>The outcome of verifying a TDX quote: every check with its reason, and the TCB status with advisories.</summary>
public sealed class TdxVerificationResult
{
    internal TdxVerificationResult(List<AttestationCheck> checks, TcbStatus status, TcbStatus? platform, TcbStatus? module, TcbStatus? qe,
        List<string> advisories, string? fmspc, DateTimeOffset? tcbDate)
    {
        Checks = checks;
        TcbStatus = status;
        PlatformTcbStatus = platform;
        ModuleTcbStatus = module;
        QeTcbStatus = qe;
        AdvisoryIds = advisories;
        Fmspc = fmspc;
        TcbDate = tcbDate;
    }

    /// <summary>Gets every check made, in order, with pass/fail and the reason.</summary>
    public IReadOnlyList<AttestationCheck> Checks { get; }

    /// <summary>Gets a value indicating whether every check passed (signatures, chains, CRLs, collateral, TCB level found).</summary>
    public bool IsValid => Checks.All(c => c.Passed);

    /// <summary>Gets a value indicating whether the evidence itself is authentic: quote and QE report signatures, key binding and PCK chain to the pinned root.</summary>
    public bool SignaturesValid => Checks.Where(c => c.Name.StartsWith("quote.", StringComparison.Ordinal) || c.Name.StartsWith("qe-report.", StringComparison.Ordinal)
        || (c.Name.StartsWith("pck-chain.", StringComparison.Ordinal) && c.Name != "pck-chain.validity")).All(c => c.Passed);

    /// <summary>Gets the first failed check, or <see langword="null"/>.</summary>
    public AttestationCheck? FirstFailure => Checks.FirstOrDefault(c => !c.Passed);

    /// <summary>Gets the overall TCB status (platform level converged with the TDX module and QE statuses).</summary>
    public TcbStatus TcbStatus { get; }

    /// <summary>Gets the status of the matching platform TCB level, if one was evaluated.</summary>
    public TcbStatus? PlatformTcbStatus { get; }

    /// <summary>Gets the status of the TDX module identity (TDX 1.5 modules), if evaluated.</summary>
    public TcbStatus? ModuleTcbStatus { get; }

    /// <summary>Gets the QE identity status, if evaluated.</summary>
    public TcbStatus? QeTcbStatus { get; }

    /// <summary>Gets the advisory ids (INTEL-SA-…) of the matching levels.</summary>
    public IReadOnlyList<string> AdvisoryIds { get; }

    /// <summary>Gets the platform FMSPC from the PCK certificate (hex), if it could be read.</summary>
    public string? Fmspc { get; }

    /// <summary>Gets the tcbDate of the matching platform level, if any.</summary>
    public DateTimeOffset? TcbDate { get; }
}

/// <summary>
/// Verifies Intel TDX quotes offline: the quote signature by the attestation key, the QE report signature by the PCK key,
/// the attestation key's binding in the QE report, the PCK chain to a pinned Intel SGX Root CA, CRLs, TCB Info and QE Identity
/// (signatures, issuer chains, freshness at the caller's evaluation time) and TCB level matching. Thread-safe; keep one instance
/// so parsed PCK chains are cached.
/// <para>
/// The quote comes from an untrusted peer, so the work it can cause is bounded: the quote is at most
/// <see cref="TdxQuote.MaxLength"/> bytes, its PEM chain at most 16 KiB and 4 certificates of at most 8 KiB each; checks run
/// cheapest first, and a public-key operation runs only when everything it depends on holds (links top-down from the pinned
/// root, the QE report under a trusted PCK key, the quote under an attestation key the QE report vouches for). A
/// tampered quote therefore costs at most one new certificate parse and one signature verification; a check not reached
/// is reported as failed ("not checked: …"). Parsed certificates and signature outcomes are cached across quotes.
/// </para>
/// </summary>
public sealed class TdxQuoteVerifier
{
    /// <summary>SHA-256 fingerprint of Intel's SGX Root CA certificate (valid 2018-05-21 to 2049-12-31).</summary>
    public static readonly IReadOnlyList<byte> IntelSgxRootCaFingerprint = Convert.FromHexString("44A0196B2B99F889B8E149E95B807A350E7424964399E885A7CBB8CCFAB674D3");

    private static readonly byte[] IntelQeVendorId = Convert.FromHexString("939A7233F79C4CA9940A0DB3957F0607");
    private static readonly string[] PckNames = ["leaf", "intermediate", "root"];
    private static readonly string[] SigningNames = ["signer", "root"];
    private readonly byte[][] _pinned;
    private readonly Dictionary<string, PckChainEntry> _pckCache = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ECDsa> _akCache = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    /// <summary>Initializes a verifier that pins Intel's SGX Root CA.</summary>
    public TdxQuoteVerifier() : this([[.. IntelSgxRootCaFingerprint]]) { }

    /// <summary>Initializes a verifier that pins the given root fingerprints (for test roots; production pins Intel's).</summary>
    /// <param name="pinnedRootFingerprints">SHA-256 fingerprints of acceptable root certificates.</param>
    public TdxQuoteVerifier(IEnumerable<byte[]> pinnedRootFingerprints)
    {
        ArgumentNullException.ThrowIfNull(pinnedRootFingerprints);
        _pinned = [.. pinnedRootFingerprints.Select(f => f.ToArray())];
        if (_pinned.Length == 0 || _pinned.Any(f => f.Length != 32))
        {
            throw new ArgumentException("at least one 32-byte SHA-256 fingerprint is required", nameof(pinnedRootFingerprints));
        }
    }

    /// <summary>Verifies a quote.</summary>
    /// <param name="quote">The parsed quote.</param>
    /// <param name="collateral">The collateral, or <see langword="null"/> to check only the evidence (TCB status is then <see cref="TcbStatus.Unknown"/>).</param>
    /// <param name="evaluationTime">The time at which certificates, CRLs and collateral must be valid.</param>
    /// <returns>The result with every check.</returns>
    public TdxVerificationResult Verify(TdxQuote quote, TdxCollateral? collateral, DateTimeOffset evaluationTime)
    {
        ArgumentNullException.ThrowIfNull(quote);
        var checks = new List<AttestationCheck>(40);
        DateTimeOffset at = evaluationTime;

        bool vendor = quote.QeVendorId.Span.SequenceEqual(IntelQeVendorId);
        checks.Add(new AttestationCheck("quote.qe-vendor-id", vendor, $"QE vendor id {Convert.ToHexString(quote.QeVendorId.Span)}{(vendor ? " is Intel's" : " is not Intel's")}"));
        checks.Add(new AttestationCheck("quote.trailing-bytes", true, quote.TrailingByteCount == 0
            ? "no bytes follow the signature data"
            : $"{quote.TrailingByteCount} byte(s) after the signature data are not part of the quote (unsigned) and were ignored"));

        // The checks run cheapest first, and a public-key operation runs only when everything it depends on holds: the
        // attestation key is trusted only through the QE report, the QE report only through the PCK chain. A mutated or
        // forged quote therefore costs at most one signature verification (plus parsing one new certificate), and a
        // check that was not reached is reported as failed with the reason.

        // 1. AK binding: QE report data = SHA-256(AK || QE auth data) || 32 zero bytes (a hash, no key operation).
        Span<byte> h = stackalloc byte[32];
        using (var inc = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
        {
            inc.AppendData(quote.AttestationKey.Span);
            inc.AppendData(quote.QeAuthenticationData.Span);
            inc.GetHashAndReset(h);
        }

        ReadOnlySpan<byte> qeRd = quote.QeReport.ReportData.Span;
        bool binding = qeRd[..32].SequenceEqual(h) && !qeRd[32..].ContainsAnyExcept((byte)0);
        checks.Add(new AttestationCheck("qe-report.attestation-key-binding", binding, binding
            ? "QE report data = SHA-256(attestation key ‖ QE auth data) ‖ 0³²"
            : $"QE report data {Convert.ToHexString(qeRd[..32])} ≠ SHA-256(attestation key ‖ QE auth data) {Convert.ToHexString(h)}"));

        // 2. PCK chain (certificates parsed once and cached; links verified top-down from the pinned root).
        PckChainEntry? pck = null;
        if (quote.PckCertificationDataType != TdxQuote.CertificationDataPckChain)
        {
            checks.Add(new AttestationCheck("pck-chain.parse", false, $"certification data type {quote.PckCertificationDataType} does not embed the PCK chain (type 5 needed for offline verification)"));
        }
        else
        {
            pck = GetPckChain(quote.PckCertificationData);
            checks.Add(new AttestationCheck("pck-chain.parse", pck.Error is null, pck.Error ?? $"{pck.Chain.Count} certificates, leaf '{pck.Chain[0].Subject}'"));
        }

        bool chainOk = false;
        bool chainTrusted = false;
        if (pck is { Error: null })
        {
            chainOk = ChainVerifier.Check(checks, "pck-chain", pck.Chain, _pinned, at, PckNames, out chainTrusted);
        }

        // 3. The PCK leaf signs the QE report.
        bool qeSig = false;
        if (chainTrusted)
        {
            qeSig = pck!.VerifyQeReport(quote.QeReport.Raw.Span, quote.QeReportSignature.Span);
            checks.Add(new AttestationCheck("qe-report.signature", qeSig, qeSig
                ? "QE report signature verifies with the PCK leaf key"
                : "QE report signature does not verify with the PCK leaf key"));
        }
        else
        {
            checks.Add(new AttestationCheck("qe-report.signature", false, pck is { Error: null }
                ? "not checked: the PCK chain does not verify to the pinned root"
                : "no PCK key to check the QE report signature with"));
        }

        // 4. The attestation key, vouched for by the QE report, signs header+body.
        bool quoteSig = false;
        string quoteSigDetail;
        if (!binding || !qeSig)
        {
            quoteSigDetail = $"not checked: the attestation key is not vouched for ({(!binding ? "QE report does not bind it" : "QE report signature does not verify")})";
        }
        else if (GetAttestationKey(quote.AttestationKey.Span) is not { } ak)
        {
            quoteSigDetail = "the attestation key is not a valid P-256 point";
        }
        else
        {
            lock (ak)
            {
                quoteSig = ak.VerifyData(quote.SignedRegion.Span, quote.Signature.Span, HashAlgorithmName.SHA256);
            }

            quoteSigDetail = quoteSig
                ? $"ECDSA P-256 signature over the header and body ({quote.SignedRegion.Length} bytes) verifies with the attestation key"
                : "quote signature does not verify with the attestation key (header or body changed, or wrong key)";
        }

        checks.Add(new AttestationCheck("quote.signature", quoteSig, quoteSigDetail));

        if (collateral is null)
        {
            checks.Add(new AttestationCheck("collateral.present", false, "no collateral supplied: CRLs and TCB status not checked"));
            return new TdxVerificationResult(checks, TcbStatus.Unknown, null, null, null, [], pck?.Extensions is { } e0 ? Convert.ToHexString(e0.Fmspc) : null, null);
        }

        // 4. CRLs.
        Cert? leaf = pck is { Error: null } ? pck.Chain[0] : null;
        Cert? inter = pck is { Error: null, Chain.Count: >= 3 } ? pck.Chain[1] : null;
        CheckCrl(checks, "pck-crl", collateral.PckCrl, inter, leaf, at);
        if (collateral.PckCrlIssuerChain is { } crlChain)
        {
            // A supplied CRL issuer chain is checked like any chain, and must name the CA that issued this PCK.
            ChainVerifier.Check(checks, "pck-crl.issuer-chain", crlChain, _pinned, at, SigningNames);
            bool same = inter is not null && crlChain[0].Fingerprint.AsSpan().SequenceEqual(inter.Fingerprint);
            checks.Add(new AttestationCheck("pck-crl.issuer-chain.matches-pck-issuer", same, same
                ? $"the CRL issuer chain starts with the PCK's issuer '{inter!.Subject}'"
                : $"the CRL issuer chain starts with '{crlChain[0].Subject}', not with the PCK's issuer{(inter is null ? " (unavailable)" : $" '{inter.Subject}'")}"));
        }

        Cert? root = pck is { Error: null } ? pck.Chain[^1] : null;
        CheckCrl(checks, "root-crl", collateral.RootCrl, root, inter, at);

        // 5. TCB Info.
        var advisories = new List<string>();
        TcbStatus? platform = null, module = null, qeStatus = null;
        DateTimeOffset? tcbDate = null;
        PckExtensions? ext = pck?.Extensions;
        string? fmspc = ext is null ? null : Convert.ToHexString(ext.Fmspc);
        TcbInfo? info = ext is null ? null : collateral.FindTcbInfo(ext.Fmspc);
        if (info is null)
        {
            checks.Add(new AttestationCheck("tcb-info.fmspc", false, ext is null
                ? "the PCK certificate's SGX extension could not be read"
                : $"no TCB Info for FMSPC {fmspc} (have: {string.Join(", ", collateral.Fmspcs)})"));
        }
        else
        {
            checks.Add(new AttestationCheck("tcb-info.fmspc", true, $"TCB Info for FMSPC {fmspc}, evaluation data number {info.TcbEvaluationDataNumber}"));
            CheckDocument(checks, "tcb-info", info, "TDX", collateral.RootCrl, at);
            bool pce = info.PceId.AsSpan().SequenceEqual(ext!.PceId);
            checks.Add(new AttestationCheck("tcb-info.pceid", pce, $"PCE id {Convert.ToHexString(ext.PceId)} vs TCB Info {Convert.ToHexString(info.PceId)}"));
            (platform, module, tcbDate) = EvaluateTcb(checks, quote, ext, info, advisories);
            if (!DocumentAuthentic(checks, "tcb-info"))
            {
                // A TCB status read from collateral that is not signed by the pinned root is not evidence of anything.
                (platform, module) = (TcbStatus.Unknown, null);
            }
        }

        // 6. QE Identity.
        QeIdentity? qe = collateral.QeIdentityDocument;
        if (qe is null)
        {
            checks.Add(new AttestationCheck("qe-identity.present", false, "no QE Identity in the collateral"));
        }
        else
        {
            CheckDocument(checks, "qe-identity", qe, "TD_QE", collateral.RootCrl, at);
            qeStatus = EvaluateQe(checks, quote.QeReport, qe, advisories);
            if (!DocumentAuthentic(checks, "qe-identity"))
            {
                qeStatus = TcbStatus.Unknown;
            }
        }

        TcbStatus overall = platform ?? TcbStatus.Unknown;
        if (module is { } m)
        {
            overall = Converge(overall, m);
        }

        if (qeStatus is { } q)
        {
            overall = Converge(overall, q);
        }

        if (!chainOk && overall < TcbStatus.Revoked && checks.Any(c => c.Name.EndsWith("not-revoked", StringComparison.Ordinal) && !c.Passed))
        {
            overall = TcbStatus.Revoked;
        }

        return new TdxVerificationResult(checks, overall, platform, module, qeStatus, [.. advisories.Distinct(StringComparer.Ordinal)], fmspc, tcbDate);
    }

    private static bool DocumentAuthentic(List<AttestationCheck> checks, string prefix) =>
        checks.Where(c => c.Name.StartsWith(prefix + ".", StringComparison.Ordinal)
                && (c.Name.EndsWith("-signature", StringComparison.Ordinal) || c.Name.EndsWith(".signature", StringComparison.Ordinal)
                    || c.Name.EndsWith("root-pinned", StringComparison.Ordinal) || c.Name.EndsWith(".structure", StringComparison.Ordinal)
                    || c.Name.EndsWith("not-revoked", StringComparison.Ordinal)))
            .All(c => c.Passed);

    internal static TcbStatus Converge(TcbStatus platform, TcbStatus other) => other switch
    {
        TcbStatus.OutOfDate => platform switch
        {
            TcbStatus.UpToDate or TcbStatus.SWHardeningNeeded => TcbStatus.OutOfDate,
            TcbStatus.ConfigurationNeeded or TcbStatus.ConfigurationAndSWHardeningNeeded => TcbStatus.OutOfDateConfigurationNeeded,
            _ => platform,
        },
        TcbStatus.Revoked => platform == TcbStatus.NotSupported || platform == TcbStatus.Unknown ? platform : TcbStatus.Revoked,
        TcbStatus.NotSupported => platform == TcbStatus.Unknown ? platform : TcbStatus.NotSupported,
        TcbStatus.Unknown => TcbStatus.Unknown,
        _ => platform,
    };

    private static (TcbStatus? Platform, TcbStatus? Module, DateTimeOffset? Date) EvaluateTcb(List<AttestationCheck> checks, TdxQuote quote, PckExtensions ext, TcbInfo info, List<string> advisories)
    {
        ReadOnlySpan<byte> svn = quote.Body.TeeTcbSvn.Span;

        // TDX 1.5+ (TEE_TCB_SVN[1] > 0): bytes 0-1 are the module's SVN and major version, judged by tdxModuleIdentities,
        // so the level comparison starts at byte 2 (Intel QVL's rule; see docs/attestation.md).
        int start = svn[1] > 0 ? 2 : 0;
        TcbStatus? module = null;
        if (svn[1] > 0)
        {
            string id = $"TDX_{svn[1]:X2}";
            ModuleIdentity? mi = info.ModuleIdentities.FirstOrDefault(x => string.Equals(x.Id, id, StringComparison.OrdinalIgnoreCase));
            if (mi is null)
            {
                checks.Add(new AttestationCheck("tdx-module.identity", false, $"TCB Info has no module identity {id}"));
                module = TcbStatus.NotSupported;
            }
            else
            {
                bool idOk = ModuleMatches(quote, mi, out string why);
                checks.Add(new AttestationCheck("tdx-module.identity", idOk, $"{id}: {why}"));
                byte moduleSvn = svn[0];
                ModuleLevel? ml = mi.Levels.FirstOrDefault(l => l.IsvSvn <= moduleSvn);
                checks.Add(new AttestationCheck("tdx-module.tcb-level", ml is not null, ml is null
                    ? $"{id}: no level with isvsvn ≤ {svn[0]}"
                    : $"{id} isvsvn {svn[0]} → {ml.Status} (level isvsvn {ml.IsvSvn}, {ml.TcbDate:yyyy-MM-dd})"));
                module = ml?.Status ?? TcbStatus.NotSupported;
                if (ml is not null)
                {
                    advisories.AddRange(ml.Advisories);
                }
            }
        }
        else if (info.TdxModule is { } tm)
        {
            bool idOk = ModuleMatches(quote, tm, out string why);
            checks.Add(new AttestationCheck("tdx-module.identity", idOk, why));
        }

        ReadOnlySpan<byte> sgx = ext.SgxTcbComponents;
        foreach (TcbLevel l in info.Levels)
        {
            if (AllAtLeast(sgx, l.SgxComponents, 0) && ext.PceSvn >= l.PceSvn && AllAtLeast(svn, l.TdxComponents, start))
            {
                checks.Add(new AttestationCheck("tcb-info.tcb-level", true,
                    $"{l.Status} level of {l.TcbDate:yyyy-MM-dd} (SGX SVNs [{string.Join(',', ext.SgxTcbComponents)}], PCESVN {ext.PceSvn}, TEE_TCB_SVN {Convert.ToHexString(svn)} compared from byte {start})"));
                advisories.AddRange(l.Advisories);
                return (l.Status, module, l.TcbDate);
            }
        }

        checks.Add(new AttestationCheck("tcb-info.tcb-level", false,
            $"no TCB level matches (SGX SVNs [{string.Join(',', ext.SgxTcbComponents)}], PCESVN {ext.PceSvn}, TEE_TCB_SVN {Convert.ToHexString(svn)} compared from byte {start}): TCB not supported"));
        return (TcbStatus.NotSupported, module, null);
    }

    private static bool ModuleMatches(TdxQuote quote, ModuleIdentity mi, out string why)
    {
        bool signer = quote.Body.MrSignerSeam.Span.SequenceEqual(mi.MrSigner);
        ReadOnlySpan<byte> attr = quote.Body.SeamAttributes.Span;
        bool attrOk = mi.AttributesMask.Length == attr.Length && mi.Attributes.Length == attr.Length;
        for (int i = 0; attrOk && i < attr.Length; i++)
        {
            attrOk = (attr[i] & mi.AttributesMask[i]) == mi.Attributes[i];
        }

        why = $"MRSIGNERSEAM {(signer ? "matches" : "differs")}, SEAMATTRIBUTES {(attrOk ? "match" : "differ")} under mask";
        return signer && attrOk;
    }

    private static bool AllAtLeast(ReadOnlySpan<byte> have, ReadOnlySpan<byte> need, int start)
    {
        for (int i = start; i < need.Length; i++)
        {
            if (have[i] < need[i])
            {
                return false;
            }
        }

        return true;
    }

    private static TcbStatus? EvaluateQe(List<AttestationCheck> checks, SgxReportBody r, QeIdentity qe, List<string> advisories)
    {
        var problems = new List<string>();
        if (!r.MrSigner.Span.SequenceEqual(qe.MrSigner))
        {
            problems.Add($"MRSIGNER {Convert.ToHexString(r.MrSigner.Span)} ≠ {Convert.ToHexString(qe.MrSigner)}");
        }

        if (r.IsvProdId != qe.IsvProdId)
        {
            problems.Add($"ISVPRODID {r.IsvProdId} ≠ {qe.IsvProdId}");
        }

        if ((r.MiscSelect & qe.MiscSelectMask) != (qe.MiscSelect & qe.MiscSelectMask))
        {
            problems.Add("MISCSELECT differs under mask");
        }

        ReadOnlySpan<byte> a = r.Attributes.Span;
        for (int i = 0; i < a.Length && i < qe.AttributesMask.Length && i < qe.Attributes.Length; i++)
        {
            if ((a[i] & qe.AttributesMask[i]) != (qe.Attributes[i] & qe.AttributesMask[i]))
            {
                problems.Add("ATTRIBUTES differ under mask");
                break;
            }
        }

        checks.Add(new AttestationCheck("qe-identity.qe-report", problems.Count == 0, problems.Count == 0
            ? $"QE MRSIGNER, ISVPRODID {r.IsvProdId}, MISCSELECT and ATTRIBUTES match {qe.Id}"
            : string.Join("; ", problems)));
        ModuleLevel? level = qe.Levels.FirstOrDefault(l => l.IsvSvn <= r.IsvSvn);
        checks.Add(new AttestationCheck("qe-identity.tcb-level", level is not null, level is null
            ? $"no QE level with isvsvn ≤ {r.IsvSvn}"
            : $"QE isvsvn {r.IsvSvn} → {level.Status} (level isvsvn {level.IsvSvn})"));
        if (level is not null)
        {
            advisories.AddRange(level.Advisories);
        }

        return level?.Status ?? TcbStatus.NotSupported;
    }

    private void CheckDocument(List<AttestationCheck> checks, string prefix, SignedIntelDocument doc, string expectedId, Crl? rootCrl, DateTimeOffset at)
    {
        bool idOk = doc.Id == expectedId;
        checks.Add(new AttestationCheck($"{prefix}.id", idOk, $"id \"{doc.Id}\" version {doc.Version}{(idOk ? string.Empty : $", expected \"{expectedId}\"")}"));
        if (doc.IssuerChain.Count == 0)
        {
            checks.Add(new AttestationCheck($"{prefix}.issuer-chain.structure", false, "no issuer chain supplied"));
        }
        else
        {
            ChainVerifier.Check(checks, $"{prefix}.issuer-chain", doc.IssuerChain, _pinned, at, SigningNames);
            if (rootCrl is not null)
            {
                bool revoked = rootCrl.IsRevoked(doc.IssuerChain[0]);
                checks.Add(new AttestationCheck($"{prefix}.issuer-chain.signer-not-revoked", !revoked, $"signer serial {doc.IssuerChain[0].SerialHex} {(revoked ? "is listed in the Root CA CRL" : "is not revoked")}"));
            }
        }

        bool sig = doc.SignatureValid;
        checks.Add(new AttestationCheck($"{prefix}.signature", sig, sig ? "ECDSA P-256 signature over the exact signed JSON verifies with the signer's key" : "signature over the signed JSON does not verify with the signer's key"));
        bool fresh = at >= doc.IssueDate && at < doc.NextUpdate;
        checks.Add(new AttestationCheck($"{prefix}.fresh", fresh, $"issued {doc.IssueDate:O}, next update {doc.NextUpdate:O}, evaluated at {at:O}"));
    }

    private static void CheckCrl(List<AttestationCheck> checks, string prefix, Crl? crl, Cert? issuer, Cert? subject, DateTimeOffset at)
    {
        if (crl is null)
        {
            checks.Add(new AttestationCheck($"{prefix}.present", false, "not in the collateral"));
            return;
        }

        bool sig = issuer is not null && crl.IsSignedBy(issuer);
        checks.Add(new AttestationCheck($"{prefix}.signature", sig, sig ? $"signed by '{issuer!.Subject}'" : $"not signed by the expected issuer {(issuer is null ? "(unavailable)" : $"'{issuer.Subject}'")}"));
        bool fresh = crl.IsFreshAt(at);
        checks.Add(new AttestationCheck($"{prefix}.fresh", fresh, $"thisUpdate {crl.ThisUpdate:O}, nextUpdate {crl.NextUpdate:O}, evaluated at {at:O}"));
        bool revoked = subject is not null && crl.IsRevoked(subject);
        checks.Add(new AttestationCheck($"{prefix}.not-revoked", subject is not null && !revoked, subject is null ? "no certificate to check"
            : $"serial {subject.SerialHex} of '{subject.Subject}' {(revoked ? "is revoked" : $"is not among {crl.RevokedSerials.Count} revoked serials")}"));
    }

    private PckChainEntry GetPckChain(ReadOnlyMemory<byte> pem)
    {
        string key = Convert.ToHexString(SHA256.HashData(pem.Span));
        lock (_lock)
        {
            if (_pckCache.TryGetValue(key, out PckChainEntry? hit))
            {
                return hit;
            }
        }

        PckChainEntry entry;
        try
        {
            List<Cert> chain = Cert.ParsePemChain(pem.Span, "PCK chain");
            PckExtensions? ext = null;
            string? error = null;
            try
            {
                ext = PckExtensions.Parse(chain[0]);
            }
            catch (AttestationFormatException e)
            {
                error = $"PCK chain invalid: {e.Message}";
            }

            entry = new PckChainEntry(chain, ext, error);
        }
        catch (AttestationFormatException e)
        {
            entry = new PckChainEntry([], null, $"PCK chain invalid: {e.Message}");
        }

        lock (_lock)
        {
            if (_pckCache.Count >= 256)
            {
                _pckCache.Clear();
            }

            _pckCache[key] = entry;
        }

        return entry;
    }

    internal static ECDsa? ImportP256(ReadOnlySpan<byte> xy)
    {
        try
        {
            return ECDsa.Create(new ECParameters { Curve = ECCurve.NamedCurves.nistP256, Q = new ECPoint { X = xy[..32].ToArray(), Y = xy[32..64].ToArray() } });
        }
        catch (CryptographicException)
        {
            return null;
        }
    }

    /// <summary>
    /// The attestation key is the platform QE's and repeats across that platform's quotes: imported keys are cached
    /// (import validates the point, which costs about as much as a verification).
    /// </summary>
    private ECDsa? GetAttestationKey(ReadOnlySpan<byte> xy)
    {
        string key = Convert.ToHexString(xy);
        lock (_lock)
        {
            if (_akCache.TryGetValue(key, out ECDsa? hit))
            {
                return hit;
            }
        }

        ECDsa? ak = ImportP256(xy);
        if (ak is null)
        {
            return null;
        }

        lock (_lock)
        {
            if (_akCache.Count >= 256)
            {
                _akCache.Clear(); // evicted keys are left to the GC: another thread may still be verifying with one
            }

            _akCache[key] = ak;
        }

        return ak;
    }

    private sealed record PckChainEntry(List<Cert> Chain, PckExtensions? Extensions, string? Error)
    {
        /// <summary>The QE report (and its PCK signature) is the same in every quote of a platform: the outcome is memoised.</summary>
        public bool VerifyQeReport(ReadOnlySpan<byte> report, ReadOnlySpan<byte> signature)
        {
            Cert leaf = Chain[0];
            UInt128 key = VerificationMemo.Key(leaf.Fingerprint, "qe-report-p256-p1363", report, signature);
            if (VerificationMemo.TryGet(key, out bool known))
            {
                return known;
            }

            bool ok;
            ECDsa? pckKey = leaf.Ec;
            if (pckKey is null)
            {
                ok = false;
            }
            else
            {
                lock (pckKey)
                {
                    ok = pckKey.VerifyData(report, signature, HashAlgorithmName.SHA256);
                }
            }

            return VerificationMemo.Remember(key, ok);
        }
    }
}
