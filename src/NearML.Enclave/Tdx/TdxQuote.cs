using System.Buffers.Binary;
using NearML.Enclave.Internal;

namespace NearML.Enclave;

/// <summary>The kind of TD report carried by a TDX quote.</summary>
public enum TdxReportBodyKind
{
    /// <summary>TDX 1.0 TD report body (584 bytes), the only body of a v4 quote and body type 2 of a v5 quote.</summary>
    Td10 = 2,

    /// <summary>TDX 1.5 TD report body (648 bytes: adds TEE_TCB_SVN_2 and MRSERVICETD), body type 3 of a v5 quote.</summary>
    Td15 = 3,
}

/// <summary>
/// A parsed Intel TDX ECDSA quote, version 4 or 5 (Intel TDX DCAP Quoting Library API, appendix 3). Every field is a
/// slice of the caller's buffer: parsing copies no evidence bytes. Parsing is strict (lengths must be consistent, the
/// nested certification data must fill the signature data exactly) but bytes after the signature data are tolerated,
/// as real quotes carry them.
/// </summary>
public sealed class TdxQuote
{
    /// <summary>Length of the quote header.</summary>
    public const int HeaderLength = 48;

    /// <summary>Length of a TDX 1.0 TD report body.</summary>
    public const int Td10BodyLength = 584;

    /// <summary>Length of a TDX 1.5 TD report body.</summary>
    public const int Td15BodyLength = 648;

    /// <summary>
    /// Largest quote accepted, trailing bytes included (64 KiB). Real quotes are about 5 KB (8000 B when a driver pads
    /// them); the cap bounds the work an untrusted quote can cause before any signature is checked.
    /// </summary>
    public const int MaxLength = 64 * 1024;

    /// <summary>Attestation key type of ECDSA-256 with P-256.</summary>
    public const ushort AttestationKeyTypeEcdsaP256 = 2;

    /// <summary>TEE type of TDX.</summary>
    public const uint TeeTypeTdx = 0x81;

    /// <summary>Certification data type 5: the PCK leaf, platform CA and root CA certificates in PEM.</summary>
    public const ushort CertificationDataPckChain = 5;

    /// <summary>Certification data type 6: the QE report certification data (QE report, its signature, QE auth data, nested certification data).</summary>
    public const ushort CertificationDataQeReport = 6;

    private const string Src = "TDX quote";
    private readonly ReadOnlyMemory<byte> _raw;
    private readonly int _bodyOffset;
    private readonly int _signedLength;
    private readonly int _sigDataOffset;
    private readonly int _qeAuthOffset;
    private readonly int _qeAuthLength;
    private readonly int _pckDataOffset;
    private readonly int _pckDataLength;

    private TdxQuote(ReadOnlyMemory<byte> raw, int bodyOffset, TdxReportBodyKind kind, int signedLength, int sigDataOffset,
        int sigDataLength, int qeAuthOffset, int qeAuthLength, ushort pckType, int pckDataOffset, int pckDataLength)
    {
        _raw = raw;
        _bodyOffset = bodyOffset;
        BodyKind = kind;
        _signedLength = signedLength;
        _sigDataOffset = sigDataOffset;
        SignatureDataLength = sigDataLength;
        _qeAuthOffset = qeAuthOffset;
        _qeAuthLength = qeAuthLength;
        PckCertificationDataType = pckType;
        _pckDataOffset = pckDataOffset;
        _pckDataLength = pckDataLength;
        Body = new TdReport(raw.Slice(bodyOffset, kind == TdxReportBodyKind.Td15 ? Td15BodyLength : Td10BodyLength), kind);
        QeReport = new SgxReportBody(raw.Slice(sigDataOffset + 128 + 6, SgxReportBody.Length));
    }

