using System.Buffers.Binary;
using System.Net.Security;
using System.Net.Sockets;
using Google.Protobuf;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using NearML.Core.Contracts;
using NearML.Core.Protocol;
using NearML.Hosting.Coordinator;
using NearML.Hosting.State;
using NearML.Ledger;

namespace NearML.Hosting.Tests.Coordinator;

[TestClass]
public sealed class CoordinatorOptionsTests
{
    [TestMethod]
    public async Task Invalid_options_fail_the_host_start_and_name_each_setting()
    {
        var logs = new CapturingLoggerProvider();
        using var host = CoordinatorHarness.Build(
            o =>
            {
                CoordinatorHarness.Defaults(o, TestAssembly.NewTempDirectory("bad"));
                o.Rounds = 0;
#pragma warning disable CS0618 // the deprecated alias keeps working (and is validated under its own name)
                o.Compression = "int3";
#pragma warning restore CS0618
                o.OuterMomentum = 1.5;
                o.SyncStrategy = "allreduce";
                o.Model = "resnet";
            },
            logs);
        using var cts = new CancellationTokenSource(CoordinatorHarness.Timeout);
        var ex = await Assert.ThrowsExactlyAsync<OptionsValidationException>(() => host.StartAsync(cts.Token));
        StringAssert.Contains(ex.Message, "Rounds 0");
        StringAssert.Contains(ex.Message, "Compression 'int3'");
        StringAssert.Contains(ex.Message, "OuterMomentum 1.5");
        StringAssert.Contains(ex.Message, "SyncStrategy 'allreduce' is unknown; use 'diloco', 'ddp' or 'demo'");
        StringAssert.Contains(ex.Message, "resnet");
    }

    [TestMethod]
    public void Options_bind_from_configuration()
    {
        var config = new Microsoft.Extensions.Configuration.ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["NearML:Coordinator:Port"] = "0",
                ["NearML:Coordinator:Rounds"] = "7",
                ["NearML:Coordinator:RoundTimeout"] = "00:00:42",
                ["NearML:Coordinator:Compression"] = "int4",
                ["NearML:Coordinator:AllowSimulatedAttestation"] = "true",
            })
            .Build();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddNearMLCoordinator(config.GetSection(NearMLCoordinatorOptions.SectionName));
        using var sp = services.BuildServiceProvider();
        var o = sp.GetRequiredService<IOptions<NearMLCoordinatorOptions>>().Value;
        Assert.AreEqual(7, o.Rounds);
        Assert.AreEqual(TimeSpan.FromSeconds(42), o.RoundTimeout);
#pragma warning disable CS0618 // the deprecated alias keeps working
        Assert.AreEqual("int4", o.Compression);
#pragma warning restore CS0618
        Assert.AreEqual("int4", o.UpdateEncoding);
        Assert.IsTrue(o.AllowSimulatedAttestation);
        Assert.IsNotNull(sp.GetRequiredService<CoordinatorStatus>());
    }
}

