using System.Security.Cryptography;
using Microsoft.Extensions.Logging;

namespace NearML.Enclave;

/// <summary>
/// INSECURE, development only: produces NearML's own simulated evidence (<c>NMLSIM01</c>: magic ‖ measurement[48] ‖
/// report data[64] ‖ P-256 public key[64] ‖ signature[64]) signed by a key generated in this process. It proves nothing
/// about the machine; <see cref="AttestationPolicy"/> refuses it unless <see cref="AttestationPolicy.AllowSimulated"/> is
/// set, and every use logs a warning.
/// </summary>
public sealed partial class InsecureSimulatedAttestationProvider : IAttestationProvider, IDisposable
{
    private readonly ECDsa _key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly byte[] _measurement;
    private readonly ILogger _logger;

    /// <summary>Initializes a provider.</summary>
    /// <param name="logger">Receives a warning on every use (required: the insecurity must be visible).</param>
    /// <param name="measurement">The 48-byte "measurement" to report, or <see langword="null"/> for SHA-384("nearml-simulated").</param>
    public InsecureSimulatedAttestationProvider(ILogger<InsecureSimulatedAttestationProvider> logger, ReadOnlyMemory<byte>? measurement = null)
    {
        ArgumentNullException.ThrowIfNull(logger);
        _logger = logger;
        if (measurement is { Length: not 48 })
        {
            throw new ArgumentException("the measurement must be 48 bytes", nameof(measurement));
        }

        _measurement = measurement?.ToArray() ?? SHA384.HashData("nearml-simulated"u8);
    }

    /// <inheritdoc />
    public string Name => "insecure-simulated";

    /// <inheritdoc />
    public Task<AttestationEvidence> GetEvidenceAsync(ReadOnlyMemory<byte> reportData, CancellationToken cancellationToken = default)
    {
        if (reportData.Length != AttestationBinding.ReportDataLength)
        {
            throw new ArgumentException($"report data must be {AttestationBinding.ReportDataLength} bytes, got {reportData.Length}", nameof(reportData));
        }

        cancellationToken.ThrowIfCancellationRequested();
        LogInsecureEvidence(_logger);
        byte[] e = new byte[InsecureSimulatedEvidence.Length];
        InsecureSimulatedEvidence.Magic.CopyTo(e);
        _measurement.CopyTo(e.AsSpan(8));
        reportData.Span.CopyTo(e.AsSpan(56));
        ECParameters p = _key.ExportParameters(false);
        p.Q.X!.CopyTo(e.AsSpan(120));
        p.Q.Y!.CopyTo(e.AsSpan(152));
        _key.SignData(e.AsSpan(0, 184), e.AsSpan(184), HashAlgorithmName.SHA256);
        return Task.FromResult(new AttestationEvidence(AttestationVendor.InsecureSimulated, e, ReadOnlyMemory<byte>.Empty, Name));
    }

    /// <inheritdoc />
    public void Dispose() => _key.Dispose();

    [LoggerMessage(EventId = 5103, EventName = "InsecureSimulatedEvidence", Level = LogLevel.Warning,
        Message = "INSECURE simulated attestation evidence produced: it proves nothing about this machine; never use it in production")]
    private static partial void LogInsecureEvidence(ILogger logger);
}

/// <summary>Parses and self-checks <see cref="InsecureSimulatedAttestationProvider"/> evidence. Only integrity is checked: there is no root of trust.</summary>
public static class InsecureSimulatedEvidence
{
    /// <summary>Length of simulated evidence.</summary>
    public const int Length = 248;

    internal static ReadOnlySpan<byte> Magic => "NMLSIM01"u8;

    /// <summary>Turns simulated evidence into claims (vendor <see cref="AttestationVendor.InsecureSimulated"/>, TCB status Unknown).</summary>
    /// <param name="evidence">The evidence bytes.</param>
    /// <returns>The claims.</returns>
    /// <exception cref="AttestationFormatException">The bytes are not simulated evidence.</exception>
    public static AttestationClaims ToClaims(ReadOnlyMemory<byte> evidence)
    {
        ReadOnlySpan<byte> d = evidence.Span;
        if (d.Length != Length)
        {
            throw new AttestationFormatException("simulated evidence", "length", 0, $"is {d.Length}, expected {Length}");
        }

        if (!d[..8].SequenceEqual(Magic))
        {
            throw new AttestationFormatException("simulated evidence", "magic", 0, "is not NMLSIM01");
        }

        bool ok;
        try
        {
            using var key = ECDsa.Create(new ECParameters { Curve = ECCurve.NamedCurves.nistP256, Q = new ECPoint { X = d.Slice(120, 32).ToArray(), Y = d.Slice(152, 32).ToArray() } });
            ok = key.VerifyData(d[..184], d[184..], HashAlgorithmName.SHA256);
        }
        catch (CryptographicException)
        {
            ok = false;
        }

        return new AttestationClaims
        {
            Vendor = AttestationVendor.InsecureSimulated,
            VerificationChecks = [new AttestationCheck("simulated.self-signature", ok, ok ? "self-signature verifies (integrity only, no root of trust)" : "self-signature does not verify")],
            Authentic = ok,
            TcbStatus = TcbStatus.Unknown,
            ReportData = evidence.Slice(56, 64),
            Measurement = evidence.Slice(8, 48),
            Debug = false,
        };
    }
}
