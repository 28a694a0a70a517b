namespace NearML.Training.Optim;

/// <summary>
/// A learning rate as a function of the step index. Call <see cref="Apply"/> before each
/// <see cref="Optimizer.Step"/>: it sets <see cref="Optimizer.LearningRate"/> for the step about to be taken
/// (<see cref="Optimizer.StepCount"/>, counted from 0). Equivalent to PyTorch's <c>LambdaLR</c> with
/// <c>lr = base_lr · λ(step)</c> and one <c>scheduler.step()</c> after each <c>optimizer.step()</c>.
/// </summary>
public abstract class LearningRateSchedule
{
    /// <summary>Gets the learning rate for the step with the given index.</summary>
    /// <param name="step">The step index, from 0.</param>
    /// <returns>The learning rate (finite, non-negative).</returns>
    public abstract double GetLearningRate(long step);

    /// <summary>Sets the optimizer's learning rate for its next step.</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <returns>The learning rate that was set.</returns>
    public double Apply(Optimizer optimizer)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        var lr = GetLearningRate(optimizer.StepCount);
        optimizer.LearningRate = lr;
        return lr;
    }
}

/// <summary>A constant learning rate.</summary>
public sealed class ConstantSchedule : LearningRateSchedule
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="learningRate">The learning rate for every step.</param>
    public ConstantSchedule(double learningRate)
    {
        if (!double.IsFinite(learningRate) || learningRate < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "The learning rate must be finite and non-negative.");
        }

        LearningRate = learningRate;
    }

    /// <summary>Gets the learning rate.</summary>
    public double LearningRate { get; }

    /// <inheritdoc/>
    public override double GetLearningRate(long step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        return LearningRate;
    }
}

/// <summary>
/// Linear warm-up followed by cosine decay to a minimum learning rate. For step <c>s</c> (from 0), with
/// <c>W</c> warm-up steps and <c>T</c> total steps:
/// <list type="bullet">
/// <item><c>s &lt; W</c>: <c>lr = base · (s + 1) / W</c> (the first step already learns; step <c>W − 1</c> uses the full rate);</item>
/// <item><c>W ≤ s &lt; T</c>: <c>progress = (s − W) / max(1, T − W)</c>, <c>lr = min + (base − min) · ½(1 + cos(π·progress))</c>;</item>
/// <item><c>s ≥ T</c>: <c>lr = min</c>.</item>
/// </list>
/// </summary>
public sealed class WarmupCosineSchedule : LearningRateSchedule
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="baseLearningRate">The peak learning rate reached after warm-up.</param>
    /// <param name="warmupSteps">The number of warm-up steps (0 for none).</param>
    /// <param name="totalSteps">The step at which the cosine reaches <paramref name="minLearningRate"/> (≥ <paramref name="warmupSteps"/>).</param>
    /// <param name="minLearningRate">The final learning rate (≤ <paramref name="baseLearningRate"/>).</param>
    public WarmupCosineSchedule(double baseLearningRate, long warmupSteps, long totalSteps, double minLearningRate = 0)
    {
        if (!double.IsFinite(baseLearningRate) || baseLearningRate < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(baseLearningRate), baseLearningRate, "The base learning rate must be finite and non-negative.");
        }

        if (!double.IsFinite(minLearningRate) || minLearningRate < 0 || minLearningRate > baseLearningRate)
        {
            throw new ArgumentOutOfRangeException(nameof(minLearningRate), minLearningRate, $"The minimum learning rate must be in [0, {baseLearningRate}].");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(warmupSteps);
        ArgumentOutOfRangeException.ThrowIfLessThan(totalSteps, warmupSteps);
        BaseLearningRate = baseLearningRate;
        MinLearningRate = minLearningRate;
        WarmupSteps = warmupSteps;
        TotalSteps = totalSteps;
    }

    /// <summary>Gets the peak learning rate.</summary>
    public double BaseLearningRate { get; }

    /// <summary>Gets the final learning rate.</summary>
    public double MinLearningRate { get; }

    /// <summary>Gets the number of warm-up steps.</summary>
    public long WarmupSteps { get; }

    /// <summary>Gets the step at which the decay ends.</summary>
    public long TotalSteps { get; }

    /// <inheritdoc/>
    public override double GetLearningRate(long step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        if (step < WarmupSteps)
        {
            return BaseLearningRate * ((double)(step + 1) / WarmupSteps);
        }

        if (step >= TotalSteps)
        {
            return MinLearningRate;
        }

        var progress = (double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps);
        return MinLearningRate + ((BaseLearningRate - MinLearningRate) * 0.5 * (1 + Math.Cos(Math.PI * progress)));
    }
}
