using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NearML.Enclave.Internal;

namespace NearML.Enclave.Tests;

internal sealed class ManualTimeProvider(DateTimeOffset now) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = now;

    public override DateTimeOffset GetUtcNow() => Now;
}

internal sealed class ListLogger<T> : ILogger<T>
{
    public List<(LogLevel Level, string Message)> Entries { get; } = [];

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        Entries.Add((logLevel, formatter(state, exception)));
}

[TestClass]
public sealed class BindingTests
{
    [TestMethod]
    public void ReportData_IsSha512OfLengthPrefixedParts()
    {
        byte[] key = [1, 2, 3], nonce = [4, 5];
        byte[] rd = AttestationBinding.ComputeReportData(key, nonce, "ctx");
        byte[] expected = SHA512.HashData([3, 0, 0, 0, 1, 2, 3, 2, 0, 0, 0, 4, 5, 3, 0, 0, 0, (byte)'c', (byte)'t', (byte)'x']);
        CollectionAssert.AreEqual(expected, rd);
        // Moving a byte from key to nonce changes the result (no concatenation ambiguity).
        CollectionAssert.AreNotEqual(rd, AttestationBinding.ComputeReportData([1, 2], [3, 4, 5], "ctx"));
        Assert.AreEqual("identityPublicKey", Assert.ThrowsExactly<ArgumentException>(() => AttestationBinding.ComputeReportData([], nonce, "c")).ParamName);
    }

    [TestMethod]
    public void NonceStore_ValidOnce_ThenReplayed_UnknownAndExpired()
    {
        var time = new ManualTimeProvider(TestIntelPki.At);
        var store = new AttestationNonceStore(time, TimeSpan.FromMinutes(5));
        byte[] n = store.Issue();
        Assert.AreEqual(32, n.Length);
        Assert.AreEqual(NonceStatus.Valid, store.Consume(n));
        Assert.AreEqual(NonceStatus.Replayed, store.Consume(n));
        Assert.AreEqual(NonceStatus.Unknown, store.Consume(new byte[32]));
        byte[] m = store.Issue();
        time.Now += TimeSpan.FromMinutes(5);
        Assert.AreEqual(NonceStatus.Expired, store.Consume(m));
    }
}

[TestClass]
public sealed class PolicyTests
{
    [TestMethod]
    public void Json_RoundTrip_AndValidation()
    {
        string mrtd = new string('a', 96);
        var p = AttestationPolicy.ParseJson(Encoding.UTF8.GetBytes("{ \"allowedMrTd\": [\"" + mrtd + "\"], \"minimumTcbStatus\": \"SWHardeningNeeded\", \"allowedVendors\": [\"IntelTdx\"], // comment\n \"forbidDebug\": false }"));
        Assert.AreEqual(TcbStatus.SWHardeningNeeded, p.MinimumTcbStatus);
        CollectionAssert.AreEqual(new[] { mrtd }, p.AllowedMrTd.ToArray());
        Assert.IsFalse(p.ForbidDebug);
        Assert.IsFalse(p.AllowSimulated);
        StringAssert.Contains(Assert.ThrowsExactly<AttestationException>(() => AttestationPolicy.ParseJson("{\"allowedMrTd\":[\"zz\"]}"u8)).Message, "AllowedMrTd");
        Assert.ThrowsExactly<AttestationException>(() => AttestationPolicy.ParseJson("{\"noSuchRule\":1}"u8));
        Assert.ThrowsExactly<AttestationException>(() => AttestationPolicy.ParseJson("{\"minimumTcbStatus\":\"Revoked\"}"u8));
    }

