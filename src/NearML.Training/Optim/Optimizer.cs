using NearML.Core;
using NearML.Training.Optim.Internal;

namespace NearML.Training.Optim;

/// <summary>
/// Updates a model's parameters in place from their gradients. Parameters and gradients are
/// <see cref="ParameterSet"/>s with the optimizer's layout, so the same optimizer serves the engine's modules,
/// the sync strategies (outer optimizers) and any other trainer.
/// </summary>
/// <remarks>
/// Every <see cref="Step"/> first checks the layouts (<see cref="LayoutMismatchException"/>) and that every gradient is
/// finite (<see cref="NonFiniteGradientException"/>); when either check fails nothing has been changed. The complete
/// state (step count, learning rate, per-parameter buffers) round-trips through <see cref="ExportState"/> and
/// <see cref="ImportState"/>, so a resumed run continues bit-for-bit like an uninterrupted one.
/// </remarks>
public abstract class Optimizer
{
    /// <summary>Initializes the optimizer for parameters with the given layout.</summary>
    /// <param name="layout">The layout of the parameters it will update.</param>
    /// <param name="learningRate">The initial learning rate.</param>
    protected Optimizer(ParameterLayout layout, double learningRate)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentOutOfRangeException.ThrowIfNegative(learningRate);
        if (!double.IsFinite(learningRate))
        {
            throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "The learning rate must be finite.");
        }

        Layout = layout;
        LearningRate = learningRate;
    }

    /// <summary>Gets the layout of the parameters this optimizer updates.</summary>
    public ParameterLayout Layout { get; }

    /// <summary>Gets or sets the learning rate used by the next <see cref="Step"/> (schedules set it per step).</summary>
    public double LearningRate { get; set; }

    /// <summary>Gets the number of steps taken so far.</summary>
    public long StepCount { get; protected set; }

    /// <summary>Gets the name written into exported state (<see cref="OptimizerState.Kind"/>), e.g. <c>adamw</c>.</summary>
    public abstract string Kind { get; }

    /// <summary>Applies one update: <paramref name="parameters"/> are changed in place from <paramref name="gradients"/>.</summary>
    /// <param name="parameters">The parameters (layout must equal <see cref="Layout"/>).</param>
    /// <param name="gradients">Their gradients (same layout).</param>
    /// <exception cref="LayoutMismatchException">A layout differs from <see cref="Layout"/>.</exception>
    /// <exception cref="NonFiniteGradientException">A gradient element is NaN or infinite (nothing was updated).</exception>
    public abstract void Step(ParameterSet parameters, ParameterSet gradients);

    /// <summary>Copies the optimizer's complete state (step count, learning rate and buffers).</summary>
    /// <returns>A deep copy; later steps do not change it.</returns>
    public abstract OptimizerState ExportState();

    /// <summary>Replaces the optimizer's state with a copy of <paramref name="state"/>.</summary>
    /// <param name="state">State exported by an optimizer of the same <see cref="Kind"/> and layout.</param>
    /// <exception cref="InvalidOptimizerStateException">The kind differs or a buffer is missing.</exception>
    /// <exception cref="LayoutMismatchException">A buffer's layout differs from <see cref="Layout"/>.</exception>
    public abstract void ImportState(OptimizerState state);

    /// <summary>Gets the fixed hyper-parameters recorded in exported state and checked on import.</summary>
    /// <returns>Name → value (booleans as 0/1); empty by default.</returns>
    protected virtual IReadOnlyDictionary<string, double> GetHyperparameters() => new Dictionary<string, double>(StringComparer.Ordinal);

    /// <summary>Builds an <see cref="OptimizerState"/> with this optimizer's kind, step count, learning rate and hyper-parameters.</summary>
    /// <param name="buffers">Copies of the buffers.</param>
    /// <returns>The state.</returns>
    protected OptimizerState CreateState(IReadOnlyDictionary<string, ParameterSet> buffers) =>
        new(Kind, StepCount, LearningRate, buffers, GetHyperparameters());

    /// <summary>Checks layouts and gradient finiteness before an update; throws without changing anything.</summary>
    /// <param name="parameters">The parameters.</param>
    /// <param name="gradients">The gradients.</param>
    protected void ValidateStep(ParameterSet parameters, ParameterSet gradients)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(gradients);
        Layout.EnsureSameAs(parameters.Layout);
        Layout.EnsureSameAs(gradients.Layout);
        if (!double.IsFinite(LearningRate) || LearningRate < 0)
        {
            throw new InvalidOperationException($"The learning rate {LearningRate} is not a finite non-negative number.");
        }

        if (FiniteCheck.FindNonFinite(gradients) is { } bad)
        {
            throw new NonFiniteGradientException(bad.Tensor, bad.Index, gradients.GetSpan(bad.Tensor)[bad.Index]);
        }
    }

    /// <summary>Checks the common part of an imported state and returns its buffer for <paramref name="name"/>.</summary>
    /// <param name="state">The state.</param>
    /// <param name="name">The buffer name.</param>
    /// <returns>The buffer (layout checked).</returns>
    protected ParameterSet RequireBuffer(OptimizerState state, string name)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (!state.Buffers.TryGetValue(name, out var buffer))
        {
            throw new InvalidOptimizerStateException($"Optimizer state of kind '{state.Kind}' has no buffer '{name}'.");
        }

        Layout.EnsureSameAs(buffer.Layout);
        return buffer;
    }

    /// <summary>Checks the kind and step count of an imported state.</summary>
    /// <param name="state">The state.</param>
    protected void CheckKind(OptimizerState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (!string.Equals(state.Kind, Kind, StringComparison.Ordinal))
        {
            throw new InvalidOptimizerStateException($"Cannot import optimizer state of kind '{state.Kind}' into a '{Kind}' optimizer.");
        }

        if (state.StepCount < 0)
        {
            throw new InvalidOptimizerStateException($"Optimizer state has a negative step count ({state.StepCount}).");
        }

        if (!double.IsFinite(state.LearningRate) || state.LearningRate < 0)
        {
            throw new InvalidOptimizerStateException($"Optimizer state has an invalid learning rate ({state.LearningRate}).");
        }

        foreach (var (name, mine) in GetHyperparameters())
        {
            if (state.Hyperparameters.TryGetValue(name, out var theirs) && !theirs.Equals(mine))
            {
                throw new InvalidOptimizerStateException(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"Optimizer state has hyper-parameter '{name}' = {theirs:R} but this {Kind} optimizer uses {mine:R}; the resumed run would not continue the saved one."));
            }
        }
    }
}
