using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace NearML.Core.Protocol;

/// <summary>How a worker decides that the TLS certificate it sees is its coordinator's: pinned by fingerprint, or validated by a CA.</summary>
public sealed class CoordinatorTrust
{
    private readonly byte[]? _pin;
    private readonly X509Certificate2Collection? _roots;

    private CoordinatorTrust(byte[]? pin, X509Certificate2Collection? roots)
    {
        _pin = pin;
        _roots = roots;
    }

    /// <summary>Gets a value indicating whether the certificate is pinned (rather than CA-validated).</summary>
    public bool IsPinned => _pin is not null;

    /// <summary>Trusts exactly the certificate whose SHA-256 fingerprint is <paramref name="fingerprint"/>; host name and chain are not checked.</summary>
    /// <param name="fingerprint">The fingerprint as printed by the coordinator (see <see cref="CoordinatorCertificate.GetFingerprint"/>).</param>
    /// <returns>The trust rule.</returns>
    /// <exception cref="FormatException">The fingerprint is not 64 hex digits.</exception>
    public static CoordinatorTrust Pinned(string fingerprint) => new(CoordinatorCertificate.ParseFingerprint(fingerprint), null);

    /// <summary>
    /// Trusts a certificate that chains to a trusted root and matches the host name: the system roots, or only
    /// <paramref name="customRoots"/> when given.
    /// </summary>
    /// <param name="customRoots">Roots to trust instead of the system store; <see langword="null"/> for the system store.</param>
    /// <returns>The trust rule.</returns>
    public static CoordinatorTrust CertificateAuthority(X509Certificate2Collection? customRoots = null) => new(null, customRoots);

    /// <summary>Checks a presented certificate.</summary>
    /// <param name="certificate">The coordinator's certificate.</param>
    /// <param name="chain">The chain built by the TLS stack.</param>
    /// <param name="errors">The TLS stack's findings.</param>
    /// <param name="reason">Why it was rejected.</param>
    /// <returns><see langword="true"/> if trusted.</returns>
    public bool Validate(X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors, out string reason)
    {
        if (certificate is null)
        {
            reason = "the coordinator presented no certificate";
            return false;
        }

        if (_pin is not null)
        {
            var actual = SHA256.HashData(certificate.GetRawCertData());
            if (CryptographicOperations.FixedTimeEquals(actual, _pin))
            {
                reason = string.Empty;
                return true;
            }

            reason = $"the coordinator certificate fingerprint {CoordinatorCertificate.GetFingerprint(certificate)} does not match the pinned {Convert.ToHexString(_pin)}";
            return false;
        }

        if (_roots is null)
        {
            reason = errors == SslPolicyErrors.None ? string.Empty : $"the coordinator certificate failed validation: {errors}";
            return errors == SslPolicyErrors.None;
        }

        if ((errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0)
        {
            reason = $"the coordinator certificate {certificate.Subject} does not match the host name";
            return false;
        }

        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.CustomTrustStore.AddRange(_roots);
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (chain is not null)
        {
            foreach (var element in chain.ChainElements)
            {
                custom.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }

        using var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        if (custom.Build(leaf))
        {
            reason = string.Empty;
            return true;
        }

        reason = "the coordinator certificate does not chain to a configured root: "
            + string.Join("; ", custom.ChainStatus.Select(static s => s.StatusInformation.Trim()));
        return false;
    }
}
