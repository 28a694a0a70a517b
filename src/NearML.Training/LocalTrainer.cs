using NearML.Training.Data;
using NearML.Training.Engines;
using NearML.Training.Modules;
using NearML.Training.Optim;
using NearML.Training.Tensors;

namespace NearML.Training;

/// <summary>Progress of a training run, reported after steps (a value type: reporting allocates nothing).</summary>
/// <param name="Epoch">The epoch (from 0), or -1 for step-based runs.</param>
/// <param name="Step">The trainer's total step count after this step.</param>
/// <param name="StepInEpoch">Steps done in this epoch (or run).</param>
/// <param name="StepsPlanned">Steps planned for this epoch (or run), or -1 if unknown.</param>
/// <param name="Loss">This step's loss.</param>
/// <param name="Samples">Samples processed in this epoch (or run) so far.</param>
/// <param name="SamplesPerSecond">Throughput over this epoch (or run) so far.</param>
public readonly record struct TrainingProgress(int Epoch, long Step, long StepInEpoch, long StepsPlanned, float Loss, long Samples, double SamplesPerSecond);

/// <summary>The outcome of <see cref="LocalTrainer.TrainEpoch"/> or <see cref="LocalTrainer.TrainSteps"/>.</summary>
/// <param name="Epoch">The epoch (from 0), or -1 for step-based runs.</param>
/// <param name="Steps">Steps taken.</param>
/// <param name="Samples">Samples processed.</param>
/// <param name="MeanLoss">The sample-weighted mean training loss.</param>
/// <param name="Elapsed">Wall time of the training steps.</param>
public sealed record TrainingRunResult(int Epoch, long Steps, long Samples, double MeanLoss, TimeSpan Elapsed)
{
    /// <summary>Gets the throughput in samples per second.</summary>
    public double SamplesPerSecond => Elapsed > TimeSpan.Zero ? Samples / Elapsed.TotalSeconds : 0;
}

/// <summary>The outcome of <see cref="LocalTrainer.Evaluate"/>.</summary>
/// <param name="MeanLoss">The mean cross-entropy per target.</param>
/// <param name="Accuracy">The fraction of targets whose arg-max logit is right.</param>
/// <param name="Targets">The number of targets scored.</param>
public sealed record EvaluationResult(double MeanLoss, double Accuracy, long Targets);

/// <summary>Options of a <see cref="LocalTrainer"/>.</summary>
public sealed class LocalTrainerOptions
{
    /// <summary>Gets or sets the clock used for throughput.</summary>
    /// <value>The default value is <see cref="TimeProvider.System"/>.</value>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>Gets or sets a learning-rate schedule applied before every optimizer step (none keeps the optimizer's rate).</summary>
    /// <value>The default value is <see langword="null"/>.</value>
    public LearningRateSchedule? Schedule { get; set; }

    /// <summary>Gets or sets a value indicating whether gradients are checked for NaN/Inf before each optimizer step.</summary>
    /// <value>The default value is <see langword="true"/>.</value>
    public bool CheckGradients { get; set; } = true;

    /// <summary>Gets or sets how often (in steps) progress is reported.</summary>
    /// <value>The default value is 1.</value>
    public int ReportEvery { get; set; } = 1;
}

/// <summary>
/// Runs training steps on one model: zero the gradients, forward, loss, backward, optimizer step. This is what a
/// worker calls for its inner steps. Steady-state steps allocate nothing on the managed heap (the tape pools its
/// buffers; progress is a value type). Not thread-safe.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA1001", Justification = "ManagedTrainableModel holds managed memory only; its Dispose is a no-op.")]
public sealed class LocalTrainer
{
    private readonly LocalTrainerOptions _options;
    private readonly ManagedTrainableModel _engine;

    /// <summary>Creates a trainer.</summary>
    /// <param name="model">The model (its <see cref="Module.Parameters"/> are updated in place).</param>
    /// <param name="optimizer">An optimizer for the model's parameter layout.</param>
    /// <param name="options">Options, or <see langword="null"/> for the defaults.</param>
    public LocalTrainer(Model model, Optimizer optimizer, LocalTrainerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(optimizer);
        model.Parameters.Layout.EnsureSameAs(optimizer.Layout);
        _options = options ?? new LocalTrainerOptions();
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(_options.ReportEvery, nameof(options));
        ArgumentNullException.ThrowIfNull(_options.TimeProvider, nameof(options));
        _engine = new ManagedTrainableModel(model, optimizer, _options.CheckGradients);
    }

    /// <summary>Gets the model.</summary>
    public Model Model => _engine.Model;