    /// <summary>Parses a quote.</summary>
    /// <param name="quote">The quote bytes; the returned object keeps a reference to them (do not mutate them afterwards).</param>
    /// <returns>The parsed quote.</returns>
    /// <exception cref="AttestationFormatException">The bytes are not a well-formed TDX ECDSA quote v4/v5, or exceed <see cref="MaxLength"/>.</exception>
    public static TdxQuote Parse(ReadOnlyMemory<byte> quote)
    {
        ReadOnlySpan<byte> d = quote.Span;
        if (d.Length > MaxLength)
        {
            throw new AttestationFormatException(Src, "quote", 0, $"is {d.Length} bytes; at most {MaxLength} are accepted");
        }

        FieldReader.Require(d, 0, HeaderLength, Src, "header");
        ushort version = BinaryPrimitives.ReadUInt16LittleEndian(d);
        if (version is not (4 or 5))
        {
            throw new AttestationFormatException(Src, "header.version", 0, $"unsupported version {version} (expected 4 or 5)");
        }

        ushort akType = BinaryPrimitives.ReadUInt16LittleEndian(d[2..]);
        if (akType != AttestationKeyTypeEcdsaP256)
        {
            throw new AttestationFormatException(Src, "header.att_key_type", 2, $"unsupported attestation key type {akType} (expected 2, ECDSA-256-with-P-256)");
        }

        uint teeType = BinaryPrimitives.ReadUInt32LittleEndian(d[4..]);
        if (teeType != TeeTypeTdx)
        {
            throw new AttestationFormatException(Src, "header.tee_type", 4, $"unsupported TEE type 0x{teeType:x} (expected 0x81, TDX)");
        }

        int bodyOffset;
        TdxReportBodyKind kind;
        if (version == 4)
        {
            bodyOffset = HeaderLength;
            kind = TdxReportBodyKind.Td10;
        }
        else
        {
            ushort bodyType = FieldReader.U16(d, HeaderLength, Src, "body.type");
            uint bodySize = FieldReader.U32(d, HeaderLength + 2, Src, "body.size");
            (kind, int expected) = bodyType switch
            {
                2 => (TdxReportBodyKind.Td10, Td10BodyLength),
                3 => (TdxReportBodyKind.Td15, Td15BodyLength),
                _ => throw new AttestationFormatException(Src, "body.type", HeaderLength, $"unsupported body type {bodyType} (expected 2 = TD report 1.0 or 3 = TD report 1.5)"),
            };
            if (bodySize != expected)
            {
                throw new AttestationFormatException(Src, "body.size", HeaderLength + 2, $"is {bodySize} but body type {bodyType} is {expected} bytes");
            }

            bodyOffset = HeaderLength + 6;
        }

        int bodyLength = kind == TdxReportBodyKind.Td15 ? Td15BodyLength : Td10BodyLength;
        FieldReader.Require(d, bodyOffset, bodyLength, Src, "body");
        int signedLength = bodyOffset + bodyLength;

        uint sigLen = FieldReader.U32(d, signedLength, Src, "signature_data_len");
        int sigOff = signedLength + 4;
        if (sigLen > (uint)(d.Length - sigOff))
        {
            throw new AttestationFormatException(Src, "signature_data_len", signedLength,
                $"is {sigLen} but only {d.Length - sigOff} byte(s) follow it");
        }

        int sigEnd = sigOff + (int)sigLen;
        ReadOnlySpan<byte> sig = d[..sigEnd];
        FieldReader.Require(sig, sigOff, 128, Src, "signature_data.signature+attestation_key");
        int certOff = sigOff + 128;
        ushort certType = FieldReader.U16(sig, certOff, Src, "certification_data.type");
        if (certType != CertificationDataQeReport)
        {
            throw new AttestationFormatException(Src, "certification_data.type", certOff, $"is {certType} but a TDX ECDSA quote carries type 6 (QE report certification data)");
        }

        uint certSize = FieldReader.U32(sig, certOff + 2, Src, "certification_data.size");
        int certDataOff = certOff + 6;
        if (certSize != (uint)(sigEnd - certDataOff))
        {
            throw new AttestationFormatException(Src, "certification_data.size", certOff + 2,
                $"is {certSize} (0x{certSize:x}) but signature_data_len leaves {sigEnd - certDataOff} (0x{sigEnd - certDataOff:x}) byte(s) for it");
        }

        FieldReader.Require(sig, certDataOff, SgxReportBody.Length + 64, Src, "qe_report+qe_report_signature");
        int authLenOff = certDataOff + SgxReportBody.Length + 64;
        ushort authLen = FieldReader.U16(sig, authLenOff, Src, "qe_auth_data.size");
        FieldReader.Require(sig, authLenOff + 2, authLen, Src, "qe_auth_data");
        int innerOff = authLenOff + 2 + authLen;
        ushort innerType = FieldReader.U16(sig, innerOff, Src, "qe_certification_data.type");
        if (innerType is < 1 or > 5)
        {
            throw new AttestationFormatException(Src, "qe_certification_data.type", innerOff, $"unsupported type {innerType} (expected 1..5)");
        }

        uint innerSize = FieldReader.U32(sig, innerOff + 2, Src, "qe_certification_data.size");
        int innerDataOff = innerOff + 6;
        if (innerSize != (uint)(sigEnd - innerDataOff))
        {
            throw new AttestationFormatException(Src, "qe_certification_data.size", innerOff + 2,
                $"is {innerSize} (0x{innerSize:x}) but the enclosing certification data leaves {sigEnd - innerDataOff} byte(s) for it");
        }

        return new TdxQuote(quote, bodyOffset, kind, signedLength, sigOff, (int)sigLen, authLenOff + 2, authLen, innerType, innerDataOff, (int)innerSize);
    }

