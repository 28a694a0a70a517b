using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace NearML.Enclave.Internal;

/// <summary>
/// A parsed X.509 certificate with the pieces a manual chain check needs: the TBS bytes, the signature algorithm and
/// value, and the public key, created once (keys are the costly part; a cached Cert makes repeat checks cheap).
/// Every field a verifier reads is decoded while parsing, so a malformed certificate fails here with an
/// <see cref="AttestationFormatException"/> and never later with a <see cref="CryptographicException"/> from a lazy
/// property. Parsed certificates are shared through a bounded cache keyed by their SHA-256, so a chain that repeats
/// across quotes (or a mutated chain whose other certificates are unchanged) is parsed and its links verified once.
/// </summary>
internal sealed class Cert
{
    /// <summary>Largest DER certificate accepted (Intel PCK and AMD VCEK/ASK/ARK certificates are 0.6–1.7 KiB).</summary>
    public const int MaxDerLength = 8 * 1024;

    /// <summary>Largest PEM chain accepted (the PCK chain in a quote is about 3.8 KiB).</summary>
    public const int MaxPemLength = 16 * 1024;

    /// <summary>Most certificates accepted in one PEM chain (Intel: leaf, platform/processor CA, root; AMD: ASK, ARK).</summary>
    public const int MaxChainLength = 4;

    private const int CacheCapacity = 512;
    private static readonly Dictionary<string, Cert> Cache = new(StringComparer.Ordinal);
    private static readonly Lock CacheLock = new();

    private readonly X509Extension[] _extensions;
    private readonly Lazy<(ECDsa? Ec, RSA? Rsa)> _keys;

    private Cert(byte[] der, byte[] fingerprint, X509Certificate2 x509, byte[] tbs, string sigAlg, HashAlgorithmName pssHash, byte[] sig)
    {
        Der = der;
        X509 = x509;
        Tbs = tbs;
        SignatureAlgorithm = sigAlg;
        PssHash = pssHash;
        SignatureValue = sig;
        Fingerprint = fingerprint;

        // Everything below decodes lazily inside X509Certificate2 and throws CryptographicException on malformed input:
        // read it now, inside Parse's try, so a bad certificate is a format error at parse time.
        Subject = x509.Subject;
        SubjectRaw = x509.SubjectName.RawData;
        IssuerRaw = x509.IssuerName.RawData;
        NotBefore = new DateTimeOffset(x509.NotBefore.ToUniversalTime());
        NotAfter = new DateTimeOffset(x509.NotAfter.ToUniversalTime());
        SerialHex = NormalizeSerial(x509.SerialNumberBytes.Span);
        var extensions = new List<X509Extension>();
        foreach (X509Extension e in x509.Extensions)
        {
            if (e is X509BasicConstraintsExtension bc)
            {
                IsCa = bc.CertificateAuthority;
                _ = bc.HasPathLengthConstraint;
            }

            extensions.Add(e);
        }

        _extensions = [.. extensions];

        // Importing the public key validates it (for EC, that the point is on the curve) and costs about as much as a
        // signature verification: it is done on first use, so a certificate under an untrusted issuer (a tampered chain)
        // never pays for it. A key that does not import is no key: every signature check with it fails.
        _keys = new Lazy<(ECDsa? Ec, RSA? Rsa)>(() =>
        {
            try
            {
                ECDsa? ec = x509.GetECDsaPublicKey();
                return (ec, ec is null ? x509.GetRSAPublicKey() : null);
            }
            catch (CryptographicException)
            {
                return (null, null);
            }
        }, LazyThreadSafetyMode.ExecutionAndPublication);
    }

    public byte[] Der { get; }

    public X509Certificate2 X509 { get; }

    public byte[] Tbs { get; }

    public string SignatureAlgorithm { get; }

    public HashAlgorithmName PssHash { get; }

    public byte[] SignatureValue { get; }

    public byte[] Fingerprint { get; }

    public ECDsa? Ec => _keys.Value.Ec;

    public RSA? Rsa => _keys.Value.Rsa;

    public DateTimeOffset NotBefore { get; }

    public DateTimeOffset NotAfter { get; }

    public string Subject { get; }

    public byte[] SubjectRaw { get; }

    public byte[] IssuerRaw { get; }

    /// <summary>Gets a value indicating whether the certificate carries basicConstraints with CA:TRUE (required of every issuer).</summary>
    public bool IsCa { get; }

    /// <summary>Gets the serial number as unsigned big-endian bytes with leading zeros stripped, hex.</summary>
    public string SerialHex { get; }

    public bool IsSelfIssued => SubjectRaw.AsSpan().SequenceEqual(IssuerRaw);

