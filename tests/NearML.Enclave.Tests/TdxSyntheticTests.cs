using System.Buffers.Binary;

namespace NearML.Enclave.Tests;

[TestClass]
public sealed class TdxSyntheticTests
{
    private static readonly int[] Sgx = [5, 5, 2, 2, 3, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0];
    private static readonly int[] Tdx = [3, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    private static readonly byte[] Rd = Enumerable.Range(0, 64).Select(i => (byte)i).ToArray();

    private static string Levels(params string[] l) => "[" + string.Join(',', l) + "]";

    private static AttestationCheck Check(TdxVerificationResult r, string n) => r.Checks.Single(c => c.Name == n);

    [TestMethod]
    public void SyntheticQuote_FullyValid_UpToDate()
    {
        using var pki = new TestIntelPki();
        byte[] quote = pki.Quote(Rd, trailing: 17);
        var col = pki.Collateral(pki.TcbInfoJson(Levels(TestIntelPki.Level(Sgx, 11, Tdx, "UpToDate"))));
        var r = pki.Verifier().Verify(TdxQuote.Parse(quote), col, TestIntelPki.At);
        Assert.IsTrue(r.IsValid, string.Join("\n", r.Checks));
        Assert.AreEqual(TcbStatus.UpToDate, r.TcbStatus);
        StringAssert.StartsWith(r.Checks.Single(c => c.Name == "quote.trailing-bytes").Detail, "17 byte(s) after the signature data");
        Assert.AreEqual(TcbStatus.UpToDate, r.QeTcbStatus);
    }

    [TestMethod]
    public void ProductionVerifier_RefusesTestRoot()
    {
        using var pki = new TestIntelPki();
        var r = new TdxQuoteVerifier().Verify(TdxQuote.Parse(pki.Quote(Rd)), null, TestIntelPki.At);
        Assert.IsFalse(Check(r, "pck-chain.root-pinned").Passed);
        // An unpinned root is not worth a signature verification, nor is anything under it.
        Assert.AreEqual("not checked: the root is not pinned", Check(r, "pck-chain.root-signature").Detail);
        Assert.IsFalse(Check(r, "pck-chain.leaf-signature").Passed);
        StringAssert.StartsWith(Check(r, "qe-report.signature").Detail, "not checked");
        Assert.IsFalse(r.SignaturesValid);
    }

    [TestMethod]
    public void IntermediateWithoutCaFlag_Fails()
    {
        using var pki = new TestIntelPki(platformIsCa: false);
        var r = pki.Verifier().Verify(TdxQuote.Parse(pki.Quote(Rd)), null, TestIntelPki.At);
        Assert.IsTrue(Check(r, "pck-chain.leaf-signature").Passed);
        Assert.IsFalse(Check(r, "pck-chain.issuers-are-ca").Passed);
        Assert.IsFalse(r.SignaturesValid);
    }

    [TestMethod]
    public void FirstMatchingLevel_GivesStatusAndAdvisories()
    {
        using var pki = new TestIntelPki(sgxSvns: [4, 4, 2, 2, 3, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0]);
        int[] older = [4, 4, 2, 2, 3, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0];
        var col = pki.Collateral(pki.TcbInfoJson(Levels(
            TestIntelPki.Level(Sgx, 11, Tdx, "UpToDate"),
            TestIntelPki.Level(older, 11, Tdx, "SWHardeningNeeded", "2028-01-01T00:00:00Z", "INTEL-SA-00615"),
            TestIntelPki.Level(older, 5, Tdx, "OutOfDate", "2027-01-01T00:00:00Z", "INTEL-SA-00001"))));
        var r = pki.Verifier().Verify(TdxQuote.Parse(pki.Quote(Rd)), col, TestIntelPki.At);
        Assert.AreEqual(TcbStatus.SWHardeningNeeded, r.TcbStatus);
        CollectionAssert.AreEqual(new[] { "INTEL-SA-00615" }, r.AdvisoryIds.ToArray());
        Assert.IsTrue(r.IsValid);
    }

    [TestMethod]
    public void PceSvnBelowEveryLevel_NotSupported()
    {
        using var pki = new TestIntelPki(pceSvn: 4);
        var col = pki.Collateral(pki.TcbInfoJson(Levels(TestIntelPki.Level(Sgx, 11, Tdx, "UpToDate"), TestIntelPki.Level(Sgx, 5, Tdx, "OutOfDate"))));
        var r = pki.Verifier().Verify(TdxQuote.Parse(pki.Quote(Rd)), col, TestIntelPki.At);
        Assert.AreEqual(TcbStatus.NotSupported, r.TcbStatus);
        Assert.IsFalse(Check(r, "tcb-info.tcb-level").Passed);
    }

    [TestMethod]
    public void Tdx15_SkipsBytes0And1_AndUsesModuleIdentity()
    {
        using var pki = new TestIntelPki();
        // Level demands byte 0 = 9, which the quote (module SVN 2) does not meet: only Intel QVL's TDX 1.5 rule (skip bytes 0-1
        // when TEE_TCB_SVN[1] > 0) matches it; the module SVN is judged by TDX_01 instead.
        int[] tdx = [9, 1, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        string modules = "[{\"id\":\"TDX_01\",\"mrsigner\":\"" + new string('0', 96) + "\",\"attributes\":\"0000000000000000\",\"attributesMask\":\"FFFFFFFFFFFFFFFF\",\"tcbLevels\":["
            + "{\"tcb\":{\"isvsvn\":3},\"tcbDate\":\"2029-01-01T00:00:00Z\",\"tcbStatus\":\"UpToDate\"},"
            + "{\"tcb\":{\"isvsvn\":1},\"tcbDate\":\"2028-01-01T00:00:00Z\",\"tcbStatus\":\"OutOfDate\",\"advisoryIDs\":[\"INTEL-SA-01111\"]}]}]";
        var col = pki.Collateral(pki.TcbInfoJson(Levels(TestIntelPki.Level(Sgx, 11, tdx, "UpToDate")), modules));
        var v = pki.Verifier();

        var upToDate = v.Verify(TdxQuote.Parse(pki.Quote(Rd, teeTcbSvn: [3, 1, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], version: 5)), col, TestIntelPki.At);
        Assert.IsTrue(upToDate.IsValid, string.Join("\n", upToDate.Checks));
        Assert.AreEqual(TcbStatus.UpToDate, upToDate.TcbStatus);

        var outdatedModule = v.Verify(TdxQuote.Parse(pki.Quote(Rd, teeTcbSvn: [2, 1, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], version: 5)), col, TestIntelPki.At);
        Assert.AreEqual(TcbStatus.UpToDate, outdatedModule.PlatformTcbStatus);
        Assert.AreEqual(TcbStatus.OutOfDate, outdatedModule.ModuleTcbStatus);
        Assert.AreEqual(TcbStatus.OutOfDate, outdatedModule.TcbStatus, "module OutOfDate converges UpToDate → OutOfDate");
        CollectionAssert.Contains(outdatedModule.AdvisoryIds.ToArray(), "INTEL-SA-01111");

        var unknownModule = v.Verify(TdxQuote.Parse(pki.Quote(Rd, teeTcbSvn: [3, 2, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], version: 5)), col, TestIntelPki.At);
        Assert.IsFalse(Check(unknownModule, "tdx-module.identity").Passed);
        Assert.AreEqual(TcbStatus.NotSupported, unknownModule.TcbStatus);
    }

    [TestMethod]
    public void QeOutOfDate_ConvergesPlatformStatus()
    {
        using var pki = new TestIntelPki();
        var col = pki.Collateral(pki.TcbInfoJson(Levels(TestIntelPki.Level(Sgx, 11, Tdx, "ConfigurationNeeded"))), pki.QeIdentityJson(isvsvnUpToDate: 8));
        var r = pki.Verifier().Verify(TdxQuote.Parse(pki.Quote(Rd, qeSvn: 4)), col, TestIntelPki.At);
        Assert.AreEqual(TcbStatus.OutOfDate, r.QeTcbStatus);
        Assert.AreEqual(TcbStatus.OutOfDateConfigurationNeeded, r.TcbStatus);
        CollectionAssert.Contains(r.AdvisoryIds.ToArray(), "INTEL-SA-00999");
    }

    [TestMethod]
    public void RevokedPck_IsReported()
    {
        using var pki = new TestIntelPki();
        var col = pki.Collateral(pki.TcbInfoJson(Levels(TestIntelPki.Level(Sgx, 11, Tdx, "UpToDate"))), pckCrl: pki.Crl(pki.Platform, pki.PlatformKey, pki.Pck));
        var r = pki.Verifier().Verify(TdxQuote.Parse(pki.Quote(Rd)), col, TestIntelPki.At);
        Assert.IsFalse(Check(r, "pck-crl.not-revoked").Passed);
        Assert.IsFalse(r.IsValid);
    }

    [TestMethod]
    public void RevokedIntermediate_ByRootCrl_IsReported()
    {
        using var pki = new TestIntelPki();
        var col = pki.Collateral(pki.TcbInfoJson(Levels(TestIntelPki.Level(Sgx, 11, Tdx, "UpToDate"))), rootCrl: pki.Crl(pki.Root, pki.RootKey, pki.Platform));
        var r = pki.Verifier().Verify(TdxQuote.Parse(pki.Quote(Rd)), col, TestIntelPki.At);
        Assert.IsFalse(Check(r, "root-crl.not-revoked").Passed);
    }

    [TestMethod]
    public void CrlSignedByWrongKey_Fails()
    {
        using var pki = new TestIntelPki();
        using var other = new TestIntelPki();
        var col = pki.Collateral(pki.TcbInfoJson(Levels(TestIntelPki.Level(Sgx, 11, Tdx, "UpToDate"))), pckCrl: other.Crl(other.Platform, other.PlatformKey));
        var r = pki.Verifier().Verify(TdxQuote.Parse(pki.Quote(Rd)), col, TestIntelPki.At);
        Assert.IsFalse(Check(r, "pck-crl.signature").Passed);
    }

    [TestMethod]
    public void TamperedTcbInfo_SignatureFails()
    {
        using var pki = new TestIntelPki();
        string json = pki.TcbInfoJson(Levels(TestIntelPki.Level(Sgx, 11, Tdx, "OutOfDate")));
        byte[] body = pki.SignedBody("tcbInfo", json);
        string tampered = System.Text.Encoding.UTF8.GetString(body).Replace("\"OutOfDate\"", "\"UpToDate\"", StringComparison.Ordinal);
        var col = TdxCollateral.FromPcsResponses([System.Text.Encoding.UTF8.GetBytes(tampered)], System.Text.Encoding.ASCII.GetBytes(TestIntelPki.Pem(pki.Signing, pki.Root)),
            pki.SignedBody("enclaveIdentity", pki.QeIdentityJson()), default, pki.Crl(pki.Platform, pki.PlatformKey), pki.Crl(pki.Root, pki.RootKey));
        var r = pki.Verifier().Verify(TdxQuote.Parse(pki.Quote(Rd)), col, TestIntelPki.At);
        Assert.IsFalse(Check(r, "tcb-info.signature").Passed);
        Assert.AreEqual(TcbStatus.Unknown, r.TcbStatus, "an unsigned TCB Info must not yield a status");
        var lenient = new AttestationPolicy { RequireFullVerification = false }.Evaluate(AttestationClaims.FromTdx(TdxQuote.Parse(pki.Quote(Rd)), r));
        Assert.IsFalse(lenient.Rules.Single(x => x.Name == "policy.minimum-tcb").Passed);
    }

    [TestMethod]
    public void StaleCollateral_AndExpiredPck_Fail()
    {
        using var pki = new TestIntelPki(pckNotAfter: TestIntelPki.T0.AddDays(5));
        var col = pki.Collateral(pki.TcbInfoJson(Levels(TestIntelPki.Level(Sgx, 11, Tdx, "UpToDate"))));
        var r = pki.Verifier().Verify(TdxQuote.Parse(pki.Quote(Rd)), col, TestIntelPki.T0.AddDays(40));
        Assert.IsFalse(Check(r, "tcb-info.fresh").Passed);
        Assert.IsFalse(Check(r, "qe-identity.fresh").Passed);
        Assert.IsFalse(Check(r, "pck-crl.fresh").Passed);
        Assert.IsFalse(Check(r, "pck-chain.validity").Passed);
    }

    [TestMethod]
    public void WrongAttestationKeyBinding_Fails()
    {
        using var pki = new TestIntelPki();
        byte[] q = pki.Quote(Rd);
        var parsed = TdxQuote.Parse(q);
        int authOff = parsed.SignatureDataOffset + 128 + 6 + 384 + 64 + 2;
        q[authOff] ^= 0xFF; // QE auth data is outside the QE report: the binding hash no longer matches
        var r = pki.Verifier().Verify(TdxQuote.Parse(q), null, TestIntelPki.At);
        Assert.IsFalse(Check(r, "qe-report.attestation-key-binding").Passed);
        Assert.IsTrue(Check(r, "qe-report.signature").Passed);
        // An attestation key the QE report does not vouch for is not imported nor used.
        Assert.IsFalse(Check(r, "quote.signature").Passed);
        StringAssert.StartsWith(Check(r, "quote.signature").Detail, "not checked: the attestation key is not vouched for");
    }

    [TestMethod]
    public void TamperedQeReport_SignatureFails()
    {
        using var pki = new TestIntelPki();
        byte[] q = pki.Quote(Rd);
        var parsed = TdxQuote.Parse(q);
        q[parsed.SignatureDataOffset + 128 + 6 + 258] ^= 1; // QE ISVSVN
        var r = pki.Verifier().Verify(TdxQuote.Parse(q), null, TestIntelPki.At);
        Assert.IsFalse(Check(r, "qe-report.signature").Passed);
    }

    [TestMethod]
    public void QeIdentityMismatch_Fails()
    {
        using var pki = new TestIntelPki();
        string qe = pki.QeIdentityJson().Replace("\"isvprodid\":2", "\"isvprodid\":1", StringComparison.Ordinal);
        var col = pki.Collateral(pki.TcbInfoJson(Levels(TestIntelPki.Level(Sgx, 11, Tdx, "UpToDate"))), qe);
        var r = pki.Verifier().Verify(TdxQuote.Parse(pki.Quote(Rd)), col, TestIntelPki.At);
        Assert.IsFalse(Check(r, "qe-identity.qe-report").Passed);
    }

    [TestMethod]
    public void Converge_Table()
    {
        Assert.AreEqual(TcbStatus.OutOfDate, TdxQuoteVerifier.Converge(TcbStatus.SWHardeningNeeded, TcbStatus.OutOfDate));
        Assert.AreEqual(TcbStatus.OutOfDateConfigurationNeeded, TdxQuoteVerifier.Converge(TcbStatus.ConfigurationAndSWHardeningNeeded, TcbStatus.OutOfDate));
        Assert.AreEqual(TcbStatus.Revoked, TdxQuoteVerifier.Converge(TcbStatus.UpToDate, TcbStatus.Revoked));
        Assert.AreEqual(TcbStatus.ConfigurationNeeded, TdxQuoteVerifier.Converge(TcbStatus.ConfigurationNeeded, TcbStatus.UpToDate));
    }
}

[TestClass]
public sealed class ParserTests
{
    private static readonly byte[] Rd = new byte[64];

    [TestMethod]
    public void EveryTruncation_IsATypedError()
    {
        using var pki = new TestIntelPki();
        byte[] q = pki.Quote(Rd);
        var parsed = TdxQuote.Parse(q);
        int end = q.Length; // no trailing bytes
        foreach (int len in new[] { 0, 10, 47, 48, 300, 631, 632, 635, 700, 1000, end - 1 })
        {
            var e = Assert.ThrowsExactly<AttestationFormatException>(() => TdxQuote.Parse(q.AsMemory(0, len)), $"length {len}");
            Assert.IsFalse(string.IsNullOrEmpty(e.Field));
        }

        Assert.AreEqual(0, parsed.TrailingByteCount);
    }

    [TestMethod]
    public void OversizedSignatureDataLength_NamesFieldAndOffset()
    {
        using var pki = new TestIntelPki();
        byte[] q = pki.Quote(Rd);
        BinaryPrimitives.WriteUInt32LittleEndian(q.AsSpan(632), 100000);
        var e = Assert.ThrowsExactly<AttestationFormatException>(() => TdxQuote.Parse(q));
        Assert.AreEqual("signature_data_len", e.Field);
        Assert.AreEqual(632, e.Offset);
    }

    [TestMethod]
    public void InconsistentQeAuthLength_IsTypedError()
    {
        using var pki = new TestIntelPki();
        byte[] q = pki.Quote(Rd);
        var p = TdxQuote.Parse(q);
        int authLenOff = p.SignatureDataOffset + 128 + 6 + 384 + 64;
        BinaryPrimitives.WriteUInt16LittleEndian(q.AsSpan(authLenOff), 40);
        var e = Assert.ThrowsExactly<AttestationFormatException>(() => TdxQuote.Parse(q));
        StringAssert.StartsWith(e.Field, "qe_certification_data", StringComparison.Ordinal);
    }

    [TestMethod]
    public void V5_BadBodyTypeOrSize()
    {
        using var pki = new TestIntelPki();
        byte[] q = pki.Quote(Rd, version: 5);
        Assert.AreEqual(TdxReportBodyKind.Td15, TdxQuote.Parse(q).BodyKind);
        byte[] a = (byte[])q.Clone();
        a[48] = 9;
        Assert.AreEqual("body.type", Assert.ThrowsExactly<AttestationFormatException>(() => TdxQuote.Parse(a)).Field);
        byte[] b = (byte[])q.Clone();
        b[50] = 0x10;
        Assert.AreEqual("body.size", Assert.ThrowsExactly<AttestationFormatException>(() => TdxQuote.Parse(b)).Field);
    }

    [TestMethod]
    public void WrongTeeTypeAndKeyType()
    {
        using var pki = new TestIntelPki();
        byte[] q = pki.Quote(Rd);
        q[4] = 0;
        Assert.AreEqual("header.tee_type", Assert.ThrowsExactly<AttestationFormatException>(() => TdxQuote.Parse(q)).Field);
        q = pki.Quote(Rd);
        q[2] = 3;
        Assert.AreEqual("header.att_key_type", Assert.ThrowsExactly<AttestationFormatException>(() => TdxQuote.Parse(q)).Field);
    }

    [TestMethod]
    public void SnpReport_Truncated_BadVersion_BadAlgo_BadPolicy()
    {
        var amd = TestAmdPki.Get(new SnpTcbVersion(0, 3, 0, 8, 115));
        byte[] r = amd.Report(Rd, 1);
        Assert.AreEqual("report", Assert.ThrowsExactly<AttestationFormatException>(() => SnpReport.Parse(r.AsMemory(0, 1183))).Field);
        byte[] v = (byte[])r.Clone();
        v[0] = 1;
        Assert.AreEqual("VERSION", Assert.ThrowsExactly<AttestationFormatException>(() => SnpReport.Parse(v)).Field);
        byte[] a = (byte[])r.Clone();
        a[0x34] = 2;
        Assert.AreEqual("SIGNATURE_ALGO", Assert.ThrowsExactly<AttestationFormatException>(() => SnpReport.Parse(a)).Field);
        byte[] p = (byte[])r.Clone();
        p[0x0A] = 0;
        Assert.AreEqual("POLICY", Assert.ThrowsExactly<AttestationFormatException>(() => SnpReport.Parse(p)).Field);
        byte[] longer = [.. r, 1, 2, 3];
        var trailing = Assert.ThrowsExactly<AttestationFormatException>(() => SnpReport.Parse(longer), "bytes appended to a report are refused");
        StringAssert.Contains(trailing.Message, "3 byte(s) follow it");
    }

    [TestMethod]
    public void EventLog_TruncatedEvent_IsTypedError()
    {
        byte[] log = TestEventLog.Build(out _, out int length);
        Assert.ThrowsExactly<AttestationFormatException>(() => TdxEventLog.Parse(log.AsMemory(0, length - 5)));
        Assert.ThrowsExactly<AttestationFormatException>(() => TdxEventLog.Parse(new byte[100]));
    }
}
