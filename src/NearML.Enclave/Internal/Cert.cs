using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace NearML.Enclave.Internal;

/// <summary>
/// A parsed X.509 certificate with the pieces a manual chain check needs: the TBS bytes, the signature algorithm and
/// value, and the public key, created once (keys are the costly part; a cached Cert makes repeat checks cheap).
/// </summary>
internal sealed class Cert : IDisposable
{
    private Cert(byte[] der, X509Certificate2 x509, byte[] tbs, string sigAlg, HashAlgorithmName pssHash, byte[] sig)
    {
        Der = der;
        X509 = x509;
        Tbs = tbs;
        SignatureAlgorithm = sigAlg;
        PssHash = pssHash;
        SignatureValue = sig;
        Fingerprint = SHA256.HashData(der);
        Ec = x509.GetECDsaPublicKey();
        Rsa = Ec is null ? x509.GetRSAPublicKey() : null;
    }

    public byte[] Der { get; }

    public X509Certificate2 X509 { get; }

    public byte[] Tbs { get; }

    public string SignatureAlgorithm { get; }

    public HashAlgorithmName PssHash { get; }

    public byte[] SignatureValue { get; }

    public byte[] Fingerprint { get; }

    public ECDsa? Ec { get; }

    public RSA? Rsa { get; }

    public DateTimeOffset NotBefore => _notBefore ??= new(X509.NotBefore.ToUniversalTime());

    public DateTimeOffset NotAfter => _notAfter ??= new(X509.NotAfter.ToUniversalTime());

    public string Subject => X509.Subject;

    public bool IsSelfIssued => X509.SubjectName.RawData.AsSpan().SequenceEqual(X509.IssuerName.RawData);

    public static Cert Parse(byte[] der, string what)
    {
        try
        {
            var reader = new AsnReader(der, AsnEncodingRules.DER);
            AsnReader seq = reader.ReadSequence();
            reader.ThrowIfNotEmpty();
            byte[] tbs = seq.ReadEncodedValue().ToArray();
            (string alg, HashAlgorithmName pss) = ReadAlgorithm(seq);
            byte[] sig = seq.ReadBitString(out int unused);
            if (unused != 0)
            {
                throw new AsnContentException("signature bit string has unused bits");
            }

            seq.ThrowIfNotEmpty();
            var x509 = X509CertificateLoader.LoadCertificate(der);
            return new Cert(der, x509, tbs, alg, pss, sig);
        }
        catch (Exception e) when (e is AsnContentException or CryptographicException)
        {
            throw new AttestationFormatException(what, "certificate", -1, $"not a valid DER X.509 certificate: {e.Message}", e);
        }
    }

    /// <summary>Reads an AlgorithmIdentifier; for RSASSA-PSS, returns the hash from its parameters.</summary>
    public static (string Oid, HashAlgorithmName PssHash) ReadAlgorithm(AsnReader outer)
    {
        AsnReader alg = outer.ReadSequence();
        string oid = alg.ReadObjectIdentifier();
        HashAlgorithmName pss = default;
        if (oid == Oids.RsaPss && alg.HasData)
        {
            AsnReader p = alg.ReadSequence();
            pss = HashAlgorithmName.SHA1;
            if (p.HasData && p.PeekTag().HasSameClassAndValue(new Asn1Tag(TagClass.ContextSpecific, 0)))
            {
                AsnReader h = p.ReadSequence(new Asn1Tag(TagClass.ContextSpecific, 0)).ReadSequence();
                pss = HashFromOid(h.ReadObjectIdentifier());
            }
        }

        return (oid, pss);
    }

    public static HashAlgorithmName HashFromOid(string oid) => oid switch
    {
        "2.16.840.1.101.3.4.2.1" => HashAlgorithmName.SHA256,
        "2.16.840.1.101.3.4.2.2" => HashAlgorithmName.SHA384,
        "2.16.840.1.101.3.4.2.3" => HashAlgorithmName.SHA512,
        "1.3.14.3.2.26" => HashAlgorithmName.SHA1,
        _ => throw new AsnContentException($"unsupported hash algorithm {oid}"),
    };

