using NearML.Hosting.Coordinator;
using NearML.Hosting.Jobs;
using NearML.Hosting.Worker;
using NearML.Samples.Plots;
using Spectre.Console;

namespace NearML.Samples.LocalCluster;

/// <summary>The run's PNG charts, written to <c>&lt;state&gt;/plots/</c> after the summary.</summary>
internal static class Charts
{
    public static IReadOnlyList<string> Write(ClusterSettings settings, CoordinatorStatus coordinator, IReadOnlyList<WorkerStatus> workers)
    {
        var parameterCount = ModelCatalog.Create(settings.Model, ModelCatalog.DefaultConfigJson(settings.Model), 1).Parameters.Length;
        var rounds = coordinator.Rounds;
        // Rounds numbered from 1, as the progress lines print them.
        var points = rounds.Select(r => new RoundPoint(r.Round + 1, double.IsFinite(r.MeanLoss) ? r.MeanLoss : null, r.Accuracy)).ToList();

        // Update payloads the coordinator averaged in, against DDP's fp32 gradient per inner step for the same accepted work.
        double sent = 0, ddp = 0;
        var bytes = new List<BytesPoint>(rounds.Count);
        foreach (var r in rounds)
        {
            sent += r.UpdateBytes;
            ddp += (double)r.Accepted * settings.InnerSteps * 4 * parameterCount;
            bytes.Add(new BytesPoint(r.Round + 1, sent, ddp));
        }

        var contributions = workers.Select((w, i) => new WorkerContribution(ClusterSettings.WorkerId(i), w.Receipts)).ToList();
        var directory = Path.Combine(settings.StateDirectory, "plots");
        var title = $"local cluster, {settings.Workers} workers, {settings.Model}";
        var written = TrainingCharts.Write(directory, title, "round", points, bytes, $"DiLoCo H={settings.InnerSteps} {settings.UpdateEncoding} updates", contributions, "receipts");
        AnsiConsole.MarkupLine($"Charts: [grey]{Markup.Escape(string.Join(", ", written))}[/]");
        return written;
    }
}
