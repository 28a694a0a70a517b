namespace NearML.Enclave.Tests;

[TestClass]
[TestCategory("Conformance")]
public sealed class SnpConformanceTests
{
    private static readonly SnpReportVerifier Verifier = new();

    private static string Dump(SnpVerificationResult r) => string.Join("\n", r.Checks);

    private static string Hex(ReadOnlyMemory<byte> m) => TdxConformanceTests.Hex(m);

    [TestMethod]
    public void Report1_GoSevGuest_ValidSignature_DebugPolicy()
    {
        var rep = SnpReport.Parse(SharedFixtures.Bytes("snp", "go-sev-guest_attestation.bin"));
        Assert.AreEqual(2u, rep.Version);
        Assert.AreEqual(0u, rep.Vmpl);
        Assert.AreEqual(0xB0000UL, rep.Policy);
        Assert.IsTrue(rep.PolicyDebugAllowed);
        Assert.IsTrue(rep.PolicySmtAllowed);
        Assert.IsFalse(rep.PolicyMigrationAgentAllowed);
        Assert.AreEqual("b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01", Hex(rep.Measurement));
        Assert.AreEqual("0102030405" + new string('0', 118), Hex(rep.ReportData));
        Assert.AreEqual("3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b76a1936776b564ea464cdce40c05f63c9b610c5068b006b5d", Hex(rep.ChipId));
        Assert.AreEqual(0x4405000000000002UL, rep.ReportedTcb);
        Assert.AreEqual(rep.ReportedTcb, rep.CurrentTcb);
        Assert.AreEqual(rep.ReportedTcb, rep.LaunchTcb);
        Assert.AreEqual(new SnpTcbVersion(0, 2, 0, 5, 68), SnpTcbVersion.Decode(rep.ReportedTcb, SnpProduct.Milan));
        Assert.AreEqual(new Version(1, 49, 3), rep.CurrentFirmware);

        var certs = SnpCertificates.Parse(SharedFixtures.Bytes("snp", "go-sev-guest_vcek.der"), SharedFixtures.Bytes("snp", "go-sev-guest_ask_ark_milan.pem"));
        var r = Verifier.Verify(rep, certs, DateTimeOffset.Parse("2022-09-24T01:00:00Z"));
        Assert.IsTrue(r.IsValid, Dump(r));
        Assert.AreEqual(SnpProduct.Milan, r.Product);

        // Valid signature, bad policy: a policy forbidding debug must reject it.
        var policy = new AttestationPolicy { AllowedVendors = [AttestationVendor.AmdSevSnp] };
        var verdict = policy.Evaluate(AttestationClaims.FromSnp(rep, r));
        Assert.IsFalse(verdict.Accepted);
        Assert.IsFalse(verdict.Rules.Single(x => x.Name == "policy.debug-forbidden").Passed);
    }

    [TestMethod]
    public void Report2_Virtee_Valid_AndByte21FlipBreaksSignature()
    {
        byte[] bin = SharedFixtures.Bytes("snp", "virtee-sev_report_milan.bin");
        CollectionAssert.AreEqual(Convert.FromHexString(File.ReadAllText(SharedFixtures.Path2("snp", "virtee-sev_report_milan.hex")).Trim()), bin);
        var rep = SnpReport.Parse(bin);
        Assert.AreEqual(0x30000UL, rep.Policy);
        Assert.IsFalse(rep.PolicyDebugAllowed);
        Assert.AreEqual("7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f", Hex(rep.Measurement));
        Assert.AreEqual(new SnpTcbVersion(0, 3, 0, 8, 115), SnpTcbVersion.Decode(rep.ReportedTcb, SnpProduct.Milan));
        Assert.AreEqual(new Version(1, 52, 4), rep.CurrentFirmware);
        var certs = SnpCertificates.Parse(SharedFixtures.Bytes("snp", "virtee-sev_vcek_milan.der"), SharedFixtures.Bytes("snp", "go-sev-guest_ask_ark_milan.pem"));
        var at = DateTimeOffset.Parse("2024-01-01T00:00:00Z");
        Assert.IsTrue(Verifier.Verify(rep, certs, at).IsValid, Dump(Verifier.Verify(rep, certs, at)));

        bin[21] ^= 0x80;
        var bad = Verifier.Verify(SnpReport.Parse(bin), certs, at);
        Assert.IsFalse(bad.IsValid);
        Assert.AreEqual("report.signature", bad.FirstFailure!.Name, Dump(bad));
    }

    [TestMethod]
    public void WrongProductChain_FailsChain()
    {
        var rep = SnpReport.Parse(SharedFixtures.Bytes("snp", "virtee-sev_report_milan.bin"));
        var certs = SnpCertificates.Parse(SharedFixtures.Bytes("snp", "virtee-sev_vcek_milan.der"), SharedFixtures.Bytes("snp", "go-sev-guest_ask_ark_genoa.pem"));
        var r = Verifier.Verify(rep, certs, DateTimeOffset.Parse("2024-01-01T00:00:00Z"));
        Assert.IsFalse(r.Checks.Single(c => c.Name == "snp-chain.vcek-signature").Passed);
        Assert.IsTrue(r.Checks.Single(c => c.Name == "snp-chain.ark-pinned").Passed);
        Assert.AreEqual(SnpProduct.Genoa, r.Product);
    }

