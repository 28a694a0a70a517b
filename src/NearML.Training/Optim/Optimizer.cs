using NearML.Core;

namespace NearML.Training.Optim;

/// <summary>
/// Updates a model's parameters in place from their gradients. Parameters and gradients are
/// <see cref="ParameterSet"/>s with the optimizer's layout, so the same optimizer serves the engine's modules,
/// the sync strategies (outer optimizers) and any other trainer.
/// </summary>
public abstract class Optimizer
{
    /// <summary>Initializes the optimizer for parameters with the given layout.</summary>
    /// <param name="layout">The layout of the parameters it will update.</param>
    /// <param name="learningRate">The initial learning rate.</param>
    protected Optimizer(ParameterLayout layout, double learningRate)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentOutOfRangeException.ThrowIfNegative(learningRate);
        Layout = layout;
        LearningRate = learningRate;
    }

    /// <summary>Gets the layout of the parameters this optimizer updates.</summary>
    public ParameterLayout Layout { get; }

    /// <summary>Gets or sets the learning rate used by the next <see cref="Step"/> (schedules set it per step).</summary>
    public double LearningRate { get; set; }

    /// <summary>Gets the number of steps taken so far.</summary>
    public long StepCount { get; protected set; }

    /// <summary>Applies one update: <paramref name="parameters"/> are changed in place from <paramref name="gradients"/>.</summary>
    /// <param name="parameters">The parameters (layout must equal <see cref="Layout"/>).</param>
    /// <param name="gradients">Their gradients (same layout).</param>
    public abstract void Step(ParameterSet parameters, ParameterSet gradients);
}
