namespace NearML.Cli.Tests;

/// <summary>
/// Every sample and the CLI, started as real processes with bad input: exit 2 and exactly one line on stderr (with the
/// closest option for a typo), never an abort (134) or a stack trace; runtime refusals exit 1 with one line.
/// </summary>
[TestClass]
public sealed class SampleCommandLineTests
{
    private static void AssertOneLine(CliResult r, int exit, string contains)
    {
        Assert.AreEqual(exit, r.ExitCode, r.ToString());
        Assert.HasCount(1, r.StderrLines, "expected exactly one line on stderr:\n" + r);
        StringAssert.Contains(r.StderrLines[0], contains, r.ToString());
        Assert.DoesNotContain("Unhandled exception", r.Stderr, r.ToString());
        Assert.DoesNotContain("   at ", r.Stderr, r.ToString());
    }

    [TestMethod]
    [DataRow("Coordinator", "--rounds|abc", "'abc' is not a valid value for --rounds")]
    [DataRow("Coordinator", "--port|abc", "'abc' is not a valid value for --port")]
    [DataRow("Coordinator", "--round-timeout|soon", "expected a duration")]
    [DataRow("Coordinator", "--roundz|3", "did you mean '--rounds'")]
    [DataRow("Coordinator", "--min-wrokers|3", "did you mean '--min-workers'")]
    [DataRow("Coordinator", "--NearML:Coordinator:RoundTimout=00:01:00", "did you mean '--NearML:Coordinator:RoundTimeout'")]
    [DataRow("Coordinator", "--data|/tmp/nearml-cli-never|--rounds|0", "invalid configuration")]
    [DataRow("Worker", "--port|abc", "'abc' is not a valid value for --port")]
    [DataRow("Worker", "--threds|2", "did you mean '--threads'")]
    [DataRow("Worker", "--attestation|tdx", "tdx")]
    [DataRow("Worker", "--swarm|many", "'many' is not a valid value for --swarm")]
    [DataRow("Worker", "--port|7420", "WorkerId is required")]
    [DataRow("Worker", "--attestation|simulated|--attestation|tdx", "tdx")]
    [DataRow("Coordinator", "--rounds|abc|--rounds|0", "Rounds 0 must be positive")]
    [DataRow("Coordinator", "--rounds=5|--rounds|abc", "'abc' is not a valid value for --rounds")]
    [DataRow("LocalCluster", "--workers|abc", "'abc' is not a valid value for --workers")]
    [DataRow("LocalCluster", "--wrokers|2", "did you mean '--workers'")]
    [DataRow("LocalCluster", "--workers|0", "--workers must be 1-64")]
    [DataRow("Train", "mlp|--epochs|abc", "'abc' is not a valid value for --epochs")]
    [DataRow("Train", "rnn", "rnn")]
    [DataRow("Simulate", "--strategy|diloko", "diloko")]
    [DataRow("Simulate", "--workrs|3", "did you mean '--workers'")]
    public async Task Bad_sample_input_exits_2_with_one_line(string sample, string args, string expected)
    {
        var r = await CliProcess.SampleAsync(sample, args.Split('|'));
        AssertOneLine(r, 2, expected);
    }

    [TestMethod]
    [DataRow("ledger|verfy|x", "did you mean 'verify'")]
    [DataRow("ledgr|verify|x", "did you mean 'ledger'")]
    [DataRow("ledger|verify|x|--jsn", "did you mean '--json'")]
    [DataRow("ledger|verify", "ledger")]
    [DataRow("settle|x|--epoch|abc|--dry-run", "'abc' is not a valid value for --epoch")]
    [DataRow("settle|x|--dry-run", "--epoch")]
    [DataRow("ledger|export|x|--format|xml", "xml")]
    [DataRow("job|status|/nonexistent/nearml", "no coordinator state")]
    [DataRow("checkpoint|inspect|/nonexistent/nearml.safetensors", "no checkpoint file")]
    [DataRow("attest|verify|/nonexistent/quote.bin", "quote.bin")]
    public async Task Bad_cli_input_exits_2_with_one_line(string args, string expected)
    {
        var r = await CliProcess.NearmlAsync(args.Split('|'));
        AssertOneLine(r, 2, expected);
    }

