// NearML.Samples.TorchSharp: a character-level GPT written in TorchSharp, trained by a real NearML coordinator and real
// workers (hosts in this process, joined over loopback TLS) twice on the same steps — DiLoCo with int8 pseudo-gradients,
// then DDP through the coordinator's relay — printing both validation losses, the bytes each sent and the ratio.
// Runs where LibTorch 2.10 loads (GLIBCXX_3.4.32: Debian 13, Ubuntu 24.04, …; on Debian 12 use .ci/in-trixie).
// Exit codes: 0 done, 1 failed, 2 bad input, 130 cancelled.
using System.CommandLine;
using System.Globalization;
using NearML.Samples;
using NearML.Samples.TorchSharp;
using NearML.TorchSharp;

var defaults = new CharGptSettings { TextFile = Path.Combine(AppContext.BaseDirectory, "data", "tinyshakespeare-subset", "input.txt") };
var full = new Option<bool>("--full") { Description = "The full target run: 2,000 steps per worker, DiLoCo with int4 updates every H = 80 steps (25 rounds), instead of 500 steps of H 125 int8. Explicit options still win." };
var strategy = new Option<string>("--strategy") { Description = "Which runs: both (default), diloco or ddp", HelpName = "NAME" };
strategy.AcceptOnlyFromAmong("both", "diloco", "ddp");
var text = new Option<string>("--text") { Description = "UTF-8 text file (default: the tiny Shakespeare subset next to the program)", HelpName = "FILE" };
var workers = new Option<int?>("--workers") { Description = $"Worker hosts ({defaults.Workers})", HelpName = "N" };
var steps = new Option<int?>("--steps") { Description = $"Inner steps per worker, both runs ({defaults.Steps})", HelpName = "N" };
var h = new Option<int?>("--h") { Description = $"DiLoCo inner steps per round ({defaults.InnerSteps})", HelpName = "H" };
var batch = new Option<int?>("--batch-size") { Description = $"Windows per worker batch ({defaults.BatchSize})", HelpName = "N" };
var context = new Option<int?>("--context") { Description = $"Tokens per window ({defaults.Context})", HelpName = "T" };
var width = new Option<int?>("--d-model") { Description = $"Embedding width ({defaults.DModel})", HelpName = "D" };
var layers = new Option<int?>("--layers") { Description = $"Transformer blocks ({defaults.Layers})", HelpName = "N" };
var heads = new Option<int?>("--heads") { Description = $"Attention heads ({defaults.Heads})", HelpName = "N" };
var lr = new Option<double?>("--lr") { Description = $"AdamW learning rate, DiLoCo inner and DDP ({defaults.LearningRate})", HelpName = "LR" };
var wd = new Option<double?>("--weight-decay") { Description = $"AdamW weight decay ({defaults.WeightDecay})", HelpName = "WD" };
var outerLr = new Option<double?>("--outer-lr") { Description = $"DiLoCo outer Nesterov learning rate ({defaults.OuterLearningRate})", HelpName = "LR" };
var outerMomentum = new Option<double?>("--outer-momentum") { Description = $"DiLoCo outer momentum ({defaults.OuterMomentum})", HelpName = "M" };
var encoding = new Option<string>("--encoding", "--compression") { Description = $"DiLoCo update encoding: int8 (default), int4, fp16, fp32 (--compression: deprecated alias)", HelpName = "NAME" };
encoding.AcceptOnlyFromAmong("int8", "int4", "fp16", "fp32");
var seed = new Option<int?>("--seed") { Description = $"Seed ({defaults.Seed})", HelpName = "N" };
var threads = new Option<int?>("--threads") { Description = $"LibTorch threads, process-wide ({defaults.Threads})", HelpName = "N" };

var root = new RootCommand("""
    NearML.Samples.TorchSharp: a character-level GPT in TorchSharp trained by a NearML coordinator and workers over TLS,
    with DiLoCo + int8 updates and with DDP (coordinator relay) on the same steps; prints both validation losses, the bytes
    each sent and the ratio. Exit codes: 0 done, 1 failed, 2 bad input, 130 cancelled.
    """)
{
    full, strategy, text, workers, steps, h, batch, context, width, layers, heads, lr, wd, outerLr, outerMomentum, encoding, seed, threads,
};

