using System.Globalization;
using System.Text.Json;
using NearML.Ledger;

namespace NearML.Cli.Tests;

/// <summary><c>nearml ledger|settle|job|checkpoint</c> on state made by the libraries, run as a real process.</summary>
[TestClass]
public sealed class LedgerCliTests
{
    public TestContext TestContext { get; set; } = null!;

    private static void AssertNoEscape(CliResult r) =>
        Assert.AreEqual(-1, Array.IndexOf(r.StdoutBytes, (byte)0x1B), "an ANSI escape sequence was written into redirected output:\n" + r);

    private static void AssertOneErrorLine(CliResult r, string contains)
    {
        Assert.HasCount(1, r.StderrLines, r.ToString());
        StringAssert.Contains(r.StderrLines[0], contains, r.ToString());
        Assert.DoesNotContain("   at ", r.Stderr, "stack trace on stderr:\n" + r);
    }

    [TestMethod]
    public async Task Verify_intact_ledger_exits_0_and_plain_text()
    {
        using var folder = await StateFolder.CreateAsync();
        var r = await CliProcess.NearmlAsync("ledger", "verify", folder.LedgerPath);
        Assert.AreEqual(0, r.ExitCode, r.ToString());
        StringAssert.Contains(r.Stdout, "VERIFIED");
        StringAssert.Contains(r.Stdout, $"{2 * StateFolder.PerEpoch} entries in 2 epoch(s)");
        Assert.AreEqual(string.Empty, r.Stderr);
        AssertNoEscape(r);

        // the data folder works as well as the file
        Assert.AreEqual(0, (await CliProcess.NearmlAsync("ledger", "verify", folder.Root)).ExitCode);
    }

    [TestMethod]
    public async Task Verify_json_parses_and_reports_counts()
    {
        using var folder = await StateFolder.CreateAsync();
        var r = await CliProcess.NearmlAsync("ledger", "verify", folder.Root, "--json");
        Assert.AreEqual(0, r.ExitCode, r.ToString());
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.IsTrue(doc.RootElement.GetProperty("valid").GetBoolean());
        Assert.AreEqual(2 * StateFolder.PerEpoch, doc.RootElement.GetProperty("entries").GetInt64());
        Assert.IsTrue(doc.RootElement.GetProperty("signatures").GetProperty("valid").GetBoolean());
    }

    /// <summary>Every entry, altered in place: exit 1, and the reason names that entry.</summary>
    [TestMethod]
    public async Task Verify_names_each_altered_entry()
    {
        using var folder = await StateFolder.CreateAsync();
        for (long seq = 0; seq < 2 * StateFolder.PerEpoch; seq++)
        {
            var original = folder.Payload(seq);
            var bad = (byte[])original.Clone();
            bad[bad.Length / 2] ^= 0x01;
            folder.TamperLedger("UPDATE entries SET payload = $p WHERE seq = $s", c => { c.Parameters.AddWithValue("$p", bad); c.Parameters.AddWithValue("$s", seq); });
            var r = await CliProcess.NearmlAsync("ledger", "verify", folder.LedgerPath);
            Assert.AreEqual(1, r.ExitCode, r.ToString());
            AssertOneErrorLine(r, $"entry {seq} was altered");
            StringAssert.Contains(r.Stdout, "NOT VERIFIED");
            folder.TamperLedger("UPDATE entries SET payload = $p WHERE seq = $s", c => { c.Parameters.AddWithValue("$p", original); c.Parameters.AddWithValue("$s", seq); });
        }

        Assert.AreEqual(0, (await CliProcess.NearmlAsync("ledger", "verify", folder.LedgerPath)).ExitCode, "restored ledger should verify again");
    }

    [TestMethod]
    public async Task Verify_reports_a_deleted_entry_and_a_rehashed_forgery()
    {
        using var folder = await StateFolder.CreateAsync();
        folder.TamperLedger("DELETE FROM entries WHERE seq = 4");
        var removed = await CliProcess.NearmlAsync("ledger", "verify", folder.LedgerPath, "--json");
        Assert.AreEqual(1, removed.ExitCode, removed.ToString());
        using (var doc = JsonDocument.Parse(removed.Stdout))
        {
            Assert.IsFalse(doc.RootElement.GetProperty("valid").GetBoolean());
            Assert.AreEqual("Removed", doc.RootElement.GetProperty("chain").GetProperty("problem").GetString());
            Assert.AreEqual(4, doc.RootElement.GetProperty("chain").GetProperty("first_bad_sequence").GetInt64());
        }

        AssertOneErrorLine(removed, "entry 4 is missing");
    }