    /// <summary>Parses a DER certificate (or returns the cached instance for the same bytes).</summary>
    /// <exception cref="AttestationFormatException">The bytes are not a well-formed certificate NearML can use.</exception>
    public static Cert Parse(byte[] der, string what)
    {
        ArgumentNullException.ThrowIfNull(der);
        if (der.Length > MaxDerLength)
        {
            throw new AttestationFormatException(what, "certificate", -1, $"is {der.Length} bytes; at most {MaxDerLength} are accepted");
        }

        byte[] fingerprint = SHA256.HashData(der);
        string key = Convert.ToHexString(fingerprint);
        lock (CacheLock)
        {
            if (Cache.TryGetValue(key, out Cert? hit))
            {
                return hit;
            }
        }

        Cert cert = ParseUncached(der, fingerprint, what);
        lock (CacheLock)
        {
            if (Cache.TryGetValue(key, out Cert? raced))
            {
                return raced;
            }

            if (Cache.Count >= CacheCapacity)
            {
                Cache.Clear(); // evicted certificates are left to the GC: another thread may still be using one
            }

            Cache[key] = cert;
        }

        return cert;
    }

    private static Cert ParseUncached(byte[] der, byte[] fingerprint, string what)
    {
        try
        {
            var reader = new AsnReader(der, AsnEncodingRules.DER);
            AsnReader seq = reader.ReadSequence();
            reader.ThrowIfNotEmpty();
            byte[] tbs = seq.ReadEncodedValue().ToArray();
            ReadOnlyMemory<byte> outerAlg = seq.PeekEncodedValue();
            (string alg, HashAlgorithmName pss) = ReadAlgorithm(seq);
            byte[] sig = seq.ReadBitString(out int unused);
            if (unused != 0)
            {
                throw new AsnContentException("signature bit string has unused bits");
            }

            seq.ThrowIfNotEmpty();

            // RFC 5280 §4.1.1.2: signatureAlgorithm MUST equal the signature field of the (signed) TBSCertificate.
            // The outer one is not covered by the signature; a verifier that trusted it could be steered to another algorithm.
            AsnReader t = new AsnReader(tbs, AsnEncodingRules.DER).ReadSequence();
            if (t.PeekTag().HasSameClassAndValue(new Asn1Tag(TagClass.ContextSpecific, 0, true)))
            {
                t.ReadEncodedValue(); // version
            }

            t.ReadIntegerBytes(); // serialNumber
            if (!t.PeekEncodedValue().Span.SequenceEqual(outerAlg.Span))
            {
                throw new AttestationFormatException(what, "signatureAlgorithm", -1,
                    "the certificate's signatureAlgorithm differs from the signature algorithm inside the signed TBSCertificate (RFC 5280 §4.1.1.2)");
            }

            var x509 = X509CertificateLoader.LoadCertificate(der);
            return new Cert(der, fingerprint, x509, tbs, alg, pss, sig);
        }
        catch (Exception e) when (e is AsnContentException or CryptographicException or ArgumentException or FormatException or OverflowException or InvalidOperationException)
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
        // Certificates are shared between threads through the cache; every user of a key locks on it.
        object gate = (object?)Ec ?? (object?)Rsa ?? this;
        lock (gate)
        {
            return VerifySignatureLocked(data, signature, algorithm, pssHash);
        }
    }

    private bool VerifySignatureLocked(ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature, string algorithm, HashAlgorithmName pssHash)
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

    /// <summary>
    /// Whether <paramref name="issuer"/>'s key signed this certificate and the names chain. Both certificates are immutable,
    /// so the answer is memoised (<see cref="VerificationMemo"/>): with warm caches a chain check costs no public-key operation.
    /// </summary>
    public bool IsSignedBy(Cert issuer)
    {
        if (!IssuerRaw.AsSpan().SequenceEqual(issuer.SubjectRaw))
        {
            return false;
        }

        UInt128 key = VerificationMemo.Key(issuer.Fingerprint, SignatureAlgorithm + PssHash.Name, Tbs, SignatureValue);
        return VerificationMemo.TryGet(key, out bool known)
            ? known
            : VerificationMemo.Remember(key, issuer.VerifySignature(Tbs, SignatureValue, SignatureAlgorithm, PssHash));
    }

    public bool IsValidAt(DateTimeOffset at) => at >= NotBefore && at <= NotAfter;

    public X509Extension? FindExtension(string oid)
    {
        foreach (X509Extension e in _extensions)
        {
            if (e.Oid?.Value == oid)
            {
                return e;
            }
        }

        return null;
    }

    public static string NormalizeSerial(ReadOnlySpan<byte> bigEndian)
    {
        int i = 0;
        while (i < bigEndian.Length - 1 && bigEndian[i] == 0)
        {
            i++;
        }

        return Convert.ToHexString(bigEndian[i..]);
    }

