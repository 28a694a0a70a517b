using NearML.Samples.TorchSharp;

namespace NearML.TorchSharp.Tests;

/// <summary>
/// The TorchSharp char-GPT sample (samples/NearML.Samples.TorchSharp): its job at a small size over real TLS (a coordinator
/// host and two worker hosts in this process), and its command line's refusals.
/// </summary>
[TestClass]
public sealed class CharGptSampleTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    [Timeout(180_000, CooperativeCancellation = true)]
    public async Task Small_Job_Over_TLS_Lowers_The_Validation_Loss_And_DiLoCo_Sends_Far_Fewer_Bytes_Than_DDP()
    {
        TorchEnv.Require();
        var s = new CharGptSettings
        {
            TextFile = ShippedText(),
            Workers = 2,
            Steps = 45,
            InnerSteps = 15,
            BatchSize = 8,
            Context = 32,
            DModel = 32,
            Layers = 1,
            Heads = 2,
            LearningRate = 3e-3,
            EvaluationWindows = 200,
        };
        Assert.IsEmpty(s.Problems());
        var lines = new List<string>();
        void Log(string line)
        {
            lock (lines)
            {
                lines.Add(line);
            }
        }

        var diloco = await CharGptJob.RunAsync(s, "diloco", Log, TimeSpan.FromSeconds(30), TestContext.CancellationToken);
        var ddp = await CharGptJob.RunAsync(s, "ddp", Log, TimeSpan.FromSeconds(30), TestContext.CancellationToken);
        foreach (var line in lines.Concat(CharGptReport.Lines(diloco, ddp)))
        {
            TestContext.WriteLine(line);
        }

        // the untrained model predicts ~uniformly over the 63 characters: ln 63 ≈ 4.14 nats
        var uniform = Math.Log(63);
        Assert.HasCount(3, diloco.Evaluations, "DiLoCo: one evaluation per round");
        Assert.IsTrue(diloco.Evaluations[0].Loss < uniform - 0.5, $"DiLoCo round 1 learned something: {diloco.Evaluations[0].Loss:F4}");
        Assert.IsTrue(diloco.Evaluations[^1].Loss < diloco.Evaluations[0].Loss, $"DiLoCo's validation loss falls over the rounds: {string.Join(", ", diloco.Evaluations.Select(e => e.Loss.ToString("F4")))}");
        Assert.IsTrue(ddp.ValidationLoss < uniform - 0.8, $"DDP trains: {ddp.ValidationLoss:F4}");
        Assert.IsTrue(diloco.ValidationLoss < ddp.ValidationLoss * 1.15, $"DiLoCo {diloco.ValidationLoss:F4} vs DDP {ddp.ValidationLoss:F4}");

        // DDP sends every step's fp32 gradients (45 × 4 B × parameters per worker); DiLoCo one int8 update per round
        // (3 × ~1.06 B × parameters): ~56× fewer at H = 15, whatever the per-frame overhead adds
        Assert.IsTrue(ddp.WorkerBytesSent > 45L * 4 * diloco.Parameters * s.Workers, $"DDP sent every step's gradients: {ddp.WorkerBytesSent:N0} B");
        Assert.IsTrue(diloco.WorkerBytesSent * 40 < ddp.WorkerBytesSent, $"DiLoCo {diloco.WorkerBytesSent:N0} B vs DDP {ddp.WorkerBytesSent:N0} B");
        Assert.IsTrue(diloco.CoordinatorBytesSent * 5 < ddp.CoordinatorBytesSent, $"coordinator: DiLoCo {diloco.CoordinatorBytesSent:N0} B vs DDP {ddp.CoordinatorBytesSent:N0} B");
    }

    [TestMethod]
    [DataRow("--bogus")]
    [DataRow("--step", "10")]
    [DataRow("--steps", "ten")]
    [DataRow("--steps", "100", "--h", "30")]
    [DataRow("--workers", "0")]
    [DataRow("--d-model", "30", "--heads", "4")]
    [DataRow("--strategy", "allreduce")]
    [DataRow("--compression", "int3")]
    [DataRow("--outer-momentum", "1")]
    [DataRow("--lr", "-1")]
    [DataRow("--text", "/nonexistent/input.txt")]
    [DataRow("stray")]
    public async Task Bad_Input_Exits_2_With_One_Line(params string[] args)
    {
        var (code, stdout, stderr) = await RunProgramAsync(args);
        Assert.AreEqual(2, code, $"stdout: {stdout} stderr: {stderr}");
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.HasCount(1, lines, stderr);
        StringAssert.StartsWith(lines[0], "error: ");
        Assert.AreEqual(string.Empty, stdout.Trim(), "nothing trained");
    }

    [TestMethod]
    public async Task A_Typo_Names_The_Option_Meant()
    {
        var (code, _, stderr) = await RunProgramAsync(["--outer-lrr", "1"]);
        Assert.AreEqual(2, code);
        StringAssert.Contains(stderr, "did you mean '--outer-lr'?");
    }

    /// <summary>Runs the sample's entry point in this process with stdout and stderr captured.</summary>
    private static async Task<(int Code, string Stdout, string Stderr)> RunProgramAsync(string[] args)
    {
        var entry = typeof(CharGptJob).Assembly.EntryPoint ?? throw new AssertFailedException("the sample has no entry point");
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        Console.SetOut(stdout);
        Console.SetError(stderr);
        try
        {
            var result = entry.Invoke(null, [args]);
            var code = result is Task<int> task ? await task : (int)result!;
            return (code, stdout.ToString(), stderr.ToString());
        }
        finally
        {
            Console.SetOut(oldOut);
            Console.SetError(oldErr);
        }
    }

    /// <summary>The tiny Shakespeare subset the repository ships (data/tinyshakespeare-subset/input.txt).</summary>
    private static string ShippedText()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            var f = Path.Combine(d.FullName, "data", "tinyshakespeare-subset", "input.txt");
            if (File.Exists(f))
            {
                return f;
            }
        }

        throw new AssertFailedException("data/tinyshakespeare-subset/input.txt not found above " + AppContext.BaseDirectory);
    }
}
