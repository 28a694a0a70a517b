using System.Collections;
using System.Reflection;
using System.Security.Cryptography;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using NearML.Core.Contracts;
using NearML.Core.Protocol;
using NearML.Enclave;
using NearML.Enclave.Tests;
using NearML.Hosting.Coordinator;
using NearML.Hosting.Worker;
using CoreEvidence = NearML.Core.Protocol.AttestationEvidence;
using EnclaveEvidence = NearML.Enclave.AttestationEvidence;

namespace NearML.Hosting.Tests.Coordinator;

/// <summary>
/// The coordinator admits through NearML.Enclave's <see cref="AttestationVerifier"/> from DI: the options' policy reaches it
/// field for field, the handshake's nonce comes from its nonce store and is consumed once, and a TDX event log sent in
/// <c>Evidence.event_log</c> must replay to the quote's RTMRs. Synthetic TDX quotes are signed by the test PKI of
/// tests/NearML.Enclave.Tests (linked, not copied).
/// </summary>
[TestClass]
public sealed class AttestationAdmissionTests
{
    private static readonly int[] Sgx = [5, 5, 2, 2, 3, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0];
    private static readonly int[] Tdx = [3, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

    private static ServiceProvider Services(Action<NearMLCoordinatorOptions> configure, Action<IServiceCollection>? before = null)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        before?.Invoke(services);
        string data = TestAssembly.NewTempDirectory("admit");
        services.AddNearMLCoordinator(o =>
        {
            CoordinatorHarness.Defaults(o, data);
            o.AllowSimulatedAttestation = false;
            configure(o);
        });
        return services.BuildServiceProvider();
    }