    [TestMethod]
    public async Task Verify_reports_a_forged_receipt_whose_chain_was_recomputed()
    {
        using var folder = await StateFolder.CreateAsync();
        // Change a receipt's payload, then recompute the whole chain from there on: the hash chain is consistent again,
        // only the coordinator's signature over the receipt gives the forgery away.
        var entries = new List<(long Seq, long Epoch, byte[] Payload)>();
        using (var ledger = ContributionLedger.OpenSqlite(folder.LedgerPath))
        {
            entries.AddRange(ledger.Store.Read(0).Select(e => (e.Sequence, e.Epoch, e.Payload)));
        }

        var forged = entries[3].Payload.ToArray();
        forged[^20] ^= 0x40;
        entries[3] = (entries[3].Seq, entries[3].Epoch, forged);
        var prev = new byte[LedgerEntry.HashSize];
        foreach (var (seq, epoch, payload) in entries)
        {
            var hash = LedgerEntry.ComputeHash(seq, epoch, prev, payload);
            folder.TamperLedger("UPDATE entries SET payload = $p, prev_hash = $h0, entry_hash = $h WHERE seq = $s", c =>
            {
                c.Parameters.AddWithValue("$p", payload);
                c.Parameters.AddWithValue("$h0", prev);
                c.Parameters.AddWithValue("$h", hash);
                c.Parameters.AddWithValue("$s", seq);
            });
            prev = hash;
        }

        var chainOnly = await CliProcess.NearmlAsync("ledger", "verify", folder.LedgerPath, "--skip-signatures");
        Assert.AreEqual(0, chainOnly.ExitCode, "the recomputed chain is consistent:\n" + chainOnly);
        var full = await CliProcess.NearmlAsync("ledger", "verify", folder.LedgerPath);
        Assert.AreEqual(1, full.ExitCode, full.ToString());
        AssertOneErrorLine(full, "entry 3");
    }

    [TestMethod]
    public async Task Verify_refuses_a_missing_file_or_a_non_database_with_exit_2()
    {
        using var folder = await StateFolder.CreateAsync();
        var missing = await CliProcess.NearmlAsync("ledger", "verify", Path.Combine(folder.Root, "nope.db"));
        Assert.AreEqual(2, missing.ExitCode, missing.ToString());
        AssertOneErrorLine(missing, "no ledger database");
        Assert.IsFalse(File.Exists(Path.Combine(folder.Root, "nope.db")), "verify must not create a ledger");

        var notDb = Path.Combine(folder.Root, "text.db");
        File.WriteAllText(notDb, "not a database at all, just text");
        var r = await CliProcess.NearmlAsync("ledger", "verify", notDb);
        Assert.AreEqual(2, r.ExitCode, r.ToString());
        AssertOneErrorLine(r, "is not a SQLite database");
    }

    [TestMethod]
    public async Task Show_and_export_match_the_library()
    {
        using var folder = await StateFolder.CreateAsync();
        string root1;
        using (var ledger = ContributionLedger.OpenSqlite(folder.LedgerPath))
        {
            root1 = Convert.ToHexStringLower(ledger.ComputeEpochRoot(1));
        }

        var show = await CliProcess.NearmlAsync("ledger", "show", folder.Root, "--json");
        Assert.AreEqual(0, show.ExitCode, show.ToString());
        using (var doc = JsonDocument.Parse(show.Stdout))
        {
            var epochs = doc.RootElement.GetProperty("epochs");
            Assert.AreEqual(2, epochs.GetArrayLength());
            Assert.AreEqual(root1, epochs[1].GetProperty("root").GetString());
            Assert.AreEqual(3, epochs[1].GetProperty("workers").GetInt32());
        }

        var text = await CliProcess.NearmlAsync("ledger", "show", folder.Root, "--epoch", "1");
        Assert.AreEqual(0, text.ExitCode, text.ToString());
        StringAssert.Contains(text.Stdout, root1);
        StringAssert.Contains(text.Stdout, "carol.testnet");
        AssertNoEscape(text);

        var noEpoch = await CliProcess.NearmlAsync("ledger", "show", folder.Root, "--epoch", "9");
        Assert.AreEqual(1, noEpoch.ExitCode, noEpoch.ToString());
        AssertOneErrorLine(noEpoch, "epoch 9 has no entries");

        var jsonl = await CliProcess.NearmlAsync("ledger", "export", folder.Root);
        Assert.AreEqual(0, jsonl.ExitCode, jsonl.ToString());
        var lines = jsonl.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.HasCount(2 * StateFolder.PerEpoch, lines);
        for (var i = 0; i < lines.Length; i++)
        {
            using var row = JsonDocument.Parse(lines[i]);
            Assert.AreEqual(i, row.RootElement.GetProperty("sequence").GetInt64());
            Assert.AreEqual(StateFolder.Workers[i % StateFolder.PerEpoch % 3], row.RootElement.GetProperty("worker").GetString());
        }

        var csvPath = Path.Combine(folder.Root, "export.csv");
        var csv = await CliProcess.NearmlAsync("ledger", "export", folder.Root, "--format", "csv", "--output", csvPath);
        Assert.AreEqual(0, csv.ExitCode, csv.ToString());
        var csvLines = File.ReadAllLines(csvPath);
        Assert.HasCount(2 * StateFolder.PerEpoch + 1, csvLines);
        StringAssert.StartsWith(csvLines[0], "sequence,epoch,hash,");
    }

