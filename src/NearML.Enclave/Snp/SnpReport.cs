using System.Buffers.Binary;
using NearML.Enclave.Internal;

namespace NearML.Enclave;

/// <summary>The AMD EPYC generation an SEV-SNP report or certificate belongs to; it decides the TCB_VERSION layout and the ARK to pin.</summary>
public enum SnpProduct
{
    /// <summary>Unknown or not yet determined.</summary>
    Unknown = 0,

    /// <summary>3rd generation EPYC (Milan).</summary>
    Milan,

    /// <summary>4th generation EPYC (Genoa).</summary>
    Genoa,

    /// <summary>5th generation EPYC (Turin): TCB_VERSION adds an FMC SPL and moves the other fields.</summary>
    Turin,
}

/// <summary>Which key signed an SEV-SNP report (the SIGNING_KEY field of the report flags).</summary>
public enum SnpSigningKey
{
    /// <summary>The Versioned Chip Endorsement Key.</summary>
    Vcek = 0,

    /// <summary>The Versioned Loaded Endorsement Key.</summary>
    Vlek = 1,

    /// <summary>No key: the report is unsigned.</summary>
    None = 7,
}

/// <summary>An SEV-SNP TCB_VERSION decoded for a given product.</summary>
/// <param name="Fmc">FMC SPL (Turin only, else 0).</param>
/// <param name="Bootloader">Boot loader SPL.</param>
/// <param name="Tee">PSP OS (TEE) SPL.</param>
/// <param name="Snp">SNP firmware SPL.</param>
/// <param name="Microcode">Microcode SPL.</param>
public readonly record struct SnpTcbVersion(byte Fmc, byte Bootloader, byte Tee, byte Snp, byte Microcode)
{
    /// <summary>Decodes a raw TCB_VERSION.</summary>
    /// <param name="raw">The 64-bit little-endian value from the report.</param>
    /// <param name="product">The product; Turin uses fmc/bl/tee/snp/…/ucode, earlier ones bl/tee/…/snp/ucode.</param>
    /// <returns>The decoded version.</returns>
    public static SnpTcbVersion Decode(ulong raw, SnpProduct product)
    {
        byte B(int i) => (byte)(raw >> (8 * i));
        return product == SnpProduct.Turin
            ? new SnpTcbVersion(B(0), B(1), B(2), B(3), B(7))
            : new SnpTcbVersion(0, B(0), B(1), B(6), B(7));
    }

    /// <inheritdoc />
    public override string ToString() => $"fmc={Fmc} bl={Bootloader} tee={Tee} snp={Snp} ucode={Microcode}";
}

/// <summary>A parsed SEV-SNP ATTESTATION_REPORT (AMD SEV-SNP ABI spec, table 22; versions 2 to 5). Fields are slices of the caller's buffer.</summary>
public sealed class SnpReport
{
    /// <summary>Length of a report including its signature.</summary>
    public const int Length = 0x4A0;

    /// <summary>Offset of the signature; the signed region is [0, SignatureOffset).</summary>
    public const int SignatureOffset = 0x2A0;

    private const string Src = "SEV-SNP report";
    private readonly ReadOnlyMemory<byte> _raw;

    private SnpReport(ReadOnlyMemory<byte> raw) => _raw = raw;

