using System.Diagnostics;
using System.Globalization;
using NearML.Hosting;
using NearML.Hosting.Coordinator;
using NearML.Hosting.Worker;
using Spectre.Console;


namespace NearML.Samples.LocalCluster;

internal enum ProgressOutcome
{
    Completed,
    Cancelled,
    Failed,
}

/// <summary>The live display: per-worker state, round, step, loss and bytes sent; the round and the last test accuracy.</summary>
internal sealed class ProgressView(ClusterSettings settings, CoordinatorStatus coordinator, IReadOnlyList<WorkerStatus> workers)
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    public async Task<ProgressOutcome> RunAsync(CancellationToken cancellationToken)
    {
        if (settings.Plain)
        {
            return await RunPlainAsync(cancellationToken).ConfigureAwait(false);
        }

        var outcome = ProgressOutcome.Failed;
        await AnsiConsole.Live(Render())
            .AutoClear(false)
            .Overflow(VerticalOverflow.Ellipsis)
            .StartAsync(async context =>
            {
                while (true)
                {
                    context.UpdateTarget(Render());
                    if (Finished(cancellationToken) is { } done)
                    {
                        outcome = done;
                        return;
                    }

                    await Task.Delay(250, CancellationToken.None).ConfigureAwait(false);
                }
            }).ConfigureAwait(false);
        return outcome;
    }

    private async Task<ProgressOutcome> RunPlainAsync(CancellationToken cancellationToken)
    {
        var printed = 0;
        while (true)
        {
            var rounds = coordinator.Rounds;
            for (; printed < rounds.Count; printed++)
            {
                var r = rounds[printed];
                var accuracy = r.Accuracy is { } a ? a.ToString("P2", CultureInfo.InvariantCulture) : "–";
                var perWorker = string.Join("  ", workers.Select((w, i) => string.Create(CultureInfo.InvariantCulture, $"{ClusterSettings.WorkerId(i)} loss {w.Loss:0.000} sent {Bytes(w.BytesSent)}")));
                Console.WriteLine(string.Create(
                    CultureInfo.InvariantCulture,
                    $"[{_clock.Elapsed:mm\\:ss}] round {r.Round + 1}/{settings.Rounds} done in {r.Duration.TotalSeconds:0.0} s: accuracy {accuracy}, {r.Accepted}/{r.Cohort} updates accepted, mean loss {(double.IsNaN(r.MeanLoss) ? "n/a (secure)" : r.MeanLoss.ToString("0.0000", CultureInfo.InvariantCulture))}   {perWorker}"));
            }

            if (Finished(cancellationToken) is { } done)
            {
                return done;
            }

            await Task.Delay(250, CancellationToken.None).ConfigureAwait(false);
        }
    }

    private ProgressOutcome? Finished(CancellationToken cancellationToken)
    {
        if (coordinator.Completed)
        {
            return ProgressOutcome.Completed;
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return ProgressOutcome.Cancelled;
        }

        return workers.All(w => w.State == WorkerState.Failed) ? ProgressOutcome.Failed : null;
    }

    private Rows Render()
    {
        var table = new Table().Border(TableBorder.Rounded).Expand();
        table.AddColumn("worker");
        table.AddColumn("state");
        table.AddColumn(new TableColumn("round").RightAligned());
        table.AddColumn(new TableColumn("step").RightAligned());
        table.AddColumn("progress");
        table.AddColumn(new TableColumn("loss").RightAligned());
        table.AddColumn(new TableColumn("sent").RightAligned());
        table.AddColumn(new TableColumn("received").RightAligned());
        table.AddColumn(new TableColumn("receipts").RightAligned());
        for (var i = 0; i < workers.Count; i++)
        {
            var w = workers[i];
            var fraction = settings.InnerSteps == 0 ? 0 : Math.Clamp((double)w.Step / settings.InnerSteps, 0, 1);
            table.AddRow(
                new Markup(ClusterSettings.WorkerId(i)),
                new Markup(StateMarkup(w.State)),
                new Markup((w.Round + 1).ToString(CultureInfo.InvariantCulture)),
                new Markup($"{w.Step}/{settings.InnerSteps}"),
                new Markup(Bar(fraction, 20)),
                new Markup(w.Loss.ToString("0.0000", CultureInfo.InvariantCulture)),
                new Markup(Bytes(w.BytesSent)),
                new Markup(Bytes(w.BytesReceived)),
                new Markup(w.Receipts.ToString(CultureInfo.InvariantCulture)));
        }

        var header = new Markup(string.Create(
            CultureInfo.InvariantCulture,
            $"[bold]round {Math.Min(settings.Rounds, coordinator.Round + 1)}/{settings.Rounds}[/]   test accuracy [bold]{Accuracy()}[/]   workers connected {Connected()}/{settings.Workers}   "
            + $"coordinator sent {Bytes(coordinator.TotalBytesDown)}, received {Bytes(coordinator.TotalBytesUp)}   [grey]{_clock.Elapsed:mm\\:ss}[/]"));
        return new Rows(header, table, new Markup("[grey]Ctrl+C stops cleanly; the same command resumes from the last completed round.[/]"));
    }

    private int Connected() => coordinator.Workers.Count(w => w.State is not ("left" or "dropped"));

    private string Accuracy() =>
        coordinator.LastAccuracy is double a && !double.IsNaN(a) ? a.ToString("P2", CultureInfo.InvariantCulture) : "–";

    private static string StateMarkup(WorkerState state) => state switch
    {
        WorkerState.Training => "[green]training[/]",
        WorkerState.Failed => "[red]failed[/]",
        _ => Markup.Escape(state.ToString().ToLowerInvariant()),
    };

    private static string Bar(double fraction, int width)
    {
        var filled = (int)Math.Round(fraction * width);
        return "[green]" + new string('█', filled) + "[/][grey]" + new string('░', width - filled) + "[/]";
    }

    internal static string Bytes(long bytes) => bytes switch
    {
        < 1024 => $"{bytes} B",
        < 1024 * 1024 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0:0.0} KiB"),
        < 1024L * 1024 * 1024 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1048576.0:0.00} MiB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1073741824.0:0.00} GiB"),
    };
}
