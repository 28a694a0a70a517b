using System.Text;
using System.Text.Json;
using NearML.Enclave.Internal;

namespace NearML.Enclave;

/// <summary>
/// Intel PCS collateral for offline TDX quote verification: TCB Info (one or more FMSPCs), QE Identity, their issuer
/// chains, the PCK CRL and the Root CA CRL. Parsed once; keys and signature checks are cached, so reuse an instance.
/// Any part may be absent; the verifier then reports the checks that depend on it as failed with the reason.
/// </summary>
public sealed class TdxCollateral
{
    private readonly List<TcbInfo> _tcbInfos;

    private TdxCollateral(List<TcbInfo> tcbInfos, QeIdentity? qe, Crl? pckCrl, Crl? rootCrl, List<Cert>? pckCrlIssuerChain = null)
    {
        _tcbInfos = tcbInfos;
        PckCrlIssuerChain = pckCrlIssuerChain;
        QeIdentityDocument = qe;
        PckCrl = pckCrl;
        RootCrl = rootCrl;
    }

    /// <summary>Gets the FMSPCs (hex) for which TCB Info is present.</summary>
    public IReadOnlyList<string> Fmspcs => [.. _tcbInfos.Select(t => Convert.ToHexString(t.Fmspc))];

    /// <summary>Gets a value indicating whether QE Identity collateral is present.</summary>
    public bool HasQeIdentity => QeIdentityDocument is not null;

    /// <summary>Gets a value indicating whether a PCK CRL is present.</summary>
    public bool HasPckCrl => PckCrl is not null;

    /// <summary>Gets a value indicating whether a Root CA CRL is present.</summary>
    public bool HasRootCrl => RootCrl is not null;

    internal QeIdentity? QeIdentityDocument { get; }

    internal Crl? PckCrl { get; }

    internal Crl? RootCrl { get; }

    /// <summary>Gets the PCK CRL's issuer chain when the collateral carries one (dcap-qvl's <c>pck_crl_issuer_chain</c>); it must be the PCK chain's CA and root.</summary>
    internal List<Cert>? PckCrlIssuerChain { get; }

    internal TcbInfo? FindTcbInfo(ReadOnlySpan<byte> fmspc)
    {
        foreach (TcbInfo t in _tcbInfos)
        {
            if (t.Fmspc.AsSpan().SequenceEqual(fmspc))
            {
                return t;
            }
        }

        return null;
    }

    /// <summary>Builds collateral from Intel PCS response bodies and headers.</summary>
    /// <param name="tcbInfoResponses">Bodies of <c>GET /tdx/certification/v4/tcb</c> (<c>{"tcbInfo":…,"signature":…}</c>), one per FMSPC.</param>
    /// <param name="tcbInfoIssuerChainPem">The <c>TCB-Info-Issuer-Chain</c> header (PEM, URL-decoded).</param>
    /// <param name="qeIdentityResponse">Body of <c>GET /tdx/certification/v4/qe/identity</c>, or empty.</param>
    /// <param name="qeIdentityIssuerChainPem">The <c>SGX-Enclave-Identity-Issuer-Chain</c> header, or empty to reuse the TCB Info chain.</param>
    /// <param name="pckCrlDer">The PCK CRL (DER), or empty.</param>
    /// <param name="rootCrlDer">The Intel SGX Root CA CRL (DER), or empty.</param>
    /// <returns>The parsed collateral.</returns>
    /// <exception cref="AttestationFormatException">A document is malformed.</exception>
    public static TdxCollateral FromPcsResponses(IEnumerable<ReadOnlyMemory<byte>> tcbInfoResponses, ReadOnlyMemory<byte> tcbInfoIssuerChainPem,
        ReadOnlyMemory<byte> qeIdentityResponse, ReadOnlyMemory<byte> qeIdentityIssuerChainPem, ReadOnlyMemory<byte> pckCrlDer, ReadOnlyMemory<byte> rootCrlDer)
    {
        ArgumentNullException.ThrowIfNull(tcbInfoResponses);
        List<Cert> tcbChain = tcbInfoIssuerChainPem.IsEmpty ? [] : Cert.ParsePemChain(tcbInfoIssuerChainPem.Span, "TCB Info issuer chain");
        List<Cert> qeChain = qeIdentityIssuerChainPem.IsEmpty ? tcbChain : Cert.ParsePemChain(qeIdentityIssuerChainPem.Span, "QE Identity issuer chain");
        var infos = new List<TcbInfo>();
        foreach (ReadOnlyMemory<byte> body in tcbInfoResponses)
        {
            infos.Add(TcbInfo.Parse(Json.RawTopLevelValue(body, "tcbInfo", "TCB Info"), SignatureOf(body, "TCB Info"), tcbChain));
        }

        QeIdentity? qe = qeIdentityResponse.IsEmpty ? null
            : QeIdentity.Parse(Json.RawTopLevelValue(qeIdentityResponse, "enclaveIdentity", "QE Identity"), SignatureOf(qeIdentityResponse, "QE Identity"), qeChain);
        return new TdxCollateral(infos,
            qe,
            pckCrlDer.IsEmpty ? null : Crl.Parse(pckCrlDer.ToArray(), "PCK CRL"),
            rootCrlDer.IsEmpty ? null : Crl.Parse(rootCrlDer.ToArray(), "Root CA CRL"));
    }

