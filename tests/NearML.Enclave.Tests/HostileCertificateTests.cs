using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using NearML.Enclave.Internal;

namespace NearML.Enclave.Tests;

/// <summary>Rewrites pieces of real evidence the way a hostile worker would, keeping every length consistent.</summary>
internal static class EvidenceSurgery
{
    /// <summary>A copy of the quote whose PCK-chain certificate <paramref name="index"/> has been changed by <paramref name="mutate"/> (same DER length).</summary>
    public static byte[] MutatePckCertificate(byte[] quote, int index, Action<byte[]> mutate)
    {
        byte[] result = (byte[])quote.Clone();
        TdxQuote q = TdxQuote.Parse(quote);
        Assert.IsTrue(MemoryMarshal.TryGetArray(q.PckCertificationData, out ArraySegment<byte> seg));
        Span<byte> pem = result.AsSpan(seg.Offset, seg.Count);
        (int start, int end) = Block(pem, index);
        string body = Encoding.ASCII.GetString(pem[start..end]);
        byte[] der = Convert.FromBase64String(body);
        mutate(der);
        string encoded = Convert.ToBase64String(der);
        int k = 0;
        for (int i = start; i < end; i++)
        {
            if (pem[i] is not ((byte)'\n' or (byte)'\r'))
            {
                pem[i] = (byte)encoded[k++];
            }
        }

        Assert.AreEqual(encoded.Length, k, "the mutation must keep the certificate's length");
        return result;
    }

    /// <summary>The base64 body of certificate <paramref name="index"/> in a PEM chain.</summary>
    public static (int Start, int End) Block(ReadOnlySpan<byte> pem, int index)
    {
        ReadOnlySpan<byte> begin = "-----BEGIN CERTIFICATE-----\n"u8;
        int pos = 0;
        for (int i = 0; ; i++)
        {
            int b = pem[pos..].IndexOf(begin);
            Assert.IsGreaterThanOrEqualTo(0, b, $"no certificate {i}");
            int start = pos + b + begin.Length;
            int end = start + pem[start..].IndexOf("-----END CERTIFICATE-----"u8);
            if (i == index)
            {
                return (start, end);
            }

            pos = end;
        }
    }

    /// <summary>Sets the month of the first UTCTime (notBefore) to 13: a date no X.509 parser may accept.</summary>
    public static void BadNotBeforeMonth(byte[] der)
    {
        int t = IndexOf(der, [0x17, 0x0D], 0);
        der[t + 4] = (byte)'1';
        der[t + 5] = (byte)'3';
    }

    /// <summary>Turns basicConstraints' inner SEQUENCE into a SET: the certificate still loads, the extension no longer decodes.</summary>
    public static void BasicConstraintsNotASequence(byte[] der)
    {
        int oid = IndexOf(der, [0x06, 0x03, 0x55, 0x1D, 0x13], 0);
        int octets = IndexOf(der, [0x04], oid + 5);
        Assert.AreEqual(0x30, der[octets + 2]);
        der[octets + 2] = 0x31;
    }

    /// <summary>Changes the outer (unsigned) signatureAlgorithm from ecdsa-with-SHA256 to ecdsa-with-SHA384, leaving the signed TBS one.</summary>
    public static void OuterAlgorithmSha384(byte[] der)
    {
        byte[] oid = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02];
        int first = IndexOf(der, oid, 0);
        int outer = IndexOf(der, oid, first + 1);
        der[outer + oid.Length - 1] = 0x03;
    }

    public static int IndexOf(byte[] haystack, byte[] needle, int from)
    {
        int i = haystack.AsSpan(from).IndexOf(needle);
        Assert.IsGreaterThanOrEqualTo(0, i, $"pattern {Convert.ToHexString(needle)} not found");
        return from + i;
    }
}

/// <summary>
/// Certificates inside evidence are worker-controlled: malformed fields must be format errors with a reason, never a
/// <see cref="System.Security.Cryptography.CryptographicException"/> out of the verifier; certificates that RFC 5280 or
/// RFC 7468 (strict) forbid must be refused even where the signature would still verify.
/// </summary>
[TestClass]
[TestCategory("Conformance")]
public sealed class HostileCertificateTests
{
    private static readonly DateTimeOffset At = DateTimeOffset.Parse("2023-07-01T01:00:00Z", System.Globalization.CultureInfo.InvariantCulture);