root.SetAction(async (parse, ct) =>
{
    SampleCommandLine.WarnDeprecatedAlias(parse, encoding, "--compression");
    var s = parse.GetValue(full) ? CharGptPresets.Full(defaults) : defaults;
    s = s with
    {
        TextFile = parse.GetValue(text) ?? s.TextFile,
        Workers = parse.GetValue(workers) ?? s.Workers,
        Steps = parse.GetValue(steps) ?? s.Steps,
        InnerSteps = parse.GetValue(h) ?? s.InnerSteps,
        BatchSize = parse.GetValue(batch) ?? s.BatchSize,
        Context = parse.GetValue(context) ?? s.Context,
        DModel = parse.GetValue(width) ?? s.DModel,
        Layers = parse.GetValue(layers) ?? s.Layers,
        Heads = parse.GetValue(heads) ?? s.Heads,
        LearningRate = parse.GetValue(lr) ?? s.LearningRate,
        WeightDecay = parse.GetValue(wd) ?? s.WeightDecay,
        OuterLearningRate = parse.GetValue(outerLr) ?? s.OuterLearningRate,
        OuterMomentum = parse.GetValue(outerMomentum) ?? s.OuterMomentum,
        UpdateEncoding = parse.GetValue(encoding) ?? s.UpdateEncoding,
        Seed = parse.GetValue(seed) ?? s.Seed,
        Threads = parse.GetValue(threads) ?? s.Threads,
    };
    if (s.Problems() is { Count: > 0 } problems)
    {
        return SampleCommandLine.Fail(SampleCommandLine.BadInput, string.Join("; ", problems));
    }

    try
    {
        TorchSharpRuntime.EnsureLoaded();
    }
    catch (TorchSharpNativeLoadException ex)
    {
        return SampleCommandLine.Fail(SampleCommandLine.Refused, ex.Message);
    }

    var which = parse.GetValue(strategy) ?? "both";
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"char-GPT (TorchSharp): {s.Layers} layers, width {s.DModel}, {s.Heads} heads, context {s.Context}; {s.Workers} workers × {s.Steps} steps, batch {s.BatchSize}, AdamW lr {s.LearningRate}; DiLoCo H {s.InnerSteps} {s.UpdateEncoding} outer {s.OuterLearningRate} / {s.OuterMomentum}; text {s.TextFile}"));
    void Progress(string line) => Console.WriteLine(line);
    var every = TimeSpan.FromSeconds(15);
    CharGptResult? diloco = null, ddp = null;
    if (which is "both" or "diloco")
    {
        diloco = await CharGptJob.RunAsync(s, "diloco", Progress, every, ct).ConfigureAwait(false);
    }

    if (which is "both" or "ddp")
    {
        ddp = await CharGptJob.RunAsync(s, "ddp", Progress, every, ct).ConfigureAwait(false);
    }

    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"model: {(diloco ?? ddp)!.Parameters:N0} trainable parameters"));
    if (diloco is not null && ddp is not null)
    {
        foreach (var line in CharGptReport.Lines(diloco, ddp))
        {
            Console.WriteLine(line);
        }
    }
    else
    {
        var r = (diloco ?? ddp)!;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{r.Strategy} validation loss {r.ValidationLoss:F4}  workers sent {r.WorkerBytesSent:N0} B  coordinator sent {r.CoordinatorBytesSent:N0} B  ({r.Elapsed.TotalSeconds:F0} s)"));
    }

    return SampleCommandLine.Success;
});

return await SampleCommandLine.RunAsync(root, args).ConfigureAwait(false);

/// <summary>Named recipes.</summary>
internal static class CharGptPresets
{
    /// <summary>The full target run (see README.md for its measured figures).</summary>
    /// <param name="s">The defaults.</param>
    /// <returns>The settings.</returns>
    public static CharGptSettings Full(CharGptSettings s) => s with { Steps = 2000, InnerSteps = 80, UpdateEncoding = "int4" };
}
