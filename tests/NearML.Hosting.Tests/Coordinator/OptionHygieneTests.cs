using System.Security.Cryptography;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using NearML.Enclave;
using NearML.Hosting.Coordinator;
using NearML.Hosting.Settlement;
using NearML.Hosting.State;
using NearML.Hosting.Tests.Worker;
using NearML.Hosting.Worker;
using NearML.Ledger;

namespace NearML.Hosting.Tests.Coordinator;

/// <summary>
/// Issue 15 leftovers in the coordinator's options: <see cref="NearMLCoordinatorOptions.UpdateEncoding"/> is the option's
/// name (the deprecated <c>Compression</c> alias still works and logs one warning naming the new key), and the simulated
/// attestation switch has one effective value (<see cref="NearMLCoordinatorOptions.SimulatedAttestationAccepted"/>) that
/// admission, the <c>InsecureAdmission</c> warning and the reward policy all read.
/// </summary>
[TestClass]
public sealed class OptionHygieneTests
{
    private const string Job = "hygiene-job";

    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public void UpdateEncoding_is_the_option_and_binds_from_its_key_while_the_deprecated_alias_still_applies()
    {
        Assert.AreEqual("int8", new NearMLCoordinatorOptions().UpdateEncoding);
        Assert.AreEqual("int4", Bind(("UpdateEncoding", "int4")).UpdateEncoding);

        var alias = Bind(("Compression", "fp16"));
        Assert.AreEqual("fp16", alias.UpdateEncoding, "the alias alone sets the encoding");
        Assert.AreEqual("fp16", alias.DeprecatedCompression);
        Assert.IsNull(Bind(("UpdateEncoding", "fp16")).DeprecatedCompression);

        var both = Bind(("UpdateEncoding", "int4"), ("Compression", "int4"));
        Assert.AreEqual("int4", both.UpdateEncoding);

        // Binding writes every property's current value back: that neither makes the default explicit (so it would
        // disagree with the alias) nor sets the alias from UpdateEncoding (so it would log a false warning).
        Assert.IsNull(Bind(("UpdateEncoding", "int4")).DeprecatedCompression);
        Assert.IsNull(Bind(("Rounds", "3")).DeprecatedCompression);
        Assert.AreEqual("int8", Bind(("Rounds", "3")).UpdateEncoding);
    }

    [TestMethod]
    public void Unknown_or_conflicting_encodings_are_refused_naming_the_key_used()
    {
        var cases = new (Action<NearMLCoordinatorOptions> Configure, string? Expected)[]
        {
            (o => o.UpdateEncoding = "int3", "UpdateEncoding 'int3' is unknown"),
#pragma warning disable CS0618 // the deprecated alias is what is tested
            (o => o.Compression = "int3", "Compression 'int3' (deprecated alias of UpdateEncoding) is unknown"),
            (o => (o.UpdateEncoding, o.Compression) = ("int4", "fp32"), "Compression 'fp32' (deprecated) and UpdateEncoding 'int4' disagree"),
            (o => (o.UpdateEncoding, o.Compression) = ("fp32", "fp32"), null),
            (o => o.Compression = "int4", null),
#pragma warning restore CS0618
            (o => o.UpdateEncoding = "int4", null),
        };
        foreach (var (configure, expected) in cases)
        {
            using var sp = Services(configure);
            try
            {
                _ = sp.GetRequiredService<IOptionsMonitor<NearMLCoordinatorOptions>>().CurrentValue;
                Assert.IsNull(expected, $"'{expected}' was not refused");
            }
            catch (OptionsValidationException ex)
            {
                Assert.IsNotNull(expected, ex.Message);
                StringAssert.Contains(ex.Message, expected);
            }
        }
    }

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task The_deprecated_alias_logs_one_warning_naming_UpdateEncoding_and_the_new_name_logs_none()
    {
        await using (var c = await CoordinatorHarness.StartAsync(o =>
        {
#pragma warning disable CS0618 // the deprecated alias is what is tested
            o.Compression = "int8";
#pragma warning restore CS0618
            o.UpdateEncoding = null!; // as bound from a configuration that names only Compression
        }))
        {
            await WaitForLogAsync(c, "INSECURE development settings");
            var warnings = c.Logs.Lines.Where(l => l.Contains("'Compression' is deprecated", StringComparison.Ordinal)).ToList();
            Assert.HasCount(1, warnings, string.Join('\n', c.Logs.Lines));
            StringAssert.Contains(warnings[0], "use 'UpdateEncoding'");
            StringAssert.Contains(warnings[0], "NearML:Coordinator:UpdateEncoding");
            StringAssert.Contains(warnings[0], "--encoding");
        }

        await using (var c = await CoordinatorHarness.StartAsync(o => o.UpdateEncoding = "int8"))
        {
            await WaitForLogAsync(c, "INSECURE development settings");
            Assert.IsFalse(c.Logs.Contains("is deprecated"), string.Join('\n', c.Logs.Lines));
        }
    }