    private static byte[] Quote1() => SharedFixtures.Bytes("tdx", "go-tdx-guest_tdx_prod_quote_SPR_E4.dat");

    private static AttestationVerdict VerifyThroughAttestationVerifier(byte[] quote)
    {
        var time = new ManualTimeProvider(At);
        var verifier = new AttestationVerifier(new AttestationPolicy(), new AttestationNonceStore(time, TimeSpan.FromMinutes(1)), time, NullLogger<AttestationVerifier>.Instance);
        return verifier.Verify(new AttestationEvidence(AttestationVendor.IntelTdx, quote, ReadOnlyMemory<byte>.Empty, "test"), new byte[32], new byte[32], "hostile");
    }

    [TestMethod]
    [DataRow(0, "leaf")]
    [DataRow(1, "intermediate")]
    public void PckCertificate_WithImpossibleValidityDate_IsRefusedWithAReason(int index, string which)
    {
        byte[] q = EvidenceSurgery.MutatePckCertificate(Quote1(), index, EvidenceSurgery.BadNotBeforeMonth);
        TdxVerificationResult r = new TdxQuoteVerifier().Verify(TdxQuote.Parse(q), null, At);
        AttestationCheck parse = r.Checks.Single(c => c.Name == "pck-chain.parse");
        Assert.IsFalse(parse.Passed, which);
        StringAssert.Contains(parse.Detail, $"certificate {index}");
        AttestationVerdict v = VerifyThroughAttestationVerifier(q);
        Assert.IsFalse(v.Accepted);
        Assert.IsFalse(v.Claims!.Authentic);
    }

    [TestMethod]
    public void PckIntermediate_WithUndecodableBasicConstraints_IsRefusedWithAReason()
    {
        byte[] q = EvidenceSurgery.MutatePckCertificate(Quote1(), 1, EvidenceSurgery.BasicConstraintsNotASequence);
        TdxVerificationResult r = new TdxQuoteVerifier().Verify(TdxQuote.Parse(q), null, At);
        Assert.IsFalse(r.Checks.Single(c => c.Name == "pck-chain.parse").Passed, string.Join("\n", r.Checks));
        Assert.IsFalse(VerifyThroughAttestationVerifier(q).Accepted);
    }

    [TestMethod]
    public void OuterSignatureAlgorithm_DifferingFromTbs_IsRefused()
    {
        byte[] q = EvidenceSurgery.MutatePckCertificate(Quote1(), 0, EvidenceSurgery.OuterAlgorithmSha384);
        AttestationCheck parse = new TdxQuoteVerifier().Verify(TdxQuote.Parse(q), null, At).Checks.Single(c => c.Name == "pck-chain.parse");
        Assert.IsFalse(parse.Passed);
        StringAssert.Contains(parse.Detail, "RFC 5280");
    }

    [TestMethod]
    public void AmdAsk_WithOuterPssParametersDifferingFromTbs_IsRefused()
    {
        // The ASK is RSASSA-PSS; the outer AlgorithmIdentifier (unsigned) carries its own parameters. Changing the salt
        // length there leaves the signature verifying (it covers only the TBS), so only the RFC 5280 §4.1.1.2 comparison
        // catches it.
        byte[] pem = SharedFixtures.Bytes("snp", "go-sev-guest_ask_ark_milan.pem");
        (int start, int end) = EvidenceSurgery.Block(pem, 0);
        byte[] ask = Convert.FromBase64String(Encoding.ASCII.GetString(pem.AsSpan(start, end - start)));
        byte[] pssOid = [0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0A];
        int inner = EvidenceSurgery.IndexOf(ask, pssOid, 0);
        int outer = EvidenceSurgery.IndexOf(ask, pssOid, inner + 1);
        int salt = EvidenceSurgery.IndexOf(ask, [0xA2, 0x03, 0x02, 0x01, 0x30], outer); // [2] saltLength INTEGER 48
        ask[salt + 4] = 0x20;
        var ex = Assert.ThrowsExactly<AttestationFormatException>(() => Cert.Parse(ask, "ASK"));
        StringAssert.Contains(ex.Message, "RFC 5280 §4.1.1.2");
    }

