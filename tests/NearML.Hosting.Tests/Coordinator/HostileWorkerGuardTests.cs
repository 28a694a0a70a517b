using Microsoft.Extensions.Logging;
using NearML.Core.Contracts;
using NearML.Core.Protocol;
using NearML.Hosting.Coordinator;
using NearML.Hosting.State;

namespace NearML.Hosting.Tests.Coordinator;

/// <summary>The coordinator's guards against a hostile worker: weights it can check, the norm bound, durable id-key binding, rate-limited refusal logs.</summary>
[TestClass]
public sealed class HostileWorkerGuardTests
{
    [TestMethod]
    public void Credited_samples_never_exceed_what_the_assignment_allows()
    {
        Assert.AreEqual(640UL, CoordinatorService.CreditedSamples(1UL << 62, 20, 32, 30_000), "a huge claim is capped at H × batch");
        Assert.AreEqual(640UL, CoordinatorService.CreditedSamples(ulong.MaxValue, 20, 32, 30_000));
        Assert.AreEqual(500UL, CoordinatorService.CreditedSamples(1UL << 62, 20, 32, 500), "and at the assigned records");
        Assert.AreEqual(100UL, CoordinatorService.CreditedSamples(100, 20, 32, 30_000), "an honest smaller claim stands");
        Assert.AreEqual(0UL, CoordinatorService.CreditedSamples(640, 20, 32, 0), "no assigned records, no credit");
        var r = new Random(3);
        for (var i = 0; i < 10_000; i++)
        {
            var claimed = (ulong)r.NextInt64() * (ulong)r.Next(1, 4);
            var h = r.Next(1, 1000);
            var b = r.Next(1, 512);
            var assigned = r.NextInt64(-5, 100_000);
            var credited = CoordinatorService.CreditedSamples(claimed, h, b, assigned);
            Assert.IsLessThanOrEqualTo(claimed, credited);
            Assert.IsLessThanOrEqualTo((ulong)h * (ulong)b, credited);
            Assert.IsLessThanOrEqualTo((ulong)Math.Max(0, assigned), credited);
        }
    }

    [TestMethod]
    public void The_default_norm_bound_is_H_times_eta_times_the_root_of_the_parameter_count()
    {
        Assert.AreEqual(100 * 1e-3 * Math.Sqrt(101_770), CoordinatorService.DefaultMaxUpdateNorm(100, 1e-3, 101_770), 1e-12);
        Assert.IsGreaterThan(CoordinatorService.DefaultMaxUpdateNorm(10, 1e-3, 1000), CoordinatorService.DefaultMaxUpdateNorm(20, 1e-3, 1000));
    }

