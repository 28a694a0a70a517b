using System.Globalization;
using ScottPlot;

namespace NearML.Samples.Plots;

/// <summary>Loss and accuracy after one round (or sync point); either may be missing.</summary>
/// <param name="Round">The round (x axis).</param>
/// <param name="Loss">The mean training loss of the round, or null.</param>
/// <param name="Accuracy">Test accuracy in [0, 1] after the round, or null when not evaluated.</param>
public sealed record RoundPoint(double Round, double? Loss, double? Accuracy);

/// <summary>Cumulative bytes after a round: what the run sent, and what DDP would have sent for the same training.</summary>
/// <param name="Round">The round (x axis).</param>
/// <param name="Sent">Bytes sent so far.</param>
/// <param name="Ddp">Bytes DDP would have sent so far.</param>
public sealed record BytesPoint(double Round, double Sent, double Ddp);

/// <summary>One worker's contribution (receipts, credited samples, …).</summary>
/// <param name="Worker">The worker's id.</param>
/// <param name="Value">Its contribution.</param>
public sealed record WorkerContribution(string Worker, double Value);

/// <summary>The three PNG charts the samples write next to their summary.</summary>
public static class TrainingCharts
{
    /// <summary>Width of every chart, in pixels.</summary>
    public const int Width = 900;

    /// <summary>Height of every chart, in pixels.</summary>
    public const int Height = 500;

    /// <summary>Loss (left axis) and test accuracy (right axis) per round.</summary>
    public const string LossAccuracyFile = "loss-accuracy.png";

    /// <summary>Cumulative bytes sent against DDP (log scale).</summary>
    public const string BytesFile = "bytes-vs-ddp.png";

    /// <summary>Contribution per worker (bars).</summary>
    public const string ContributionsFile = "contributions.png";

    /// <summary>Writes the three charts into <paramref name="directory"/> (created if needed) and returns their paths.</summary>
    /// <param name="directory">The output folder.</param>
    /// <param name="title">A title prefix (the run).</param>
    /// <param name="xLabel">The x axis label (for example "round").</param>
    /// <param name="rounds">Loss and accuracy per round.</param>
    /// <param name="bytes">Cumulative bytes per round.</param>
    /// <param name="sentLabel">The legend of the run's bytes (for example "DiLoCo int8").</param>
    /// <param name="contributions">Per-worker contributions.</param>
    /// <param name="contributionLabel">What the contribution counts (for example "receipts").</param>
    /// <returns>The paths written, in the order of the file-name constants.</returns>
    public static IReadOnlyList<string> Write(
        string directory,
        string title,
        string xLabel,
        IReadOnlyList<RoundPoint> rounds,
        IReadOnlyList<BytesPoint> bytes,
        string sentLabel,
        IReadOnlyList<WorkerContribution> contributions,
        string contributionLabel)
    {
        ArgumentNullException.ThrowIfNull(rounds);
        ArgumentNullException.ThrowIfNull(bytes);
        ArgumentNullException.ThrowIfNull(contributions);
        Directory.CreateDirectory(directory);
        var paths = new[] { Path.Combine(directory, LossAccuracyFile), Path.Combine(directory, BytesFile), Path.Combine(directory, ContributionsFile) };
        LossAccuracy(title, xLabel, rounds).SavePng(paths[0], Width, Height);
        Bytes(title, xLabel, bytes, sentLabel).SavePng(paths[1], Width, Height);
        Contributions(title, contributions, contributionLabel).SavePng(paths[2], Width, Height);
        return paths;
    }