    [TestMethod]
    public void AllowSimulated_in_the_attestation_policy_is_the_same_effective_switch_as_AllowSimulatedAttestation()
    {
        Assert.IsFalse(new NearMLCoordinatorOptions().SimulatedAttestationAccepted);
        Assert.IsFalse(new NearMLCoordinatorOptions().CountsUnattestedWork);
        Assert.IsTrue(new NearMLCoordinatorOptions { AllowSimulatedAttestation = true }.SimulatedAttestationAccepted);
        Assert.IsTrue(new NearMLCoordinatorOptions { Attestation = SimulatedPolicy(allow: true) }.SimulatedAttestationAccepted);
        Assert.IsTrue(new NearMLCoordinatorOptions { Attestation = SimulatedPolicy(allow: true) }.CountsUnattestedWork);
        Assert.IsFalse(new NearMLCoordinatorOptions { Attestation = SimulatedPolicy(allow: false) }.SimulatedAttestationAccepted);

        // NearML.Enclave's rule: AllowSimulated without the simulated vendor accepts nothing more, so it is not the switch.
        Assert.IsFalse(new NearMLCoordinatorOptions { Attestation = new AttestationPolicy { AllowSimulated = true } }.SimulatedAttestationAccepted);
        Assert.IsTrue(new NearMLCoordinatorOptions { AllowUnattestedWorkers = true }.CountsUnattestedWork);
        Assert.IsFalse(new NearMLCoordinatorOptions { AllowUnattestedWorkers = true }.SimulatedAttestationAccepted);
        Assert.IsFalse(new NearMLCoordinatorOptions { Attestation = null! }.SimulatedAttestationAccepted);

        // Admission: the policy's own switch admits simulated evidence exactly as AllowSimulatedAttestation does.
        foreach (var viaPolicy in new[] { true, false })
        {
            using var sp = Services(o =>
            {
                o.AllowSimulatedAttestation = !viaPolicy;
                o.Attestation = viaPolicy
                    ? new AttestationPolicy { AllowSimulated = true, AllowedVendors = [AttestationVendor.IntelTdx, AttestationVendor.InsecureSimulated] }
                    : new AttestationPolicy { AllowedVendors = [AttestationVendor.IntelTdx] };
            });
            var admission = sp.GetRequiredService<AttestationAdmissionPolicy>();
            Assert.IsTrue(admission.Verifier.Policy.AllowSimulated, $"viaPolicy={viaPolicy}");
            CollectionAssert.AreEqual(new[] { AttestationVendor.IntelTdx, AttestationVendor.InsecureSimulated }, admission.Verifier.Policy.EffectiveVendors.ToArray());
            CollectionAssert.AreEqual(new[] { WorkerAttestation.TdxFormat, WorkerAttestation.SimulatedFormat }, admission.AcceptedFormats.ToArray());
        }
    }

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task With_AllowSimulated_set_only_in_the_policy_the_insecure_warning_is_logged_and_a_simulated_worker_is_admitted()
    {
        await using var c = await CoordinatorHarness.StartAsync(o =>
        {
            o.AllowSimulatedAttestation = false;
            o.Attestation = SimulatedPolicy(allow: true);
        });
        await WaitForLogAsync(c, "INSECURE development settings");
        Assert.IsTrue(c.Logs.Contains("simulated evidence accepted=True"), string.Join('\n', c.Logs.Lines));
        await using var w = await FakeWorker.StartAsync(c, "sim-1", FakeBehavior.Silent);
        Assert.IsTrue(w.Admission.HeartbeatIntervalMs > 0, "admitted with simulated evidence");
    }

    [TestMethod]
    [Timeout(60_000, CooperativeCancellation = true)]
    public async Task The_reward_policy_counts_unattested_work_when_AllowSimulated_is_set_only_in_the_policy()
    {
        foreach (var (allow, expectedRecords) in new[] { (true, 2), (false, 0) })
        {
            var dir = TestAssembly.NewTempDirectory("hygiene-reward");
            using var folder = CoordinatorStateFolder.Open(dir, Job);
            var receipts = new[] { "w1", "w2" }.Select((w, i) => SignedReceipt.Sign(
                new ContributionReceipt(Job, 0, w, 100 + (ulong)i, 0, 5, 1000, NearML.Ledger.AttestationVerdict.Unattested, SHA256.HashData([(byte)i]), 1_700_000_000_000),
                folder.Signer)).ToList();
            folder.Ledger.AppendBatch(0, receipts);
            using var sp = Services(o =>
            {
                o.DataDirectory = dir;
                o.AllowSimulatedAttestation = false;
                o.Attestation = SimulatedPolicy(allow);
            });
            var settlement = sp.GetRequiredService<SettlementService>();
            await settlement.StartAsync(TestContext.CancellationToken);
            Assert.IsTrue(await settlement.SettleAsync(0, folder.Ledger, folder.State, TestContext.CancellationToken));
            Assert.HasCount(expectedRecords, folder.State.ReadSettlements(), $"AllowSimulated={allow}");
        }
    }

