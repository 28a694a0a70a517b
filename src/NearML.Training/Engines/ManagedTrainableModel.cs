using NearML.Core;
using NearML.Training.Data;
using NearML.Training.Modules;
using NearML.Training.Optim;
using NearML.Training.Tensors;

namespace NearML.Training.Engines;

/// <summary>
/// The managed engine as an <see cref="ITrainableModel"/>: a <see cref="Model"/> (its parameters and gradients already
/// live in <see cref="ParameterSet"/>s, so the pull/push methods are no-ops), its cross-entropy loss, and a managed inner
/// optimizer (<see cref="AdamW"/> or <see cref="Sgd"/>). This is the one managed training step: <see cref="LocalTrainer"/>
/// and the hosts run through it. Steady-state steps allocate nothing on the managed heap. Not thread-safe.
/// </summary>
public sealed class ManagedTrainableModel : ITrainableModel
{
    private Tape? _evalTape;

    /// <summary>Creates the contract over a managed model with an inner optimizer built from <paramref name="optimizer"/>.</summary>
    /// <param name="model">The model (its parameters are updated in place).</param>
    /// <param name="optimizer">The inner optimizer settings.</param>
    /// <exception cref="ArgumentException">The optimizer kind is not <c>adamw</c> or <c>sgd</c>.</exception>
    public ManagedTrainableModel(Model model, InnerOptimizerSettings optimizer)
        : this(model, CreateOptimizer(RequireModel(model).Parameters.Layout, optimizer))
    {
    }

    /// <summary>Creates the contract over a managed model and an existing managed optimizer.</summary>
    /// <param name="model">The model (its parameters are updated in place).</param>
    /// <param name="optimizer">An optimizer for the model's layout.</param>
    /// <param name="checkGradients">Whether gradients are scanned for NaN/Inf after every backward pass.</param>
    /// <exception cref="LayoutMismatchException">The optimizer was built for another layout.</exception>
    public ManagedTrainableModel(Model model, Optimizer optimizer, bool checkGradients = true)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(optimizer);
        model.Parameters.Layout.EnsureSameAs(optimizer.Layout);
        Model = model;
        Optimizer = optimizer;
        CheckGradients = checkGradients;
    }

    /// <summary>Gets the managed model.</summary>
    public Model Model { get; }

    /// <summary>Gets the current inner optimizer (replaced by <see cref="ResetOptimizer"/>).</summary>
    public Optimizer Optimizer { get; private set; }

    /// <summary>Gets the tape training steps record on (reused every step).</summary>
    public Tape Tape { get; } = new();

    /// <summary>Gets a value indicating whether gradients are scanned for NaN/Inf after every backward pass.</summary>
    public bool CheckGradients { get; }

    /// <inheritdoc/>
    public string Engine => "managed";

    /// <inheritdoc/>
    public ParameterLayout Layout => Model.Parameters.Layout;

    /// <inheritdoc/>
    public ParameterSet Parameters => Model.Parameters;

    /// <inheritdoc/>
    public ParameterSet Gradients => Model.Gradients;

    /// <summary>Builds the managed optimizer the settings describe.</summary>
    /// <param name="layout">The parameter layout.</param>
    /// <param name="settings">The settings.</param>
    /// <returns>An <see cref="AdamW"/> or <see cref="Sgd"/>.</returns>
    /// <exception cref="ArgumentException">The kind is not <c>adamw</c> or <c>sgd</c>.</exception>
    public static Optimizer CreateOptimizer(ParameterLayout layout, InnerOptimizerSettings settings)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(settings);
        return settings.Kind.ToUpperInvariant() switch
        {
            "ADAMW" => new AdamW(layout, new AdamWOptions
            {
                LearningRate = settings.LearningRate,
                WeightDecay = settings.WeightDecay,
                Beta1 = settings.Beta1,
                Beta2 = settings.Beta2,
                Epsilon = settings.Epsilon,
            }),
            "SGD" => new Sgd(layout, new SgdOptions
            {
                LearningRate = settings.LearningRate,
                WeightDecay = settings.WeightDecay,
                Momentum = settings.Momentum,
            }),
            _ => throw new ArgumentException($"The managed engine has no inner optimizer '{settings.Kind}' (known: adamw, sgd).", nameof(settings)),
        };
    }

    /// <inheritdoc/>
    public void PullParameters()
    {
    }

    /// <inheritdoc/>
    public void PushParameters()
    {
    }

    /// <inheritdoc/>
    public void PullGradients()
    {
    }

    /// <inheritdoc/>
    public void PushGradients()
    {
    }

    /// <inheritdoc/>
    public float ComputeGradients(Batch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var tape = Tape;
        tape.Reset();
        tape.GradEnabled = true;
        tape.Training = true;
        Model.ZeroGrad();
        var loss = Model.Loss(tape, batch);
        var value = loss.Data[0];
        if (!float.IsFinite(value))
        {
            throw new NonFiniteValueException("loss", -1, value);
        }

        tape.Backward(loss);
        if (CheckGradients)
        {
            // vectorised scan first; the per-tensor lookup only runs when something is wrong
            var grads = Model.Gradients;
            if (Tensors.Internal.Simd.IndexOfNonFinite(grads.Data) >= 0 && grads.FindNonFinite() is { } b)
            {
                throw new NonFiniteValueException("gradient of " + b.Tensor, b.Index, grads.GetSpan(b.Tensor)[b.Index]);
            }
        }

        return value;
    }

    /// <inheritdoc/>
    public void OptimizerStep() => Optimizer.Step(Model.Parameters, Model.Gradients);

    /// <inheritdoc/>
    public EvaluationResult Evaluate(IBatchSource source, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        var batch = source.CreateBatch();
        source.StartEpoch(0);

        // Evaluation runs on its own tape: its batch sizes differ from training's, and sharing the training tape would
        // grow the training buffers (and then their gradient buffers) to evaluation sizes for the rest of the run.
        var tape = _evalTape ??= new Tape { GradEnabled = false, Training = false };
        try
        {
            long targets = 0, correct = 0;
            double lossSum = 0;
            while (source.TryFill(batch))
            {
                cancellationToken.ThrowIfCancellationRequested();
                tape.Reset();
                var logits = Model.Forward(tape, batch);
                var rows = logits.Length / logits.Dim(-1);
                var loss = tape.CrossEntropy(logits, batch.Targets, 0);
                lossSum += (double)loss.Data[0] * rows;
                correct += Model.CountCorrect(logits, batch.Targets);
                targets += rows;
            }

            return new EvaluationResult(targets > 0 ? lossSum / targets : double.NaN, targets > 0 ? (double)correct / targets : double.NaN, targets);
        }
        finally
        {
            tape.Reset();
        }
    }

    /// <inheritdoc/>
    public void ResetOptimizer(InnerOptimizerSettings settings) => Optimizer = CreateOptimizer(Layout, settings);

    /// <inheritdoc/>
    public OptimizerState ExportOptimizerState() => Optimizer.ExportState();

    /// <inheritdoc/>
    public void ImportOptimizerState(OptimizerState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        Optimizer.ImportState(state);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        // Managed memory only; nothing to release.
    }

    private static Model RequireModel(Model model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model;
    }
}
