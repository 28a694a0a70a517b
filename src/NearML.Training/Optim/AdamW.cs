using NearML.Core;
using NearML.Training.Optim.Internal;

namespace NearML.Training.Optim;

/// <summary>Hyper-parameters of <see cref="AdamW"/>, with PyTorch's <c>torch.optim.AdamW</c> defaults.</summary>
public sealed class AdamWOptions
{
    /// <summary>Gets or sets the learning rate.</summary>
    /// <value>The default value is 0.001.</value>
    public double LearningRate { get; set; } = 1e-3;

    /// <summary>Gets or sets β₁, the decay of the first-moment average.</summary>
    /// <value>The default value is 0.9.</value>
    public double Beta1 { get; set; } = 0.9;

    /// <summary>Gets or sets β₂, the decay of the second-moment average.</summary>
    /// <value>The default value is 0.999.</value>
    public double Beta2 { get; set; } = 0.999;

    /// <summary>Gets or sets ε, added to the bias-corrected root of the second moment.</summary>
    /// <value>The default value is 1e-8.</value>
    public double Epsilon { get; set; } = 1e-8;

    /// <summary>Gets or sets the decoupled weight decay (<c>p ← p·(1 − lr·wd)</c> before the Adam update).</summary>
    /// <value>The default value is 0.01.</value>
    public double WeightDecay { get; set; } = 0.01;

    /// <summary>Gets or sets which tensors get weight decay (like a PyTorch parameter group with <c>weight_decay=0</c> for the rest).</summary>
    /// <value>The default value is <see langword="null"/>: every tensor (PyTorch's single parameter group).</value>
    public Func<TensorEntry, bool>? WeightDecayFilter { get; set; }
}

/// <summary>Hyper-parameters of <see cref="Adam"/>, with PyTorch's <c>torch.optim.Adam</c> defaults.</summary>
public sealed class AdamOptions
{
    /// <summary>Gets or sets the learning rate.</summary>
    /// <value>The default value is 0.001.</value>
    public double LearningRate { get; set; } = 1e-3;

    /// <summary>Gets or sets β₁.</summary>
    /// <value>The default value is 0.9.</value>
    public double Beta1 { get; set; } = 0.9;

    /// <summary>Gets or sets β₂.</summary>
    /// <value>The default value is 0.999.</value>
    public double Beta2 { get; set; } = 0.999;

    /// <summary>Gets or sets ε.</summary>
    /// <value>The default value is 1e-8.</value>
    public double Epsilon { get; set; } = 1e-8;

    /// <summary>Gets or sets the L2 weight decay added to the gradient (coupled, as in PyTorch's Adam).</summary>
    /// <value>The default value is 0.</value>
    public double WeightDecay { get; set; }

    /// <summary>Gets or sets which tensors get weight decay (like a PyTorch parameter group with <c>weight_decay=0</c> for the rest).</summary>
    /// <value>The default value is <see langword="null"/>: every tensor (PyTorch's single parameter group).</value>
    public Func<TensorEntry, bool>? WeightDecayFilter { get; set; }
}

/// <summary>
/// The Adam family's shared state and step: first and second moment estimates with bias correction, computed by
/// one internal kernel. <see cref="AdamW"/> decouples weight decay; <see cref="Adam"/> couples it.
/// </summary>
public abstract class AdamFamilyOptimizer : Optimizer
{
    private readonly AdamCore _core;

    private protected AdamFamilyOptimizer(ParameterLayout layout, double learningRate, double beta1, double beta2, double epsilon, double weightDecay, bool decoupled, Func<TensorEntry, bool>? weightDecayFilter)
        : base(layout, learningRate)
    {
        _core = new AdamCore(layout, beta1, beta2, epsilon, weightDecay, decoupled, weightDecayFilter);
    }

    /// <summary>Gets β₁.</summary>
    public double Beta1 => _core.Beta1;