[TestClass]
public sealed class CoordinatorAdmissionTests
{
    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task Unattested_simulated_when_not_allowed_misbound_and_wrong_version_workers_are_refused_with_reasons()
    {
        await using var c = await CoordinatorHarness.StartAsync(o => o.Rounds = 1);

        // No evidence at all.
        var conn = await FakeWorker.ConnectAsync(c.Port, c.Fingerprint);
        await using (conn)
        {
            using var id = NearML.Core.Protocol.Ed25519Identity.Generate();
            var ex = await Assert.ThrowsExactlyAsync<AdmissionRefusedException>(() => WorkerHandshake.RunAsync(conn, id, new WorkerHandshakeOptions { WorkerId = "bare" }).WaitAsync(CoordinatorHarness.Timeout));
            Assert.AreEqual(RefusalReason.AttestationRequired, ex.Reason);
            StringAssert.Contains(ex.CoordinatorMessage, "no attestation evidence");
        }

        // Simulated evidence bound to other report data (a replay / another session).
        conn = await FakeWorker.ConnectAsync(c.Port, c.Fingerprint);
        await using (conn)
        {
            using var id = NearML.Core.Protocol.Ed25519Identity.Generate();
            using var wrong = new SimulatedEvidence(bindOtherReportData: true);
            var ex = await Assert.ThrowsExactlyAsync<AdmissionRefusedException>(() => WorkerHandshake.RunAsync(conn, id, new WorkerHandshakeOptions { WorkerId = "replayer", EvidenceProvider = wrong }).WaitAsync(CoordinatorHarness.Timeout));
            Assert.AreEqual(RefusalReason.AttestationFailed, ex.Reason);
            StringAssert.Contains(ex.CoordinatorMessage, "does not bind this handshake");
        }

        // An incompatible protocol version, sent by hand.
        conn = await FakeWorker.ConnectAsync(c.Port, c.Fingerprint);
        await using (conn)
        {
            using var id = NearML.Core.Protocol.Ed25519Identity.Generate();
            await conn.SendAsync(new Hello
            {
                Version = new ProtocolVersion { Major = 4, Minor = 0 },
                WorkerId = "future",
                IdentityPublicKey = ByteString.CopyFrom(id.PublicKey.Span),
                WorkerNonce = ByteString.CopyFrom(new byte[32]),
                Capabilities = new WorkerCapabilities(),
            });
            var refusal = await conn.ReceiveAsync<Refusal>().AsTask().WaitAsync(CoordinatorHarness.Timeout);
            Assert.AreEqual(RefusalReason.IncompatibleVersion, refusal.Reason);
            StringAssert.Contains(refusal.Message, "4.0");
        }

        Assert.IsTrue(c.Logs.Contains("AttestationRequired"));
        Assert.IsTrue(c.Logs.Contains("IncompatibleVersion"));
        Assert.IsEmpty(c.Status.Workers);
    }

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task A_second_key_for_a_connected_worker_id_is_refused_and_a_silent_worker_is_dropped_at_its_heartbeat_timeout()
    {
        await using var c = await CoordinatorHarness.StartAsync(o =>
        {
            o.MinWorkers = 5;
            o.HeartbeatInterval = TimeSpan.FromMilliseconds(200);
        });

        // Admitted, then silent: no heartbeats, no frames at all.
        var quiet = await FakeWorker.ConnectAsync(c.Port, c.Fingerprint);
        await using (quiet)
        {
            using var id = NearML.Core.Protocol.Ed25519Identity.Generate();
            using var evidence = new SimulatedEvidence();
            await WorkerHandshake.RunAsync(quiet, id, FakeWorker.JoinOptions("quiet", evidence)).WaitAsync(CoordinatorHarness.Timeout);

            var other = await FakeWorker.ConnectAsync(c.Port, c.Fingerprint);
            await using (other)
            {
                using var otherKey = NearML.Core.Protocol.Ed25519Identity.Generate();
                using var e2 = new SimulatedEvidence();
                var ex = await Assert.ThrowsExactlyAsync<AdmissionRefusedException>(() => WorkerHandshake.RunAsync(other, otherKey, FakeWorker.JoinOptions("quiet", e2)).WaitAsync(CoordinatorHarness.Timeout));
                Assert.AreEqual(RefusalReason.DuplicateIdentity, ex.Reason);
            }

            using var cts = new CancellationTokenSource(CoordinatorHarness.Timeout);
            while (c.Status.Workers.SingleOrDefault(w => w.Id == "quiet")?.State != "dropped")
            {
                await Task.Delay(20, cts.Token);
            }

            Assert.IsTrue(c.Logs.Contains("Worker 'quiet' left (dropped): no frame for 0.6 s (heartbeat timeout)"));
        }
    }

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task Simulated_evidence_is_refused_unless_the_development_switch_is_set()
    {
        await using var c = await CoordinatorHarness.StartAsync(o => o.AllowSimulatedAttestation = false);
        var conn = await FakeWorker.ConnectAsync(c.Port, c.Fingerprint);
        await using (conn)
        {
            using var id = NearML.Core.Protocol.Ed25519Identity.Generate();
            using var evidence = new SimulatedEvidence();
            var ex = await Assert.ThrowsExactlyAsync<AdmissionRefusedException>(() => WorkerHandshake.RunAsync(conn, id, new WorkerHandshakeOptions { WorkerId = "sim", EvidenceProvider = evidence }).WaitAsync(CoordinatorHarness.Timeout));
            Assert.AreEqual(RefusalReason.AttestationFailed, ex.Reason);
            StringAssert.Contains(ex.CoordinatorMessage, "simulated");
        }
    }
}

