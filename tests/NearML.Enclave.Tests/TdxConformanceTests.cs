namespace NearML.Enclave.Tests;

[TestClass]
[TestCategory("Conformance")]
public sealed class TdxConformanceTests
{
    private static readonly TdxQuoteVerifier Verifier = new();

    private static TdxCollateral GoTdxCollateral(string tcbInfoFile) => TdxCollateral.FromPcsResponses(
        [SharedFixtures.Bytes("tdx", tcbInfoFile)],
        SharedFixtures.Bytes("tdx", "go-tdx-guest_tcb_signing_chain.pem"),
        SharedFixtures.Bytes("tdx", "go-tdx-guest_sample_qeIdentity_response"),
        ReadOnlyMemory<byte>.Empty,
        SharedFixtures.Bytes("tdx", "go-tdx-guest_pckcrl"),
        SharedFixtures.Bytes("tdx", "go-tdx-guest_rootcrl.der"));

    private static AttestationCheck Check(TdxVerificationResult r, string name) =>
        r.Checks.SingleOrDefault(c => c.Name == name) ?? throw new AssertFailedException($"no check {name}: {string.Join("\n", r.Checks)}");

    private static string Dump(TdxVerificationResult r) => string.Join("\n", r.Checks);

    [TestMethod]
    public void Quote1_SprE4_Fields()
    {
        var q = TdxQuote.Parse(SharedFixtures.Bytes("tdx", "go-tdx-guest_tdx_prod_quote_SPR_E4.dat"));
        Assert.AreEqual(4, q.Version);
        Assert.AreEqual(TdxReportBodyKind.Td10, q.BodyKind);
        Assert.AreEqual(0x278, q.SignedRegion.Length);
        Assert.AreEqual(4299, q.SignatureDataLength);
        Assert.AreEqual(39, q.TrailingByteCount);
        Assert.AreEqual(32, q.QeAuthenticationData.Length);
        Assert.AreEqual(5, q.PckCertificationDataType);
        Assert.AreEqual("03000400000000000000000000000000", Hex(q.Body.TeeTcbSvn));
        Assert.AreEqual("6363b8043668a3ad953278e10389574d326c6749fb78aa810ecd9336923db86f22fc00b8dcd404bc10d5e119d7215cbb", Hex(q.Body.MrTd));
        Assert.AreEqual("0000004000000000", Hex(q.Body.TdAttributes));
        Assert.AreEqual("e71a060000000000", Hex(q.Body.Xfam));
        Assert.IsFalse(q.Body.IsDebug);
        Assert.AreEqual("6c62dec1b8191749a31dab490be532a35944dea47caef1f980863993d9899545eb7406a38d1eed313b987a467dacead6f0c87a6d766c66f6f29f8acb281f1113", Hex(q.Body.ReportData));
        Assert.IsTrue(Hex(q.Body.Rtmr(0)).StartsWith("2927da70", StringComparison.Ordinal));
        Assert.AreEqual(new string('0', 96), Hex(q.Body.Rtmr(3)));
        Assert.AreEqual(2, q.QeReport.IsvProdId);
        Assert.AreEqual(4, q.QeReport.IsvSvn);
        Assert.IsTrue(Hex(q.QeReport.MrSigner).StartsWith("dc9e2a7c", StringComparison.Ordinal));
    }

