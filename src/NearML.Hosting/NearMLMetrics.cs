using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace NearML.Hosting;

/// <summary>
/// The <c>NearML</c> <see cref="Meter"/> of the hosted services: rounds, bytes, admitted and refused workers, accepted and
/// rejected updates, training steps and throughput, evaluation accuracy. Created through <see cref="IMeterFactory"/>
/// (registered as a singleton by <c>AddNearMLCoordinator</c> / <c>AddNearMLWorker</c>), so hosts export it with
/// OpenTelemetry or read it with <c>dotnet-counters monitor --counters NearML</c>.
/// </summary>
public sealed class NearMLMetrics
{
    /// <summary>The meter name (its version is <see cref="NearMLTracing.Version"/>, the package version).</summary>
    public const string MeterName = "NearML";

    private readonly Counter<long> _rounds;
    private readonly Histogram<double> _roundDuration;
    private readonly Counter<long> _bytesSent;
    private readonly Counter<long> _bytesReceived;
    private readonly Counter<long> _admitted;
    private readonly Counter<long> _refused;
    private readonly Counter<long> _updatesAccepted;
    private readonly Counter<long> _updatesRejected;
    private readonly Counter<long> _steps;
    private readonly Histogram<double> _samplesPerSecond;
    private readonly Gauge<double> _accuracy;
    private readonly Gauge<long> _round;
    private readonly Counter<long> _receipts;
    private readonly Counter<long> _checkpoints;

    /// <summary>Creates the instruments.</summary>
    /// <param name="meterFactory">The host's meter factory.</param>
    public NearMLMetrics(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        Meter = meterFactory.Create(new MeterOptions(MeterName) { Version = NearMLTracing.Version });
        _rounds = Meter.CreateCounter<long>("nearml.rounds", "{round}", "Training rounds completed (tag outcome: stepped | empty).");
        _roundDuration = Meter.CreateHistogram<double>("nearml.round.duration", "s", "Wall time of a round, from assignment to outer step.");
        _bytesSent = Meter.CreateCounter<long>("nearml.bytes.sent", "By", "Bytes sent on protocol connections (tag role).");
        _bytesReceived = Meter.CreateCounter<long>("nearml.bytes.received", "By", "Bytes received on protocol connections (tag role).");
        _admitted = Meter.CreateCounter<long>("nearml.workers.admitted", "{worker}", "Workers admitted by the coordinator.");
        _refused = Meter.CreateCounter<long>("nearml.workers.refused", "{worker}", "Workers refused by the coordinator (tag reason).");
        _updatesAccepted = Meter.CreateCounter<long>("nearml.updates.accepted", "{update}", "Updates averaged into an outer step.");
        _updatesRejected = Meter.CreateCounter<long>("nearml.updates.rejected", "{update}", "Updates left out of an outer step (tag reason).");
        _steps = Meter.CreateCounter<long>("nearml.steps", "{step}", "Inner training steps taken (worker) or reported (coordinator).");
        _samplesPerSecond = Meter.CreateHistogram<double>("nearml.step.throughput", "{sample}/s", "Training throughput reported with progress.");
        _accuracy = Meter.CreateGauge<double>("nearml.evaluation.accuracy", "1", "Test accuracy of the global model at the last evaluation.");
        _round = Meter.CreateGauge<long>("nearml.round", "{round}", "The current round.");
        _receipts = Meter.CreateCounter<long>("nearml.receipts", "{receipt}", "Ledger receipts appended (coordinator) or received (worker).");
        _checkpoints = Meter.CreateCounter<long>("nearml.checkpoints", "{checkpoint}", "Checkpoints written.");
    }

    /// <summary>Gets the meter.</summary>
    public Meter Meter { get; }

    /// <summary>Records a completed round.</summary>
    /// <param name="round">The round number.</param>
    /// <param name="duration">Its wall time.</param>
    /// <param name="stepped">Whether an outer step was applied (false when no update was accepted).</param>
    public void RoundCompleted(long round, TimeSpan duration, bool stepped)
    {
        _rounds.Add(1, new KeyValuePair<string, object?>("outcome", stepped ? "stepped" : "empty"));
        _roundDuration.Record(duration.TotalSeconds);
        _round.Record(round + 1);
    }

    /// <summary>Records the current round.</summary>
    /// <param name="round">The round.</param>
    public void RoundStarted(long round) => _round.Record(round);

    /// <summary>Records traffic.</summary>
    /// <param name="role"><c>coordinator</c> or <c>worker</c>.</param>
    /// <param name="sent">Bytes sent.</param>
    /// <param name="received">Bytes received.</param>
    public void Bytes(string role, long sent, long received)
    {
        var tag = new KeyValuePair<string, object?>("role", role);
        if (sent > 0)
        {
            _bytesSent.Add(sent, tag);
        }

        if (received > 0)
        {
            _bytesReceived.Add(received, tag);
        }
    }

    /// <summary>Records an admitted worker.</summary>
    public void WorkerAdmitted() => _admitted.Add(1);

    /// <summary>Records a refused worker.</summary>
    /// <param name="reason">The refusal reason.</param>
    public void WorkerRefused(string reason) => _refused.Add(1, new KeyValuePair<string, object?>("reason", reason));

    /// <summary>Records an accepted update.</summary>
    public void UpdateAccepted() => _updatesAccepted.Add(1);

    /// <summary>Records a rejected update.</summary>
    /// <param name="reason">Why (for example <c>NonFinite</c>).</param>
    public void UpdateRejected(string reason) => _updatesRejected.Add(1, new KeyValuePair<string, object?>("reason", reason));

    /// <summary>Records training steps and their throughput.</summary>
    /// <param name="steps">Steps taken since the last call.</param>
    /// <param name="samplesPerSecond">The throughput, or a non-positive value when unknown.</param>
    public void Steps(long steps, double samplesPerSecond)
    {
        if (steps > 0)
        {
            _steps.Add(steps);
        }

        if (samplesPerSecond > 0 && double.IsFinite(samplesPerSecond))
        {
            _samplesPerSecond.Record(samplesPerSecond);
        }
    }

    /// <summary>Records an evaluation.</summary>
    /// <param name="accuracy">Accuracy in [0, 1].</param>
    public void Accuracy(double accuracy) => _accuracy.Record(accuracy);

    /// <summary>Records ledger receipts.</summary>
    /// <param name="count">How many.</param>
    public void Receipts(long count) => _receipts.Add(count);

    /// <summary>Records a written checkpoint.</summary>
    public void CheckpointWritten() => _checkpoints.Add(1);

    /// <summary>Measures elapsed time from a <see cref="Stopwatch"/> timestamp.</summary>
    /// <param name="startTimestamp">A <see cref="Stopwatch.GetTimestamp"/> value.</param>
    /// <returns>The elapsed time.</returns>
    internal static TimeSpan Since(long startTimestamp) => Stopwatch.GetElapsedTime(startTimestamp);
}