[TestClass]
public sealed class CoordinatorRoundTests
{
    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task Two_workers_drive_rounds_the_mean_is_sample_weighted_and_the_outer_step_is_Nesterov()
    {
        await using var c = await CoordinatorHarness.StartAsync(o =>
        {
            o.MinWorkers = 2;
            o.Rounds = 3;
            o.OuterLearningRate = 0.5;
            o.OuterMomentum = 0.9;
            o.BatchSize = 64; // H × batch = 320 samples: both claims below stand (weights are capped at what the assignment allows)
        });
        await using var a = await FakeWorker.StartAsync(c, "alpha", deltaValue: 0.01f, samples: 100);
        await using var b = await FakeWorker.StartAsync(c, "bravo", deltaValue: 0.04f, samples: 300);
        await c.Status.CompletedTask.WaitAsync(CoordinatorHarness.Timeout);
        await a.WaitForReceiptsAsync(3);
        await b.WaitForReceiptsAsync(3);

        // Mean = (100·0.01 + 300·0.04) / 400 = 0.0325 everywhere. Nesterov from a zero buffer:
        // step 1: buf = g, p -= lr(g + μ·buf) = lr·g(1+μ); step 2: buf = μg + g, p -= lr(g + μ·buf).
        var g = 0.0325f;
        var v0 = a.Downloaded[0];
        var v1 = a.Downloaded[1];
        var v2 = a.Downloaded[2];
        var buf1 = g;
        var step1 = 0.5f * (g + (0.9f * buf1));
        var buf2 = (0.9f * buf1) + g;
        var step2 = 0.5f * (g + (0.9f * buf2));
        for (var i = 0; i < v0.Length; i += 997)
        {
            Assert.AreEqual(v0[i] - step1, v1[i], 1e-5, $"v1[{i}]");
            Assert.AreEqual(v1[i] - step2, v2[i], 1e-5, $"v2[{i}]");
        }

        CollectionAssert.AreEqual(a.Downloaded[2], b.Downloaded[2]);
        Assert.AreEqual(3, c.Status.Rounds.Count);
        Assert.IsTrue(c.Status.Rounds.All(r => r.Accepted == 2 && r.Rejected == 0 && r.Cohort == 2));
        Assert.AreEqual(6, c.Status.LedgerEntries);
        Assert.AreEqual(3L, c.Status.ParameterVersion);
        Assert.IsNotNull(c.Status.LastAccuracy);
        Assert.IsTrue(c.Status.TotalBytesUp > 0 && c.Status.TotalBytesDown > 0);

        // Receipts are real signed ledger entries naming the worker, one per round.
        var parsed = a.Receipts.Select(r => SignedReceipt.Parse(r.Entry.Memory)).ToList();
        Assert.IsTrue(parsed.All(p => p.Verify() && p.Receipt.WorkerId == "alpha" && p.Receipt.SamplesProcessed == 100));
        CollectionAssert.AreEquivalent(new long[] { 0, 1, 2 }, parsed.Select(p => p.Receipt.Round).ToArray());
        await a.Finished.WaitAsync(CoordinatorHarness.Timeout);
        Assert.IsNotNull(a.Goodbye, "the coordinator says goodbye when the job is complete");
        Assert.IsFalse(a.Goodbye.RejoinLater);
        Assert.IsNull(a.Fault);
    }

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task A_NaN_update_is_rejected_with_a_logged_reason_and_the_others_are_unaffected()
    {
        await using var c = await CoordinatorHarness.StartAsync(o =>
        {
            o.MinWorkers = 2;
            o.Rounds = 2;
        });
        await using var good = await FakeWorker.StartAsync(c, "good");
        await using var bad = await FakeWorker.StartAsync(c, "nan", FakeBehavior.NaN);
        await c.Status.CompletedTask.WaitAsync(CoordinatorHarness.Timeout);
        await good.WaitForReceiptsAsync(2);
        Assert.IsEmpty(bad.Receipts);
        Assert.IsTrue(c.Logs.Contains("update of worker 'nan' rejected (NonFinite)"));
        Assert.IsTrue(c.Status.Rounds.All(r => r.Accepted == 1 && r.Rejected == 1));
        Assert.IsTrue(good.Downloaded[1].All(float.IsFinite));
        Assert.AreEqual(2, c.Status.LedgerEntries);
    }

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task Multi_part_updates_are_reassembled_and_a_wrong_whole_payload_hash_is_rejected()
    {
        await using var c = await CoordinatorHarness.StartAsync(o =>
        {
            o.MinWorkers = 2;
            o.Rounds = 1;
        });
        await using var multi = await FakeWorker.StartAsync(c, "multi", FakeBehavior.MultiPart);
        await using var liar = await FakeWorker.StartAsync(c, "liar", FakeBehavior.BadHash);
        await c.Status.CompletedTask.WaitAsync(CoordinatorHarness.Timeout);
        await multi.WaitForReceiptsAsync(1);
        Assert.IsEmpty(liar.Receipts);
        Assert.IsTrue(c.Logs.Contains("update of worker 'liar' rejected (HashMismatch)"));
    }

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task A_silent_worker_is_dropped_from_the_round_at_its_deadline()
    {
        await using var c = await CoordinatorHarness.StartAsync(o =>
        {
            o.MinWorkers = 2;
            o.Rounds = 2;
            o.RoundTimeout = TimeSpan.FromSeconds(2);
        });
        await using var active = await FakeWorker.StartAsync(c, "active");
        await using var silent = await FakeWorker.StartAsync(c, "silent", FakeBehavior.Silent);
        await c.Status.CompletedTask.WaitAsync(CoordinatorHarness.Timeout);
        await active.WaitForReceiptsAsync(2);
        Assert.IsEmpty(silent.Receipts);
        Assert.AreEqual(2, silent.Assignments.Count);
        Assert.IsTrue(c.Logs.Contains("no update from worker 'silent': the round's deadline passed"));
        Assert.IsTrue(c.Status.Rounds.All(r => r.Accepted == 1 && r.Cohort == 2));
    }

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task Garbage_and_oversized_frames_close_only_that_connection()
    {
        await using var c = await CoordinatorHarness.StartAsync(o =>
        {
            o.Rounds = 2;
            o.MinWorkers = 1;
        });

        // Garbage bytes and an oversized frame header over real TLS, before any worker joined.
        foreach (var bytes in new[] { "this is not a frame at all, just garbage"u8.ToArray(), OversizedHeader() })
        {
            using var tcp = new TcpClient();
            await tcp.ConnectAsync("127.0.0.1", c.Port).WaitAsync(CoordinatorHarness.Timeout);
            var trust = CoordinatorTrust.Pinned(c.Fingerprint);
            await using var ssl = new SslStream(tcp.GetStream(), false);
            await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "localhost", RemoteCertificateValidationCallback = (_, cert, chain, errors) => trust.Validate(cert, chain, errors, out string _) }).WaitAsync(CoordinatorHarness.Timeout);
            await ssl.WriteAsync(bytes);
            await ssl.FlushAsync();
            var buffer = new byte[4096];
            var total = 0;
            using var read = new CancellationTokenSource(CoordinatorHarness.Timeout);
            try
            {
                int n;
                while ((n = await ssl.ReadAsync(buffer.AsMemory(total), read.Token)) > 0)
                {
                    total += n;
                }
            }
            catch (IOException)
            {
                // reset after the error frame: also a close
            }