    private static IEnumerable<PropertyInfo> PolicyProperties() =>
        typeof(AttestationPolicy).GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite && p.SetMethod!.IsPublic);

    /// <summary>A value different from the default for each property type the policy has; a new type fails the test until handled here.</summary>
    private static object OtherValue(PropertyInfo p, object? defaultValue) => p.PropertyType switch
    {
        Type t when t == typeof(bool) => !(bool)defaultValue!,
        Type t when t == typeof(TcbStatus) => (TcbStatus)defaultValue! == TcbStatus.OutOfDate ? TcbStatus.UpToDate : TcbStatus.OutOfDate,
        Type t when t == typeof(string) => "3.0.8.115",
        Type t when t == typeof(IList<string>) => new List<string> { Convert.ToHexString(SHA384.HashData(System.Text.Encoding.UTF8.GetBytes(p.Name))) },
        Type t when t == typeof(IList<AttestationVendor>) => new List<AttestationVendor> { AttestationVendor.AmdSevSnp },
        _ => throw new AssertFailedException($"AttestationPolicy.{p.Name} has type {p.PropertyType}: teach this test a non-default value for it"),
    };

    private static object?[] Comparable(object? v) => v is IEnumerable e and not string ? [.. e.Cast<object?>()] : [v];

    [TestMethod]
    public void Every_policy_property_set_in_the_options_reaches_the_verifier_from_DI()
    {
        PropertyInfo[] properties = [.. PolicyProperties()];
        Assert.IsGreaterThanOrEqualTo(14, properties.Length, "AttestationPolicy's settable properties were found");
        foreach (PropertyInfo p in properties)
        {
            object value = OtherValue(p, p.GetValue(new AttestationPolicy()));
            var configured = new AttestationPolicy();
            p.SetValue(configured, value);
            using ServiceProvider sp = Services(o => o.Attestation = configured);

            AttestationVerifier verifier = sp.GetRequiredService<AttestationVerifier>();
            Assert.AreSame(verifier, sp.GetRequiredService<AttestationAdmissionPolicy>().Verifier, "admission uses the one verifier from DI");
            CollectionAssert.AreEqual(Comparable(value), Comparable(p.GetValue(verifier.Policy)), $"AttestationPolicy.{p.Name} set in NearMLCoordinatorOptions.Attestation did not reach the verifier");
            foreach (PropertyInfo other in properties.Where(o => o != p))
            {
                CollectionAssert.AreEqual(Comparable(other.GetValue(new AttestationPolicy())), Comparable(other.GetValue(verifier.Policy)), $"setting {p.Name} changed {other.Name}");
            }
        }
    }

    [TestMethod]
    public void The_development_switches_map_onto_a_copy_of_the_policy()
    {
        var configured = new AttestationPolicy { AllowedVendors = [AttestationVendor.IntelTdx], MinimumTcbStatus = TcbStatus.SWHardeningNeeded };
        using (ServiceProvider sp = Services(o => (o.Attestation, o.AllowSimulatedAttestation) = (configured, true)))
        {
            AttestationAdmissionPolicy admission = sp.GetRequiredService<AttestationAdmissionPolicy>();
            AttestationPolicy effective = admission.Verifier.Policy;
            Assert.IsTrue(effective.AllowSimulated);
            CollectionAssert.AreEqual(new[] { AttestationVendor.IntelTdx, AttestationVendor.InsecureSimulated }, effective.EffectiveVendors.ToArray());
            Assert.AreEqual(TcbStatus.SWHardeningNeeded, effective.MinimumTcbStatus);
            CollectionAssert.AreEqual(new[] { WorkerAttestation.TdxFormat, WorkerAttestation.SimulatedFormat }, admission.AcceptedFormats.ToArray());
            Assert.IsTrue(admission.EvidenceRequired);
            Assert.IsFalse(configured.AllowSimulated, "the configured policy is not changed");
            CollectionAssert.AreEqual(new[] { AttestationVendor.IntelTdx }, configured.AllowedVendors.ToArray());
        }

        using (ServiceProvider sp = Services(o => o.AllowUnattestedWorkers = true))
        {
            AttestationAdmissionPolicy admission = sp.GetRequiredService<AttestationAdmissionPolicy>();
            Assert.IsFalse(admission.EvidenceRequired);
            Assert.IsFalse(admission.Verifier.Policy.AllowSimulated);
            CollectionAssert.AreEqual(new[] { WorkerAttestation.TdxFormat, WorkerAttestation.SevSnpFormat }, admission.AcceptedFormats.ToArray());
            Assert.AreSame(AdmissionDecision.Admit, admission.Evaluate("bare", string.Empty, default, default, new byte[64], new byte[32]));
        }
    }

    [TestMethod]
    public async Task Replayed_evidence_for_a_used_nonce_is_refused_with_the_reason()
    {
        using ServiceProvider sp = Services(o => o.AllowSimulatedAttestation = true);
        AttestationAdmissionPolicy admission = sp.GetRequiredService<AttestationAdmissionPolicy>();
        using var provider = new InsecureSimulatedAttestationProvider(NullLogger<InsecureSimulatedAttestationProvider>.Instance);
        byte[] reportData = RandomNumberGenerator.GetBytes(64);
        byte[] nonce = admission.Verifier.IssueNonce();
        CoreEvidence evidence = WorkerAttestation.EncodeEvidence(await provider.GetEvidenceAsync(reportData));

        Assert.IsTrue(admission.Evaluate("w1", evidence.Format, evidence.Data, evidence.EventLog, reportData, nonce).IsAdmitted);
        AdmissionDecision replay = admission.Evaluate("w1", evidence.Format, evidence.Data, evidence.EventLog, reportData, nonce);

        Assert.IsFalse(replay.IsAdmitted);
        Assert.AreEqual(RefusalReason.AttestationFailed, replay.Reason);
        StringAssert.Contains(replay.Message, "worker 'w1'");
        StringAssert.Contains(replay.Message, "binding.nonce");
        StringAssert.Contains(replay.Message, "replayed");

        AdmissionDecision foreign = admission.Evaluate("w2", evidence.Format, evidence.Data, evidence.EventLog, reportData, RandomNumberGenerator.GetBytes(32));
        StringAssert.Contains(foreign.Message, "not issued by this verifier");
    }

    [TestMethod]
    public void An_event_log_that_does_not_replay_to_the_quote_is_refused_and_one_that_does_is_admitted()
    {
        using var pki = new TestIntelPki();
        var options = new NearMLCoordinatorOptions();
        AttestationVerifier verifier = TdxVerifier(pki, options);
        var admission = new AttestationAdmissionPolicy(options, verifier);
        byte[] log = TestEventLog.Build(out byte[][] rtmrs, out _);
        byte[] reportData = RandomNumberGenerator.GetBytes(64);

        CoreEvidence honest = Encode(pki.Quote(reportData, rtmrs: rtmrs), log);
        AdmissionDecision ok = admission.Evaluate("tdx", honest.Format, honest.Data, honest.EventLog, reportData, verifier.IssueNonce());
        Assert.IsTrue(ok.IsAdmitted, ok.Message);

        byte[][] other = [.. rtmrs.Select(r => r.ToArray())];
        other[2][47] ^= 0x80;
        CoreEvidence lying = Encode(pki.Quote(reportData, rtmrs: other), log);
        AdmissionDecision refused = admission.Evaluate("tdx", lying.Format, lying.Data, lying.EventLog, reportData, verifier.IssueNonce());
        Assert.IsFalse(refused.IsAdmitted);
        Assert.AreEqual(RefusalReason.AttestationFailed, refused.Reason);
        StringAssert.Contains(refused.Message, "event-log.rtmr2");

        CoreEvidence broken = Encode(pki.Quote(reportData, rtmrs: rtmrs), log[..40]);
        AdmissionDecision unparsable = admission.Evaluate("tdx", broken.Format, broken.Data, broken.EventLog, reportData, verifier.IssueNonce());
        Assert.AreEqual(RefusalReason.AttestationFailed, unparsable.Reason);
        StringAssert.Contains(unparsable.Message, "evidence.format");
    }

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task Through_the_real_handshake_the_nonce_comes_from_the_verifier_and_the_event_log_travels_in_Evidence()
    {
        using var pki = new TestIntelPki();
        byte[] log = TestEventLog.Build(out byte[][] rtmrs, out _);
        await using var c = await CoordinatorHarness.StartAsync(
            o => (o.Rounds, o.AllowSimulatedAttestation) = (1, false),
            services: s => s.AddSingleton(sp => TdxVerifier(pki, sp.GetRequiredService<IOptions<NearMLCoordinatorOptions>>().Value)));
        Assert.AreEqual("tdx,sev-snp", string.Join(',', c.Host.Services.GetRequiredService<AttestationAdmissionPolicy>().AcceptedFormats));

        var conn = await FakeWorker.ConnectAsync(c.Port, c.Fingerprint);
        await using (conn)
        {
            using var id = Ed25519Identity.Generate();
            var admission = await WorkerHandshake.RunAsync(conn, id, FakeWorker.JoinOptions("tdx-honest", new SyntheticTdx(pki, rtmrs, log))).WaitAsync(CoordinatorHarness.Timeout);
            Assert.IsFalse(string.IsNullOrEmpty(admission.SessionId));
        }

        byte[][] other = [.. rtmrs.Select(r => r.ToArray())];
        other[0][0] ^= 1;
        conn = await FakeWorker.ConnectAsync(c.Port, c.Fingerprint);
        await using (conn)
        {
            using var id = Ed25519Identity.Generate();
            var ex = await Assert.ThrowsExactlyAsync<AdmissionRefusedException>(
                () => WorkerHandshake.RunAsync(conn, id, FakeWorker.JoinOptions("tdx-lying", new SyntheticTdx(pki, other, log))).WaitAsync(CoordinatorHarness.Timeout));
            Assert.AreEqual(RefusalReason.AttestationFailed, ex.Reason);
            StringAssert.Contains(ex.CoordinatorMessage, "event-log.rtmr0");
        }
    }

    /// <summary>A verifier pinned to the test PKI at its evaluation time, with the coordinator's effective policy.</summary>
    private static AttestationVerifier TdxVerifier(TestIntelPki pki, NearMLCoordinatorOptions options)
    {
        var time = new FixedTime(TestIntelPki.At);
        return new AttestationVerifier(AttestationAdmissionPolicy.EffectivePolicy(options), new AttestationNonceStore(time, TimeSpan.FromMinutes(1)), time, null, pki.Verifier())
        {
            TdxCollateral = pki.Collateral(pki.TcbInfoJson("[" + TestIntelPki.Level(Sgx, 11, Tdx, "UpToDate") + "]")),
        };
    }

    private static CoreEvidence Encode(byte[] quote, byte[] eventLog) =>
        WorkerAttestation.EncodeEvidence(new EnclaveEvidence(AttestationVendor.IntelTdx, quote, default, "tdx_guest") { EventLog = eventLog });

    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }

    private sealed class SyntheticTdx(TestIntelPki pki, byte[][] rtmrs, byte[] eventLog) : IAttestationEvidenceProvider
    {
        public ValueTask<CoreEvidence?> GetEvidenceAsync(ReadOnlyMemory<byte> reportData, IReadOnlyList<string> acceptedFormats, CancellationToken cancellationToken) =>
            ValueTask.FromResult<CoreEvidence?>(Encode(pki.Quote(reportData.ToArray(), rtmrs: rtmrs), eventLog));
    }
}
