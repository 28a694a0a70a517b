using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;
using NearML.Hosting.Coordinator;

namespace NearML.Dashboard.Tests;

/// <summary>
/// The dashboard next to a real coordinator with two real workers over TLS (Fashion-MNIST subset, small MLP): Server-Sent
/// Events as rounds complete, the contributors' fields, the ledger check (valid, and invalid on a tampered copy), and that
/// nothing secret of the job is ever served.
/// </summary>
[TestClass]
public sealed class DashboardClusterTests
{
    public TestContext TestContext { get; set; } = null!;

    private static HttpClient Client(Uri baseAddress) => new() { BaseAddress = baseAddress, Timeout = Timeout.InfiniteTimeSpan };

    /// <summary>Reads Server-Sent Events (id, event, data) from a stream.</summary>
    private static async IAsyncEnumerable<(long Id, string Event, string Data)> ReadEventsAsync(Stream stream, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        using var reader = new StreamReader(stream, Encoding.UTF8);
        long id = -1;
        string? name = null;
        var data = new StringBuilder();
        while (await reader.ReadLineAsync(ct) is { } line)
        {
            if (line.Length == 0)
            {
                if (name is not null)
                {
                    yield return (id, name, data.ToString());
                }

                name = null;
                data.Clear();
                continue;
            }

            if (line.StartsWith(':'))
            {
                continue;
            }

            var colon = line.IndexOf(':', StringComparison.Ordinal);
            var field = colon < 0 ? line : line[..colon];
            var value = colon < 0 ? string.Empty : line[(colon + 1)..].TrimStart(' ');
            switch (field)
            {
                case "id": id = long.Parse(value, System.Globalization.CultureInfo.InvariantCulture); break;
                case "event": name = value; break;
                case "data": data.Append(value); break;
            }
        }
    }

    [TestMethod]
    [Timeout(240_000, CooperativeCancellation = true)]
    public async Task Server_sent_events_push_each_completed_round_and_the_status_names_every_contributor()
    {
        const int Rounds = 3;
        await using var cluster = await DashboardCluster.StartAsync(rounds: Rounds);
        using var http = Client(cluster.BaseAddress);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.CancellationToken);
        cts.CancelAfter(DashboardCluster.Timeout);
        using var response = await http.GetAsync("api/events", HttpCompletionOption.ResponseHeadersRead, cts.Token);
        Assert.AreEqual(HttpStatusCode.OK, response.StatusCode);
        Assert.AreEqual("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        await using var stream = await response.Content.ReadAsStreamAsync(cts.Token);

        var started = false;
        var lastId = -1L;
        var roundsSeen = new List<int>();
        JsonElement last = default;
        await foreach (var (id, name, data) in ReadEventsAsync(stream, cts.Token))
        {
            Assert.AreEqual("status", name);
            Assert.IsGreaterThan(lastId, id, "event ids increase");
            lastId = id;
            last = JsonDocument.Parse(data).RootElement.Clone();
            var rounds = last.GetProperty("rounds").GetArrayLength();
            if (roundsSeen.Count == 0 || roundsSeen[^1] != rounds)
            {
                roundsSeen.Add(rounds);
            }

            if (!started)
            {
                // The first event comes at once, before any worker joined.
                Assert.AreEqual(0, rounds);
                Assert.AreEqual("running", last.GetProperty("state").GetString());
                started = true;
                await cluster.StartWorkersAsync(2);
            }

            if (last.GetProperty("state").GetString() == "completed" && last.GetProperty("settlements").GetArrayLength() > 0)
            {
                break;
            }
        }

        TestContext.WriteLine($"rounds in successive events: {string.Join(" → ", roundsSeen)}; last event id {lastId}");
        // The stream coalesces changes (at most one event per 250 ms), so two rounds that complete close together arrive in
        // one event: the rounds seen rise strictly from the first event's 0 to the last round, on one connection.
        Assert.AreEqual(0, roundsSeen[0], "the first event comes before any round");
        Assert.AreEqual(Rounds, roundsSeen[^1], "the last event holds every round");
        Assert.IsGreaterThanOrEqualTo(2, roundsSeen.Count, "rounds were pushed on the open stream, no reload needed");
        CollectionAssert.AreEqual(roundsSeen.Order().ToArray(), roundsSeen.ToArray(), "rounds never go backwards");

        // The last status: rounds, contributors with attestation, receipts, throughput; bytes against DDP; settlements.
        var status = cluster.Status;
        Assert.AreEqual(Rounds, last.GetProperty("totalRounds").GetInt32());
        var round0 = last.GetProperty("rounds")[0];
        Assert.AreEqual(2, round0.GetProperty("accepted").GetInt32());
        Assert.IsGreaterThan(0.0, round0.GetProperty("loss").GetDouble());
        Assert.IsGreaterThan(0.1, round0.GetProperty("accuracy").GetDouble());
        var workers = last.GetProperty("workers").EnumerateArray().ToList();
        Assert.HasCount(2, workers);
        foreach (var w in workers)
        {
            Assert.AreEqual("simulated (insecure)", w.GetProperty("attestation").GetString());
            Assert.IsGreaterThan(0.0, w.GetProperty("samplesPerSecond").GetDouble());
            Assert.IsGreaterThan(0L, w.GetProperty("bytesReceived").GetInt64());
        }

        // Receipts may arrive in a later event than "completed": poll the JSON endpoint.
        await DashboardCluster.WaitAsync(() => status.Workers.All(w => w.Receipts == Rounds), "every worker's receipts");
        var now = JsonDocument.Parse(await http.GetStringAsync("api/status", cts.Token)).RootElement;
        Assert.IsTrue(now.GetProperty("workers").EnumerateArray().All(w => w.GetProperty("receipts").GetInt64() == Rounds));
        Assert.AreEqual(status.LedgerEntries, now.GetProperty("ledgerEntries").GetInt64());
        Assert.AreEqual(2L * Rounds, status.LedgerEntries);
        Assert.AreEqual(status.LedgerRoot, now.GetProperty("ledgerRoot").GetString());
        var ddp = now.GetProperty("ddpBytes").GetInt64();
        Assert.AreEqual(2L * Rounds * 10 * 4 * status.ParameterCount, ddp, "accepted updates × H × 4 B × parameters");
        Assert.IsGreaterThan(now.GetProperty("bytesUp").GetInt64(), ddp, "int8 DiLoCo sends less than DDP");
        var epochs = now.GetProperty("settlements").EnumerateArray().Select(s => s.GetProperty("epoch").GetInt64()).Distinct().Order().ToArray();
        CollectionAssert.AreEqual(new long[] { 0, 1 }, epochs, "rounds 0-1 settle as epoch 0, round 2 as epoch 1");
        Assert.IsTrue(now.GetProperty("settlements").EnumerateArray().All(s => s.GetProperty("dryRun").GetBoolean()));
        Assert.HasCount(2, now.GetProperty("payouts").EnumerateArray().ToList());
        TestContext.WriteLine($"bytes up {now.GetProperty("bytesUp").GetInt64()}, DDP equivalent {ddp} ({(double)ddp / now.GetProperty("bytesUp").GetInt64():F1}×), parameters {status.ParameterCount}");
    }