    /// <summary>Gets the optimizer.</summary>
    public Optimizer Optimizer => _engine.Optimizer;

    /// <summary>Gets the tape the trainer records on (reused every step).</summary>
    public Tape Tape => _engine.Tape;

    /// <summary>Gets the engine-neutral view of this trainer's model and optimizer (the same step path).</summary>
    public ManagedTrainableModel Engine => _engine;

    /// <summary>Gets the number of training steps taken.</summary>
    public long Step { get; private set; }

    /// <summary>Runs one training step on the first <see cref="Batch.Count"/> samples of <paramref name="batch"/>:
    /// <see cref="ManagedTrainableModel.ComputeGradients"/>, the schedule, then <see cref="ManagedTrainableModel.OptimizerStep"/>.</summary>
    /// <param name="batch">The batch.</param>
    /// <returns>The step's loss (before the update).</returns>
    /// <exception cref="NonFiniteValueException">The input, the loss or a gradient is NaN/Inf; parameters are left unchanged.</exception>
    public float TrainStep(Batch batch)
    {
        var value = _engine.ComputeGradients(batch);
        _options.Schedule?.Apply(_engine.Optimizer);
        _engine.OptimizerStep();
        Step++;
        return value;
    }

    /// <summary>Trains one epoch of <paramref name="source"/>.</summary>
    /// <param name="source">The batches (the epoch is started with <paramref name="epoch"/>).</param>
    /// <param name="epoch">The epoch number (seeds the shuffle).</param>
    /// <param name="progress">Receives progress every <see cref="LocalTrainerOptions.ReportEvery"/> steps.</param>
    /// <param name="cancellationToken">Stops between steps.</param>
    /// <returns>The epoch's summary.</returns>
    public TrainingRunResult TrainEpoch(IBatchSource source, int epoch, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        source.StartEpoch(epoch);
        return Run(source, epoch, long.MaxValue, -1, progress, cancellationToken);
    }

    /// <summary>Trains a fixed number of steps from <paramref name="source"/> (starting a new epoch whenever it runs out).</summary>
    /// <param name="source">The batches (already started; see <see cref="IBatchSource.StartEpoch"/>).</param>
    /// <param name="steps">The number of steps.</param>
    /// <param name="progress">Receives progress.</param>
    /// <param name="cancellationToken">Stops between steps.</param>
    /// <returns>The run's summary.</returns>
    public TrainingRunResult TrainSteps(IBatchSource source, long steps, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentOutOfRangeException.ThrowIfNegative(steps);
        return Run(source, -1, steps, steps, progress, cancellationToken);
    }

    private Batch? _batch;
    private IBatchSource? _batchSource;

    private Batch BatchFor(IBatchSource source)
    {
        if (_batch is null || !ReferenceEquals(_batchSource, source))
        {
            _batch = source.CreateBatch();
            _batchSource = source;
        }

        return _batch;
    }

    private TrainingRunResult Run(IBatchSource source, int epoch, long maxSteps, long planned, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        var batch = BatchFor(source);
        var clock = _options.TimeProvider;
        var start = clock.GetTimestamp();
        long steps = 0, samples = 0;
        double lossSum = 0;
        var restarts = 0;
        var filledSinceRestart = true;
        while (steps < maxSteps)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (!source.TryFill(batch))
            {
                if (epoch >= 0 || !filledSinceRestart)
                {
                    break;
                }

                source.StartEpoch(++restarts);
                filledSinceRestart = false;
                continue;
            }

            filledSinceRestart = true;

            var loss = TrainStep(batch);
            steps++;
            samples += batch.Count;
            lossSum += (double)loss * batch.Count;
            if (progress is not null && (steps % _options.ReportEvery == 0 || steps == maxSteps))
            {
                var secs = clock.GetElapsedTime(start).TotalSeconds;
                progress.Report(new TrainingProgress(epoch, Step, steps, planned, loss, samples, secs > 0 ? samples / secs : 0));
            }
        }

        return new TrainingRunResult(epoch, steps, samples, samples > 0 ? lossSum / samples : double.NaN, clock.GetElapsedTime(start));
    }

    /// <summary>Evaluates mean loss and accuracy over one pass of <paramref name="source"/> (no gradients, no dropout).</summary>
    /// <param name="source">The batches (epoch 0 is started).</param>
    /// <param name="cancellationToken">Stops between batches.</param>
    /// <returns>The evaluation.</returns>
    public EvaluationResult Evaluate(IBatchSource source, CancellationToken cancellationToken = default) => _engine.Evaluate(source, cancellationToken);
}