            Assert.IsTrue(total >= 6, "the coordinator answers with an Error frame before closing");
            Assert.AreEqual((ushort)FrameType.Error, BinaryPrimitives.ReadUInt16BigEndian(buffer.AsSpan(4)));
        }

        await using var worker = await FakeWorker.StartAsync(c, "survivor");
        await c.Status.CompletedTask.WaitAsync(CoordinatorHarness.Timeout);
        await worker.WaitForReceiptsAsync(2);
        Assert.IsTrue(c.Logs.Contains("protocol fault"));
    }

    private static byte[] OversizedHeader()
    {
        var b = new byte[6];
        BinaryPrimitives.WriteUInt32BigEndian(b, 100_000_000);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(4), (ushort)FrameType.Hello);
        return b;
    }
}

[TestClass]
public sealed class CoordinatorSecureAggregationTests
{
    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task Secure_rounds_sum_masked_inputs_and_credit_the_contributors()
    {
        await using var c = await CoordinatorHarness.StartAsync(o =>
        {
            o.SecureAggregation = true;
            o.MinWorkers = 3;
            o.Rounds = 2;
            o.OuterLearningRate = 0.5;
            o.OuterMomentum = 0.9;
        });
        await using var a = await FakeWorker.StartAsync(c, "sa", FakeBehavior.Secure, deltaValue: 0.01f);
        await using var b = await FakeWorker.StartAsync(c, "sb", FakeBehavior.Secure, deltaValue: 0.02f);
        await using var d = await FakeWorker.StartAsync(c, "sc", FakeBehavior.Secure, deltaValue: 0.03f);
        await c.Status.CompletedTask.WaitAsync(CoordinatorHarness.Timeout);
        foreach (var w in new[] { a, b, d })
        {
            await w.WaitForReceiptsAsync(2);
        }

        // Equal weights (H steps each): the mean pseudo-gradient is 0.02; first outer step p -= lr·g·(1 + μ).
        var step = 0.5f * 0.02f * 1.9f;
        var v0 = a.Downloaded[0];
        var v1 = a.Downloaded[1];
        for (var i = 0; i < v0.Length; i += 991)
        {
            Assert.AreEqual(v0[i] - step, v1[i], 1e-4, $"v1[{i}]");
        }

        Assert.IsTrue(c.Status.Rounds.All(r => r.Accepted == 3));
        Assert.IsTrue(c.Logs.Contains("secure aggregation summed 3/3 masked inputs"));
        Assert.AreEqual(6L, c.Status.LedgerEntries);
    }

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task A_worker_dropping_out_after_sharing_its_keys_is_recovered_and_not_credited()
    {
        await using var c = await CoordinatorHarness.StartAsync(o =>
        {
            o.SecureAggregation = true;
            o.MinWorkers = 5;
            o.Rounds = 1;
            o.RoundTimeout = TimeSpan.FromSeconds(8);
        });
        var workers = new List<FakeWorker>();
        try
        {
            foreach (var id in new[] { "s1", "s2", "s3", "s4" })
            {
                workers.Add(await FakeWorker.StartAsync(c, id, FakeBehavior.Secure, deltaValue: 0.02f));
            }

            var dropper = await FakeWorker.StartAsync(c, "s5", FakeBehavior.SecureDropAfterKeys, deltaValue: 5f);
            workers.Add(dropper);
            await c.Status.CompletedTask.WaitAsync(CoordinatorHarness.Timeout);
            foreach (var w in workers.Take(4))
            {
                await w.WaitForReceiptsAsync(1);
            }

            Assert.IsEmpty(dropper.Receipts);
            Assert.IsTrue(c.Logs.Contains("secure aggregation summed 4/5 masked inputs"), "s5's pairwise masks were reconstructed from the survivors' shares");
            var round = c.Status.Rounds.Single();
            Assert.AreEqual(4, round.Accepted);
            CollectionAssert.DoesNotContain(round.AcceptedWorkers.ToList(), "s5");
        }
        finally
        {
            foreach (var w in workers)
            {
                await w.DisposeAsync();
            }
        }
    }
}