    [TestMethod]
    public void Quote1_SprE4_FullVerification_AtGoTdxGuestTime()
    {
        var q = TdxQuote.Parse(SharedFixtures.Bytes("tdx", "go-tdx-guest_tdx_prod_quote_SPR_E4.dat"));
        var r = Verifier.Verify(q, GoTdxCollateral("go-tdx-guest_sample_tcbInfo_response"), DateTimeOffset.Parse("2023-07-01T01:00:00Z"));
        Assert.IsTrue(r.SignaturesValid, Dump(r));
        foreach (string n in new[] { "quote.signature", "qe-report.signature", "qe-report.attestation-key-binding", "pck-chain.root-pinned", "pck-chain.validity",
            "pck-crl.signature", "pck-crl.fresh", "pck-crl.not-revoked", "root-crl.signature", "root-crl.fresh", "root-crl.not-revoked",
            "tcb-info.signature", "tcb-info.issuer-chain.validity", "tcb-info.fresh", "tcb-info.fmspc", "qe-identity.signature", "qe-identity.fresh", "qe-identity.qe-report", "qe-identity.tcb-level" })
        {
            Assert.IsTrue(Check(r, n).Passed, $"{n}\n{Dump(r)}");
        }

        Assert.AreEqual(TcbStatus.UpToDate, r.QeTcbStatus);
        Assert.AreEqual("50806F000000", r.Fmspc);
        // No level matches: PCK SGX SVNs [3,3,2,2,2,...] are below every level's [5,5,2,2,3,...].
        Assert.IsFalse(Check(r, "tcb-info.tcb-level").Passed, Dump(r));
        Assert.AreEqual(TcbStatus.NotSupported, r.TcbStatus);
        Assert.IsFalse(r.IsValid);
    }

    [TestMethod]
    public void Quote1_CertificateExpiredIn2053()
    {
        var q = TdxQuote.Parse(SharedFixtures.Bytes("tdx", "go-tdx-guest_tdx_prod_quote_SPR_E4.dat"));
        var r = Verifier.Verify(q, null, DateTimeOffset.Parse("2053-07-01T00:00:00Z"));
        var c = Check(r, "pck-chain.validity");
        Assert.IsFalse(c.Passed);
        StringAssert.Contains(c.Detail, "certificate has expired");
    }

    [TestMethod]
    public void Quote1_CollateralStaleOutsideJointWindow()
    {
        var q = TdxQuote.Parse(SharedFixtures.Bytes("tdx", "go-tdx-guest_tdx_prod_quote_SPR_E4.dat"));
        var col = GoTdxCollateral("go-tdx-guest_sample_tcbInfo_response");
        Assert.IsTrue(Check(Verifier.Verify(q, col, DateTimeOffset.Parse("2023-06-18T08:42:58Z")), "tcb-info.fresh").Passed);
        Assert.IsFalse(Check(Verifier.Verify(q, col, DateTimeOffset.Parse("2023-06-18T08:42:57Z")), "tcb-info.fresh").Passed);
        Assert.IsFalse(Check(Verifier.Verify(q, col, DateTimeOffset.Parse("2023-07-08T07:25:00Z")), "qe-identity.fresh").Passed);
    }

    [TestMethod]
    [DataRow(0x000, (byte)3, "header.version")]
    [DataRow(0x278, (byte)0x10, "certification_data.size")]
    public void Quote1_NegativeVectors_Parse(int offset, byte value, string field)
    {
        byte[] b = SharedFixtures.Bytes("tdx", "go-tdx-guest_tdx_prod_quote_SPR_E4.dat");
        b[offset] = value;
        var e = Assert.ThrowsExactly<AttestationFormatException>(() => TdxQuote.Parse(b));
        Assert.AreEqual(field, e.Field);
        if (offset == 0x278)
        {
            StringAssert.Contains(e.Message, "0x1045");
            StringAssert.Contains(e.Message, "0xf8a");
        }
    }

    [TestMethod]
    [DataRow(0x1343, "pck-chain.parse")]
    [DataRow(0x1329, "pck-chain.root-signature")]
    [DataRow(0xF5F, "pck-chain.intermediate-signature")]
    [DataRow(0xB77, "pck-chain.leaf-signature")]
    [DataRow(0x01E, "quote.signature")]
    [DataRow(0x03C, "quote.signature")]
    public void Quote1_NegativeVectors_Verify(int offset, string failingCheck)
    {
        byte[] b = SharedFixtures.Bytes("tdx", "go-tdx-guest_tdx_prod_quote_SPR_E4.dat");
        b[offset] = 0x32;
        var r = Verifier.Verify(TdxQuote.Parse(b), null, DateTimeOffset.Parse("2023-07-01T01:00:00Z"));
        Assert.IsFalse(r.SignaturesValid, Dump(r));
        Assert.IsFalse(Check(r, failingCheck).Passed, Dump(r));
        if (failingCheck == "quote.signature")
        {
            Assert.IsTrue(Check(r, "qe-report.signature").Passed, "only the quote signature should break");
        }
    }