    /// <summary>Parses a report.</summary>
    /// <param name="report">Exactly 1184 bytes (0x4A0), the size of the ATTESTATION_REPORT structure: bytes appended to it are refused, not ignored.</param>
    /// <returns>The parsed report.</returns>
    /// <exception cref="AttestationFormatException">The report is truncated or longer than the structure, of an unsupported version or signature algorithm, or has inconsistent fields.</exception>
    public static SnpReport Parse(ReadOnlyMemory<byte> report)
    {
        ReadOnlySpan<byte> d = report.Span;
        FieldReader.Require(d, 0, Length, Src, "report");
        if (d.Length != Length)
        {
            throw new AttestationFormatException(Src, "report", Length, $"is {d.Length} bytes but an ATTESTATION_REPORT is exactly {Length} (0x{Length:X}): {d.Length - Length} byte(s) follow it");
        }

        uint version = BinaryPrimitives.ReadUInt32LittleEndian(d);
        if (version is < 2 or > 5)
        {
            throw new AttestationFormatException(Src, "VERSION", 0, $"unsupported version {version} (expected 2..5)");
        }

        uint vmpl = BinaryPrimitives.ReadUInt32LittleEndian(d[0x30..]);
        if (vmpl > 3)
        {
            throw new AttestationFormatException(Src, "VMPL", 0x30, $"is {vmpl} (expected 0..3)");
        }

        uint algo = BinaryPrimitives.ReadUInt32LittleEndian(d[0x34..]);
        if (algo != 1)
        {
            throw new AttestationFormatException(Src, "SIGNATURE_ALGO", 0x34, $"is {algo} (expected 1, ECDSA P-384 with SHA-384)");
        }

        ulong policy = BinaryPrimitives.ReadUInt64LittleEndian(d[0x08..]);
        if ((policy & (1UL << 17)) == 0)
        {
            throw new AttestationFormatException(Src, "POLICY", 0x08, $"0x{policy:x}: reserved bit 17 must be 1");
        }

        uint signingKey = (BinaryPrimitives.ReadUInt32LittleEndian(d[0x48..]) >> 2) & 7;
        if (signingKey is not (0 or 1 or 7))
        {
            throw new AttestationFormatException(Src, "SIGNING_KEY", 0x48, $"is {signingKey} (expected 0 = VCEK, 1 = VLEK or 7 = none)");
        }

        return new SnpReport(report);
    }

    private ReadOnlySpan<byte> S => _raw.Span;

    /// <summary>Gets the whole report as given to <see cref="Parse"/>.</summary>
    public ReadOnlyMemory<byte> Raw => _raw;

    /// <summary>Gets the report version.</summary>
    public uint Version => BinaryPrimitives.ReadUInt32LittleEndian(S);

    /// <summary>Gets the guest SVN.</summary>
    public uint GuestSvn => BinaryPrimitives.ReadUInt32LittleEndian(S[0x04..]);

    /// <summary>Gets the raw guest policy.</summary>
    public ulong Policy => BinaryPrimitives.ReadUInt64LittleEndian(S[0x08..]);

    /// <summary>Gets a value indicating whether simultaneous multithreading is allowed (policy bit 16).</summary>
    public bool PolicySmtAllowed => (Policy & (1UL << 16)) != 0;

    /// <summary>Gets a value indicating whether a migration agent may be associated (policy bit 18).</summary>
    public bool PolicyMigrationAgentAllowed => (Policy & (1UL << 18)) != 0;

    /// <summary>Gets a value indicating whether debugging is allowed (policy bit 19): the guest's memory is then not confidential.</summary>
    public bool PolicyDebugAllowed => (Policy & (1UL << 19)) != 0;

    /// <summary>Gets a value indicating whether the guest may only run on one socket (policy bit 20).</summary>
    public bool PolicySingleSocket => (Policy & (1UL << 20)) != 0;

    /// <summary>Gets the 16-byte family id.</summary>
    public ReadOnlyMemory<byte> FamilyId => _raw.Slice(0x10, 16);

    /// <summary>Gets the 16-byte image id.</summary>
    public ReadOnlyMemory<byte> ImageId => _raw.Slice(0x20, 16);

    /// <summary>Gets the VMPL the report was requested from.</summary>
    public uint Vmpl => BinaryPrimitives.ReadUInt32LittleEndian(S[0x30..]);

    /// <summary>Gets the signature algorithm (1 = ECDSA P-384 with SHA-384).</summary>
    public uint SignatureAlgorithm => BinaryPrimitives.ReadUInt32LittleEndian(S[0x34..]);

    /// <summary>Gets the raw CURRENT_TCB.</summary>
    public ulong CurrentTcb => BinaryPrimitives.ReadUInt64LittleEndian(S[0x38..]);

