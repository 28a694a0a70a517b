using System.Globalization;
using NearML.Core;
using NearML.Hosting;
using NearML.Hosting.Coordinator;
using NearML.Hosting.Jobs;
using NearML.Hosting.Worker;
using NearML.Training.Data;
using Spectre.Console;

namespace NearML.Samples.LocalCluster;

/// <summary>The end-of-run summary: accuracy, bytes against DDP, ledger root, payouts, settlement transactions.</summary>
internal static class Summary
{
    public static void Print(ClusterSettings settings, FashionMnistLocation dataset, CoordinatorStatus coordinator, IReadOnlyList<WorkerStatus> workers, UInt128 poolPerEpoch, TimeSpan elapsed, TimeSpan cpu)
    {
        var parameterCount = ModelCatalog.Create(settings.Model, ModelCatalog.DefaultConfigJson(settings.Model), 1).Parameters.Length;
        var ddpBytesPerStep = 4L * parameterCount;

        AnsiConsole.Write(new Rule("[bold]Summary[/]").LeftJustified());
        AnsiConsole.MarkupLine(string.Create(
            CultureInfo.InvariantCulture,
            $"Test accuracy ({TestImageCount(dataset.Directory):N0} Fashion-MNIST test images{(dataset.IsSubset ? " of the shipped subset" : string.Empty)}, global model after round {coordinator.Round}): [bold]{coordinator.LastAccuracy:P2}[/]"));
        AnsiConsole.MarkupLine($"Data: {Markup.Escape(dataset.Description)}");
        AnsiConsole.MarkupLine(string.Create(
            CultureInfo.InvariantCulture,
            $"Wall time {elapsed.TotalSeconds:0.0} s, process CPU {cpu.TotalSeconds:0.0} s, load average {LoadAverage()}"));

        var table = new Table().Border(TableBorder.Rounded);
        table.AddColumn("worker");
        table.AddColumn(new TableColumn("receipts").RightAligned());
        table.AddColumn(new TableColumn("steps").RightAligned());
        table.AddColumn(new TableColumn("sent").RightAligned());
        table.AddColumn(new TableColumn("DDP would send").RightAligned());
        table.AddColumn(new TableColumn("× fewer").RightAligned());
        table.AddColumn(new TableColumn("payout").RightAligned());
        var payouts = Payouts.Read(settings.CoordinatorDirectory, poolPerEpoch, out var epochs);
        for (var i = 0; i < workers.Count; i++)
        {
            var w = workers[i];
            var id = ClusterSettings.WorkerId(i);
            var steps = (long)w.Receipts * settings.InnerSteps;
            var ddp = steps * ddpBytesPerStep;
            table.AddRow(
                id,
                w.Receipts.ToString(CultureInfo.InvariantCulture),
                steps.ToString("N0", CultureInfo.InvariantCulture),
                ProgressView.Bytes(w.BytesSent),
                ProgressView.Bytes(ddp),
                w.BytesSent == 0 ? "–" : ((double)ddp / w.BytesSent).ToString("0", CultureInfo.InvariantCulture),
                payouts.TryGetValue(id, out var amount) ? Payouts.FormatNear(amount) : "–");
        }

        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine(string.Create(
            CultureInfo.InvariantCulture,
            $"[grey]sent = every byte the worker wrote to its TLS connection (frames: handshake, parameter requests, progress, heartbeats, {settings.UpdateEncoding} updates).[/]"));
        AnsiConsole.MarkupLine(string.Create(
            CultureInfo.InvariantCulture,
            $"[grey]DDP would send = steps × 4 B × {parameterCount:N0} parameters (one fp32 gradient per step to the aggregator, as in docs/low-communication.md); a ring all-reduce would send 2(N−1)/N of that.[/]"));
        AnsiConsole.MarkupLine(string.Create(
            CultureInfo.InvariantCulture,
            $"[grey]payout = Σ over {epochs} ledger epoch(s) of the epoch pool ({Payouts.FormatNear(poolPerEpoch)}) × the worker's credited samples / all credited samples (NearML.Ledger RewardPolicy).[/]"));
        AnsiConsole.MarkupLine($"Ledger: {coordinator.LedgerEntries} receipts, root [bold]{Markup.Escape(coordinator.LedgerRoot ?? "–")}[/]");
        if (coordinator.Settlements.Count == 0)
        {
            AnsiConsole.MarkupLine("Settlement transactions: none (no settlement epoch completed)");
        }
        else
        {
            AnsiConsole.MarkupLine("Signed settlement transactions (dry run: signed, not sent):");
            foreach (var tx in coordinator.Settlements)
            {
                AnsiConsole.MarkupLine($"  [bold]{Markup.Escape(tx)}[/]");
            }
        }
    }

    private static int TestImageCount(string directory)
    {
        var gz = Path.Combine(directory, "t10k-labels-idx1-ubyte.gz");
        return IdxReader.ReadFile(File.Exists(gz) ? gz : Path.Combine(directory, "t10k-labels-idx1-ubyte")).Dimensions[0];
    }

    private static string LoadAverage()
    {
        try
        {
            return File.ReadAllText("/proc/loadavg").Split(' ')[0];
        }
        catch (IOException)
        {
            return "n/a";
        }
    }
}
