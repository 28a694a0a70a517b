using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using NearML.Core.Protocol.Internal;

namespace NearML.Core.Protocol;

/// <summary>The coordinator's TLS certificate: development self-signed certificates and SHA-256 fingerprints for pinning.</summary>
public static class CoordinatorCertificate
{
    /// <summary>
    /// Loads the development certificate stored at <paramref name="path"/> (PKCS#12, no password), or creates a self-signed
    /// ECDSA P-256 certificate for <c>localhost</c>, <c>127.0.0.1</c> and <c>::1</c> (plus <paramref name="hostNames"/>),
    /// valid for one year, and stores it there with owner-only permissions. Print <see cref="GetFingerprint"/> so workers can pin it.
    /// </summary>
    /// <param name="path">The PKCS#12 file.</param>
    /// <param name="hostNames">Extra DNS names or IP addresses to include (used only when creating).</param>
    /// <param name="timeProvider">Clock for the validity period; <see langword="null"/> for the system clock.</param>
    /// <returns>The certificate with its private key.</returns>
    /// <exception cref="InvalidDataFormatException">The file exists but is not a PKCS#12 certificate with a private key.</exception>
    public static X509Certificate2 LoadOrCreateDevelopment(string path, IEnumerable<string>? hostNames = null, TimeProvider? timeProvider = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
        {
            using var created = CreateDevelopment(hostNames, timeProvider);
            try
            {
                var full = Path.GetFullPath(path);
                Directory.CreateDirectory(Path.GetDirectoryName(full)!);
                SecureFile.WriteNew(full, created.Export(X509ContentType.Pkcs12));
            }
            catch (IOException) when (File.Exists(path))
            {
                // Created concurrently by another process: load theirs below.
            }
        }

        X509Certificate2 certificate;
        try
        {
            certificate = X509CertificateLoader.LoadPkcs12FromFile(path, password: null);
        }
        catch (CryptographicException ex)
        {
            throw new InvalidDataFormatException(path, -1, $"not a PKCS#12 certificate without password: {ex.Message}", ex);
        }

        if (!certificate.HasPrivateKey)
        {
            certificate.Dispose();
            throw new InvalidDataFormatException(path, -1, "the certificate has no private key");
        }

        return certificate;
    }

    /// <summary>Creates a self-signed ECDSA P-256 server certificate in memory (see <see cref="LoadOrCreateDevelopment"/>).</summary>
    /// <param name="hostNames">Extra DNS names or IP addresses.</param>
    /// <param name="timeProvider">Clock for the validity period.</param>
    /// <returns>The certificate with its private key.</returns>
    public static X509Certificate2 CreateDevelopment(IEnumerable<string>? hostNames = null, TimeProvider? timeProvider = null)
    {
        var now = (timeProvider ?? TimeProvider.System).GetUtcNow();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=NearML development coordinator", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        san.AddIpAddress(IPAddress.Loopback);
        san.AddIpAddress(IPAddress.IPv6Loopback);
        foreach (var name in hostNames ?? [])
        {
            if (IPAddress.TryParse(name, out var ip))
            {
                san.AddIpAddress(ip);
            }
            else
            {
                san.AddDnsName(name);
            }
        }

        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        return request.CreateSelfSigned(now.AddMinutes(-5), now.AddYears(1));
    }

    /// <summary>Gets the SHA-256 fingerprint of a certificate's DER encoding as colon-separated upper-case hex (as printed by <c>openssl x509 -fingerprint -sha256</c>).</summary>
    /// <param name="certificate">The certificate.</param>
    /// <returns>The fingerprint, e.g. <c>AB:CD:…</c> (95 characters).</returns>
    public static string GetFingerprint(X509Certificate certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        return string.Join(':', SHA256.HashData(certificate.GetRawCertData()).Select(static b => b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture)));
    }

    /// <summary>Parses a SHA-256 fingerprint written with or without colons or spaces, in either case, optionally prefixed by <c>sha256:</c>.</summary>
    /// <param name="fingerprint">The text.</param>
    /// <returns>The 32 bytes.</returns>
    /// <exception cref="FormatException">The text is not 64 hex digits.</exception>
    public static byte[] ParseFingerprint(string fingerprint)
    {
        ArgumentNullException.ThrowIfNull(fingerprint);
        var text = fingerprint.Trim();
        if (text.StartsWith("sha256:", StringComparison.OrdinalIgnoreCase))
        {
            text = text[7..];
        }

        text = text.Replace(":", string.Empty, StringComparison.Ordinal).Replace(" ", string.Empty, StringComparison.Ordinal);
        if (text.Length != 64 || !text.All(Uri.IsHexDigit))
        {
            throw new FormatException($"'{fingerprint}' is not a SHA-256 fingerprint (64 hex digits, colons optional).");
        }

        return Convert.FromHexString(text);
    }
}
