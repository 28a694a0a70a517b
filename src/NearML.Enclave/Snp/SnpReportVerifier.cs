using System.Formats.Asn1;
using System.Security.Cryptography;
using NearML.Enclave.Internal;

namespace NearML.Enclave;

/// <summary>
/// The AMD certificates that endorse an SEV-SNP report: the VCEK or VLEK (DER) and the ASK/ASVK plus ARK (the KDS
/// <c>cert_chain</c> PEM). Parsed once and cached; signature checks on the chain are memoised, so reuse an instance.
/// </summary>
public sealed class SnpCertificates
{
    private readonly List<Cert> _chain;

    private SnpCertificates(List<Cert> chain) => _chain = chain;

    internal IReadOnlyList<Cert> Chain => _chain;

    internal Dictionary<string, bool> LinkCache { get; } = new(StringComparer.Ordinal);

    private string? _productName;
    private byte[]? _hwId;
    private bool _extensionsRead;
    private readonly SnpTcbVersion?[] _tcbByLayout = new SnpTcbVersion?[4];
    private readonly bool[] _tcbRead = new bool[4];

    /// <summary>The endorsement key's extensions, read once (certificates are immutable).</summary>
    internal (string? ProductName, byte[]? HwId) Extensions()
    {
        lock (LinkCache)
        {
            if (!_extensionsRead)
            {
                _productName = SnpReportVerifier.ReadString(_chain[0].FindExtension(Oids.AmdProductName));
                _hwId = SnpReportVerifier.ReadHwId(_chain[0].FindExtension(Oids.AmdHwId));
                _extensionsRead = true;
            }

            return (_productName, _hwId);
        }
    }

    internal SnpTcbVersion? Tcb(SnpProduct layout)
    {
        lock (LinkCache)
        {
            int i = (int)layout;
            if (!_tcbRead[i])
            {
                _tcbByLayout[i] = SnpReportVerifier.ReadCertTcb(_chain[0], layout);
                _tcbRead[i] = true;
            }

            return _tcbByLayout[i];
        }
    }

    /// <summary>Gets the endorsement key certificate's subject (for example <c>CN=SEV-VCEK</c>).</summary>
    public string EndorsementKeySubject => _chain[0].Subject;

    /// <summary>Parses the certificates.</summary>
    /// <param name="endorsementKeyDer">The VCEK or VLEK certificate (DER).</param>
    /// <param name="askArkPem">The ASK (or ASVK) then ARK, PEM, as served by the AMD KDS <c>cert_chain</c> endpoint.</param>
    /// <returns>The parsed certificates.</returns>
    /// <exception cref="AttestationFormatException">A certificate is malformed or the chain does not hold exactly two certificates.</exception>
    public static SnpCertificates Parse(ReadOnlyMemory<byte> endorsementKeyDer, ReadOnlyMemory<byte> askArkPem)
    {
        List<Cert> chain = [Cert.Parse(endorsementKeyDer.ToArray(), "VCEK/VLEK"), .. Cert.ParsePemChain(askArkPem.Span, "ASK/ARK chain")];
        if (chain.Count != 3)
        {
            throw new AttestationFormatException("ASK/ARK chain", "pem", -1, $"expected 2 certificates (ASK or ASVK, then ARK), found {chain.Count - 1}");
        }

        return new SnpCertificates(chain);
    }
}

/// <summary>The outcome of verifying an SEV-SNP report.</summary>
public sealed class SnpVerificationResult
{
    internal SnpVerificationResult(List<AttestationCheck> checks, SnpProduct product, SnpTcbVersion reportedTcb)
    {
        Checks = checks;
        Product = product;
        ReportedTcb = reportedTcb;
    }

    /// <summary>Gets every check made, in order.</summary>
    public IReadOnlyList<AttestationCheck> Checks { get; }

    /// <summary>Gets a value indicating whether every check passed.</summary>
    public bool IsValid => Checks.All(c => c.Passed);

    /// <summary>Gets the first failed check, or <see langword="null"/>.</summary>
    public AttestationCheck? FirstFailure => Checks.FirstOrDefault(c => !c.Passed);

    /// <summary>Gets the product identified by the pinned ARK.</summary>
    public SnpProduct Product { get; }

