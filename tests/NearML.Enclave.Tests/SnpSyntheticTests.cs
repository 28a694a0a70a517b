namespace NearML.Enclave.Tests;

[TestClass]
public sealed class SnpSyntheticTests
{
    private static readonly SnpTcbVersion Tcb = new(0, 3, 0, 8, 115);
    private static readonly byte[] Rd = Enumerable.Range(0, 64).Select(i => (byte)(i * 3)).ToArray();

    private static AttestationCheck Check(SnpVerificationResult r, string n) => r.Checks.Single(c => c.Name == n);

    [TestMethod]
    public void Milan_Valid()
    {
        var amd = TestAmdPki.Get(Tcb);
        var rep = SnpReport.Parse(amd.Report(Rd, TestAmdPki.EncodeTcb(Tcb, SnpProduct.Milan)));
        var r = amd.Verifier().Verify(rep, amd.Certificates(), TestAmdPki.At);
        Assert.IsTrue(r.IsValid, string.Join("\n", r.Checks));
        Assert.AreEqual(Tcb, r.ReportedTcb);
        StringAssert.Contains(Check(r, "snp-chain.vcek-signature").Detail, "PSS");
    }

    [TestMethod]
    public void Turin_UsesTurinLayout_And8ByteHwId()
    {
        var turinTcb = new SnpTcbVersion(1, 2, 0, 4, 77);
        var amd = TestAmdPki.Get(turinTcb, SnpProduct.Turin);
        var rep = SnpReport.Parse(amd.Report(Rd, TestAmdPki.EncodeTcb(turinTcb, SnpProduct.Turin), version: 3, family: 0x1A, model: 0x02));
        Assert.AreEqual(SnpProduct.Turin, rep.ProductFromCpuid);
        var r = amd.Verifier(SnpProduct.Turin).Verify(rep, amd.Certificates(), TestAmdPki.At);
        Assert.IsTrue(r.IsValid, string.Join("\n", r.Checks));
        Assert.AreEqual(turinTcb, r.ReportedTcb);
        // Decoding the same raw TCB with the Milan layout gives different fields: the layout matters.
        Assert.AreNotEqual(turinTcb, SnpTcbVersion.Decode(rep.ReportedTcb, SnpProduct.Milan));
    }

    [TestMethod]
    public void ReportedTcbAboveVcek_Fails()
    {
        var amd = TestAmdPki.Get(Tcb);
        var rep = SnpReport.Parse(amd.Report(Rd, TestAmdPki.EncodeTcb(Tcb with { Snp = 9 }, SnpProduct.Milan)));
        var r = amd.Verifier().Verify(rep, amd.Certificates(), TestAmdPki.At);
        Assert.IsFalse(Check(r, "snp.reported-tcb").Passed);
        // The P-384 verification is spent only on a report whose cheap fields agree with the VCEK.
        Assert.IsFalse(Check(r, "report.signature").Passed);
        StringAssert.StartsWith(Check(r, "report.signature").Detail, "not checked: REPORTED_TCB");
    }

    [TestMethod]
    public void CpuidProductDisagreesWithArk_Fails()
    {
        var amd = TestAmdPki.Get(Tcb);
        var rep = SnpReport.Parse(amd.Report(Rd, TestAmdPki.EncodeTcb(Tcb, SnpProduct.Milan), version: 3, family: 0x19, model: 0x11));
        var r = amd.Verifier().Verify(rep, amd.Certificates(), TestAmdPki.At);
        Assert.IsFalse(Check(r, "snp.product").Passed);
    }

    [TestMethod]
    public void UnpinnedArk_AndExpiry_Fail()
    {
        var amd = TestAmdPki.Get(Tcb);
        var rep = SnpReport.Parse(amd.Report(Rd, TestAmdPki.EncodeTcb(Tcb, SnpProduct.Milan)));
        var prod = new SnpReportVerifier().Verify(rep, amd.Certificates(), TestAmdPki.At);
        Assert.IsFalse(Check(prod, "snp-chain.ark-pinned").Passed);
        var late = amd.Verifier().Verify(rep, amd.Certificates(), TestAmdPki.At.AddYears(30));
        Assert.IsFalse(Check(late, "snp-chain.validity").Passed);
    }

    [TestMethod]
    public void VlekReport_WithVcekCertificate_FailsSigningKeyCheck()
    {
        var amd = TestAmdPki.Get(Tcb);
        var rep = SnpReport.Parse(amd.Report(Rd, TestAmdPki.EncodeTcb(Tcb, SnpProduct.Milan), signingKey: 1));
        Assert.AreEqual(SnpSigningKey.Vlek, rep.SigningKey);
        var r = amd.Verifier().Verify(rep, amd.Certificates(), TestAmdPki.At);
        Assert.IsFalse(Check(r, "report.signing-key").Passed);
        var vlek = TestAmdPki.Get(Tcb, subject: "CN=SEV-VLEK");
        var ok = vlek.Verifier().Verify(SnpReport.Parse(vlek.Report(Rd, TestAmdPki.EncodeTcb(Tcb, SnpProduct.Milan), signingKey: 1)), vlek.Certificates(), TestAmdPki.At);
        Assert.IsTrue(ok.IsValid, string.Join("\n", ok.Checks));
    }

    [TestMethod]
    public void PolicyBits_AreJudged()
    {
        var amd = TestAmdPki.Get(Tcb);
        ulong policy = 0x30000 | (1UL << 18) | (1UL << 19); // migration agent + debug
        var rep = SnpReport.Parse(amd.Report(Rd, TestAmdPki.EncodeTcb(Tcb, SnpProduct.Milan), policy: policy));
        var r = amd.Verifier().Verify(rep, amd.Certificates(), TestAmdPki.At);
        var verdict = new AttestationPolicy { ForbidSnpSmt = true, MinimumSnpTcb = "3.0.9.115" }.Evaluate(AttestationClaims.FromSnp(rep, r));
        Assert.IsFalse(verdict.Accepted);
        string[] failed = verdict.Failures.Select(f => f.Name).ToArray();
        CollectionAssert.AreEquivalent(new[] { "policy.debug-forbidden", "policy.snp-migration-agent", "policy.snp-smt", "policy.minimum-tcb" }, failed);
    }
}