    [TestMethod]
    public void VcekOfOtherChip_FailsSignatureAndTcbAndChipId()
    {
        var rep = SnpReport.Parse(SharedFixtures.Bytes("snp", "go-sev-guest_attestation.bin"));
        var certs = SnpCertificates.Parse(SharedFixtures.Bytes("snp", "virtee-sev_vcek_milan.der"), SharedFixtures.Bytes("snp", "go-sev-guest_ask_ark_milan.pem"));
        var r = Verifier.Verify(rep, certs, DateTimeOffset.Parse("2024-01-01T00:00:00Z"));
        Assert.IsFalse(r.Checks.Single(c => c.Name == "report.signature").Passed);
        Assert.IsFalse(r.Checks.Single(c => c.Name == "snp.reported-tcb").Passed);
        Assert.IsFalse(r.Checks.Single(c => c.Name == "snp.chip-id").Passed);
    }

    [TestMethod]
    [DataRow("go-sev-guest_ask_ark_genoa.pem", SnpProduct.Genoa)]
    [DataRow("go-sev-guest_ask_ark_turin_vcek.pem", SnpProduct.Turin)]
    [DataRow("go-sev-guest_ask_ark_milan_vlek.pem", SnpProduct.Milan)]
    public void AskArkChains_ArePinnedAndRsaPssValid(string file, SnpProduct product)
    {
        var chain = Internal.Cert.ParsePemChain(SharedFixtures.Bytes("snp", file), file);
        Assert.AreEqual(2, chain.Count);
        Assert.IsTrue(chain[0].IsSignedBy(chain[1]), "ASK/ASVK by ARK (RSA-PSS)");
        Assert.IsTrue(chain[1].IsSignedBy(chain[1]), "ARK self-signature");
        Assert.AreEqual(SnpReportVerifier.AmdArkFingerprints[product], Convert.ToHexString(chain[1].Fingerprint));
    }

    [TestMethod]
    public void TurinVcek_ChainsAndUsesTurinTcbLayout()
    {
        var vcek = Internal.Cert.Parse(SharedFixtures.Bytes("snp", "virtee-sev_vcek_turin.der"), "turin vcek");
        var chain = Internal.Cert.ParsePemChain(SharedFixtures.Bytes("snp", "go-sev-guest_ask_ark_turin_vcek.pem"), "turin");
        Assert.IsTrue(vcek.IsSignedBy(chain[0]));
        Assert.IsTrue(vcek.IsValidAt(DateTimeOffset.Parse("2025-01-01T00:00:00Z")));
        byte[]? hwid = SnpReportVerifier.ReadHwId(vcek.FindExtension(Internal.Oids.AmdHwId));
        Assert.AreEqual(8, hwid!.Length, "Turin KDS hwID is 8 bytes");
        var certs = SnpCertificates.Parse(SharedFixtures.Bytes("snp", "virtee-sev_vcek_turin.der"), SharedFixtures.Bytes("snp", "go-sev-guest_ask_ark_turin_vcek.pem"));
        SnpTcbVersion tcb = SnpReportVerifier.CertificateTcb(certs, SnpProduct.Turin)!.Value;
        // Encoding the VCEK's TCB in Turin's layout and decoding it back must round-trip (fmc/bl/tee/snp/…/ucode).
        ulong raw = tcb.Fmc | ((ulong)tcb.Bootloader << 8) | ((ulong)tcb.Tee << 16) | ((ulong)tcb.Snp << 24) | ((ulong)tcb.Microcode << 56);
        Assert.AreEqual(tcb, SnpTcbVersion.Decode(raw, SnpProduct.Turin));
        Assert.IsNull(SnpReportVerifier.CertificateTcb(SnpCertificates.Parse(SharedFixtures.Bytes("snp", "virtee-sev_vcek_milan.der"), SharedFixtures.Bytes("snp", "go-sev-guest_ask_ark_milan.pem")), SnpProduct.Turin),
            "a Milan VCEK has no FMC SPL");
    }
}

[TestClass]
[TestCategory("Conformance")]
public sealed class CcelConformanceTests
{
    [TestMethod]
    public void CcelTable_Parses()
    {
        var t = CcelTable.Parse(SharedFixtures.Bytes("tdx", "ccel", "go-tdx-guest_ccel_table.dat"));
        Assert.AreEqual((byte)2, t.CcType);
        Assert.AreEqual(0x40000UL, t.LogAreaMinimumLength);
        Assert.AreEqual(0xbedbf000UL, t.LogAreaStartAddress);
    }

    [TestMethod]
    public void EventLog_ReplaysToQuoteRtmrs()
    {
        var log = TdxEventLog.Parse(SharedFixtures.Bytes("tdx", "ccel", "go-tdx-guest_ccel_data.dat"));
        Assert.AreEqual(18101, log.Length);
        var q = TdxQuote.Parse(SharedFixtures.Bytes("tdx", "ccel", "go-tdx-guest_cos-113-tdx-quote.dat"));
        var checks = log.CompareWithQuote(q);
        Assert.AreEqual(4, checks.Count);
        Assert.IsTrue(checks.All(c => c.Passed), string.Join("\n", checks));
        Assert.AreEqual("3fa2f61f395b7f5feefb4ec2df61297f109ad8abcd6410c1b7df60f21f37b19297fc35e544039c7e1edece752afd17f6", Convert.ToHexString(log.ReplayRtmrs()[0]).ToLowerInvariant());
    }

    [TestMethod]
    public void EventLog_TamperedDigest_BreaksReplay()
    {
        byte[] data = SharedFixtures.Bytes("tdx", "ccel", "go-tdx-guest_ccel_data.dat");
        var log = TdxEventLog.Parse(data);
        TdxEvent e = log.Events.First(x => x.MrIndex == 2);
        data[e.Offset + 14] ^= 1; // first byte of its SHA-384 digest
        var q = TdxQuote.Parse(SharedFixtures.Bytes("tdx", "ccel", "go-tdx-guest_cos-113-tdx-quote.dat"));
        var checks = TdxEventLog.Parse(data).CompareWithQuote(q);
        Assert.IsFalse(checks[1].Passed);
        Assert.IsTrue(checks[0].Passed);
    }
}