    /// <summary>Gets β₂.</summary>
    public double Beta2 => _core.Beta2;

    /// <summary>Gets ε.</summary>
    public double Epsilon => _core.Epsilon;

    /// <summary>Gets the weight decay (decoupled for AdamW, coupled for Adam).</summary>
    public double WeightDecay => _core.WeightDecay;

    /// <summary>Gets the first-moment estimate (aliases internal state).</summary>
    public ParameterSet ExpAvg => _core.ExpAvg;

    /// <summary>Gets the second-moment estimate (aliases internal state).</summary>
    public ParameterSet ExpAvgSq => _core.ExpAvgSq;

    /// <inheritdoc/>
    public override void Step(ParameterSet parameters, ParameterSet gradients)
    {
        ValidateStep(parameters, gradients);
        _core.Step(parameters, gradients, LearningRate, StepCount + 1);
        StepCount++;
    }

    /// <inheritdoc/>
    public override OptimizerState ExportState() => CreateState(_core.ExportBuffers());

    /// <inheritdoc/>
    protected override IReadOnlyDictionary<string, double> GetHyperparameters() => _core.Hyperparameters();

    /// <inheritdoc/>
    public override void ImportState(OptimizerState state)
    {
        CheckKind(state);
        _core.Import(RequireBuffer(state, AdamCore.ExpAvgName), RequireBuffer(state, AdamCore.ExpAvgSqName));
        StepCount = state.StepCount;
        LearningRate = state.LearningRate;
    }
}

/// <summary>
/// AdamW (Loshchilov &amp; Hutter) with PyTorch 1.13's exact non-fused, single-tensor semantics:
/// <c>p ← p·(1 − lr·wd)</c>; <c>m ← β₁m + (1−β₁)g</c>; <c>v ← β₂v + (1−β₂)g²</c>;
/// <c>denom = √v / √(1−β₂ᵗ) + ε</c>; <c>p ← p + (−(lr / (1−β₁ᵗ))·m) / denom</c>. Scalars are computed in double and
/// rounded to float32 where PyTorch does, and each element-wise operation rounds where ATen's vectorised CPU kernels
/// round (<c>add_(x, alpha)</c> and <c>addcmul_</c> end in one fused multiply-add; <c>addcdiv_</c> scales the numerator
/// before dividing), so the results match PyTorch on AVX2/AVX-512 CPUs bit for bit. A step allocates nothing.
/// </summary>
public sealed class AdamW : AdamFamilyOptimizer
{
    /// <summary>Initializes AdamW for parameters with the given layout.</summary>
    /// <param name="layout">The parameter layout.</param>
    /// <param name="options">The hyper-parameters (copied); <see langword="null"/> for the defaults.</param>
    public AdamW(ParameterLayout layout, AdamWOptions? options = null)
        : base(layout, (options ??= new AdamWOptions()).LearningRate, options.Beta1, options.Beta2, options.Epsilon, options.WeightDecay, decoupled: true, options.WeightDecayFilter)
    {
    }

    /// <inheritdoc/>
    public override string Kind => "adamw";
}

/// <summary>
/// Adam with PyTorch 1.13's single-tensor semantics; weight decay is coupled (<c>g ← g + wd·p</c>). Prefer
/// <see cref="AdamW"/> for training with weight decay.
/// </summary>
public sealed class Adam : AdamFamilyOptimizer
{
    /// <summary>Initializes Adam for parameters with the given layout.</summary>
    /// <param name="layout">The parameter layout.</param>
    /// <param name="options">The hyper-parameters (copied); <see langword="null"/> for the defaults.</param>
    public Adam(ParameterLayout layout, AdamOptions? options = null)
        : base(layout, (options ??= new AdamOptions()).LearningRate, options.Beta1, options.Beta2, options.Epsilon, options.WeightDecay, decoupled: false, options.WeightDecayFilter)
    {
    }

    /// <inheritdoc/>
    public override string Kind => "adam";
}