    [TestMethod]
    public void Challenge_nonces_live_the_handshake_timeout_plus_a_margin_and_are_forgotten_on_consume_so_memory_follows_the_admission_rate()
    {
        var clock = new SettableClock(new DateTimeOffset(2026, 12, 7, 12, 0, 0, TimeSpan.Zero));
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton<TimeProvider>(clock);
        var data = TestAssembly.NewTempDirectory("hygiene-nonce");
        services.AddNearMLCoordinator(o =>
        {
            CoordinatorHarness.Defaults(o, data);
            o.HandshakeTimeout = TimeSpan.FromSeconds(20);
        });
        using var sp = services.BuildServiceProvider();
        var options = sp.GetRequiredService<IOptions<NearMLCoordinatorOptions>>().Value;
        Assert.AreEqual(TimeSpan.FromSeconds(25), options.AttestationNonceLifetime);
        var verifier = sp.GetRequiredService<AttestationAdmissionPolicy>().Verifier;
        var store = sp.GetRequiredService<AttestationNonceStore>();

        // Valid until HandshakeTimeout + margin (not Enclave's 5-minute default), then expired.
        var early = verifier.IssueNonce();
        var late = verifier.IssueNonce();
        clock.Now += TimeSpan.FromSeconds(24.9);
        Assert.AreEqual(NonceStatus.Valid, store.Consume(early));
        clock.Now += TimeSpan.FromSeconds(0.1);
        Assert.AreEqual(NonceStatus.Expired, store.Consume(late));

        // A steady admission rate (one nonce a second, each answered) keeps the store at about 2¼ lifetimes of nonces,
        // however long it runs; pruning happens on consume as well as on issue.
        var peak = 0;
        for (var i = 0; i < 600; i++)
        {
            var n = verifier.IssueNonce();
            clock.Now += TimeSpan.FromSeconds(1);
            Assert.AreEqual(NonceStatus.Valid, store.Consume(n));
            peak = Math.Max(peak, store.Count);
        }

        Assert.IsLessThanOrEqualTo(60, peak, $"peak {peak} nonces remembered");

        // Nothing issued any more: the next consume (of anything) forgets every nonce whose lifetime ended a lifetime ago.
        clock.Now += TimeSpan.FromSeconds(51);
        Assert.AreEqual(NonceStatus.Unknown, store.Consume(new byte[32]));
        Assert.AreEqual(0, store.Count);
    }

    /// <summary>A policy listing the simulated vendor with the real ones; <paramref name="allow"/> is its AllowSimulated.</summary>
    private static AttestationPolicy SimulatedPolicy(bool allow) => new()
    {
        AllowSimulated = allow,
        AllowedVendors = [AttestationVendor.IntelTdx, AttestationVendor.AmdSevSnp, AttestationVendor.InsecureSimulated],
    };

    private static async Task WaitForLogAsync(CoordinatorHarness c, string text)
    {
        using var wait = new CancellationTokenSource(CoordinatorHarness.Timeout);
        while (!c.Logs.Contains(text))
        {
            await Task.Delay(20, wait.Token);
        }
    }

    private static NearMLCoordinatorOptions Bind(params (string Key, string Value)[] values)
    {
        var config = new Microsoft.Extensions.Configuration.ConfigurationBuilder()
            .AddInMemoryCollection(values.Select(v => new KeyValuePair<string, string?>($"{NearMLCoordinatorOptions.SectionName}:{v.Key}", v.Value)))
            .Build();
        return Microsoft.Extensions.Configuration.ConfigurationBinder.Get<NearMLCoordinatorOptions>(config.GetSection(NearMLCoordinatorOptions.SectionName))!;
    }

    private static ServiceProvider Services(Action<NearMLCoordinatorOptions> configure)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        var data = TestAssembly.NewTempDirectory("hygiene");
        services.AddNearMLCoordinator(o =>
        {
            CoordinatorHarness.Defaults(o, data);
            o.UpdateEncoding = null!; // not set, as in a configuration without the key
            configure(o);
        });
        return services.BuildServiceProvider();
    }
}