    [TestMethod]
    [Timeout(240_000, CooperativeCancellation = true)]
    public async Task Nothing_secret_is_served_and_verify_ledger_only_reads_and_catches_a_tampered_copy()
    {
        const string RpcSecret = "rpc-password-b7f3e1";
        await using var cluster = await DashboardCluster.StartAsync(rounds: 2, coordinator: o => o.SettlementRpcEndpoint = new Uri($"https://nearml:{RpcSecret}@rpc.testnet.invalid/"));
        await cluster.StartWorkersAsync(2);
        await cluster.Status.CompletedTask.WaitAsync(DashboardCluster.Timeout, TestContext.CancellationToken);
        await DashboardCluster.WaitAsync(() => cluster.Status.Workers.All(w => w.Receipts == 2), "receipts");
        using var http = Client(cluster.BaseAddress);

        // Everything the dashboard serves as data: the status, one event, a verdict.
        var served = new List<string> { await http.GetStringAsync("api/status", TestContext.CancellationToken) };
        using (var events = await http.GetAsync("api/events", HttpCompletionOption.ResponseHeadersRead, TestContext.CancellationToken))
        {
            await using var stream = await events.Content.ReadAsStreamAsync(TestContext.CancellationToken);
            await foreach (var e in ReadEventsAsync(stream, TestContext.CancellationToken))
            {
                served.Add(e.Data);
                break;
            }
        }

        var coordinatorDir = cluster.CoordinatorDirectory;
        var ledgerFiles = Directory.GetFiles(coordinatorDir, "ledger.db*");
        // The database and its WAL byte for byte (the -shm file is SQLite's shared-memory index: readers mark it by design).
        var before = ledgerFiles.Where(f => !f.EndsWith("-shm", StringComparison.Ordinal)).ToDictionary(f => f, f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));
        using (var verify = await http.PostAsync("api/ledger/verify", null, TestContext.CancellationToken))
        {
            var text = await verify.Content.ReadAsStringAsync(TestContext.CancellationToken);
            served.Add(text);
            var verdict = JsonDocument.Parse(text).RootElement;
            Assert.IsTrue(verdict.GetProperty("valid").GetBoolean(), text);
            Assert.IsTrue(verdict.GetProperty("signaturesValid").GetBoolean(), text);
            Assert.AreEqual(4L, verdict.GetProperty("entriesChecked").GetInt64());
            Assert.AreEqual(cluster.Status.LedgerRoot, verdict.GetProperty("trustedRoot").GetString());
        }