    [TestMethod]
    public void LoadJson_FromFile()
    {
        string path = Path.Combine(Path.GetTempPath(), $"nearml-policy-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, "{\"allowSimulated\":true,\"minimumSnpTcb\":\"3.0.8.115\"}");
        try
        {
            var p = AttestationPolicy.LoadJson(path);
            Assert.IsTrue(p.AllowSimulated);
            Assert.AreEqual("3.0.8.115", p.MinimumSnpTcb);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void Configuration_Binding_AndValidateOnStart()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["NearML:Attestation:Policy:AllowedRtmr0:0"] = new string('b', 96),
            ["NearML:Attestation:Policy:MinimumTcbStatus"] = "ConfigurationNeeded",
            ["NearML:Attestation:Policy:ForbidSnpSmt"] = "true",
            ["NearML:Attestation:Policy:AllowedVendors:0"] = "AmdSevSnp",
        }).Build();
        using var sp = new ServiceCollection().AddNearMLAttestation(config.GetSection(EnclaveServiceCollectionExtensions.PolicySection)).BuildServiceProvider();
        AttestationPolicy p = sp.GetRequiredService<IOptions<AttestationPolicy>>().Value;
        Assert.AreEqual(TcbStatus.ConfigurationNeeded, p.MinimumTcbStatus);
        Assert.IsTrue(p.ForbidSnpSmt);
        Assert.AreEqual(1, p.AllowedRtmr0.Count);
        CollectionAssert.AreEqual(new[] { AttestationVendor.AmdSevSnp }, p.EffectiveVendors.ToArray(), "a configured vendor list replaces the default");
        CollectionAssert.AreEqual(new[] { AttestationVendor.IntelTdx, AttestationVendor.AmdSevSnp }, new AttestationPolicy().EffectiveVendors.ToArray());
        Assert.IsNotNull(sp.GetRequiredService<AttestationVerifier>());

        var bad = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["P:AllowedMrTd:0"] = "xyz" }).Build();
        using var sp2 = new ServiceCollection().AddNearMLAttestation(bad.GetSection("P")).BuildServiceProvider();
        var e = Assert.ThrowsExactly<OptionsValidationException>(() => sp2.GetRequiredService<IOptions<AttestationPolicy>>().Value);
        StringAssert.Contains(e.Message, "AllowedMrTd");
    }

    [TestMethod]
    public void Verdict_ListsEveryRule_MeasurementsRestrict()
    {
        using var pki = new TestIntelPki();
        byte[] mrtd = SHA384.HashData("the expected image"u8);
        var q = TdxQuote.Parse(pki.Quote(new byte[64], mrTd: mrtd));
        var res = pki.Verifier().Verify(q, pki.Collateral(pki.TcbInfoJson("[" + TestIntelPki.Level([5, 5, 2, 2, 3, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0], 11, [3, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "UpToDate") + "]")), TestIntelPki.At);
        var claims = AttestationClaims.FromTdx(q, res);
        var ok = new AttestationPolicy { AllowedMrTd = [Convert.ToHexString(mrtd)] }.Evaluate(claims);
        Assert.IsTrue(ok.Accepted, string.Join("\n", ok.Rules));
        string[] names = ok.Rules.Select(r => r.Name).ToArray();
        CollectionAssert.IsSubsetOf(new[] { "evidence.authentic", "evidence.verified", "policy.vendor-allowed", "policy.debug-forbidden", "policy.minimum-tcb", "policy.mrtd", "policy.rtmr0", "policy.rtmr3" }, names);
        var wrong = new AttestationPolicy { AllowedMrTd = [new string('0', 96)], AllowedVendors = [AttestationVendor.AmdSevSnp] }.Evaluate(claims);
        CollectionAssert.AreEquivalent(new[] { "policy.vendor-allowed", "policy.mrtd" }, wrong.Failures.Select(f => f.Name).ToArray());
        var debugQuote = TdxQuote.Parse(pki.Quote(new byte[64], debug: true));
        Assert.IsTrue(debugQuote.Body.IsDebug);
        Assert.IsFalse(new AttestationPolicy().Evaluate(AttestationClaims.FromTdx(debugQuote, pki.Verifier().Verify(debugQuote, null, TestIntelPki.At))).Rules.Single(r => r.Name == "policy.debug-forbidden").Passed);
    }
}

[TestClass]
public sealed class ProviderTests
{
    /// <summary>Emulates the kernel side of configfs-tsm on a real temporary directory: a write to inblob bumps generation and produces outblob.</summary>
    private sealed class FakeTsm : ITsmFileSystem
    {
        private readonly RealTsmFileSystem _real = new();

        public string Provider { get; set; } = "tdx_guest";

        public int RacesToInject { get; set; }

        public List<string> Deleted { get; } = [];

        public bool DirectoryExists(string path) => Directory.Exists(path);

        public bool FileExists(string path) => File.Exists(path);

        public void CreateDirectory(string path)
        {
            Directory.CreateDirectory(path);
            File.WriteAllText(Path.Combine(path, "generation"), "0\n");
            File.WriteAllText(Path.Combine(path, "provider"), Provider + "\n");
            File.WriteAllBytes(Path.Combine(path, "inblob"), []);
        }