    [TestMethod]
    public async Task Settle_dry_run_prints_the_plan_and_send_refuses_cleanly()
    {
        using var folder = await StateFolder.CreateAsync();
        var dry = await CliProcess.NearmlAsync("settle", folder.Root, "--epoch", "0", "--dry-run", "--pool", "600", "--json");
        Assert.AreEqual(0, dry.ExitCode, dry.ToString());
        using (var doc = JsonDocument.Parse(dry.Stdout))
        {
            var payouts = doc.RootElement.GetProperty("payouts");
            Assert.AreEqual(3, payouts.GetArrayLength());
            var sum = payouts.EnumerateArray().Sum(p => long.Parse(p.GetProperty("amount").GetString()!, CultureInfo.InvariantCulture));
            Assert.IsLessThanOrEqualTo(600, sum);
            Assert.IsGreaterThan(590, sum);
            // work is proportional to samples: alice 640, bob 1280, carol 1920 per round
            long Amount(string w) => long.Parse(payouts.EnumerateArray().Single(p => p.GetProperty("worker").GetString() == w).GetProperty("amount").GetString()!, CultureInfo.InvariantCulture);
            Assert.IsLessThan(Amount("bob.testnet"), Amount("alice.testnet"));
            Assert.IsLessThan(Amount("carol.testnet"), Amount("bob.testnet"));
            Assert.AreEqual(1, doc.RootElement.GetProperty("coordinator_records").GetArrayLength());
        }

        var text = await CliProcess.NearmlAsync("settle", folder.Root, "--epoch", "0", "--dry-run");
        Assert.AreEqual(0, text.ExitCode, text.ToString());
        StringAssert.Contains(text.Stdout, "DRY RUN");
        AssertNoEscape(text);

        var neither = await CliProcess.NearmlAsync("settle", folder.Root, "--epoch", "0");
        Assert.AreEqual(2, neither.ExitCode, neither.ToString());
        AssertOneErrorLine(neither, "--dry-run");

        var noRpc = await CliProcess.NearmlAsync("settle", folder.Root, "--epoch", "0", "--send");
        Assert.AreEqual(2, noRpc.ExitCode, noRpc.ToString());
        AssertOneErrorLine(noRpc, "--rpc");

        // --send needs the payer's key: the ledger's signing key is never used by default.
        var noKey = await CliProcess.NearmlAsync("settle", folder.Root, "--epoch", "0", "--send", "--rpc", "http://127.0.0.1:1/", "--account", "coordinator.testnet");
        Assert.AreEqual(2, noKey.ExitCode, noKey.ToString());
        AssertOneErrorLine(noKey, "--settlement-key");

        // Nothing listens on port 1: the settlement cannot start; one line, exit 1, nothing half-done is claimed.
        var payerKey = Path.Combine(folder.Root, "payer.key");
        using (var payer = NearKeyPair.Generate())
        {
            File.WriteAllText(payerKey, payer.ExportSecretKey());
        }

        var unreachable = await CliProcess.NearmlAsync("settle", folder.Root, "--epoch", "0", "--send", "--rpc", "http://127.0.0.1:1/", "--account", "coordinator.testnet", "--settlement-key", payerKey);
        Assert.AreEqual(1, unreachable.ExitCode, unreachable.ToString());
        AssertOneErrorLine(unreachable, "epoch 0 is not settled");

        folder.TamperLedger("UPDATE entries SET epoch = 0 WHERE seq = 7");
        var tampered = await CliProcess.NearmlAsync("settle", folder.Root, "--epoch", "1", "--dry-run");
        Assert.AreEqual(1, tampered.ExitCode, tampered.ToString());
        AssertOneErrorLine(tampered, "does not verify");
    }