        foreach (var (file, hash) in before)
        {
            Assert.AreEqual(hash, Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(file))), $"verifying changed {file}");
        }

        // When the coordinator had already closed its ledger, SQLite's read-only reader opens the WAL index: an empty -wal
        // and a -shm may appear (a reader cannot remove them); nothing else, and no data.
        foreach (var created in Directory.GetFiles(coordinatorDir, "ledger.db*").Except(ledgerFiles))
        {
            Assert.IsTrue(created.EndsWith("-shm", StringComparison.Ordinal) || (created.EndsWith("-wal", StringComparison.Ordinal) && new FileInfo(created).Length == 0), $"verifying created {created}");
        }

        // The job's secrets, in every form they exist: the ledger signer's key, the workers' identity keys, the TLS key.
        var secrets = new List<string>();
        var signer = File.ReadAllText(Path.Combine(coordinatorDir, "ledger-signer.key")).Trim();
        secrets.Add(signer);
        secrets.Add(signer.Split(':').Last());
        foreach (var dir in cluster.WorkerDirectories)
        {
            var key = File.ReadAllBytes(Path.Combine(dir, "worker.key"));
            secrets.Add(Convert.ToHexString(key));
            secrets.Add(Convert.ToHexStringLower(key));
            secrets.Add(Convert.ToBase64String(key));
            secrets.Add(Encoding.UTF8.GetString(key).Trim());
        }

        var pfx = Path.Combine(coordinatorDir, "coordinator-dev.pfx");
        using (var certificate = X509CertificateLoader.LoadPkcs12FromFile(pfx, null, X509KeyStorageFlags.Exportable))
        {
            using var key = certificate.GetECDsaPrivateKey() as AsymmetricAlgorithm ?? certificate.GetRSAPrivateKey();
            var pkcs8 = key!.ExportPkcs8PrivateKey();
            secrets.Add(Convert.ToBase64String(pkcs8));
            secrets.Add(Convert.ToHexString(pkcs8));
            secrets.Add(Convert.ToHexStringLower(pkcs8));
        }

        secrets.Add(Convert.ToBase64String(File.ReadAllBytes(pfx)));
        secrets.Add(RpcSecret);
        secrets.RemoveAll(s => s.Length < 16);
        Assert.IsGreaterThanOrEqualTo(8, secrets.Count);
        foreach (var text in served)
        {
            foreach (var secret in secrets)
            {
                Assert.DoesNotContain(secret, text, StringComparison.OrdinalIgnoreCase, "a secret was served");
            }

            // No raw updates or parameters: no numeric array longer than the rounds, no long opaque string but the ledger root.
            AssertNoBulk(JsonDocument.Parse(text).RootElement);
        }

        // The same check on a tampered copy of the ledger (one receipt's bytes changed) names the altered entry.
        var copy = Path.Combine(cluster.Root, "tampered-ledger.db");
        using (var source = new SqliteConnection($"Data Source={Path.Combine(coordinatorDir, "ledger.db")};Mode=ReadOnly;Pooling=False"))
        {
            source.Open();
            using var vacuum = source.CreateCommand();
            vacuum.CommandText = "VACUUM INTO $path";
            vacuum.Parameters.AddWithValue("$path", copy);
            vacuum.ExecuteNonQuery();
        }

        using (var tamper = new SqliteConnection($"Data Source={copy};Pooling=False"))
        {
            tamper.Open();
            using var read = tamper.CreateCommand();
            read.CommandText = "SELECT payload FROM entries WHERE seq = 2";
            var payload = (byte[])read.ExecuteScalar()!;
            payload[payload.Length / 2] ^= 0x01;
            using var write = tamper.CreateCommand();
            write.CommandText = "DROP TRIGGER entries_no_update; UPDATE entries SET payload = $p WHERE seq = 2;";
            write.Parameters.AddWithValue("$p", payload);
            Assert.AreEqual(1, write.ExecuteNonQuery());
        }

        var options = Options.Create(new NearMLDashboardOptions { LedgerPath = copy });
        using var verifier = new LedgerVerifier(cluster.Status, Options.Create(new NearMLCoordinatorOptions()), options);
        var tampered = await verifier.VerifyAsync(TestContext.CancellationToken);
        TestContext.WriteLine($"tampered copy: {tampered.Problem} at {tampered.FirstBadSequence}: {tampered.Message}");
        Assert.IsFalse(tampered.Valid);
        Assert.AreEqual(2L, tampered.FirstBadSequence);
    }

    private static void AssertNoBulk(JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Array:
                if (element.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Number))
                {
                    Assert.IsLessThanOrEqualTo(8, element.GetArrayLength(), "a numeric array was served");
                }

                foreach (var e in element.EnumerateArray())
                {
                    AssertNoBulk(e);
                }

                break;
            case JsonValueKind.Object:
                foreach (var p in element.EnumerateObject())
                {
                    AssertNoBulk(p.Value);
                }

                break;
            case JsonValueKind.String:
                Assert.IsLessThanOrEqualTo(200, element.GetString()!.Length, "a long opaque string was served");
                break;
        }
    }
}