    /// <summary>Gets the whole quote as given to <see cref="Parse"/>, trailing bytes included.</summary>
    public ReadOnlyMemory<byte> Raw => _raw;

    /// <summary>Gets the quote version (4 or 5).</summary>
    public ushort Version => BinaryPrimitives.ReadUInt16LittleEndian(_raw.Span);

    /// <summary>Gets the attestation key type (always 2, ECDSA P-256).</summary>
    public ushort AttestationKeyType => BinaryPrimitives.ReadUInt16LittleEndian(_raw.Span[2..]);

    /// <summary>Gets the TEE type (always 0x81, TDX).</summary>
    public uint TeeType => BinaryPrimitives.ReadUInt32LittleEndian(_raw.Span[4..]);

    /// <summary>Gets the QE security version from the header.</summary>
    public ushort QeSvn => BinaryPrimitives.ReadUInt16LittleEndian(_raw.Span[8..]);

    /// <summary>Gets the PCE security version from the header.</summary>
    public ushort PceSvn => BinaryPrimitives.ReadUInt16LittleEndian(_raw.Span[10..]);

    /// <summary>Gets the 16-byte QE vendor id (Intel: 939a7233f79c4ca9940a0db3957f0607).</summary>
    public ReadOnlyMemory<byte> QeVendorId => _raw.Slice(12, 16);

    /// <summary>Gets the 20-byte user data of the header (the first 16 bytes are the platform instance id for Intel QEs).</summary>
    public ReadOnlyMemory<byte> UserData => _raw.Slice(28, 20);

    /// <summary>Gets which TD report body the quote carries.</summary>
    public TdxReportBodyKind BodyKind { get; }

    /// <summary>Gets the TD report body.</summary>
    public TdReport Body { get; }

    /// <summary>Gets the region the attestation key signs: the header and body (and, in v5, the body type and size).</summary>
    public ReadOnlyMemory<byte> SignedRegion => _raw[.._signedLength];

    /// <summary>Gets the declared length of the signature data.</summary>
    public int SignatureDataLength { get; }

    /// <summary>Gets the ECDSA P-256 quote signature, raw r‖s (64 bytes, big-endian integers).</summary>
    public ReadOnlyMemory<byte> Signature => _raw.Slice(_sigDataOffset, 64);

    /// <summary>Gets the attestation public key, raw x‖y (64 bytes).</summary>
    public ReadOnlyMemory<byte> AttestationKey => _raw.Slice(_sigDataOffset + 64, 64);

    /// <summary>Gets the Quoting Enclave's report (its report data binds the attestation key).</summary>
    public SgxReportBody QeReport { get; }

    /// <summary>Gets the PCK signature over the QE report, raw r‖s (64 bytes).</summary>
    public ReadOnlyMemory<byte> QeReportSignature => _raw.Slice(_sigDataOffset + 128 + 6 + SgxReportBody.Length, 64);

    /// <summary>Gets the QE authentication data.</summary>
    public ReadOnlyMemory<byte> QeAuthenticationData => _raw.Slice(_qeAuthOffset, _qeAuthLength);

    /// <summary>Gets the type of the nested certification data (5 = PCK chain in PEM).</summary>
    public ushort PckCertificationDataType { get; }

    /// <summary>Gets the nested certification data (for type 5, the PEM PCK chain; NUL padding possible).</summary>
    public ReadOnlyMemory<byte> PckCertificationData => _raw.Slice(_pckDataOffset, _pckDataLength);

    /// <summary>Gets the number of bytes after the signature data (tolerated, not interpreted).</summary>
    public int TrailingByteCount => _raw.Length - _sigDataOffset - SignatureDataLength;

    /// <summary>Gets the offset of the signature data within the quote (after the length field).</summary>
    internal int SignatureDataOffset => _sigDataOffset;
}

/// <summary>A TDX TD report body (TDX 1.0 or 1.5) as carried in a quote. Every field is a slice of the quote.</summary>
public sealed class TdReport
{
    private readonly ReadOnlyMemory<byte> _b;

    internal TdReport(ReadOnlyMemory<byte> body, TdxReportBodyKind kind)
    {
        _b = body;
        Kind = kind;
    }

    /// <summary>Gets the body kind.</summary>
    public TdxReportBodyKind Kind { get; }

    /// <summary>Gets the raw body bytes.</summary>
    public ReadOnlyMemory<byte> Raw => _b;

    /// <summary>Gets TEE_TCB_SVN (16 bytes): byte 0 the module minor SVN, byte 1 the module major version, the rest TDX TCB components.</summary>
    public ReadOnlyMemory<byte> TeeTcbSvn => _b[..16];