        public void DeleteDirectory(string path)
        {
            Deleted.Add(path);
            Directory.Delete(path, true);
        }

        public string ReadAllText(string path) => File.ReadAllText(path);

        public Task<string> ReadAllTextAsync(string path, CancellationToken ct) => File.ReadAllTextAsync(path, ct);

        public Task<byte[]> ReadAllBytesAsync(string path, CancellationToken ct) => File.ReadAllBytesAsync(path, ct);

        public async Task WriteAllBytesAsync(string path, ReadOnlyMemory<byte> data, CancellationToken ct)
        {
            await _real.WriteAllBytesAsync(path, data, ct);
            string dir = Path.GetDirectoryName(path)!;
            string gen = Path.Combine(dir, "generation");
            long g = long.Parse(File.ReadAllText(gen).Trim()) + 1;
            if (RacesToInject > 0)
            {
                RacesToInject--;
                g++; // another writer also wrote inblob
            }

            File.WriteAllText(gen, g + "\n");
            File.WriteAllBytes(Path.Combine(dir, "outblob"), [.. "QUOTE:"u8.ToArray(), .. data.ToArray()]);
            File.WriteAllBytes(Path.Combine(dir, "auxblob"), [9, 9]);
        }
    }

    private static string TempRoot()
    {
        string root = Path.Combine(Path.GetTempPath(), "nearml-tsm-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(root);
        return root;
    }

    [TestMethod]
    public async Task ConfigFsTsm_WritesInblob_ReadsOutblob_CleansUp()
    {
        string root = TempRoot();
        try
        {
            var fs = new FakeTsm();
            var p = new ConfigFsTsmAttestationProvider(root, fs, null);
            byte[] rd = Enumerable.Range(0, 64).Select(i => (byte)i).ToArray();
            AttestationEvidence e = await p.GetEvidenceAsync(rd);
            Assert.AreEqual(AttestationVendor.IntelTdx, e.Vendor);
            Assert.AreEqual("tdx_guest", e.ProviderName);
            CollectionAssert.AreEqual((byte[])[.. "QUOTE:"u8.ToArray(), .. rd], e.Evidence.ToArray());
            CollectionAssert.AreEqual(new byte[] { 9, 9 }, e.Auxiliary.ToArray());
            Assert.AreEqual(1, fs.Deleted.Count);
            Assert.AreEqual(0, Directory.GetDirectories(root).Length);

            fs.Provider = "sev_guest";
            Assert.AreEqual(AttestationVendor.AmdSevSnp, (await p.GetEvidenceAsync(rd)).Vendor);
        }
        finally
        {
            Directory.Delete(root, true);
        }
    }

    [TestMethod]
    public async Task ConfigFsTsm_AttachesTheTdxEventLog_TrimmedToItsEvents_AndSkipsAMalformedOne()
    {
        string root = TempRoot();
        try
        {
            var fs = new FakeTsm();
            byte[] log = TestEventLog.Build(out byte[][] rtmrs, out int length);
            string logPath = Path.Combine(root, "CCEL");
            File.WriteAllBytes(logPath, log);
            var logger = new ListLogger<ConfigFsTsmAttestationProvider>();
            var p = new ConfigFsTsmAttestationProvider(root, fs, logger) { EventLogPath = logPath };
            byte[] rd = new byte[64];

            AttestationEvidence e = await p.GetEvidenceAsync(rd);
            Assert.AreEqual(length, e.EventLog.Length, "the padding after the last event is not sent");
            byte[][] replayed = TdxEventLog.Parse(e.EventLog).ReplayRtmrs();
            for (int i = 0; i < 4; i++)
            {
                CollectionAssert.AreEqual(rtmrs[i], replayed[i]);
            }

            fs.Provider = "sev_guest";
            Assert.IsTrue((await p.GetEvidenceAsync(rd)).EventLog.IsEmpty, "SNP evidence carries no TDX event log");

            fs.Provider = "tdx_guest";
            File.WriteAllBytes(logPath, [1, 2, 3]);
            Assert.IsTrue((await p.GetEvidenceAsync(rd)).EventLog.IsEmpty);
            Assert.IsTrue(logger.Entries.Any(x => x.Message.Contains("not attached", StringComparison.Ordinal)));

            p.EventLogPath = null;
            Assert.IsTrue((await p.GetEvidenceAsync(rd)).EventLog.IsEmpty);
        }
        finally
        {
            Directory.Delete(root, true);
        }
    }

    [TestMethod]
    public async Task ConfigFsTsm_GenerationRace_RetriesThenFailsTransient()
    {
        string root = TempRoot();
        try
        {
            var logger = new ListLogger<ConfigFsTsmAttestationProvider>();
            var fs = new FakeTsm { RacesToInject = 2 };
            var p = new ConfigFsTsmAttestationProvider(root, fs, logger);
            AttestationEvidence e = await p.GetEvidenceAsync(new byte[64]);
            Assert.IsNotNull(e);
            Assert.AreEqual(2, logger.Entries.Count(x => x.Level == LogLevel.Warning && x.Message.Contains("concurrently", StringComparison.Ordinal)));

            fs.RacesToInject = 10;
            var ex = await Assert.ThrowsExactlyAsync<AttestationException>(() => p.GetEvidenceAsync(new byte[64]));
            Assert.IsTrue(ex.IsTransient);
            Assert.AreEqual(0, Directory.GetDirectories(root).Length, "entry removed even on failure");
        }
        finally
        {
            Directory.Delete(root, true);
        }
    }

    [TestMethod]
    public async Task ConfigFsTsm_Unavailable_AndBadArguments()
    {
        var p = new ConfigFsTsmAttestationProvider("/nonexistent/tsm/report");
        Assert.IsFalse(p.IsAvailable);
        await Assert.ThrowsExactlyAsync<AttestationException>(() => p.GetEvidenceAsync(new byte[64]));
        var ae = await Assert.ThrowsExactlyAsync<ArgumentException>(() => p.GetEvidenceAsync(new byte[10]));
        Assert.AreEqual("reportData", ae.ParamName);
    }

    [TestMethod]
    public async Task Simulated_LogsWarning_RefusedByDefault_AcceptedWhenAllowed()
    {
        var provLog = new ListLogger<InsecureSimulatedAttestationProvider>();
        using var sim = new InsecureSimulatedAttestationProvider(provLog);
        var time = new ManualTimeProvider(TestIntelPki.At);
        var nonces = new AttestationNonceStore(time, TimeSpan.FromMinutes(1));
        byte[] key = [7, 7, 7];
        byte[] nonce = nonces.Issue();
        var ev = await sim.GetEvidenceAsync(AttestationBinding.ComputeReportData(key, nonce, "ctx"));
        Assert.AreEqual(1, provLog.Entries.Count(e => e.Level == LogLevel.Warning));

        var verLog = new ListLogger<AttestationVerifier>();
        var strict = new AttestationVerifier(new AttestationPolicy(), nonces, time, verLog);
        var refused = strict.Verify(ev, key, nonce, "ctx");
        Assert.IsFalse(refused.Accepted);
        CollectionAssert.IsSubsetOf(new[] { "policy.vendor-allowed", "policy.simulated-allowed" }, refused.Failures.Select(f => f.Name).ToArray());
        Assert.IsTrue(verLog.Entries.Any(e => e.Level == LogLevel.Warning && e.Message.Contains("INSECURE", StringComparison.Ordinal)));

        byte[] nonce2 = nonces.Issue();
        var ev2 = await sim.GetEvidenceAsync(AttestationBinding.ComputeReportData(key, nonce2, "ctx"));
        var dev = new AttestationVerifier(new AttestationPolicy { AllowSimulated = true, AllowedVendors = [AttestationVendor.InsecureSimulated] }, nonces, time, verLog);
        var accepted = dev.Verify(ev2, key, nonce2, "ctx");
        Assert.IsTrue(accepted.Accepted, string.Join("\n", accepted.Rules));

        byte[] tampered = ev2.Evidence.ToArray();
        tampered[10] ^= 1;
        var bad = dev.Verify(new AttestationEvidence(AttestationVendor.InsecureSimulated, tampered, default, "x"), key, nonces.Issue(), "ctx");
        Assert.IsFalse(bad.Rules.Single(r => r.Name == "evidence.authentic").Passed);
    }
}

[TestClass]
public sealed class AttestationVerifierTests
{
    private const string Label = "nearml/worker-admission/v1";
    private static readonly int[] Sgx = [5, 5, 2, 2, 3, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0];
    private static readonly int[] Tdx = [3, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

    [TestMethod]
    public void Tdx_EndToEnd_BindingNonceReplayAndOtherKey()
    {
        using var pki = new TestIntelPki();
        var time = new ManualTimeProvider(TestIntelPki.At);
        var nonces = new AttestationNonceStore(time, TimeSpan.FromMinutes(2));
        var verifier = new AttestationVerifier(new AttestationPolicy(), nonces, time, null, pki.Verifier())
        {
            TdxCollateral = pki.Collateral(pki.TcbInfoJson("[" + TestIntelPki.Level(Sgx, 11, Tdx, "UpToDate") + "]")),
        };
        byte[] key = RandomNumberGenerator.GetBytes(65);
        byte[] nonce = nonces.Issue();
        var ev = new AttestationEvidence(AttestationVendor.IntelTdx, pki.Quote(AttestationBinding.ComputeReportData(key, nonce, Label)), default, "tdx_guest");

        var ok = verifier.Verify(ev, key, nonce, Label);
        Assert.IsTrue(ok.Accepted, string.Join("\n", ok.Rules));

        var replay = verifier.Verify(ev, key, nonce, Label);
        Assert.IsFalse(replay.Accepted);
        StringAssert.Contains(replay.Rules.Single(r => r.Name == "binding.nonce").Detail, "replayed");

        byte[] nonce2 = nonces.Issue();
        var otherKey = verifier.Verify(new AttestationEvidence(AttestationVendor.IntelTdx, pki.Quote(AttestationBinding.ComputeReportData(key, nonce2, Label)), default, "t"),
            RandomNumberGenerator.GetBytes(65), nonce2, Label);
        Assert.IsFalse(otherKey.Rules.Single(r => r.Name == "binding.report-data").Passed);
        Assert.AreEqual(NonceStatus.Valid, nonces.Consume(nonce2), "a refused binding does not burn the nonce");

        byte[] nonce3 = nonces.Issue();
        var ev3 = new AttestationEvidence(AttestationVendor.IntelTdx, pki.Quote(AttestationBinding.ComputeReportData(key, nonce3, Label)), default, "t");
        time.Now += TimeSpan.FromMinutes(3);
        var expired = verifier.Verify(ev3, key, nonce3, Label);
        StringAssert.Contains(expired.Rules.Single(r => r.Name == "binding.nonce").Detail, "expired");

        var garbage = verifier.Verify(new AttestationEvidence(AttestationVendor.IntelTdx, new byte[10], default, "t"), key, nonce3, Label);
        Assert.AreEqual("evidence.format", garbage.Failures.Single().Name);
    }

    [TestMethod]
    public void Snp_EndToEnd_WithResolver()
    {
        var tcb = new SnpTcbVersion(0, 3, 0, 8, 115);
        var amd = TestAmdPki.Get(tcb);
        var time = new ManualTimeProvider(TestAmdPki.At);
        var nonces = new AttestationNonceStore(time, TimeSpan.FromMinutes(2));
        SnpCertificates certs = amd.Certificates();
        var verifier = new AttestationVerifier(new AttestationPolicy(), nonces, time, null, null, amd.Verifier()) { SnpCertificateResolver = _ => certs };
        byte[] key = [1, 2, 3, 4];
        byte[] nonce = nonces.Issue();
        var ev = new AttestationEvidence(AttestationVendor.AmdSevSnp, amd.Report(AttestationBinding.ComputeReportData(key, nonce, Label), TestAmdPki.EncodeTcb(tcb, SnpProduct.Milan)), default, "sev_guest");
        var v = verifier.Verify(ev, key, nonce, Label);
        Assert.IsTrue(v.Accepted, string.Join("\n", v.Rules));

        verifier.SnpCertificateResolver = null;
        byte[] n2 = nonces.Issue();
        var noCerts = verifier.Verify(new AttestationEvidence(AttestationVendor.AmdSevSnp, amd.Report(AttestationBinding.ComputeReportData(key, n2, Label), TestAmdPki.EncodeTcb(tcb, SnpProduct.Milan)), default, "s"), key, n2, Label);
        Assert.IsFalse(noCerts.Rules.Single(r => r.Name == "evidence.authentic").Passed);
    }
}