[TestClass]
public sealed class CoordinatorStateTests
{
    [TestMethod]
    [Timeout(180_000, CooperativeCancellation = true)]
    public async Task Restart_resumes_after_the_last_round_without_duplicate_ledger_entries_and_settlement_nonces_continue()
    {
        var data = TestAssembly.NewTempDirectory("resume");
        await using (var c = await CoordinatorHarness.StartAsync(o => o.Rounds = 3, data))
        {
            await using var w = await FakeWorker.StartAsync(c, "w1");
            await c.Status.CompletedTask.WaitAsync(CoordinatorHarness.Timeout);
            await w.WaitForReceiptsAsync(3);
        }

        // Pretend the checkpoint of the last round never reached the disk (a crash right after the round):
        // round 2 is redone, but its ledger receipt exists already and must not be appended twice.
        using (var state = new CoordinatorStateStore(Path.Combine(data, "coordinator.db")))
        {
            var last = state.LatestCheckpoint()!;
            Assert.AreEqual(2L, last.Round);
            File.Delete(last.Path);
            state.ForgetCheckpoint(last.Round);
        }

        await using (var c = await CoordinatorHarness.StartAsync(o => o.Rounds = 6, data))
        {
            await using var w = await FakeWorker.StartAsync(c, "w1");
            await c.Status.CompletedTask.WaitAsync(CoordinatorHarness.Timeout);
            Assert.IsTrue(c.Logs.Contains("Resuming job 'nearml-job' after round 1"));
            Assert.IsTrue(c.Logs.Contains("was already credited"));
            Assert.AreEqual(2L, c.Status.Rounds[0].Round);
            Assert.AreEqual(6L, c.Status.LedgerEntries);
        }

        using var ledger = ContributionLedger.OpenSqlite(Path.Combine(data, "ledger.db"));
        Assert.IsTrue(ledger.Verify().IsValid);
        var rounds = ledger.Store.Read(0).Select(e => SignedReceipt.Parse(e.Payload).Receipt.Round).ToList();
        CollectionAssert.AreEqual(new long[] { 0, 1, 2, 3, 4, 5 }, rounds);

        using var s = new CoordinatorStateStore(Path.Combine(data, "coordinator.db"));
        var settlements = s.ReadSettlements();
        // Epochs 0 (rounds 0-1) and 1 (round 2, the end of the first run) were settled by the first run; the resumed
        // run never appends into a settled epoch, so round 3 opens epoch 2 and rounds 4-5 epoch 3. Each pays w1 once,
        // with nonces continuing across epochs and the restart: every transaction hash differs.
        CollectionAssert.AreEqual(new long[] { 0, 1, 2, 3 }, settlements.Select(x => x.Epoch).ToArray());
        CollectionAssert.AreEqual(new ulong[] { 1, 2, 3, 4 }, settlements.Select(x => x.Nonce).ToArray());
        Assert.AreEqual(4, settlements.Select(x => x.Hash).Distinct().Count());
        Assert.IsTrue(settlements.All(x => x.DryRun && x.Receiver == "w1"));
        Assert.IsTrue(s.ReadMembership().Any(m => m.Event == "join" && m.WorkerId == "w1"));
        Assert.AreEqual(6, s.ReadRounds().Count);
    }

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    public async Task A_corrupt_checkpoint_stops_the_start_with_a_clear_error()
    {
        var data = TestAssembly.NewTempDirectory("corrupt");
        await using (var c = await CoordinatorHarness.StartAsync(o => o.Rounds = 1, data))
        {
            await using var w = await FakeWorker.StartAsync(c, "w1");
            await c.Status.CompletedTask.WaitAsync(CoordinatorHarness.Timeout);
        }

        string path;
        using (var state = new CoordinatorStateStore(Path.Combine(data, "coordinator.db")))
        {
            path = state.LatestCheckpoint()!.Path;
        }

        var bytes = await File.ReadAllBytesAsync(path);
        bytes[^10] ^= 0xFF;
        await File.WriteAllBytesAsync(path, bytes);

        var logs = new CapturingLoggerProvider();
        using var host = CoordinatorHarness.Build(o => CoordinatorHarness.Defaults(o, data), logs);
        using var cts = new CancellationTokenSource(CoordinatorHarness.Timeout);
        await host.StartAsync(cts.Token);
        var status = host.Services.GetRequiredService<CoordinatorStatus>();
        var ex = await Assert.ThrowsExactlyAsync<CoordinatorStateException>(() => status.Listening.WaitAsync(CoordinatorHarness.Timeout));
        StringAssert.Contains(ex.Message, "is corrupt");
        StringAssert.Contains(ex.Message, Path.GetFileName(path));
        Assert.IsTrue(logs.Contains("Coordinator failed"));
        await host.StopAsync(cts.Token);
    }
}
