using NearML.Samples.Plots;

/// <summary>
/// Curves of one simulation for the PNG charts: every H local steps, worker 0's mean training loss over those steps, the
/// bytes it has sent, and the test accuracy of its global parameters on the first <see cref="EvaluationImages"/> test
/// images; at the end, the samples each worker trained on.
/// </summary>
internal sealed class SimTrace
{
    /// <summary>Test images evaluated at each point of the accuracy curve (the final quality uses all 10,000).</summary>
    public const int EvaluationImages = 2000;

    private readonly List<RoundPoint> _rounds = [];
    private readonly List<(double Step, long Sent)> _bytes = [];
    private long[] _workerSamples = [];
    private double _lossSum;
    private int _lossCount;
    private int _mark;

    public void Start(int workers, long[] workerSamples) => _workerSamples = workerSamples;

    /// <summary>Called by worker 0 after each of its local steps.</summary>
    public void Step(int step, int h, float loss, long sent, Func<double?> accuracy)
    {
        if (float.IsFinite(loss))
        {
            _lossSum += loss;
            _lossCount++;
        }

        if (step / Math.Max(1, h) <= _mark)
        {
            return;
        }

        _mark = step / Math.Max(1, h);
        _rounds.Add(new RoundPoint(step, _lossCount > 0 ? _lossSum / _lossCount : null, accuracy()));
        _bytes.Add((step, sent));
        _lossSum = 0;
        _lossCount = 0;
    }

    /// <summary>Called by worker 0 after its last step (and the strategy's flush): the last, partial interval.</summary>
    public void Finish(int step, long sent, Func<double?> accuracy)
    {
        if (_lossCount > 0 && (_rounds.Count == 0 || _rounds[^1].Round < step))
        {
            _rounds.Add(new RoundPoint(step, _lossSum / _lossCount, accuracy()));
            _bytes.Add((step, sent));
        }
    }

    public IReadOnlyList<string> WriteCharts(string directory, SimConfig cfg, SimResult result)
    {
        // DDP sends one fp32 gradient per local step (4 B × parameters), the same convention as docs/low-communication.md.
        var ddpPerStep = 4.0 * result.Parameters;
        var bytes = _bytes.Select(b => new BytesPoint(b.Step, b.Sent, b.Step * ddpPerStep)).ToList();
        var contributions = _workerSamples.Select((s, i) => new WorkerContribution("w" + i.ToString("D2", System.Globalization.CultureInfo.InvariantCulture), s)).ToList();
        var title = $"simulate {cfg.Model}, {cfg.Workers} workers, {cfg.Scenario}";
        return TrainingCharts.Write(directory, title, "local step (worker 0)", _rounds, bytes, $"{result.Label} (worker 0)", contributions, "samples trained");
    }
}
