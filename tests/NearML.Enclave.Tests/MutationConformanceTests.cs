using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using NearML.Enclave.Internal;

namespace NearML.Enclave.Tests;

/// <summary>
/// Hostile-input conformance: every byte of every real fixture under <c>../shared/fixtures/attestation</c> is flipped
/// (XOR 0x01, the single-bit change most likely to keep an encoding well-formed: a digit stays a digit, most base64
/// letters stay base64 letters) and every fixture is truncated at every length. Each variant goes through the path that
/// consumes it in production (quotes and reports through <see cref="AttestationVerifier.Verify"/>, certificates and
/// collateral through their parsers and the verifier). Every outcome must be either
/// <list type="bullet">
/// <item>a rejection with a reason: an <see cref="AttestationFormatException"/> from a parser (the documented type), or a
/// verification check that passed for the original and fails for the variant, with its detail; or</item>
/// <item>an acceptance, only of a byte the format leaves unsigned and unused (the ranges below, with the spec reference).</item>
/// </list>
/// Any other exception, an acceptance elsewhere, or a check that disappears fails the test. Time per variant is reported.
/// </summary>
[TestClass]
[TestCategory("Conformance")]
public sealed class MutationConformanceTests
{
    private static readonly DateTimeOffset GoTdxAt = DateTimeOffset.Parse("2023-07-01T01:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
    private static readonly DateTimeOffset V5At = DateTimeOffset.Parse("2026-02-03T01:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
    private static readonly DateTimeOffset CosAt = DateTimeOffset.Parse("2025-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
    private static readonly DateTimeOffset QvlAt = DateTimeOffset.Parse("2025-07-19T10:00:34Z", System.Globalization.CultureInfo.InvariantCulture);
    private static readonly DateTimeOffset QvlOutdatedAt = DateTimeOffset.Parse("2026-03-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
    private static readonly DateTimeOffset GoSevAt = DateTimeOffset.Parse("2022-09-24T01:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
    private static readonly DateTimeOffset VirteeAt = DateTimeOffset.Parse("2024-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture);

    public TestContext TestContext { get; set; } = null!;

    /// <summary>
    /// Intel TDX DCAP Quoting Library API, appendix "Quote Format": a v4/v5 quote is Quote Header (48 B) ‖ TD Quote Body
    /// (v5: body type u16 ‖ size u32 ‖ body) ‖ Quote Signature Data Len (u32) ‖ Quote Signature Data. The quote signature
    /// covers header and body; the length fields are structural (checked exactly by the parser); the attestation key and QE
    /// authentication data are bound by the QE report's report data; the QE report is signed by the PCK key; the PCK chain
    /// (certification data type 5) chains to the pinned Intel root. Nothing after the signature data belongs to the quote:
    /// those bytes are signed by nothing and are the only ones a variant may change and still be accepted (the verdict says
    /// they were ignored: <c>quote.trailing-bytes</c>).
    /// </summary>
    private static List<(int Start, int End, string Why)> TdxUnsigned(byte[] quote)
    {
        TdxQuote q = TdxQuote.Parse(quote);
        int end = quote.Length - q.TrailingByteCount;
        return [(end, quote.Length, "TDX DCAP quote format: bytes after Quote Signature Data are not part of the quote (no signature covers them)")];
    }

    /// <summary>
    /// AMD SEV-SNP Firmware ABI specification (pub. 56860), ATTESTATION_REPORT structure: the signature covers [0, 0x2A0);
    /// SIGNATURE occupies 0x2A0–0x49F in the "ECDSA P-384 with SHA-384" signature format: R at +0x00 (72 B), S at +0x48
    /// (72 B; bytes 48–71 of each must be zero, which the verifier checks), reserved +0x90–+0x1FF. The reserved tail of the
    /// signature field, report bytes [0x330, 0x4A0), is covered by no signature and read by nothing.
    /// </summary>
    private static readonly List<(int Start, int End, string Why)> SnpUnsigned =
        [(0x2A0 + 0x90, 0x4A0, "SEV-SNP ABI: reserved bytes 0x90–0x1FF of the ECDSA P-384 signature field (report 0x330–0x49F) are unsigned")];

    private sealed class Subject
    {
        public required string Name { get; init; }

        public required byte[] Bytes { get; init; }

        /// <summary>Judges a variant: null when accepted (no check that passed on the original fails), else the reason. Throws a parser's AttestationFormatException for a rejection by format.</summary>
        public required Func<ReadOnlyMemory<byte>, string?> Judge { get; init; }

        public List<(int Start, int End, string Why)> Unsigned { get; init; } = [];

        /// <summary>Whether a truncation to this length may be accepted (the removed tail is unsigned / insignificant).</summary>
        public Func<int, bool> TruncationMayPass { get; init; } = _ => false;

        public bool InUnsigned(int offset) => Unsigned.Any(r => offset >= r.Start && offset < r.End);
    }

    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }

    /// <summary>A variant is rejected when a check that passed on the original fails (or is new and fails); returns that reason.</summary>
    private static string? Compare(IReadOnlyList<AttestationCheck> baseline, IReadOnlyList<AttestationCheck> now)
    {
        var passed = baseline.Where(c => c.Passed).Select(c => c.Name).ToHashSet(StringComparer.Ordinal);
        var known = baseline.Select(c => c.Name).ToHashSet(StringComparer.Ordinal);
        AttestationCheck? broke = now.FirstOrDefault(c => !c.Passed && (passed.Contains(c.Name) || !known.Contains(c.Name)));
        if (broke is not null)
        {
            Assert.IsFalse(string.IsNullOrWhiteSpace(broke.Detail), $"check {broke.Name} failed without a reason");
            return broke.ToString();
        }

        string? gone = passed.FirstOrDefault(n => now.All(c => c.Name != n));
        Assert.IsNull(gone, $"check {gone} passed on the original but is missing for the variant (neither accepted nor rejected)");
        return null;
    }

    private static string? CompareVerdict(AttestationVerdict baseline, AttestationVerdict now)
    {
        if (now.Claims is null)
        {
            AttestationCheck f = now.Failures.First();
            Assert.IsFalse(string.IsNullOrWhiteSpace(f.Detail));
            return f.ToString();
        }

        return Compare(baseline.Claims!.VerificationChecks, now.Claims.VerificationChecks);
    }

    private static AttestationVerifier NewVerifier(DateTimeOffset at) =>
        new(new AttestationPolicy(), new AttestationNonceStore(new FixedTime(at), TimeSpan.FromMinutes(5)), new FixedTime(at));

    private static AttestationVerdict VerifyTdx(AttestationVerifier v, ReadOnlyMemory<byte> quote) =>
        v.Verify(Evidence(AttestationVendor.IntelTdx, quote), new byte[32], new byte[32], "mutation");

    private static AttestationVerdict VerifySnp(AttestationVerifier v, ReadOnlyMemory<byte> report) =>
        v.Verify(Evidence(AttestationVendor.AmdSevSnp, report), new byte[32], new byte[32], "mutation");

    /// <summary>Empty evidence cannot be constructed (documented <see cref="ArgumentException"/>): that is a rejection by format too.</summary>
    private static AttestationEvidence Evidence(AttestationVendor vendor, ReadOnlyMemory<byte> bytes)
    {
        try
        {
            return new AttestationEvidence(vendor, bytes, ReadOnlyMemory<byte>.Empty, "mutation");
        }
        catch (ArgumentException e) when (bytes.IsEmpty)
        {
            throw new AttestationFormatException("evidence", "evidence", 0, e.Message, e);
        }
    }

    private static TdxCollateral GoTdxCollateral(string tcbInfo, byte[]? tcbInfoBytes = null, byte[]? chain = null, byte[]? qe = null, byte[]? pckCrl = null, byte[]? rootCrl = null) =>
        TdxCollateral.FromPcsResponses(
            [tcbInfoBytes ?? SharedFixtures.Bytes("tdx", tcbInfo)],
            chain ?? SharedFixtures.Bytes("tdx", "go-tdx-guest_tcb_signing_chain.pem"),
            qe ?? SharedFixtures.Bytes("tdx", "go-tdx-guest_sample_qeIdentity_response"),
            ReadOnlyMemory<byte>.Empty,
            pckCrl ?? SharedFixtures.Bytes("tdx", "go-tdx-guest_pckcrl"),
            rootCrl ?? SharedFixtures.Bytes("tdx", "go-tdx-guest_rootcrl.der"));

    private static Subject TdxQuoteSubject(string[] path, Func<TdxCollateral?> collateral, DateTimeOffset at)
    {
        byte[] quote = SharedFixtures.Bytes(path);
        AttestationVerifier v = NewVerifier(at);
        v.TdxCollateral = collateral();
        AttestationVerdict baseline = VerifyTdx(v, quote);
        Assert.IsNotNull(baseline.Claims, string.Join("\n", baseline.Rules));
        Assert.IsTrue(baseline.Claims.Authentic, string.Join("\n", baseline.Claims.VerificationChecks));
        int signedEnd = quote.Length - TdxQuote.Parse(quote).TrailingByteCount;
        return new Subject
        {
            Name = string.Join('/', path),
            Bytes = quote,
            Judge = m => CompareVerdict(baseline, VerifyTdx(v, m)),
            Unsigned = TdxUnsigned(quote),
            TruncationMayPass = len => len >= signedEnd,
        };
    }

    private static Subject SnpReportSubject(string report, string vcek, string askArk, DateTimeOffset at)
    {
        byte[] bytes = SharedFixtures.Bytes("snp", report);
        AttestationVerifier v = NewVerifier(at);
        SnpCertificates certs = SnpCertificates.Parse(SharedFixtures.Bytes("snp", vcek), SharedFixtures.Bytes("snp", askArk));
        v.SnpCertificateResolver = _ => certs;
        AttestationVerdict baseline = VerifySnp(v, bytes);
        Assert.IsTrue(baseline.Claims!.VerificationChecks.All(c => c.Passed), string.Join("\n", baseline.Claims.VerificationChecks));
        return new Subject { Name = "snp/" + report, Bytes = bytes, Judge = m => CompareVerdict(baseline, VerifySnp(v, m)), Unsigned = SnpUnsigned };
    }

    /// <summary>The VCEK (DER) or the ASK/ARK PEM under mutation, judged by verifying a real report with the mutated certificates.</summary>
    private static Subject SnpCertificateSubject(string mutated, bool mutatedIsVcek, string other, string report, DateTimeOffset at)
    {
        byte[] bytes = SharedFixtures.Bytes("snp", mutated);
        byte[] fixedPart = SharedFixtures.Bytes("snp", other);
        byte[] rep = SharedFixtures.Bytes("snp", report);
        var verifier = new SnpReportVerifier();
        SnpVerificationResult Run(ReadOnlyMemory<byte> m) => verifier.Verify(SnpReport.Parse(rep),
            mutatedIsVcek ? SnpCertificates.Parse(m, fixedPart) : SnpCertificates.Parse(fixedPart, m), at);
        SnpVerificationResult baseline = Run(bytes);
        Assert.IsTrue(baseline.Checks.Where(c => c.Name is "snp-chain.ark-pinned" or "snp-chain.ark-signature" or "snp-chain.ask-signature").All(c => c.Passed),
            string.Join("\n", baseline.Checks));
        return new Subject
        {
            Name = "snp/" + mutated,
            Bytes = bytes,
            Judge = m => Compare(baseline.Checks, Run(m).Checks),
            TruncationMayPass = mutatedIsVcek ? _ => false : PemFinalLineBreak(bytes),
        };
    }

    /// <summary>RFC 7468 §3: the line break after the last END line is optional, so dropping it changes nothing.</summary>
    private static Func<int, bool> PemFinalLineBreak(byte[] pem) => len =>
        len < pem.Length && pem.AsSpan(len).Trim("\r\n"u8).IsEmpty && pem.AsSpan(0, len).EndsWith("-----END CERTIFICATE-----"u8);

    /// <summary>RFC 8259 §2: whitespace after the JSON value is insignificant and unsigned (Intel signs the inner value).</summary>
    private static Func<int, bool> JsonTrailingWhitespace(byte[] json) => len => json.AsSpan(len).Trim(" \t\r\n"u8).IsEmpty;

    /// <summary>A piece of TDX collateral under mutation, judged by verifying quote 1 (or the dcap-qvl quote) with it.</summary>
    private static Subject CollateralSubject(string name, byte[] bytes, byte[] quote, Func<ReadOnlyMemory<byte>, TdxCollateral> build, DateTimeOffset at, Func<int, bool>? truncation = null)
    {
        var verifier = new TdxQuoteVerifier();
        TdxQuote q = TdxQuote.Parse(quote);
        TdxVerificationResult baseline = verifier.Verify(q, build(bytes), at);
        Assert.IsTrue(baseline.SignaturesValid, string.Join("\n", baseline.Checks));
        return new Subject
        {
            Name = name,
            Bytes = bytes,
            Judge = m => Compare(baseline.Checks, verifier.Verify(q, build(m), at).Checks),
            TruncationMayPass = truncation ?? (_ => false),
        };
    }

    private static readonly byte[][] IntelRoot = [[.. TdxQuoteVerifier.IntelSgxRootCaFingerprint]];

    /// <summary>A standalone Intel chain (root, or CRL issuer chain) judged by the chain checks against the pinned root.</summary>
    private static Subject IntelChainSubject(string file, DateTimeOffset at)
    {
        byte[] bytes = SharedFixtures.Bytes("tdx", file);
        List<AttestationCheck> Run(ReadOnlyMemory<byte> m)
        {
            List<Cert> chain = Cert.ParsePemChain(m.Span, file);
            var checks = new List<AttestationCheck>();
            if (chain.Count == 1)
            {
                checks.Add(new AttestationCheck("root.pinned", chain[0].Fingerprint.AsSpan().SequenceEqual(IntelRoot[0]), "fingerprint"));
                checks.Add(new AttestationCheck("root.self-signed", chain[0].IsSignedBy(chain[0]), "self-signature"));
            }
            else
            {
                ChainVerifier.Check(checks, "chain", chain, IntelRoot, at, ["signer", "root"]);
            }

            return checks;
        }

        List<AttestationCheck> baseline = Run(bytes);
        Assert.IsTrue(baseline.All(c => c.Passed), string.Join("\n", baseline));
        return new Subject { Name = "tdx/" + file, Bytes = bytes, Judge = m => Compare(baseline, Run(m)), TruncationMayPass = PemFinalLineBreak(bytes) };
    }

    private static IEnumerable<Subject> Subjects(string group)
    {
        switch (group)
        {
            case "tdx-quotes":
                yield return TdxQuoteSubject(["tdx", "go-tdx-guest_tdx_prod_quote_SPR_E4.dat"], () => GoTdxCollateral("go-tdx-guest_sample_tcbInfo_response"), GoTdxAt);
                yield return TdxQuoteSubject(["tdx", "go-tdx-guest_quote_v5_sample.dat"], () => GoTdxCollateral("go-tdx-guest_sample_tcbinfo_response_v5"), V5At);
                yield return TdxQuoteSubject(["tdx", "ccel", "go-tdx-guest_cos-113-tdx-quote.dat"], () => null, CosAt);
                yield return TdxQuoteSubject(["tdx", "phala-dcap-qvl_tdx_quote"],
                    () => TdxCollateral.FromDcapQvlJson(SharedFixtures.Bytes("tdx", "phala-dcap-qvl_tdx_quote_collateral.json")), QvlAt);
                yield return TdxQuoteSubject(["tdx", "phala-dcap-qvl_tdx_quote_outdated"],
                    () => TdxCollateral.FromDcapQvlJson(SharedFixtures.Bytes("tdx", "phala-dcap-qvl_tdx_quote_outdated_collateral.json")), QvlOutdatedAt);
                break;
            case "tdx-collateral":
            {
                byte[] q1 = SharedFixtures.Bytes("tdx", "go-tdx-guest_tdx_prod_quote_SPR_E4.dat");
                byte[] q2 = SharedFixtures.Bytes("tdx", "go-tdx-guest_quote_v5_sample.dat");
                byte[] tcb = SharedFixtures.Bytes("tdx", "go-tdx-guest_sample_tcbInfo_response");
                yield return CollateralSubject("tdx/go-tdx-guest_sample_tcbInfo_response", tcb, q1,
                    m => GoTdxCollateral("", tcbInfoBytes: m.ToArray()), GoTdxAt, JsonTrailingWhitespace(tcb));
                byte[] tcb5 = SharedFixtures.Bytes("tdx", "go-tdx-guest_sample_tcbinfo_response_v5");
                yield return CollateralSubject("tdx/go-tdx-guest_sample_tcbinfo_response_v5", tcb5, q2,
                    m => GoTdxCollateral("", tcbInfoBytes: m.ToArray()), V5At, JsonTrailingWhitespace(tcb5));
                byte[] qe = SharedFixtures.Bytes("tdx", "go-tdx-guest_sample_qeIdentity_response");
                yield return CollateralSubject("tdx/go-tdx-guest_sample_qeIdentity_response", qe, q1,
                    m => GoTdxCollateral("go-tdx-guest_sample_tcbInfo_response", qe: m.ToArray()), GoTdxAt, JsonTrailingWhitespace(qe));
                byte[] chain = SharedFixtures.Bytes("tdx", "go-tdx-guest_tcb_signing_chain.pem");
                yield return CollateralSubject("tdx/go-tdx-guest_tcb_signing_chain.pem", chain, q1,
                    m => GoTdxCollateral("go-tdx-guest_sample_tcbInfo_response", chain: m.ToArray()), GoTdxAt, PemFinalLineBreak(chain));
                yield return CollateralSubject("tdx/go-tdx-guest_pckcrl", SharedFixtures.Bytes("tdx", "go-tdx-guest_pckcrl"), q1,
                    m => GoTdxCollateral("go-tdx-guest_sample_tcbInfo_response", pckCrl: m.ToArray()), GoTdxAt);
                yield return CollateralSubject("tdx/go-tdx-guest_rootcrl.der", SharedFixtures.Bytes("tdx", "go-tdx-guest_rootcrl.der"), q1,
                    m => GoTdxCollateral("go-tdx-guest_sample_tcbInfo_response", rootCrl: m.ToArray()), GoTdxAt);
                yield return IntelChainSubject("go-tdx-guest_pckcrl_issuer_chain.pem", GoTdxAt);
                yield return IntelChainSubject("go-tdx-guest_trusted_root.pem", GoTdxAt);
                break;
            }

            case "tdx-dcap-qvl-collateral":
                foreach ((string quote, string json, DateTimeOffset at) in new[]
                {
                    ("phala-dcap-qvl_tdx_quote", "phala-dcap-qvl_tdx_quote_collateral.json", QvlAt),
                    ("phala-dcap-qvl_tdx_quote_outdated", "phala-dcap-qvl_tdx_quote_outdated_collateral.json", QvlOutdatedAt),
                })
                {
                    byte[] j = SharedFixtures.Bytes("tdx", json);
                    yield return CollateralSubject("tdx/" + json, j, SharedFixtures.Bytes("tdx", quote), m => TdxCollateral.FromDcapQvlJson(m.ToArray()), at, JsonTrailingWhitespace(j));
                }

                break;
            case "tdx-ccel":
            {
                byte[] quote = SharedFixtures.Bytes("tdx", "ccel", "go-tdx-guest_cos-113-tdx-quote.dat");
                TdxQuote q = TdxQuote.Parse(quote);

                // The ACPI table is judged by its own parser (signature, length, checksum).
                byte[] table = SharedFixtures.Bytes("tdx", "ccel", "go-tdx-guest_ccel_table.dat");
                CcelTable tableBaseline = CcelTable.Parse(table);
                yield return new Subject
                {
                    Name = "tdx/ccel/go-tdx-guest_ccel_table.dat",
                    Bytes = table,
                    Judge = m => CcelTable.Parse(m.Span) == tableBaseline ? null : "table fields differ",
                };

                // The nonce is the report data the relying party expects: any other value does not bind the quote.
                byte[] nonce = SharedFixtures.Bytes("tdx", "ccel", "go-tdx-guest_nonce.dat");
                yield return new Subject
                {
                    Name = "tdx/ccel/go-tdx-guest_nonce.dat",
                    Bytes = nonce,
                    Judge = m => m.Length == q.Body.ReportData.Length && CryptographicOperations.FixedTimeEquals(m.Span, q.Body.ReportData.Span)
                        ? null : "report data does not equal the expected nonce",
                };

                yield return EventLogSubject(q);
                break;
            }

            case "snp":
                yield return SnpReportSubject("go-sev-guest_attestation.bin", "go-sev-guest_vcek.der", "go-sev-guest_ask_ark_milan.pem", GoSevAt);
                yield return SnpReportSubject("virtee-sev_report_milan.bin", "virtee-sev_vcek_milan.der", "go-sev-guest_ask_ark_milan.pem", VirteeAt);
                yield return SnpCertificateSubject("go-sev-guest_vcek.der", true, "go-sev-guest_ask_ark_milan.pem", "go-sev-guest_attestation.bin", GoSevAt);
                yield return SnpCertificateSubject("virtee-sev_vcek_milan.der", true, "go-sev-guest_ask_ark_milan.pem", "virtee-sev_report_milan.bin", VirteeAt);
                yield return SnpCertificateSubject("virtee-sev_vcek_turin.der", true, "go-sev-guest_ask_ark_turin_vcek.pem", "virtee-sev_report_milan.bin", VirteeAt);
                yield return SnpCertificateSubject("go-sev-guest_ask_ark_milan.pem", false, "virtee-sev_vcek_milan.der", "virtee-sev_report_milan.bin", VirteeAt);
                yield return SnpCertificateSubject("go-sev-guest_ask_ark_genoa.pem", false, "virtee-sev_vcek_milan.der", "virtee-sev_report_milan.bin", VirteeAt);
                yield return SnpCertificateSubject("go-sev-guest_ask_ark_milan_vlek.pem", false, "virtee-sev_vcek_milan.der", "virtee-sev_report_milan.bin", VirteeAt);
                yield return SnpCertificateSubject("go-sev-guest_ask_ark_turin_vcek.pem", false, "virtee-sev_vcek_turin.der", "virtee-sev_report_milan.bin", VirteeAt);

                // virtee-sev_report_milan.hex is the hex text of virtee-sev_report_milan.bin (checked byte for byte in
                // SnpConformanceTests); no NearML API reads hex, so the binary form above is the one under mutation.
                break;
        }
    }

    /// <summary>
    /// The CCEL event log. The RTMRs cover, per event extended into RTMR0–3 (MR index 1–4), its MR index and its digests
    /// (TCG PC Client Platform Firmware Profile, TCG_PCR_EVENT2: only the digests are extended; the event type and event
    /// data describe the event and no register covers them). Those descriptive bytes, events of other MR indexes (not
    /// extended into an RTMR), the EV_NO_ACTION header event (TCG_EfiSpecIDEvent, never extended) and the padding after
    /// the last event may change without a rejection. Changing a type to EV_NO_ACTION, an index into 1–4, a digest, a
    /// count or a size changes the replay or the parse and is rejected.
    /// </summary>
    private static Subject EventLogSubject(TdxQuote quote)
    {
        byte[] log = SharedFixtures.Bytes("tdx", "ccel", "go-tdx-guest_ccel_data.dat");
        TdxEventLog parsed = TdxEventLog.Parse(log);
        IReadOnlyList<AttestationCheck> baseline = parsed.CompareWithQuote(quote);
        Assert.IsTrue(baseline.All(c => c.Passed));
        var covered = new List<(int Start, int End)>();
        foreach (TdxEvent e in parsed.Events.Where(e => e.MrIndex is >= 1 and <= 4))
        {
            Assert.IsTrue(MemoryMarshal.TryGetArray(e.Data, out ArraySegment<byte> data));
            covered.Add((e.Offset, e.Offset + 4)); // MR index
            covered.Add((e.Offset + 8, data.Offset - 4)); // digest count and digests

            // eventSize is not extended either: changing it shifts every later event (so the replay changes and the
            // variant is rejected), except for the last event, whose unmeasured data then just reaches into the padding.
        }

        var unsigned = new List<(int Start, int End, string Why)>();
        int pos = 0;
        foreach ((int s, int end) in covered.OrderBy(c => c.Start))
        {
            if (s > pos)
            {
                unsigned.Add((pos, s, "TCG PFP: header event, EV_NO_ACTION events, event types and event data are not extended into any RTMR"));
            }

            pos = end;
        }

        unsigned.Add((pos, log.Length, "TCG PFP: event types and event data of the last event and the log area's padding after it"));
        // Copies: the log is mutated in place, and the parsed events are slices of it.
        var events = parsed.Events.Select(e => (e.MrIndex, e.Offset, Digest: e.Sha384Digest.ToArray())).ToArray();
        return new Subject
        {
            Name = "tdx/ccel/go-tdx-guest_ccel_data.dat",
            Bytes = log,
            Judge = m =>
            {
                TdxEventLog v = TdxEventLog.Parse(m);
                bool same = v.Events.Count == events.Length && v.Events.Zip(events).All(p => p.First.MrIndex == p.Second.MrIndex && p.First.Offset == p.Second.Offset
                    && p.First.Sha384Digest.Span.SequenceEqual(p.Second.Digest));
                return same ? null : Compare(baseline, v.CompareWithQuote(quote));
            },
            Unsigned = unsigned,
            TruncationMayPass = len => len >= parsed.Length,
        };
    }

    [TestMethod]
    [DataRow("tdx-quotes")]
    [DataRow("tdx-collateral")]
    [DataRow("tdx-dcap-qvl-collateral")]
    [DataRow("tdx-ccel")]
    [DataRow("snp")]
    public void EveryByteFlippedAndEveryTruncation_IsRejectedWithAReasonOrUnsigned(string group)
    {
        var violations = new List<string>();
        var total = Stopwatch.StartNew();
        foreach (Subject s in Subjects(group))
        {
            Run(s, violations);
        }

        TestContext.WriteLine($"{group}: {total.Elapsed.TotalSeconds:F1} s in all");
        Assert.AreEqual(0, violations.Count, $"{violations.Count} violation(s):\n{string.Join("\n", violations.Take(40))}");
    }

    private void Run(Subject s, List<string> violations)
    {
        byte[] b = s.Bytes;
        int flips = 0, accepted = 0, byFormat = 0, byCheck = 0;
        double worst = 0;
        string worstAt = "-";
        var sw = Stopwatch.StartNew();
        void One(ReadOnlyMemory<byte> variant, string what, bool mayPass)
        {
            long t0 = Stopwatch.GetTimestamp();
            string? reason;
            try
            {
                reason = s.Judge(variant);
            }
            catch (AttestationFormatException e)
            {
                Assert.IsFalse(string.IsNullOrWhiteSpace(e.Message));
                byFormat++;
                RecordTime();
                return;
            }
            catch (Exception e) when (e is not AssertFailedException)
            {
                violations.Add($"{s.Name} {what}: {e.GetType().Name} escaped: {e.Message}");
                RecordTime();
                return;
            }

            RecordTime();
            if (reason is null)
            {
                accepted++;
                if (!mayPass)
                {
                    violations.Add($"{s.Name} {what}: accepted, but it is not an unsigned byte");
                }
            }
            else
            {
                byCheck++;
            }

            void RecordTime()
            {
                double ms = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                if (ms > worst)
                {
                    worst = ms;
                    worstAt = what;
                }
            }
        }

        for (int i = 0; i < b.Length; i++)
        {
            byte original = b[i];
            b[i] ^= 0x01;
            try
            {
                One(b, $"byte 0x{i:X} ^= 0x01", s.InUnsigned(i));
            }
            finally
            {
                b[i] = original;
            }

            flips++;
        }

        // Truncations: every length of a small fixture; of a large one, the first and last 64 lengths and about 1000 between.
        int truncations = 0;
        int stride = Math.Max(1, b.Length / 1024);
        for (int len = 0; len < b.Length; len += len < 64 || len >= b.Length - 64 ? 1 : Math.Min(stride, Math.Max(1, b.Length - 64 - len)))
        {
            One(b.AsMemory(0, len), $"truncated to {len}", s.TruncationMayPass(len));
            truncations++;
        }

        TestContext.WriteLine($"{s.Name}: {flips} flips + {truncations} truncations in {sw.Elapsed.TotalSeconds:F2} s " +
            $"({sw.Elapsed.TotalMilliseconds / (flips + truncations):F3} ms/variant, worst {worst:F1} ms for {worstAt}); " +
            $"rejected by format {byFormat}, by a failing check {byCheck}, accepted {accepted} (unsigned bytes only)");
    }
}