    /// <summary>Builds collateral from the JSON form Phala's dcap-qvl uses (<c>QuoteCollateralV3</c>: exact signed strings, hex signatures, PEM chains, hex DER CRLs).</summary>
    /// <param name="json">The JSON document.</param>
    /// <returns>The parsed collateral.</returns>
    /// <exception cref="AttestationFormatException">The document is malformed.</exception>
    public static TdxCollateral FromDcapQvlJson(ReadOnlyMemory<byte> json)
    {
        const string W = "dcap-qvl collateral";
        JsonElement root;
        try
        {
            using var doc = JsonDocument.Parse(json);
            root = doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new AttestationFormatException(W, "json", e.BytePositionInLine ?? -1, e.Message, e);
        }

        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new AttestationFormatException(W, "json", 0, $"is a JSON {root.ValueKind}, not an object");
        }

        List<Cert> tcbChain = Cert.ParsePemChain(Encoding.ASCII.GetBytes(Json.Str(root, "tcb_info_issuer_chain", W)), "TCB Info issuer chain");
        List<Cert> qeChain = Cert.ParsePemChain(Encoding.ASCII.GetBytes(Json.Str(root, "qe_identity_issuer_chain", W)), "QE Identity issuer chain");
        var tcb = TcbInfo.Parse(Encoding.UTF8.GetBytes(Json.Str(root, "tcb_info", W)), Json.Hex(root, "tcb_info_signature", W), tcbChain);
        var qe = QeIdentity.Parse(Encoding.UTF8.GetBytes(Json.Str(root, "qe_identity", W)), Json.Hex(root, "qe_identity_signature", W), qeChain);
        List<Cert> pckCrlChain = Cert.ParsePemChain(Encoding.ASCII.GetBytes(Json.Str(root, "pck_crl_issuer_chain", W)), "PCK CRL issuer chain");
        return new TdxCollateral([tcb], qe, Crl.Parse(Json.Hex(root, "pck_crl", W), "PCK CRL"), Crl.Parse(Json.Hex(root, "root_ca_crl", W), "Root CA CRL"), pckCrlChain);
    }

    /// <summary>
    /// Loads collateral from a file or directory. A <c>.json</c> file holding <c>tcb_info</c> is read as dcap-qvl collateral.
    /// In a directory, files are recognised by name (case-insensitive): <c>*tcbinfo*</c> (any number, one per FMSPC),
    /// <c>*qeidentity*</c>, <c>*tcb_signing_chain*.pem</c> (issuer chain of both), <c>*pckcrl*</c> but not <c>*chain*</c> (DER PCK CRL) and
    /// <c>*rootcrl*</c> (DER Root CA CRL); a single <c>*collateral*.json</c> is read as dcap-qvl collateral instead.
    /// </summary>
    /// <param name="path">A directory or a dcap-qvl JSON file.</param>
    /// <returns>The parsed collateral.</returns>
    /// <exception cref="AttestationException">Nothing recognisable was found.</exception>
    public static TdxCollateral Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (File.Exists(path))
        {
            return FromDcapQvlJson(File.ReadAllBytes(path));
        }

        if (!Directory.Exists(path))
        {
            throw new AttestationException($"collateral path '{path}' is neither a file nor a directory");
        }

        string[] files = Directory.GetFiles(path);
        Array.Sort(files, StringComparer.Ordinal);
        bool Has(string f, string s) => Path.GetFileName(f).Contains(s, StringComparison.OrdinalIgnoreCase);
        string[] qvl = [.. files.Where(f => Has(f, "collateral") && f.EndsWith(".json", StringComparison.OrdinalIgnoreCase))];
        if (qvl.Length == 1)
        {
            return FromDcapQvlJson(File.ReadAllBytes(qvl[0]));
        }

        var tcbInfos = files.Where(f => Has(f, "tcbinfo")).Select(f => (ReadOnlyMemory<byte>)File.ReadAllBytes(f)).ToList();
        string? chain = files.FirstOrDefault(f => Has(f, "tcb_signing_chain") || Has(f, "tcbinfo_issuer_chain"));
        string? qe = files.FirstOrDefault(f => Has(f, "qeidentity"));
        string? pckCrl = files.FirstOrDefault(f => Has(f, "pckcrl") && !Has(f, "chain"));
        string? rootCrl = files.FirstOrDefault(f => Has(f, "rootcrl"));
        if (tcbInfos.Count == 0 && qe is null && pckCrl is null)
        {
            throw new AttestationException($"no TCB Info, QE Identity or CRL found in '{path}'");
        }

        ReadOnlyMemory<byte> Read(string? f) => f is null ? ReadOnlyMemory<byte>.Empty : File.ReadAllBytes(f);
        return FromPcsResponses(tcbInfos, Read(chain), Read(qe), ReadOnlyMemory<byte>.Empty, Read(pckCrl), Read(rootCrl));
    }

    private static byte[] SignatureOf(ReadOnlyMemory<byte> body, string what)
    {
        ReadOnlyMemory<byte> raw = Json.RawTopLevelValue(body, "signature", what);
        var reader = new Utf8JsonReader(raw.Span);
        string hex = reader.Read() && reader.TokenType == JsonTokenType.String ? reader.GetString() ?? string.Empty : string.Empty;
        try
        {
            return Convert.FromHexString(hex);
        }
        catch (FormatException e)
        {
            throw new AttestationFormatException(what, "signature", -1, "is not hex", e);
        }
    }
}