    [TestMethod]
    public void SnpVcek_WithImpossibleValidityDate_IsAFormatError_AndTheVerifierRefuses()
    {
        byte[] vcek = SharedFixtures.Bytes("snp", "virtee-sev_vcek_milan.der");
        EvidenceSurgery.BadNotBeforeMonth(vcek);
        byte[] chain = SharedFixtures.Bytes("snp", "go-sev-guest_ask_ark_milan.pem");
        Assert.ThrowsExactly<AttestationFormatException>(() => SnpCertificates.Parse(vcek, chain));

        var time = new ManualTimeProvider(DateTimeOffset.Parse("2024-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var verifier = new AttestationVerifier(new AttestationPolicy(), new AttestationNonceStore(time, TimeSpan.FromMinutes(1)), time)
        {
            SnpCertificateResolver = _ => SnpCertificates.Parse(vcek, chain),
        };
        AttestationVerdict v = verifier.Verify(new AttestationEvidence(AttestationVendor.AmdSevSnp, SharedFixtures.Bytes("snp", "virtee-sev_report_milan.bin"), ReadOnlyMemory<byte>.Empty, "test"),
            new byte[32], new byte[32], "hostile");
        Assert.IsFalse(v.Accepted);
        Assert.AreEqual("evidence.format", v.Failures.First().Name);
    }

    [TestMethod]
    public void ResolverThatThrows_EndsInAVerdict()
    {
        var time = new ManualTimeProvider(At);
        var verifier = new AttestationVerifier(new AttestationPolicy(), new AttestationNonceStore(time, TimeSpan.FromMinutes(1)), time)
        {
            SnpCertificateResolver = _ => throw new InvalidOperationException("KDS cache unavailable"),
        };
        AttestationVerdict v = verifier.Verify(new AttestationEvidence(AttestationVendor.AmdSevSnp, SharedFixtures.Bytes("snp", "virtee-sev_report_milan.bin"), ReadOnlyMemory<byte>.Empty, "test"),
            new byte[32], new byte[32], "hostile");
        Assert.IsFalse(v.Accepted);
        AttestationCheck f = v.Failures.Single();
        Assert.AreEqual("evidence.verification", f.Name);
        StringAssert.Contains(f.Detail, "KDS cache unavailable");
    }

    private static string Chain() => Encoding.ASCII.GetString(SharedFixtures.Bytes("tdx", "go-tdx-guest_tcb_signing_chain.pem"));

    [TestMethod]
    [DataRow("-----BEGIN CERTIFICATE-----", "-----BEGIN X509 CERTIFICATE-----", "does not start with")]
    [DataRow("-----BEGIN CERTIFICATE-----", "----BEGIN CERTIFICATE-----", "does not start with")]
    [DataRow("-----END CERTIFICATE-----\n-----BEGIN", "-----END CERTIFICATE-----\ngarbage\n-----BEGIN", "expected \"-----BEGIN CERTIFICATE-----\"")]
    [DataRow("-----END CERTIFICATE-----\n-----BEGIN", "-----END CERTIFICATE----- -----BEGIN", "expected a line break")]
    [DataRow("-----END CERTIFICATE-----\n-----BEGIN", "-----END CERTIFICATE-----\n\n-----BEGIN", "expected \"-----BEGIN CERTIFICATE-----\"")]
    [DataRow("-----BEGIN CERTIFICATE-----\nMII", "-----BEGIN CERTIFICATE-----\nM.II", "not base64")]
    [DataRow("-----BEGIN CERTIFICATE-----\nMII", "-----BEGIN CERTIFICATE-----\n MII", "not base64")]
    [DataRow("-----BEGIN CERTIFICATE-----\n", "-----BEGIN CERTIFICATE-----", "expected a line break")]
    public void Pem_WithAlteredSeparators_IsRefused(string find, string replace, string expected)
    {
        string chain = Chain();
        int at = chain.IndexOf(find, StringComparison.Ordinal);
        Assert.IsGreaterThanOrEqualTo(0, at);
        string altered = chain[..at] + replace + chain[(at + find.Length)..];
        var ex = Assert.ThrowsExactly<AttestationFormatException>(() => Cert.ParsePemChain(Encoding.ASCII.GetBytes(altered), "test chain"));
        StringAssert.Contains(ex.Message, expected);
    }

    [TestMethod]
    public void Pem_WithNonCanonicalBase64Padding_IsRefused()
    {
        // The root certificate's body ends "…I=": 'I' = 8 = 0b001000 carries 2 unused bits (00); 'J' = 0b001001 sets one.
        string chain = Chain();
        int end = chain.LastIndexOf("=\n-----END CERTIFICATE-----", StringComparison.Ordinal);
        Assert.AreEqual('I', chain[end - 1]);
        string altered = chain[..(end - 1)] + "J" + chain[end..];
        CollectionAssert.AreEqual(Convert.FromBase64String("AAI="), Convert.FromBase64String("AAJ="), "base64 decoders ignore the padding bits: both texts are the same bytes");
        var ex = Assert.ThrowsExactly<AttestationFormatException>(() => Cert.ParsePemChain(Encoding.ASCII.GetBytes(altered), "test chain"));
        StringAssert.Contains(ex.Message, "canonical");
    }

    [TestMethod]
    public void Pem_AcceptsLfCrlfFinalLineBreakAndNulPadding()
    {
        string chain = Chain();
        Assert.HasCount(2, Cert.ParsePemChain(Encoding.ASCII.GetBytes(chain), "lf"));
        Assert.HasCount(2, Cert.ParsePemChain(Encoding.ASCII.GetBytes(chain.TrimEnd('\n')), "no final line break"));
        Assert.HasCount(2, Cert.ParsePemChain(Encoding.ASCII.GetBytes(chain.Replace("\n", "\r\n", StringComparison.Ordinal)), "crlf"));
        Assert.HasCount(2, Cert.ParsePemChain([.. Encoding.ASCII.GetBytes(chain), 0, 0, 0], "nul padded"));
    }

    [TestMethod]
    public void Pem_WithTooManyCertificates_IsRefusedBeforeParsingThem()
    {
        string chain = Chain();
        byte[] five = Encoding.ASCII.GetBytes(chain + chain + chain[..chain.IndexOf("-----END", StringComparison.Ordinal)] + "-----END CERTIFICATE-----\n");
        var ex = Assert.ThrowsExactly<AttestationFormatException>(() => Cert.ParsePemChain(five, "long chain"));
        StringAssert.Contains(ex.Message, $"more than {Cert.MaxChainLength} certificates");
        byte[] huge = new byte[Cert.MaxPemLength + 1];
        huge.AsSpan().Fill((byte)'A');
        StringAssert.Contains(Assert.ThrowsExactly<AttestationFormatException>(() => Cert.ParsePemChain(huge, "huge")).Message, "at most");
    }

    [TestMethod]
    public void OversizedQuote_IsAFormatErrorBeforeAnyParsing()
    {
        byte[] q = [.. Quote1(), .. new byte[TdxQuote.MaxLength]];
        Assert.AreEqual("quote", Assert.ThrowsExactly<AttestationFormatException>(() => TdxQuote.Parse(q)).Field);
    }

    [TestMethod]
    public void TrailingBytes_AreNamedInTheVerdict()
    {
        TdxVerificationResult r = new TdxQuoteVerifier().Verify(TdxQuote.Parse(Quote1()), null, At);
        AttestationCheck t = r.Checks.Single(c => c.Name == "quote.trailing-bytes");
        Assert.IsTrue(t.Passed);
        StringAssert.Contains(t.Detail, "39 byte(s) after the signature data are not part of the quote (unsigned) and were ignored");
    }

    [TestMethod]
    public void SnpReport_WithAppendedBytes_IsRefused()
    {
        byte[] r = [.. SharedFixtures.Bytes("snp", "virtee-sev_report_milan.bin"), 0];
        StringAssert.Contains(Assert.ThrowsExactly<AttestationFormatException>(() => SnpReport.Parse(r)).Message, "1 byte(s) follow it");
    }
}