    /// <summary>Gets PLATFORM_INFO (bit 0: SMT enabled, bit 1: TSME enabled).</summary>
    public ulong PlatformInfo => BinaryPrimitives.ReadUInt64LittleEndian(S[0x40..]);

    /// <summary>Gets which key signed the report.</summary>
    public SnpSigningKey SigningKey => (SnpSigningKey)((BinaryPrimitives.ReadUInt32LittleEndian(S[0x48..]) >> 2) & 7);

    /// <summary>Gets a value indicating whether CHIP_ID is masked (zero) in this report.</summary>
    public bool MaskChipKey => (S[0x48] & 2) != 0;

    /// <summary>Gets the 64-byte REPORT_DATA chosen by the guest.</summary>
    public ReadOnlyMemory<byte> ReportData => _raw.Slice(0x50, 64);

    /// <summary>Gets the 48-byte launch MEASUREMENT.</summary>
    public ReadOnlyMemory<byte> Measurement => _raw.Slice(0x90, 48);

    /// <summary>Gets the 32-byte HOST_DATA.</summary>
    public ReadOnlyMemory<byte> HostData => _raw.Slice(0xC0, 32);

    /// <summary>Gets the 48-byte ID_KEY_DIGEST.</summary>
    public ReadOnlyMemory<byte> IdKeyDigest => _raw.Slice(0xE0, 48);

    /// <summary>Gets the 48-byte AUTHOR_KEY_DIGEST.</summary>
    public ReadOnlyMemory<byte> AuthorKeyDigest => _raw.Slice(0x110, 48);

    /// <summary>Gets the 32-byte REPORT_ID.</summary>
    public ReadOnlyMemory<byte> ReportId => _raw.Slice(0x140, 32);

    /// <summary>Gets the raw REPORTED_TCB (the TCB the VCEK is derived from).</summary>
    public ulong ReportedTcb => BinaryPrimitives.ReadUInt64LittleEndian(S[0x180..]);

    /// <summary>Gets the CPUID family (version 3 and later; 0 before).</summary>
    public byte CpuidFamily => Version >= 3 ? S[0x188] : (byte)0;

    /// <summary>Gets the CPUID model (version 3 and later; 0 before).</summary>
    public byte CpuidModel => Version >= 3 ? S[0x189] : (byte)0;

    /// <summary>Gets the 64-byte CHIP_ID.</summary>
    public ReadOnlyMemory<byte> ChipId => _raw.Slice(0x1A0, 64);

    /// <summary>Gets the raw COMMITTED_TCB.</summary>
    public ulong CommittedTcb => BinaryPrimitives.ReadUInt64LittleEndian(S[0x1E0..]);

    /// <summary>Gets the current firmware version as major.minor.build.</summary>
    public Version CurrentFirmware => new(S[0x1EA], S[0x1E9], S[0x1E8]);

    /// <summary>Gets the raw LAUNCH_TCB.</summary>
    public ulong LaunchTcb => BinaryPrimitives.ReadUInt64LittleEndian(S[0x1F0..]);

    /// <summary>Gets the signed region [0, 0x2A0).</summary>
    public ReadOnlyMemory<byte> SignedRegion => _raw[..SignatureOffset];

    /// <summary>Gets the signature's R component (72 bytes, little-endian, zero-extended).</summary>
    public ReadOnlyMemory<byte> SignatureR => _raw.Slice(SignatureOffset, 72);

    /// <summary>Gets the signature's S component (72 bytes, little-endian, zero-extended).</summary>
    public ReadOnlyMemory<byte> SignatureS => _raw.Slice(SignatureOffset + 72, 72);

    /// <summary>Gets the product implied by the CPUID fields (report version 3 and later), or <see cref="SnpProduct.Unknown"/>.</summary>
    public SnpProduct ProductFromCpuid => (CpuidFamily, CpuidModel) switch
    {
        (0x19, < 0x10) => SnpProduct.Milan,
        (0x19, >= 0x10 and < 0x20) or (0x19, >= 0xA0 and < 0xB0) => SnpProduct.Genoa,
        (0x1A, _) => SnpProduct.Turin,
        _ => SnpProduct.Unknown,
    };
}