    [TestMethod]
    public void Quote2_V5_Td15_UpToDate()
    {
        var q = TdxQuote.Parse(SharedFixtures.Bytes("tdx", "go-tdx-guest_quote_v5_sample.dat"));
        Assert.AreEqual(5, q.Version);
        Assert.AreEqual(TdxReportBodyKind.Td15, q.BodyKind);
        Assert.AreEqual(0x2BE, q.SignedRegion.Length);
        Assert.IsTrue(Hex(q.Body.TeeTcbSvn).StartsWith("0b010400", StringComparison.Ordinal));
        Assert.IsTrue(Hex(q.Body.TeeTcbSvn2).StartsWith("0d010400", StringComparison.Ordinal));
        Assert.AreEqual(new string('0', 96), Hex(q.Body.MrServiceTd));
        Assert.AreEqual("0000001000000000", Hex(q.Body.TdAttributes));
        Assert.AreEqual("7348651a34b2d2d3462822e3a750ec6110125f36757c78480bbfc69cc0d21fb001a1ced3ee19747dda8f750c3bc8f876", Hex(q.Body.MrTd));
        Assert.AreEqual(7, q.QeReport.IsvSvn);

        var r = Verifier.Verify(q, GoTdxCollateral("go-tdx-guest_sample_tcbinfo_response_v5"), DateTimeOffset.Parse("2026-02-03T01:00:00Z"));
        Assert.IsTrue(r.SignaturesValid, Dump(r));
        Assert.IsTrue(Check(r, "pck-chain.validity").Passed, Dump(r));
        Assert.IsTrue(Check(r, "tcb-info.signature").Passed, Dump(r));
        Assert.IsTrue(Check(r, "tcb-info.fresh").Passed, Dump(r));
        Assert.IsTrue(Check(r, "tcb-info.fmspc").Passed, Dump(r));
        Assert.IsTrue(Check(r, "tcb-info.tcb-level").Passed, Dump(r));
        Assert.AreEqual(TcbStatus.UpToDate, r.PlatformTcbStatus);
        Assert.AreEqual(DateTimeOffset.Parse("2024-11-13T00:00:00Z"), r.TcbDate);
        Assert.IsTrue(Check(r, "tdx-module.identity").Passed, Dump(r));
        Assert.AreEqual(TcbStatus.UpToDate, r.ModuleTcbStatus);
        // The only QE identity in the repository is from 2023: it cannot be fresh in 2026.
        Assert.IsFalse(Check(r, "qe-identity.fresh").Passed);
    }

    [TestMethod]
    public void Quote3_Cos113_SignaturesValid_NoCollateralForFmspc()
    {
        var q = TdxQuote.Parse(SharedFixtures.Bytes("tdx", "ccel", "go-tdx-guest_cos-113-tdx-quote.dat"));
        Assert.AreEqual(3065, q.TrailingByteCount);
        CollectionAssert.AreEqual(SharedFixtures.Bytes("tdx", "ccel", "go-tdx-guest_nonce.dat"), q.Body.ReportData.ToArray());
        Assert.AreEqual("dae67181d3d65e073ad8f95b7907d5e927bfe9761c9ff3e9b89734a45d8954dba41394c7717cb2735396c1d04231f94a", Hex(q.Body.MrTd));
        var r = Verifier.Verify(q, GoTdxCollateral("go-tdx-guest_sample_tcbInfo_response"), DateTimeOffset.Parse("2025-01-01T00:00:00Z"));
        Assert.IsTrue(r.SignaturesValid, Dump(r));
        Assert.IsTrue(Check(r, "pck-chain.validity").Passed, Dump(r));
        Assert.AreEqual("00806F050000", r.Fmspc);
        Assert.IsFalse(Check(r, "tcb-info.fmspc").Passed);
        Assert.AreEqual(TcbStatus.Unknown, r.PlatformTcbStatus ?? TcbStatus.Unknown);
    }