    [TestMethod]
    public void A_worker_id_stays_bound_to_its_first_key_across_reopen_and_moves_only_by_compare_and_set()
    {
        var dir = TestAssembly.NewTempDirectory("keys");
        var path = Path.Combine(dir, "coordinator.db");
        try
        {
            using (var store = new CoordinatorStateStore(path))
            {
                Assert.IsNull(store.ReadWorkerKey("w"));
                Assert.AreEqual("aa", store.BindWorkerKey("w", "aa", 1).PublicKeyHex);
                Assert.AreEqual("aa", store.BindWorkerKey("w", "bb", 2).PublicKeyHex, "a second key does not take the id");
                Assert.AreEqual(1, store.ReadWorkerKey("w")!.BoundUnixMs);
            }

            using (var store = new CoordinatorStateStore(path))
            {
                Assert.AreEqual("aa", store.ReadWorkerKey("w")!.PublicKeyHex, "the binding survives a restart");
                Assert.IsFalse(store.RotateWorkerKey("w", "bb", "cc", 3), "only the bound key can be rotated away");
                Assert.IsTrue(store.RotateWorkerKey("w", "aa", "cc", 4));
                Assert.IsFalse(store.RotateWorkerKey("w", "aa", "dd", 5), "a replayed rotation from the old key no longer applies");
                var b = store.ReadWorkerKey("w")!;
                Assert.AreEqual("cc", b.PublicKeyHex);
                Assert.AreEqual(1, b.Rotations);
                Assert.IsFalse(store.RotateWorkerKey("nobody", "aa", "cc", 6));
                Assert.IsNull(store.ReadWorkerKey("nobody"));
            }
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(dir, true);
        }
    }

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task An_offline_workers_id_cannot_be_taken_and_moves_only_with_the_bound_keys_signature_across_restarts()
    {
        var data = TestAssembly.NewTempDirectory("bind");
        using var owner = Ed25519Identity.Generate();
        using var thief = Ed25519Identity.Generate();
        using var next = Ed25519Identity.Generate();
        static void Configure(NearMLCoordinatorOptions o)
        {
            o.MinWorkers = 10; // no round starts: this test is about admission only
            o.Rounds = 1;
        }

        async Task<string> JoinAsync(CoordinatorHarness c, Ed25519Identity key, KeyRotation? rotation = null)
        {
            var connection = await FakeWorker.ConnectAsync(c.Port, c.Fingerprint);
            using var evidence = new SimulatedEvidence();
            try
            {
                await WorkerHandshake.RunAsync(connection, key, FakeWorker.JoinOptions("w", evidence, rotation)).WaitAsync(CoordinatorHarness.Timeout);
                await connection.SendAsync(new Goodbye { Message = "done" });
                return "admitted";
            }
            catch (AdmissionRefusedException ex)
            {
                return $"{ex.Reason}: {ex.CoordinatorMessage}";
            }
            finally
            {
                await connection.DisposeAsync();
            }
        }

        await using (var c = await CoordinatorHarness.StartAsync(Configure, data))
        {
            Assert.AreEqual("admitted", await JoinAsync(c, owner));
            Assert.AreEqual("admitted", await JoinAsync(c, owner), "the owner comes back with its key");
            var stolen = await JoinAsync(c, thief);
            StringAssert.StartsWith(stolen, "DuplicateIdentity: worker id 'w' is bound to another identity key");
            var forged = KeyRotationProof.Create(thief, "w", thief.PublicKey.Span);
            forged.PreviousPublicKey = Google.Protobuf.ByteString.CopyFrom(owner.PublicKey.Span);
            StringAssert.StartsWith(await JoinAsync(c, thief, forged), "BadSignature: key rotation of worker id 'w'");
            var stolenRotation = KeyRotationProof.Create(owner, "w", next.PublicKey.Span);
            StringAssert.StartsWith(await JoinAsync(c, thief, stolenRotation), "BadSignature", "a rotation to another key does not let the thief in");
            Assert.AreEqual("admitted", await JoinAsync(c, next, stolenRotation), "the owner's signature moves the id to the new key");
            Assert.IsTrue(c.Logs.Contains("Worker id 'w' rotated its key"));
            StringAssert.StartsWith(await JoinAsync(c, owner), "DuplicateIdentity", "the old key no longer owns the id");
        }

        await using (var c = await CoordinatorHarness.StartAsync(Configure, data))
        {
            Assert.AreEqual("admitted", await JoinAsync(c, next), "the binding survives a coordinator restart");
            StringAssert.StartsWith(await JoinAsync(c, owner), "DuplicateIdentity");
            StringAssert.StartsWith(await JoinAsync(c, thief), "DuplicateIdentity");
            StringAssert.StartsWith(await JoinAsync(c, owner, KeyRotationProof.Create(owner, "w", owner.PublicKey.Span)), "BadSignature", "a replayed old-key rotation does not move the id back");
        }
    }

    [TestMethod]
    public void A_refusal_flood_is_logged_as_a_burst_and_one_summary_line_per_interval()
    {
        var logs = new CapturingLoggerProvider();
        using var factory = LoggerFactory.Create(b => b.AddProvider(logs));
        var time = new ManualTime();
        using var limiter = new RefusalLogLimiter(factory.CreateLogger("test"), time, TimeSpan.FromSeconds(10), 3);
        var logged = 0;
        for (var i = 0; i < 10_000; i++)
        {
            if (limiter.TryLog(i % 2 == 0 ? "Refused" : "AuthenticationFailed", $"127.0.0.{2 + (i % 3)}:{40000 + i}"))
            {
                logged++;
            }
        }

        Assert.AreEqual(3, logged);
        Assert.IsEmpty(logs.Lines, "nothing is summarized before the interval ends");
        time.Advance(TimeSpan.FromSeconds(10));
        Assert.IsTrue(limiter.TryLog("Refused", "127.0.0.2:1"), "a new interval starts with a fresh burst");
        var summary = logs.Lines.Single();
        StringAssert.Contains(summary, "9997 more connection refusals");
        StringAssert.Contains(summary, "AuthenticationFailed: 4999");
        StringAssert.Contains(summary, "Refused: 4998");
        StringAssert.Contains(summary, "from 3 addresses");
        limiter.Flush();
        Assert.HasCount(1, logs.Lines, "an interval with nothing suppressed writes no summary");
        Assert.AreEqual(9997, limiter.SuppressedTotal);
    }

    /// <summary>A clock moved by hand; its timers never fire (the test calls Flush).</summary>
    private sealed class ManualTime : TimeProvider
    {
        private long _ticks = 1_000_000;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => Interlocked.Read(ref _ticks);

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) => new NeverTimer();

        public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);

        private sealed class NeverTimer : ITimer
        {
            public bool Change(TimeSpan dueTime, TimeSpan period) => true;

            public void Dispose()
            {
            }

            public ValueTask DisposeAsync() => ValueTask.CompletedTask;
        }
    }
}
