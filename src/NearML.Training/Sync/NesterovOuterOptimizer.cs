using NearML.Core;

namespace NearML.Training.Sync;

/// <summary>
/// The one outer optimizer of DiLoCo (arXiv 2311.08105): SGD with (Nesterov) momentum applied to the global parameters
/// with the mean pseudo-gradient, exactly as torch.optim.SGD computes it with dampening 0 and no weight decay:
/// buf ← μ·buf + g (buf starts at zero, which equals torch's clone on the first step), d ← g + μ·buf (Nesterov) or
/// d ← buf, p ← p − lr·d. <see cref="DiLoCoStrategy"/>, <see cref="StreamingDiLoCoStrategy"/> and the coordinator's DiLoCo
/// round protocols all step through this type, so equal means give equal global parameters, bit for bit.
/// </summary>
public sealed class NesterovOuterOptimizer
{
    /// <summary>Creates the optimizer with a zero momentum buffer.</summary>
    /// <param name="layout">The layout of the global parameters.</param>
    /// <param name="learningRate">The outer learning rate (positive and finite).</param>
    /// <param name="momentum">The outer momentum, in [0, 1).</param>
    /// <param name="nesterov">Whether the momentum is Nesterov's.</param>
    /// <exception cref="ArgumentOutOfRangeException">The learning rate or momentum is out of range.</exception>
    public NesterovOuterOptimizer(ParameterLayout layout, double learningRate, double momentum, bool nesterov = true)
    {
        ArgumentNullException.ThrowIfNull(layout);
        if (!double.IsFinite(learningRate) || learningRate <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "The outer learning rate must be positive and finite.");
        }

        if (!double.IsFinite(momentum) || momentum < 0 || momentum >= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(momentum), momentum, "The outer momentum must be in [0, 1).");
        }

        LearningRate = learningRate;
        Momentum = momentum;
        Nesterov = nesterov;
        MomentumBuffer = new ParameterSet(layout);
    }

    /// <summary>Gets the outer learning rate.</summary>
    public double LearningRate { get; }

    /// <summary>Gets the outer momentum.</summary>
    public double Momentum { get; }

    /// <summary>Gets a value indicating whether the momentum is Nesterov's.</summary>
    public bool Nesterov { get; }

    /// <summary>Gets the momentum buffer (checkpointed with the global parameters; restore it with <see cref="ParameterSet.CopyFrom"/>).</summary>
    public ParameterSet MomentumBuffer { get; }

    /// <summary>Applies one outer step: <paramref name="global"/> moves against <paramref name="meanPseudoGradient"/>.</summary>
    /// <param name="global">The global parameters, updated in place.</param>
    /// <param name="meanPseudoGradient">The reduced pseudo-gradient (mean of θ_global − θ_local).</param>
    /// <exception cref="LayoutMismatchException">A set's layout differs from the optimizer's.</exception>
    public void Step(ParameterSet global, ParameterSet meanPseudoGradient)
    {
        ArgumentNullException.ThrowIfNull(global);
        ArgumentNullException.ThrowIfNull(meanPseudoGradient);
        MomentumBuffer.Layout.EnsureSameAs(global.Layout);
        MomentumBuffer.Layout.EnsureSameAs(meanPseudoGradient.Layout);
        Step(global.Data, meanPseudoGradient.Data, MomentumBuffer.Data, (float)LearningRate, (float)Momentum, Nesterov);
    }

    /// <summary>Applies one outer step to a range of parameters (a Streaming DiLoCo fragment) with its slice of the momentum buffer.</summary>
    /// <param name="parameters">The global parameters of the range, updated in place.</param>
    /// <param name="gradient">The mean pseudo-gradient of the range.</param>
    /// <param name="buffer">The momentum buffer of the range, updated in place.</param>
    /// <param name="learningRate">The outer learning rate.</param>
    /// <param name="momentum">The outer momentum.</param>
    /// <param name="nesterov">Whether the momentum is Nesterov's.</param>
    /// <exception cref="ArgumentException">The spans differ in length.</exception>
    public static void Step(Span<float> parameters, ReadOnlySpan<float> gradient, Span<float> buffer, float learningRate, float momentum, bool nesterov)
    {
        if (gradient.Length != parameters.Length || buffer.Length != parameters.Length)
        {
            throw new ArgumentException($"parameters ({parameters.Length}), gradient ({gradient.Length}) and momentum buffer ({buffer.Length}) differ in length", nameof(gradient));
        }

        for (var i = 0; i < parameters.Length; i++)
        {
            var g = gradient[i];
            float d;
            if (momentum != 0f)
            {
                var b = (momentum * buffer[i]) + g;
                buffer[i] = b;
                d = nesterov ? g + (momentum * b) : b;
            }
            else
            {
                d = g;
            }

            parameters[i] -= learningRate * d;
        }
    }
}
