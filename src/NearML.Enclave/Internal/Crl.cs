using System.Formats.Asn1;
using System.Security.Cryptography;

namespace NearML.Enclave.Internal;

/// <summary>A parsed X.509 v2 CRL (RFC 5280 §5): issuer, update times, revoked serials, and what its signature covers.</summary>
internal sealed class Crl
{
    private Crl(byte[] tbs, string alg, HashAlgorithmName pss, byte[] sig, byte[] issuer, DateTimeOffset thisUpdate, DateTimeOffset? nextUpdate, HashSet<string> revoked)
    {
        Tbs = tbs;
        SignatureAlgorithm = alg;
        PssHash = pss;
        SignatureValue = sig;
        IssuerName = issuer;
        ThisUpdate = thisUpdate;
        NextUpdate = nextUpdate;
        RevokedSerials = revoked;
    }

    public byte[] Tbs { get; }

    public string SignatureAlgorithm { get; }

    public HashAlgorithmName PssHash { get; }

    public byte[] SignatureValue { get; }

    public byte[] IssuerName { get; }

    public DateTimeOffset ThisUpdate { get; }

    public DateTimeOffset? NextUpdate { get; }

    public HashSet<string> RevokedSerials { get; }

    public static Crl Parse(byte[] der, string what)
    {
        try
        {
            var reader = new AsnReader(der, AsnEncodingRules.DER);
            AsnReader outer = reader.ReadSequence();
            reader.ThrowIfNotEmpty();
            byte[] tbsBytes = outer.PeekEncodedValue().ToArray();
            AsnReader tbs = outer.ReadSequence();
            ReadOnlyMemory<byte> outerAlg = outer.PeekEncodedValue();
            (string alg, HashAlgorithmName pss) = Cert.ReadAlgorithm(outer);
            byte[] sig = outer.ReadBitString(out int unused);
            if (unused != 0)
            {
                throw new AsnContentException("signature bit string has unused bits");
            }

            outer.ThrowIfNotEmpty();

            if (tbs.PeekTag().HasSameClassAndValue(Asn1Tag.Integer))
            {
                tbs.ReadInteger();
            }

            // RFC 5280 §5.1.1.2: signatureAlgorithm MUST equal the signature field inside the signed TBSCertList.
            if (!tbs.ReadEncodedValue().Span.SequenceEqual(outerAlg.Span))
            {
                throw new AttestationFormatException(what, "signatureAlgorithm", -1, "the CRL's signatureAlgorithm differs from the one inside the signed TBSCertList (RFC 5280 §5.1.1.2)");
            }

            byte[] issuer = tbs.ReadEncodedValue().ToArray();
            DateTimeOffset thisUpdate = ReadTime(tbs);
            DateTimeOffset? nextUpdate = null;
            if (tbs.HasData && (tbs.PeekTag().HasSameClassAndValue(Asn1Tag.UtcTime) || tbs.PeekTag().HasSameClassAndValue(Asn1Tag.GeneralizedTime)))
            {
                nextUpdate = ReadTime(tbs);
            }

            var revoked = new HashSet<string>(StringComparer.Ordinal);
            if (tbs.HasData && tbs.PeekTag().HasSameClassAndValue(Asn1Tag.Sequence))
            {
                AsnReader list = tbs.ReadSequence();
                while (list.HasData)
                {
                    AsnReader entry = list.ReadSequence();
                    ReadOnlyMemory<byte> serial = entry.ReadIntegerBytes();
                    revoked.Add(Cert.NormalizeSerial(serial.Span));
                }
            }

            return new Crl(tbsBytes, alg, pss, sig, issuer, thisUpdate, nextUpdate, revoked);
        }
        catch (Exception e) when (e is AsnContentException or ArgumentException or OverflowException)
        {
            throw new AttestationFormatException(what, "crl", -1, $"not a valid DER CRL: {e.Message}", e);
        }
    }

    private static DateTimeOffset ReadTime(AsnReader r) =>
        r.PeekTag().HasSameClassAndValue(Asn1Tag.UtcTime) ? r.ReadUtcTime() : r.ReadGeneralizedTime();

    /// <summary>Whether <paramref name="issuer"/> signed this CRL; memoised (<see cref="VerificationMemo"/>: both are immutable).</summary>
    public bool IsSignedBy(Cert issuer)
    {
        if (!IssuerName.AsSpan().SequenceEqual(issuer.SubjectRaw))
        {
            return false;
        }

        UInt128 key = VerificationMemo.Key(issuer.Fingerprint, SignatureAlgorithm + PssHash.Name, Tbs, SignatureValue);
        return VerificationMemo.TryGet(key, out bool known)
            ? known
            : VerificationMemo.Remember(key, issuer.VerifySignature(Tbs, SignatureValue, SignatureAlgorithm, PssHash));
    }

    public bool IsFreshAt(DateTimeOffset at) => at >= ThisUpdate && (NextUpdate is null || at <= NextUpdate);

    public bool IsRevoked(Cert c) => RevokedSerials.Contains(c.SerialHex);
}