    /// <summary>Gets the report's REPORTED_TCB decoded for <see cref="Product"/>.</summary>
    public SnpTcbVersion ReportedTcb { get; }
}

/// <summary>
/// Verifies SEV-SNP reports offline: the ECDSA P-384 signature by the VCEK/VLEK, VCEK → ASK → ARK under RSA-PSS, the ARK
/// pinned per product (Milan, Genoa, Turin), the reported TCB against the VCEK's extensions and the VCEK's hwID against CHIP_ID.
/// Guest policy bits (debug, migration agent, SMT) are exposed on <see cref="SnpReport"/> and judged by <c>AttestationPolicy</c>.
/// Checks run cheapest first and a public-key operation runs only under a trusted key: the ARK is judged by its fingerprint,
/// the links top-down, and the report's P-384 signature only when the chain is trusted and the report's product, signing
/// key, REPORTED_TCB and CHIP_ID agree with the VCEK. A check not reached is reported as failed ("not checked: …").
/// </summary>
public sealed class SnpReportVerifier
{
    /// <summary>Gets the pinned ARK SHA-256 fingerprints per product (AMD KDS, valid to 2045 and later).</summary>
    public static IReadOnlyDictionary<SnpProduct, string> AmdArkFingerprints { get; } = new Dictionary<SnpProduct, string>
    {
        [SnpProduct.Milan] = "69D063B45344D26A2E94E1F4210DE49EF555308287D4C174445C95639A540BCD",
        [SnpProduct.Genoa] = "4C6598D19C18719C5DFD4A7D335F674E5BFE1D8F800CEA2CF270C10D103DB2F1",
        [SnpProduct.Turin] = "1F084161A44BB6D93778A904877D4819CAFA5D05EF4193B2DED9DD9C73DD3F6A",
    };

    private readonly Dictionary<string, SnpProduct> _pinned;

    /// <summary>Initializes a verifier pinning AMD's production ARKs.</summary>
    public SnpReportVerifier() : this(AmdArkFingerprints) { }

    /// <summary>Initializes a verifier pinning the given ARK fingerprints (test roots; production pins AMD's).</summary>
    /// <param name="pinnedArks">SHA-256 fingerprint (hex) of each product's ARK.</param>
    public SnpReportVerifier(IReadOnlyDictionary<SnpProduct, string> pinnedArks)
    {
        ArgumentNullException.ThrowIfNull(pinnedArks);
        _pinned = pinnedArks.ToDictionary(kv => kv.Value.ToUpperInvariant(), kv => kv.Key, StringComparer.Ordinal);
    }

