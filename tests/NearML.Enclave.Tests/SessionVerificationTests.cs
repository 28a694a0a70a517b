using System.Collections;
using System.Reflection;
using System.Security.Cryptography;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace NearML.Enclave.Tests;

/// <summary>
/// <see cref="AttestationVerifier.VerifyWithReportData"/> (the path NearML's coordinator admits workers through): the event
/// log carried in <see cref="AttestationEvidence.EventLog"/>, the nonce consumed once, the caller's report data; and the
/// pieces a host uses to build its verifier (<see cref="AttestationPolicy.Clone"/>, the factory overload of
/// <see cref="EnclaveServiceCollectionExtensions.AddNearMLAttestation(IServiceCollection, Func{IServiceProvider, AttestationPolicy}, TimeSpan?)"/>).
/// </summary>
[TestClass]
public sealed class SessionVerificationTests
{
    private static readonly int[] Sgx = [5, 5, 2, 2, 3, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0];
    private static readonly int[] Tdx = [3, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

    private static (AttestationVerifier Verifier, ManualTimeProvider Time) NewTdxVerifier(TestIntelPki pki, AttestationPolicy? policy = null)
    {
        var time = new ManualTimeProvider(TestIntelPki.At);
        var verifier = new AttestationVerifier(policy ?? new AttestationPolicy(), new AttestationNonceStore(time, TimeSpan.FromMinutes(2)), time, null, pki.Verifier())
        {
            TdxCollateral = pki.Collateral(pki.TcbInfoJson("[" + TestIntelPki.Level(Sgx, 11, Tdx, "UpToDate") + "]")),
        };
        return (verifier, time);
    }

    private static AttestationEvidence Tdx_(byte[] quote, ReadOnlyMemory<byte> eventLog = default) =>
        new(AttestationVendor.IntelTdx, quote, default, "tdx_guest") { EventLog = eventLog };

    [TestMethod]
    public void Event_log_that_replays_to_the_quote_is_accepted_and_every_rtmr_is_a_rule()
    {
        using var pki = new TestIntelPki();
        (AttestationVerifier verifier, _) = NewTdxVerifier(pki);
        byte[] log = TestEventLog.Build(out byte[][] rtmrs, out _);
        byte[] reportData = RandomNumberGenerator.GetBytes(64);
        byte[] nonce = verifier.IssueNonce();

        AttestationVerdict v = verifier.VerifyWithReportData(Tdx_(pki.Quote(reportData, rtmrs: rtmrs), log), reportData, nonce);

        Assert.IsTrue(v.Accepted, string.Join("\n", v.Rules));
        for (int i = 0; i < 4; i++)
        {
            Assert.IsTrue(v.Rules.Single(r => r.Name == $"event-log.rtmr{i}").Passed);
        }
    }

    [TestMethod]
    public void Event_log_that_does_not_replay_to_the_quote_is_refused_even_without_full_verification()
    {
        using var pki = new TestIntelPki();
        byte[] log = TestEventLog.Build(out byte[][] rtmrs, out _);
        foreach (bool full in new[] { true, false })
        {
            for (int bad = 0; bad < 4; bad++)
            {
                (AttestationVerifier verifier, _) = NewTdxVerifier(pki, new AttestationPolicy { RequireFullVerification = full });
                byte[][] quoted = [.. rtmrs.Select(r => r.ToArray())];
                quoted[bad][0] ^= 1; // the quote says one thing, the log another
                byte[] reportData = RandomNumberGenerator.GetBytes(64);

                AttestationVerdict v = verifier.VerifyWithReportData(Tdx_(pki.Quote(reportData, rtmrs: quoted), log), reportData, verifier.IssueNonce());

                Assert.IsFalse(v.Accepted, $"RTMR{bad} differs, full verification {full}");
                AttestationCheck failed = v.Failures.First();
                Assert.AreEqual($"event-log.rtmr{bad}", failed.Name, string.Join("\n", v.Rules));
                StringAssert.Contains(failed.Detail, "quote has");
            }
        }
    }

    [TestMethod]
    public void Event_log_that_does_not_parse_is_refused_as_a_format_error_and_one_with_other_vendors_is_refused()
    {
        using var pki = new TestIntelPki();
        (AttestationVerifier verifier, _) = NewTdxVerifier(pki);
        byte[] reportData = RandomNumberGenerator.GetBytes(64);
        AttestationVerdict garbage = verifier.VerifyWithReportData(Tdx_(pki.Quote(reportData), new byte[] { 1, 2, 3 }), reportData, verifier.IssueNonce());
        Assert.AreEqual("evidence.format", garbage.Failures.Single().Name);
        StringAssert.Contains(garbage.Failures.Single().Detail, "event log");

        var time = new ManualTimeProvider(DateTimeOffset.UtcNow);
        var simulated = new AttestationVerifier(
            new AttestationPolicy { AllowSimulated = true, AllowedVendors = [AttestationVendor.InsecureSimulated] }, new AttestationNonceStore(time, TimeSpan.FromMinutes(1)), time);
        using var provider = new InsecureSimulatedAttestationProvider(NullLogger<InsecureSimulatedAttestationProvider>.Instance);
        AttestationEvidence e = provider.GetEvidenceAsync(reportData).GetAwaiter().GetResult();
        Assert.IsTrue(simulated.VerifyWithReportData(e, reportData, simulated.IssueNonce()).Accepted);
        var withLog = new AttestationEvidence(e.Vendor, e.Evidence, e.Auxiliary, e.ProviderName) { EventLog = TestEventLog.Build(out _, out _) };
        AttestationVerdict v = simulated.VerifyWithReportData(withLog, reportData, simulated.IssueNonce());
        Assert.AreEqual("event-log.vendor", v.Failures.First().Name);
    }

    [TestMethod]
    public void Evidence_for_a_used_nonce_is_refused_as_replayed_and_an_unissued_nonce_as_unknown()
    {
        using var pki = new TestIntelPki();
        (AttestationVerifier verifier, ManualTimeProvider time) = NewTdxVerifier(pki);
        byte[] reportData = RandomNumberGenerator.GetBytes(64);
        byte[] nonce = verifier.IssueNonce();
        AttestationEvidence evidence = Tdx_(pki.Quote(reportData));

        Assert.IsTrue(verifier.VerifyWithReportData(evidence, reportData, nonce).Accepted);
        AttestationVerdict replay = verifier.VerifyWithReportData(evidence, reportData, nonce);
        Assert.IsFalse(replay.Accepted);
        Assert.AreEqual("binding.nonce", replay.Failures.Single().Name);
        StringAssert.Contains(replay.Failures.Single().Detail, "replayed");

        AttestationVerdict unknown = verifier.VerifyWithReportData(evidence, reportData, RandomNumberGenerator.GetBytes(32));
        StringAssert.Contains(unknown.Failures.Single().Detail, "not issued");

        byte[] late = verifier.IssueNonce();
        time.Now += TimeSpan.FromMinutes(3);
        StringAssert.Contains(verifier.VerifyWithReportData(evidence, reportData, late).Failures.Single().Detail, "expired");

        byte[] other = verifier.IssueNonce();
        AttestationVerdict otherSession = verifier.VerifyWithReportData(Tdx_(pki.Quote(RandomNumberGenerator.GetBytes(64))), reportData, other);
        StringAssert.Contains(otherSession.Rules.Single(r => r.Name == "binding.report-data").Detail, "does not bind this handshake");
        Assert.IsTrue(verifier.VerifyWithReportData(Tdx_(pki.Quote(reportData)), reportData, other).Accepted, "evidence that does not bind the session does not burn its nonce");

        Assert.ThrowsExactly<ArgumentException>(() => verifier.VerifyWithReportData(evidence, new byte[63], verifier.IssueNonce()));
        Assert.ThrowsExactly<ArgumentException>(() => verifier.VerifyWithReportData(evidence, reportData, ReadOnlySpan<byte>.Empty));
    }

    [TestMethod]
    public void Clone_copies_every_public_property_and_shares_no_list()
    {
        AttestationPolicy source = FullySet();
        AttestationPolicy copy = source.Clone();
        foreach (PropertyInfo p in SettableProperties())
        {
            object? a = p.GetValue(source), b = p.GetValue(copy);
            if (a is IEnumerable list and not string)
            {
                CollectionAssert.AreEqual(list.Cast<object>().ToArray(), ((IEnumerable)b!).Cast<object>().ToArray(), p.Name);
                Assert.AreNotSame(a, b, $"{p.Name} is shared between the policy and its clone");
            }
            else
            {
                Assert.AreEqual(a, b, p.Name);
            }
        }

        copy.AllowedMrTd.Add(new string('0', 96));
        copy.AllowedVendors.Clear();
        Assert.AreEqual(1, source.AllowedMrTd.Count);
        Assert.AreEqual(1, source.AllowedVendors.Count);
    }

    [TestMethod]
    public void The_factory_registration_gives_one_verifier_with_that_policy_and_keeps_a_registered_clock()
    {
        var time = new ManualTimeProvider(TestIntelPki.At);
        AttestationPolicy policy = FullySet();
        var services = new ServiceCollection();
        services.AddSingleton<TimeProvider>(time);
        services.AddNearMLAttestation(_ => policy, TimeSpan.FromSeconds(30));
        services.AddNearMLAttestation(_ => new AttestationPolicy(), TimeSpan.FromSeconds(30));
        using ServiceProvider sp = services.BuildServiceProvider();

        Assert.AreEqual(1, services.Count(d => d.ServiceType == typeof(AttestationVerifier)), "a second registration does not add a second verifier");
        AttestationVerifier verifier = sp.GetRequiredService<AttestationVerifier>();
        Assert.AreSame(verifier, sp.GetRequiredService<AttestationVerifier>());
        Assert.AreSame(policy, verifier.Policy);
        Assert.AreSame(time, sp.GetRequiredService<TimeProvider>());

        byte[] nonce = verifier.IssueNonce();
        AttestationNonceStore store = sp.GetRequiredService<AttestationNonceStore>();
        time.Now += TimeSpan.FromSeconds(31);
        Assert.AreEqual(NonceStatus.Expired, store.Consume(nonce), "the verifier issues from the registered store, with the registered lifetime and clock");

        var invalid = new ServiceCollection().AddNearMLAttestation(_ => new AttestationPolicy { AllowedMrTd = ["xyz"] });
        using ServiceProvider sp2 = invalid.BuildServiceProvider();
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => sp2.GetRequiredService<AttestationVerifier>()).Message, "AllowedMrTd");
    }

    internal static IEnumerable<PropertyInfo> SettableProperties() =>
        typeof(AttestationPolicy).GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite && p.SetMethod!.IsPublic);

    /// <summary>A policy with every settable property away from its default (fails when a new property is not handled here).</summary>
    internal static AttestationPolicy FullySet()
    {
        static string Hex(byte b) => Convert.ToHexString(Enumerable.Repeat(b, 48).ToArray());
        var p = new AttestationPolicy
        {
            AllowedVendors = [AttestationVendor.IntelTdx],
            AllowSimulated = true,
            ForbidDebug = false,
            MinimumTcbStatus = TcbStatus.OutOfDate,
            RequireFullVerification = false,
            AllowedMrTd = [Hex(1)],
            AllowedRtmr0 = [Hex(2)],
            AllowedRtmr1 = [Hex(3)],
            AllowedRtmr2 = [Hex(4)],
            AllowedRtmr3 = [Hex(5)],
            AllowedSnpMeasurements = [Hex(6)],
            ForbidSnpMigrationAgent = false,
            ForbidSnpSmt = true,
            MinimumSnpTcb = "3.0.8.115",
        };
        var defaults = new AttestationPolicy();
        foreach (PropertyInfo prop in SettableProperties())
        {
            object? d = prop.GetValue(defaults), v = prop.GetValue(p);
            bool same = d is IEnumerable dl and not string ? dl.Cast<object>().SequenceEqual(((IEnumerable)v!).Cast<object>()) : Equals(d, v);
            Assert.IsFalse(same, $"AttestationPolicy.{prop.Name} is new: give it a non-default value in FullySet so the copy tests cover it");
        }

        Assert.IsNull(p.Validate());
        return p;
    }
}