    private static Plot LossAccuracy(string title, string xLabel, IReadOnlyList<RoundPoint> rounds)
    {
        var plot = new Plot();
        plot.Title($"{title}: loss and test accuracy");
        plot.XLabel(xLabel);
        var loss = rounds.Where(r => r.Loss is { } l && double.IsFinite(l)).ToArray();
        if (loss.Length > 0)
        {
            var s = plot.Add.Scatter(loss.Select(r => r.Round).ToArray(), loss.Select(r => r.Loss!.Value).ToArray());
            s.LegendText = "training loss (left)";
            s.LineWidth = 2;
            s.MarkerSize = 6;
        }

        plot.Axes.Left.Label.Text = "loss";
        var accuracy = rounds.Where(r => r.Accuracy is { } a && double.IsFinite(a)).ToArray();
        if (accuracy.Length > 0)
        {
            var s = plot.Add.Scatter(accuracy.Select(r => r.Round).ToArray(), accuracy.Select(r => 100 * r.Accuracy!.Value).ToArray());
            s.Axes.YAxis = plot.Axes.Right;
            s.LegendText = "test accuracy % (right)";
            s.LineWidth = 2;
            s.MarkerSize = 6;
            s.LinePattern = LinePattern.Dashed;
        }

        plot.Axes.Right.Label.Text = "test accuracy (%)";
        IntegerX(plot);
        plot.ShowLegend(Alignment.MiddleRight);
        return plot;
    }

    private static Plot Bytes(string title, string xLabel, IReadOnlyList<BytesPoint> bytes, string sentLabel)
    {
        var plot = new Plot();
        plot.Title($"{title}: bytes sent vs DDP (cumulative, log scale)");
        plot.XLabel(xLabel);
        plot.YLabel("bytes sent");
        var points = bytes.Where(b => b.Sent > 0 && b.Ddp > 0).ToArray();
        if (points.Length > 0)
        {
            var x = points.Select(b => b.Round).ToArray();
            var sent = plot.Add.Scatter(x, points.Select(b => Math.Log10(b.Sent)).ToArray());
            sent.LegendText = sentLabel;
            sent.LineWidth = 2;
            var ddp = plot.Add.Scatter(x, points.Select(b => Math.Log10(b.Ddp)).ToArray());
            ddp.LegendText = "DDP (fp32 gradient every step)";
            ddp.LineWidth = 2;
            ddp.LinePattern = LinePattern.Dashed;
            var last = points[^1];
            var factor = last.Ddp / last.Sent;
            plot.Add.Annotation(string.Create(CultureInfo.InvariantCulture, $"{FormatBytes(last.Sent)} vs {FormatBytes(last.Ddp)}: {factor:0.#}× fewer bytes"), Alignment.LowerRight);
        }

        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
        {
            IntegerTicksOnly = true,
            MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
            LabelFormatter = y => FormatBytes(Math.Pow(10, y)),
        };
        IntegerX(plot);
        plot.ShowLegend(Alignment.UpperLeft);
        return plot;
    }

    private static Plot Contributions(string title, IReadOnlyList<WorkerContribution> contributions, string contributionLabel)
    {
        var plot = new Plot();
        plot.Title($"{title}: {contributionLabel} per worker");
        plot.YLabel(contributionLabel);
        var bars = contributions.Select((c, i) => new Bar { Position = i, Value = c.Value, Label = c.Value.ToString("N0", CultureInfo.InvariantCulture) }).ToArray();
        var series = plot.Add.Bars(bars);
        series.ValueLabelStyle.FontSize = 14;
        plot.Axes.Bottom.SetTicks([.. contributions.Select((_, i) => (double)i)], [.. contributions.Select(c => c.Worker)]);
        plot.Axes.Margins(bottom: 0);
        return plot;
    }

    /// <summary>Formats a byte count with decimal units (B, kB, MB, GB, TB), so the log axis reads 1 MB, 10 MB, 100 MB.</summary>
    /// <param name="bytes">The count.</param>
    /// <returns>For example <c>1.5 MB</c>.</returns>
    public static string FormatBytes(double bytes)
    {
        string[] units = ["B", "kB", "MB", "GB", "TB"];
        var u = 0;
        while (bytes >= 999.5 && u < units.Length - 1)
        {
            bytes /= 1000;
            u++;
        }

        return bytes.ToString(bytes >= 99.5 || u == 0 ? "0" : "0.#", CultureInfo.InvariantCulture) + " " + units[u];
    }

    private static void IntegerX(Plot plot) =>
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
}