    /// <summary>Verifies a report.</summary>
    /// <param name="report">The parsed report.</param>
    /// <param name="certificates">Its VCEK/VLEK and ASK/ARK.</param>
    /// <param name="evaluationTime">The time at which certificates must be valid.</param>
    /// <returns>Every check with its reason.</returns>
    public SnpVerificationResult Verify(SnpReport report, SnpCertificates certificates, DateTimeOffset evaluationTime)
    {
        ArgumentNullException.ThrowIfNull(report);
        ArgumentNullException.ThrowIfNull(certificates);
        var checks = new List<AttestationCheck>(16);
        IReadOnlyList<Cert> chain = certificates.Chain;
        Cert vcek = chain[0], ask = chain[1], ark = chain[2];
        string keyName = report.SigningKey == SnpSigningKey.Vlek ? "vlek" : "vcek";

        // Cheapest first; a public-key operation only under a trusted key (see the class summary). The ARK is judged by its
        // fingerprint before any signature, the links top-down, and the report signature (one P-384 verification, the
        // costly part) only when the chain is trusted and the report's cheap fields agree with the VCEK.
        string fp = Convert.ToHexString(ark.Fingerprint);
        SnpProduct product = _pinned.GetValueOrDefault(fp);
        bool arkOk = product != SnpProduct.Unknown && Link(checks, certificates, "snp-chain.ark-signature", ark, ark, null);
        if (product == SnpProduct.Unknown)
        {
            checks.Add(new AttestationCheck("snp-chain.ark-signature", false, "not checked: the ARK is not pinned"));
        }

        bool askOk = Link(checks, certificates, "snp-chain.ask-signature", ask, ark, arkOk ? null : "not checked: the ARK is not trusted");
        bool vcekOk = Link(checks, certificates, $"snp-chain.{keyName}-signature", vcek, ask, askOk ? null : "not checked: the ASK is not trusted");
        bool cas = ask.IsCa && ark.IsCa;
        checks.Add(new AttestationCheck("snp-chain.issuers-are-ca", cas, cas ? "ASK and ARK have basicConstraints CA:TRUE" : "ASK or ARK lacks basicConstraints CA:TRUE"));
        checks.Add(new AttestationCheck("snp-chain.ark-pinned", product != SnpProduct.Unknown,
            product != SnpProduct.Unknown ? $"ARK {fp} is the pinned {product} root" : $"ARK {fp} is not a pinned AMD root"));
        string? invalid = chain.Where(c => !c.IsValidAt(evaluationTime)).Select(c => $"'{c.Subject}' is valid {c.NotBefore:O} to {c.NotAfter:O}, not at {evaluationTime:O}").FirstOrDefault();
        checks.Add(new AttestationCheck("snp-chain.validity", invalid is null, invalid ?? $"every certificate is valid at {evaluationTime:O}"));

        (string? productName, byte[]? hwid) = certificates.Extensions();
        SnpProduct fromCpuid = report.ProductFromCpuid;
        bool productOk = product != SnpProduct.Unknown
            && (productName is null || productName.StartsWith(product.ToString(), StringComparison.OrdinalIgnoreCase))
            && (fromCpuid == SnpProduct.Unknown || fromCpuid == product);
        checks.Add(new AttestationCheck("snp.product", productOk,
            $"ARK says {product}, {keyName.ToUpperInvariant()} productName \"{productName ?? "(none)"}\", report CPUID says {fromCpuid}"));

        bool keyKind = report.SigningKey switch
        {
            SnpSigningKey.Vcek => vcek.Subject.Contains("SEV-VCEK", StringComparison.Ordinal),
            SnpSigningKey.Vlek => vcek.Subject.Contains("SEV-VLEK", StringComparison.Ordinal),
            _ => false,
        };
        checks.Add(new AttestationCheck("report.signing-key", keyKind, $"report says {report.SigningKey}, certificate is '{vcek.Subject}'"));

        SnpProduct layout = product != SnpProduct.Unknown ? product : fromCpuid;
        SnpTcbVersion reported = SnpTcbVersion.Decode(report.ReportedTcb, layout);
        SnpTcbVersion? certTcb = certificates.Tcb(layout);
        bool tcbOk = certTcb is { } ct && ct == reported;
        checks.Add(new AttestationCheck("snp.reported-tcb", tcbOk,
            $"REPORTED_TCB {reported} vs {keyName.ToUpperInvariant()} extensions {(certTcb?.ToString() ?? "(missing)")}"));

        bool hwOk = true;
        if (report.SigningKey == SnpSigningKey.Vcek)
        {
            string detail;
            if (report.MaskChipKey)
            {
                detail = "CHIP_ID is masked by the guest (MASK_CHIP_KEY); the VCEK is checked through its signature only";
            }
            else
            {
                hwOk = hwid is not null && hwid.Length <= 64 && report.ChipId.Span[..hwid.Length].SequenceEqual(hwid);
                detail = hwid is null ? "VCEK has no hwID extension" : $"VCEK hwID ({hwid.Length} bytes) {(hwOk ? "equals" : "differs from")} CHIP_ID";
            }

            checks.Add(new AttestationCheck("snp.chip-id", hwOk, detail));
        }

        string? skip = !vcekOk ? $"the {keyName.ToUpperInvariant()} does not chain to a pinned ARK"
            : !keyKind ? "the signing key does not match the certificate"
            : !productOk ? "the product does not match"
            : !tcbOk ? $"REPORTED_TCB does not match the {keyName.ToUpperInvariant()}"
            : !hwOk ? $"CHIP_ID does not match the {keyName.ToUpperInvariant()}"
            : null;
        bool sig = skip is null && VerifyReportSignature(report, vcek);
        checks.Add(new AttestationCheck("report.signature", sig, skip is not null
            ? $"not checked: {skip}"
            : sig
                ? $"ECDSA P-384 signature over [0, 0x2A0) verifies with the {keyName.ToUpperInvariant()}"
                : $"report signature does not verify with the {keyName.ToUpperInvariant()}"));

        return new SnpVerificationResult(checks, product, reported);
    }