    /// <summary>
    /// Splits a PEM chain into certificates, strictly (RFC 7468 §3 "strict" form): the text is one or more blocks of exactly
    /// <c>-----BEGIN CERTIFICATE-----</c>, a line break, base64 lines (the base64 alphabet only, canonical padding), and
    /// <c>-----END CERTIFICATE-----</c>, separated by single line breaks (LF or CRLF). Nothing may precede the first block;
    /// after the last one only a line break and NUL padding (quotes NUL-terminate their PEM) are allowed.
    /// At most <see cref="MaxPemLength"/> bytes and <see cref="MaxChainLength"/> certificates.
    /// </summary>
    /// <exception cref="AttestationFormatException">The text is not such a chain, or a certificate in it is malformed.</exception>
    public static List<Cert> ParsePemChain(ReadOnlySpan<byte> pem, string what)
    {
        ReadOnlySpan<byte> begin = "-----BEGIN CERTIFICATE-----"u8;
        ReadOnlySpan<byte> end = "-----END CERTIFICATE-----"u8;
        int length = pem.Length;
        while (length > 0 && pem[length - 1] == 0)
        {
            length--;
        }

        if (length > MaxPemLength)
        {
            throw new AttestationFormatException(what, "pem", 0, $"is {length} bytes; at most {MaxPemLength} are accepted");
        }

        ReadOnlySpan<byte> text = pem[..length];
        var certs = new List<Cert>();
        int pos = 0;
        do
        {
            if (!text[pos..].StartsWith(begin))
            {
                throw new AttestationFormatException(what, "pem", pos, certs.Count == 0
                    ? $"does not start with \"-----BEGIN CERTIFICATE-----\": \"{Excerpt(text, pos)}\""
                    : $"expected \"-----BEGIN CERTIFICATE-----\" or the end after certificate {certs.Count - 1}, found \"{Excerpt(text, pos)}\"");
            }

            if (certs.Count == MaxChainLength)
            {
                throw new AttestationFormatException(what, "pem", pos, $"holds more than {MaxChainLength} certificates");
            }

            pos += begin.Length;
            pos = LineBreak(text, pos, what, "after -----BEGIN CERTIFICATE-----");
            int e = text[pos..].IndexOf(end);
            if (e < 0)
            {
                throw new AttestationFormatException(what, "pem", pos, $"certificate {certs.Count} has no -----END CERTIFICATE----- line");
            }

            byte[] der = DecodeBase64Lines(text.Slice(pos, e), pos, what, certs.Count);
            certs.Add(Parse(der, $"{what} certificate {certs.Count}"));
            pos += e + end.Length;
            if (pos < text.Length)
            {
                pos = LineBreak(text, pos, what, "after -----END CERTIFICATE-----");
            }
        }
        while (pos < text.Length);

        return certs;
    }

    private static int LineBreak(ReadOnlySpan<byte> text, int pos, string what, string where)
    {
        if (pos < text.Length && text[pos] == (byte)'\n')
        {
            return pos + 1;
        }

        if (pos + 1 < text.Length && text[pos] == (byte)'\r' && text[pos + 1] == (byte)'\n')
        {
            return pos + 2;
        }

        throw new AttestationFormatException(what, "pem", pos, $"expected a line break {where}, found \"{Excerpt(text, pos)}\"");
    }

    /// <summary>Decodes base64 lines (each ending in LF or CRLF); rejects any other byte and non-canonical encodings.</summary>
    private static byte[] DecodeBase64Lines(ReadOnlySpan<byte> body, int offset, string what, int index)
    {
        var chars = new char[body.Length];
        int n = 0;
        bool lineOpen = false;
        for (int i = 0; i < body.Length; i++)
        {
            byte b = body[i];
            if (b is (>= (byte)'A' and <= (byte)'Z') or (>= (byte)'a' and <= (byte)'z') or (>= (byte)'0' and <= (byte)'9') or (byte)'+' or (byte)'/' or (byte)'=')
            {
                chars[n++] = (char)b;
                lineOpen = true;
            }
            else if (b == (byte)'\n' || (b == (byte)'\r' && i + 1 < body.Length && body[i + 1] == (byte)'\n'))
            {
                lineOpen = b == (byte)'\r' && lineOpen;
            }
            else
            {
                throw new AttestationFormatException(what, "pem", offset + i, $"certificate {index}: byte 0x{b:x2} is not base64 or a line break");
            }
        }

        if (lineOpen || n == 0)
        {
            throw new AttestationFormatException(what, "pem", offset + body.Length, $"certificate {index}: {(n == 0 ? "no base64 content" : "-----END CERTIFICATE----- does not start a line")}");
        }

        byte[] der;
        try
        {
            der = Convert.FromBase64CharArray(chars, 0, n);
        }
        catch (FormatException fe)
        {
            throw new AttestationFormatException(what, "pem", offset, $"certificate {index} is not valid base64", fe);
        }

        // Canonical form only: the padding bits must be zero, so exactly one text encodes each certificate.
        if (!Convert.ToBase64String(der).AsSpan().SequenceEqual(chars.AsSpan(0, n)))
        {
            throw new AttestationFormatException(what, "pem", offset, $"certificate {index} is not canonical base64 (non-zero padding bits)");
        }

        return der;
    }

    private static string Excerpt(ReadOnlySpan<byte> text, int pos)
    {
        ReadOnlySpan<byte> rest = text[Math.Min(pos, text.Length)..];
        var sb = new StringBuilder();
        foreach (byte b in rest[..Math.Min(rest.Length, 32)])
        {
            sb.Append(b is >= 0x20 and < 0x7f ? (char)b : '.');
        }

        return rest.Length > 32 ? sb.Append('…').ToString() : sb.ToString();
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