    [TestMethod]
    public async Task Version_is_the_informational_version()
    {
        foreach (var run in new[] { CliProcess.NearmlAsync("--version"), CliProcess.SampleAsync("Coordinator", "--version"), CliProcess.SampleAsync("Worker", "--version") })
        {
            var r = await run;
            Assert.AreEqual(0, r.ExitCode, r.ToString());
            StringAssert.StartsWith(r.Stdout.Trim(), "0.1.0", r.ToString());
        }
    }

    [TestMethod]
    public async Task Help_exits_0_without_ansi()
    {
        var r = await CliProcess.NearmlAsync("ledger", "verify", "--help");
        Assert.AreEqual(0, r.ExitCode, r.ToString());
        StringAssert.Contains(r.Stdout, "--skip-signatures");
        Assert.AreEqual(-1, Array.IndexOf(r.StdoutBytes, (byte)0x1B));
    }

    [TestMethod]
    public async Task Worker_with_a_corrupt_identity_key_exits_1_with_one_line()
    {
        var data = Path.Combine(Path.GetTempPath(), "nearml-cli-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(data);
        try
        {
            await File.WriteAllTextAsync(Path.Combine(data, "worker.key"), "this is not a key");
            var r = await CliProcess.SampleAsync("Worker", "--id", "w0", "--data", data, "--port", "1", "--attestation", "none");
            AssertOneLine(r, 1, "worker.key");
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    [TestMethod]
    public async Task Worker_without_configfs_tsm_exits_1_with_one_line()
    {
        if (Directory.Exists("/sys/kernel/config/tsm"))
        {
            Assert.Inconclusive("this machine has configfs-tsm (a TDX / SEV-SNP guest): the refusal cannot be provoked here");
        }

        var data = Path.Combine(Path.GetTempPath(), "nearml-cli-tests", Guid.NewGuid().ToString("N"));
        try
        {
            var r = await CliProcess.SampleAsync("Worker", "--id", "w0", "--data", data, "--port", "1", "--attestation", "configfs-tsm");
            AssertOneLine(r, 1, "configfs-tsm");
        }
        finally
        {
            if (Directory.Exists(data))
            {
                Directory.Delete(data, recursive: true);
            }
        }
    }

    /// <summary>The LocalCluster summary (tables, rules, bold text) goes to a pipe as plain text.</summary>
    [TestMethod]
    [TestCategory("Process")]
    [Timeout(240_000, CooperativeCancellation = true)]
    public async Task LocalCluster_output_to_a_pipe_has_no_ansi()
    {
        if (!File.Exists("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz") && !File.Exists("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte"))
        {
            Assert.Inconclusive("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)");
        }

        var state = Path.Combine(Path.GetTempPath(), "nearml-cli-tests", Guid.NewGuid().ToString("N"));
        try
        {
            var r = await CliProcess.RunAsync("NearML.Samples.LocalCluster", "NearML.Samples.LocalCluster", null,
                ["--workers", "1", "--rounds", "1", "--steps", "5", "--state", state], TimeSpan.FromSeconds(200));
            Assert.AreEqual(0, r.ExitCode, r.ToString());
            StringAssert.Contains(r.Stdout, "Summary");
            StringAssert.Contains(r.Stdout, "Test accuracy");
            Assert.AreEqual(-1, Array.IndexOf(r.StdoutBytes, (byte)0x1B), "ANSI escape in piped LocalCluster output:\n" + r.Stdout);
            foreach (var chart in new[] { "loss-accuracy.png", "bytes-vs-ddp.png", "contributions.png" })
            {
                PlotTests.AssertPng(Path.Combine(state, "plots", chart), 900, 500); // the charts next to the summary
            }
        }
        finally
        {
            if (Directory.Exists(state))
            {
                Directory.Delete(state, recursive: true);
            }
        }
    }
}