    /// <summary>Gets MRSEAM, the TDX module measurement (48 bytes).</summary>
    public ReadOnlyMemory<byte> MrSeam => _b.Slice(16, 48);

    /// <summary>Gets MRSIGNERSEAM (48 bytes; zero for Intel's module).</summary>
    public ReadOnlyMemory<byte> MrSignerSeam => _b.Slice(64, 48);

    /// <summary>Gets SEAMATTRIBUTES (8 bytes).</summary>
    public ReadOnlyMemory<byte> SeamAttributes => _b.Slice(112, 8);

    /// <summary>Gets TDATTRIBUTES (8 bytes).</summary>
    public ReadOnlyMemory<byte> TdAttributes => _b.Slice(120, 8);

    /// <summary>Gets XFAM (8 bytes).</summary>
    public ReadOnlyMemory<byte> Xfam => _b.Slice(128, 8);

    /// <summary>Gets MRTD, the measurement of the initial TD contents (48 bytes).</summary>
    public ReadOnlyMemory<byte> MrTd => _b.Slice(136, 48);

    /// <summary>Gets MRCONFIGID (48 bytes).</summary>
    public ReadOnlyMemory<byte> MrConfigId => _b.Slice(184, 48);

    /// <summary>Gets MROWNER (48 bytes).</summary>
    public ReadOnlyMemory<byte> MrOwner => _b.Slice(232, 48);

    /// <summary>Gets MROWNERCONFIG (48 bytes).</summary>
    public ReadOnlyMemory<byte> MrOwnerConfig => _b.Slice(280, 48);

    /// <summary>Gets the 64-byte REPORTDATA chosen by the TD.</summary>
    public ReadOnlyMemory<byte> ReportData => _b.Slice(520, 64);

    /// <summary>Gets TEE_TCB_SVN_2 (16 bytes) of a TDX 1.5 body, or empty for TDX 1.0.</summary>
    public ReadOnlyMemory<byte> TeeTcbSvn2 => Kind == TdxReportBodyKind.Td15 ? _b.Slice(584, 16) : ReadOnlyMemory<byte>.Empty;

    /// <summary>Gets MRSERVICETD (48 bytes) of a TDX 1.5 body, or empty for TDX 1.0.</summary>
    public ReadOnlyMemory<byte> MrServiceTd => Kind == TdxReportBodyKind.Td15 ? _b.Slice(600, 48) : ReadOnlyMemory<byte>.Empty;

    /// <summary>Gets a value indicating whether the TD runs in debug mode (TDATTRIBUTES bit 0): its memory is not confidential.</summary>
    public bool IsDebug => (_b.Span[120] & 1) != 0;

    /// <summary>Gets one runtime measurement register.</summary>
    /// <param name="index">0 to 3.</param>
    /// <returns>RTMR[index] (48 bytes).</returns>
    public ReadOnlyMemory<byte> Rtmr(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(index, 3);
        return _b.Slice(328 + (48 * index), 48);
    }
}

/// <summary>An SGX enclave report body (384 bytes), here the Quoting Enclave's report in a quote.</summary>
public sealed class SgxReportBody
{
    /// <summary>Length of a report body.</summary>
    public const int Length = 384;

    private readonly ReadOnlyMemory<byte> _b;

    internal SgxReportBody(ReadOnlyMemory<byte> body) => _b = body;

    /// <summary>Gets the raw 384 bytes (what the PCK key signs).</summary>
    public ReadOnlyMemory<byte> Raw => _b;

    /// <summary>Gets CPUSVN (16 bytes).</summary>
    public ReadOnlyMemory<byte> CpuSvn => _b[..16];

    /// <summary>Gets MISCSELECT.</summary>
    public uint MiscSelect => BinaryPrimitives.ReadUInt32LittleEndian(_b.Span[16..]);

    /// <summary>Gets ATTRIBUTES (16 bytes).</summary>
    public ReadOnlyMemory<byte> Attributes => _b.Slice(48, 16);

    /// <summary>Gets MRENCLAVE (32 bytes).</summary>
    public ReadOnlyMemory<byte> MrEnclave => _b.Slice(64, 32);

    /// <summary>Gets MRSIGNER (32 bytes).</summary>
    public ReadOnlyMemory<byte> MrSigner => _b.Slice(128, 32);

    /// <summary>Gets ISVPRODID.</summary>
    public ushort IsvProdId => BinaryPrimitives.ReadUInt16LittleEndian(_b.Span[256..]);

    /// <summary>Gets ISVSVN.</summary>
    public ushort IsvSvn => BinaryPrimitives.ReadUInt16LittleEndian(_b.Span[258..]);

    /// <summary>Gets the 64-byte REPORTDATA.</summary>
    public ReadOnlyMemory<byte> ReportData => _b.Slice(320, 64);
}