    [TestMethod]
    public void Quote4_DcapQvl_UpToDate_NoAdvisories()
    {
        var q = TdxQuote.Parse(SharedFixtures.Bytes("tdx", "phala-dcap-qvl_tdx_quote"));
        Assert.AreEqual(70, q.TrailingByteCount);
        Assert.AreEqual("91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7", Hex(q.Body.MrTd));
        var col = TdxCollateral.FromDcapQvlJson(SharedFixtures.Bytes("tdx", "phala-dcap-qvl_tdx_quote_collateral.json"));
        // dcap-qvl evaluates at min(nextUpdate) - 1 s.
        var r = Verifier.Verify(q, col, DateTimeOffset.Parse("2025-07-19T10:00:34Z"));
        Assert.IsTrue(r.IsValid, Dump(r));
        Assert.AreEqual(TcbStatus.UpToDate, r.TcbStatus);
        Assert.AreEqual(0, r.AdvisoryIds.Count);
        Assert.AreEqual(TcbStatus.UpToDate, r.ModuleTcbStatus);
        Assert.AreEqual(TcbStatus.UpToDate, r.QeTcbStatus);
        Assert.AreEqual(DateTimeOffset.Parse("2024-03-13T00:00:00Z"), r.TcbDate);
        Assert.IsTrue(Verifier.Verify(q, col, DateTimeOffset.Parse("2025-07-18T10:16:03Z")).IsValid);
        var late = Verifier.Verify(q, col, DateTimeOffset.Parse("2025-07-19T10:00:36Z"));
        Assert.IsFalse(Check(late, "pck-crl.fresh").Passed);
        var early = Verifier.Verify(q, col, DateTimeOffset.Parse("2025-06-19T10:32:26Z"));
        Assert.IsFalse(Check(early, "qe-identity.fresh").Passed);
    }

    [TestMethod]
    public void Quote5_DcapQvlOutdated_NoLevelMatches()
    {
        var q = TdxQuote.Parse(SharedFixtures.Bytes("tdx", "phala-dcap-qvl_tdx_quote_outdated"));
        Assert.AreEqual(5, q.Version);
        Assert.AreEqual(TdxReportBodyKind.Td15, q.BodyKind);
        Assert.AreEqual("273828c46252fcbdd8ad2dd907130222b03466d52a2911d70c1a5950895d6bd1ae451d382d5a9b1b4c0ed0e5ae9a3dbd", Hex(q.Body.MrTd));
        var col = TdxCollateral.FromDcapQvlJson(SharedFixtures.Bytes("tdx", "phala-dcap-qvl_tdx_quote_outdated_collateral.json"));
        var r = Verifier.Verify(q, col, DateTimeOffset.Parse("2026-03-01T00:00:00Z"));
        Assert.IsTrue(r.SignaturesValid, Dump(r));
        foreach (var c in r.Checks.Where(c => c.Name != "tcb-info.tcb-level"))
        {
            Assert.IsTrue(c.Passed, c.ToString());
        }

        Assert.IsFalse(Check(r, "tcb-info.tcb-level").Passed);
        Assert.AreEqual(TcbStatus.NotSupported, r.TcbStatus);
        Assert.AreEqual(TcbStatus.UpToDate, r.ModuleTcbStatus);
        Assert.AreEqual(TcbStatus.UpToDate, r.QeTcbStatus);
    }

    [TestMethod]
    public void CollateralDirectory_PicksTcbInfoByFmspc()
    {
        var col = TdxCollateral.Load(SharedFixtures.Path2("tdx"));
        CollectionAssert.AreEquivalent(new[] { "50806F000000", "90C06F000000" }, col.Fmspcs.ToArray());
        Assert.IsTrue(col.HasQeIdentity && col.HasPckCrl && col.HasRootCrl);
    }

    internal static string Hex(ReadOnlyMemory<byte> m) => Convert.ToHexString(m.Span).ToLowerInvariant();
}