    /// <summary>Verifies a signature made by this certificate's key over <paramref name="data"/> with the given algorithm.</summary>
    public bool VerifySignature(ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature, string algorithm, HashAlgorithmName pssHash)
    {
        try
        {
            switch (algorithm)
            {
                case Oids.EcdsaSha256 when Ec is not null:
                    return Ec.VerifyData(data, signature, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence);
                case Oids.EcdsaSha384 when Ec is not null:
                    return Ec.VerifyData(data, signature, HashAlgorithmName.SHA384, DSASignatureFormat.Rfc3279DerSequence);
                case Oids.RsaPss when Rsa is not null:
                    return Rsa.VerifyData(data, signature, pssHash, RSASignaturePadding.Pss);
                case Oids.RsaSha256 when Rsa is not null:
                    return Rsa.VerifyData(data, signature, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
                case Oids.RsaSha384 when Rsa is not null:
                    return Rsa.VerifyData(data, signature, HashAlgorithmName.SHA384, RSASignaturePadding.Pkcs1);
                default:
                    return false;
            }
        }
        catch (CryptographicException)
        {
            return false;
        }
    }

    private readonly Dictionary<Cert, bool> _signedBy = new(ReferenceEqualityComparer.Instance);

    /// <summary>
    /// Whether <paramref name="issuer"/>'s key signed this certificate and the names chain. Both certificates are immutable,
    /// so the answer is memoised per issuer: with warm caches a chain check costs no public-key operation.
    /// </summary>
    public bool IsSignedBy(Cert issuer)
    {
        lock (_signedBy)
        {
            if (_signedBy.TryGetValue(issuer, out bool known))
            {
                return known;
            }
        }

        bool ok = X509.IssuerName.RawData.AsSpan().SequenceEqual(issuer.X509.SubjectName.RawData)
            && issuer.VerifySignature(Tbs, SignatureValue, SignatureAlgorithm, PssHash);
        lock (_signedBy)
        {
            _signedBy[issuer] = ok;
        }

        return ok;
    }

    /// <summary>Whether the certificate carries basicConstraints with CA:TRUE (required of every issuer).</summary>
    public bool IsCa => _isCa ??= FindExtension("2.5.29.19") is X509BasicConstraintsExtension { CertificateAuthority: true };

    private bool? _isCa;
    private DateTimeOffset? _notBefore, _notAfter;

    public bool IsValidAt(DateTimeOffset at) => at >= NotBefore && at <= NotAfter;

    public X509Extension? FindExtension(string oid)
    {
        foreach (X509Extension e in X509.Extensions)
        {
            if (e.Oid?.Value == oid)
            {
                return e;
            }
        }

        return null;
    }

    /// <summary>Serial number as unsigned big-endian bytes with leading zeros stripped, hex.</summary>
    public string SerialHex => NormalizeSerial(X509.SerialNumberBytes.Span);

    public static string NormalizeSerial(ReadOnlySpan<byte> bigEndian)
    {
        int i = 0;
        while (i < bigEndian.Length - 1 && bigEndian[i] == 0)
        {
            i++;
        }

        return Convert.ToHexString(bigEndian[i..]);
    }

    /// <summary>Splits PEM text into certificates; strict about markers, tolerant of NUL padding and whitespace.</summary>
    public static List<Cert> ParsePemChain(ReadOnlySpan<byte> pem, string what)
    {
        const string Begin = "-----BEGIN CERTIFICATE-----";
        const string End = "-----END CERTIFICATE-----";
        string text = Encoding.ASCII.GetString(pem).TrimEnd('\0', ' ', '\r', '\n', '\t');
        var certs = new List<Cert>();
        int pos = 0;
        while (true)
        {
            int b = text.IndexOf(Begin, pos, StringComparison.Ordinal);
            if (b < 0)
            {
                string rest = text[pos..].Trim();
                if (rest.Length != 0)
                {
                    throw new AttestationFormatException(what, "pem", pos, $"unexpected text after the last certificate: \"{Truncate(rest)}\"");
                }

                break;
            }

            int e = text.IndexOf(End, b + Begin.Length, StringComparison.Ordinal);
            int nextBegin = text.IndexOf(Begin, b + Begin.Length, StringComparison.Ordinal);
            if (e < 0 || (nextBegin >= 0 && nextBegin < e))
            {
                throw new AttestationFormatException(what, "pem", b, $"certificate {certs.Count} has no END CERTIFICATE marker");
            }

            byte[] der;
            try
            {
                der = Convert.FromBase64String(text[(b + Begin.Length)..e]);
            }
            catch (FormatException fe)
            {
                throw new AttestationFormatException(what, "pem", b, $"certificate {certs.Count} is not valid base64", fe);
            }

            certs.Add(Parse(der, $"{what} certificate {certs.Count}"));
            pos = e + End.Length;
        }

        if (certs.Count == 0)
        {
            throw new AttestationFormatException(what, "pem", 0, "contains no certificate");
        }

        return certs;
    }

    private static string Truncate(string s) => s.Length > 40 ? s[..40] + "…" : s;

    public void Dispose()
    {
        Ec?.Dispose();
        Rsa?.Dispose();
        X509.Dispose();
    }
}

internal static class Oids
{
    public const string EcdsaSha256 = "1.2.840.10045.4.3.2";
    public const string EcdsaSha384 = "1.2.840.10045.4.3.3";
    public const string RsaPss = "1.2.840.113549.1.1.10";
    public const string RsaSha256 = "1.2.840.113549.1.1.11";
    public const string RsaSha384 = "1.2.840.113549.1.1.12";
    public const string SgxExtensions = "1.2.840.113741.1.13.1";
    public const string AmdBlSpl = "1.3.6.1.4.1.3704.1.3.1";
    public const string AmdTeeSpl = "1.3.6.1.4.1.3704.1.3.2";
    public const string AmdSnpSpl = "1.3.6.1.4.1.3704.1.3.3";
    public const string AmdUcodeSpl = "1.3.6.1.4.1.3704.1.3.8";
    public const string AmdFmcSpl = "1.3.6.1.4.1.3704.1.3.9";
    public const string AmdHwId = "1.3.6.1.4.1.3704.1.4";
    public const string AmdProductName = "1.3.6.1.4.1.3704.1.2";
}