    [TestMethod]
    public async Task Job_status_reads_the_state_folder()
    {
        using var folder = await StateFolder.CreateAsync();
        var r = await CliProcess.NearmlAsync("job", "status", folder.Root, "--json");
        Assert.AreEqual(0, r.ExitCode, r.ToString());
        using var doc = JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        Assert.AreEqual("cli-job", root.GetProperty("job").GetProperty("id").GetString());
        Assert.AreEqual(4, root.GetProperty("rounds_configured").GetInt64());
        Assert.AreEqual(3, root.GetProperty("rounds_completed").GetInt32());
        Assert.IsFalse(root.GetProperty("complete").GetBoolean());
        Assert.AreEqual(0.71, root.GetProperty("last_accuracy").GetDouble(), 1e-9);
        Assert.AreEqual(2, root.GetProperty("checkpoint").GetProperty("round").GetInt64());
        Assert.AreEqual(2 * StateFolder.PerEpoch, root.GetProperty("ledger").GetProperty("count").GetInt64());

        var text = await CliProcess.NearmlAsync("job", "status", folder.Root);
        Assert.AreEqual(0, text.ExitCode, text.ToString());
        StringAssert.Contains(text.Stdout, "3 completed of 4");
        AssertNoEscape(text);

        var empty = Path.Combine(folder.Root, "empty");
        Directory.CreateDirectory(empty);
        var none = await CliProcess.NearmlAsync("job", "status", empty);
        Assert.AreEqual(2, none.ExitCode, none.ToString());
        AssertOneErrorLine(none, "no coordinator state");
        Assert.IsFalse(File.Exists(Path.Combine(empty, "coordinator.db")), "status must not create state");
    }

    [TestMethod]
    public async Task Checkpoint_inspect_verifies_hashes_and_names_corruption()
    {
        using var folder = await StateFolder.CreateAsync();
        var r = await CliProcess.NearmlAsync("checkpoint", "inspect", folder.Root, "--json");
        Assert.AreEqual(0, r.ExitCode, r.ToString());
        using (var doc = JsonDocument.Parse(r.Stdout))
        {
            Assert.IsTrue(doc.RootElement.GetProperty("valid").GetBoolean());
            Assert.AreEqual(15, doc.RootElement.GetProperty("parameters").GetInt64());
            Assert.AreEqual("2", doc.RootElement.GetProperty("metadata").GetProperty("nearml.round").GetString());
            Assert.IsTrue(doc.RootElement.GetProperty("checks").EnumerateArray().Any(c => c.GetProperty("name").GetString() == "parameters SHA-256"));
        }

        var text = await CliProcess.NearmlAsync("checkpoint", "inspect", folder.CheckpointPath);
        Assert.AreEqual(0, text.ExitCode, text.ToString());
        StringAssert.Contains(text.Stdout, "param.w");
        AssertNoEscape(text);

        // flip one bit in the last parameter value: the file no longer matches its index nor its own metadata
        var bytes = File.ReadAllBytes(folder.CheckpointPath);
        bytes[^1] ^= 0x01;
        File.WriteAllBytes(folder.CheckpointPath, bytes);
        var bad = await CliProcess.NearmlAsync("checkpoint", "inspect", folder.CheckpointPath);
        Assert.AreEqual(1, bad.ExitCode, bad.ToString());
        AssertOneErrorLine(bad, "file SHA-256");

        var garbage = Path.Combine(folder.Root, "garbage.safetensors");
        File.WriteAllBytes(garbage, [1, 2, 3]);
        var g = await CliProcess.NearmlAsync("checkpoint", "inspect", garbage);
        Assert.AreEqual(1, g.ExitCode, g.ToString());
        AssertOneErrorLine(g, "not a readable safetensors checkpoint");
    }
}