    private static bool Link(List<AttestationCheck> checks, SnpCertificates certs, string name, Cert child, Cert issuer, string? notChecked)
    {
        if (notChecked is not null)
        {
            checks.Add(new AttestationCheck(name, false, notChecked));
            return false;
        }

        bool ok;
        lock (certs.LinkCache)
        {
            if (!certs.LinkCache.TryGetValue(name, out ok))
            {
                ok = child.IsSignedBy(issuer);
                certs.LinkCache[name] = ok;
            }
        }

        checks.Add(new AttestationCheck(name, ok, ok ? $"'{child.Subject}' is signed by '{issuer.Subject}' ({AlgName(child)})" : $"signature of '{child.Subject}' does not verify with the key of '{issuer.Subject}'"));
        return ok;
    }

    private static string AlgName(Cert c) => c.SignatureAlgorithm == Oids.RsaPss ? $"RSASSA-PSS {c.PssHash.Name}" : c.SignatureAlgorithm;

    internal static bool VerifyReportSignature(SnpReport report, Cert key)
    {
        if (key.Ec is null)
        {
            return false;
        }

        Span<byte> p1363 = stackalloc byte[96];
        ReadOnlySpan<byte> r = report.SignatureR.Span, s = report.SignatureS.Span;
        if (r[48..].ContainsAnyExcept((byte)0) || s[48..].ContainsAnyExcept((byte)0))
        {
            return false;
        }

        for (int i = 0; i < 48; i++)
        {
            p1363[i] = r[47 - i];
            p1363[48 + i] = s[47 - i];
        }

        try
        {
            lock (key.Ec)
            {
                return key.Ec.VerifyData(report.SignedRegion.Span, p1363, HashAlgorithmName.SHA384);
            }
        }
        catch (CryptographicException)
        {
            return false;
        }
    }

    internal static SnpTcbVersion? ReadCertTcb(Cert c, SnpProduct layout)
    {
        int? bl = ReadInt(c.FindExtension(Oids.AmdBlSpl)), tee = ReadInt(c.FindExtension(Oids.AmdTeeSpl)),
            snp = ReadInt(c.FindExtension(Oids.AmdSnpSpl)), uc = ReadInt(c.FindExtension(Oids.AmdUcodeSpl)),
            fmc = ReadInt(c.FindExtension(Oids.AmdFmcSpl));
        if (bl is null || tee is null || snp is null || uc is null || (layout == SnpProduct.Turin && fmc is null))
        {
            return null;
        }

        return new SnpTcbVersion((byte)(layout == SnpProduct.Turin ? fmc!.Value : 0), (byte)bl, (byte)tee, (byte)snp, (byte)uc);
    }

    internal static int? ReadInt(System.Security.Cryptography.X509Certificates.X509Extension? e)
    {
        if (e is null)
        {
            return null;
        }

        try
        {
            var r = new AsnReader(e.RawData, AsnEncodingRules.DER);
            return r.TryReadInt32(out int v) ? v : null;
        }
        catch (AsnContentException)
        {
            return null;
        }
    }

    internal static string? ReadString(System.Security.Cryptography.X509Certificates.X509Extension? e)
    {
        if (e is null)
        {
            return null;
        }

        try
        {
            return new AsnReader(e.RawData, AsnEncodingRules.DER).ReadCharacterString(UniversalTagNumber.IA5String);
        }
        catch (AsnContentException)
        {
            return System.Text.Encoding.ASCII.GetString(e.RawData);
        }
    }

    internal static byte[]? ReadHwId(System.Security.Cryptography.X509Certificates.X509Extension? e)
    {
        if (e is null)
        {
            return null;
        }

        byte[] raw = e.RawData;
        if (raw.Length is 64 or 8)
        {
            return raw;
        }

        try
        {
            return new AsnReader(raw, AsnEncodingRules.DER).ReadOctetString();
        }
        catch (AsnContentException)
        {
            return raw;
        }
    }

    internal static SnpTcbVersion? CertificateTcb(SnpCertificates certs, SnpProduct layout) => certs.Tcb(layout);
}
