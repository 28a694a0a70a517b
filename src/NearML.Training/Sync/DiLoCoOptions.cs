namespace NearML.Training.Sync;

/// <summary>Settings of <see cref="DiLoCoStrategy"/>, with the published defaults (DiLoCo, arXiv 2311.08105).</summary>
public sealed class DiLoCoOptions
{
    /// <summary>Gets or sets H, the number of inner steps between outer steps.</summary>
    /// <value>The default value is 500.</value>
    public int InnerSteps { get; set; } = 500;

    /// <summary>Gets or sets the outer learning rate.</summary>
    /// <value>The default value is 0.7.</value>
    public double OuterLearningRate { get; set; } = 0.7;

    /// <summary>Gets or sets the outer momentum.</summary>
    /// <value>The default value is 0.9.</value>
    public double OuterMomentum { get; set; } = 0.9;

    /// <summary>Gets or sets a value indicating whether the outer momentum is Nesterov's.</summary>
    /// <value>The default value is <see langword="true"/>.</value>
    public bool Nesterov { get; set; } = true;

    /// <summary>Gets or sets how the pseudo-gradient travels on the wire.</summary>
    /// <value>The default value is <see cref="PseudoGradientEncoding.Fp32"/>.</value>
    public PseudoGradientEncoding Encoding { get; set; } = PseudoGradientEncoding.Fp32;

    /// <summary>Gets or sets the values per scale of the integer encodings.</summary>
    /// <value>The default value is 64.</value>
    public int QuantizationBlockSize { get; set; } = BlockQuantizedCodec.DefaultBlockSize;

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(InnerSteps, 1, nameof(InnerSteps));
        if (!double.IsFinite(OuterLearningRate) || OuterLearningRate <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(OuterLearningRate), OuterLearningRate, "The outer learning rate must be positive and finite.");
        }

        if (!double.IsFinite(OuterMomentum) || OuterMomentum < 0 || OuterMomentum >= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(OuterMomentum), OuterMomentum, "The outer momentum must be in [0, 1).");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(QuantizationBlockSize, 2, nameof(QuantizationBlockSize));
    }
}

/// <summary>How <see cref="StreamingDiLoCoStrategy"/> cuts the parameters into fragments.</summary>
public enum FragmentPartition
{
    /// <summary>Tensors are grouped into layers by name (everything before the last '.'); layer j goes to fragment j mod F
    /// (the paper's strided pattern). Fragment sizes follow the layer sizes.</summary>
    StridedLayers,

    /// <summary>The flat parameter buffer is cut into F contiguous ranges of equal length (±1 element), ignoring tensor
    /// boundaries: the peak bytes per exchange are then total/F even for shallow models with one dominant layer.</summary>
    BalancedElements,
}

/// <summary>Settings of <see cref="StreamingDiLoCoStrategy"/> (Streaming DiLoCo, arXiv 2501.18512).</summary>
public sealed class StreamingDiLoCoOptions
{
    /// <summary>Gets the outer settings (H is each fragment's sync period; encoding applies per fragment).</summary>
    public DiLoCoOptions Outer { get; init; } = new() { InnerSteps = 100 };

    /// <summary>Gets or sets F, the number of fragments.</summary>
    /// <value>The default value is 4.</value>
    public int Fragments { get; set; } = 4;

    /// <summary>Gets or sets how parameters are cut into fragments.</summary>
    /// <value>The default value is <see cref="FragmentPartition.StridedLayers"/>.</value>
    public FragmentPartition Partition { get; set; } = FragmentPartition.StridedLayers;

    /// <summary>Gets or sets τ, the inner steps that run while a fragment's exchange is in flight (0 = blocking).</summary>
    /// <value>The default value is 1.</value>
    public int Overlap { get; set; } = 1;

    /// <summary>Gets or sets α: after an exchange a fragment's local values become α·local + (1−α)·global.</summary>
    /// <value>The default value is 0.5.</value>
    public double Mixing { get; set; } = 0.5;

    internal void Validate()
    {
        ArgumentNullException.ThrowIfNull(Outer, nameof(Outer));
        Outer.Validate();
        ArgumentOutOfRangeException.ThrowIfLessThan(Fragments, 1, nameof(Fragments));
        ArgumentOutOfRangeException.ThrowIfNegative(Overlap, nameof(Overlap));
        if (Overlap >= Outer.InnerSteps)
        {
            throw new ArgumentOutOfRangeException(nameof(Overlap), Overlap, $"The overlap must be shorter than the sync period H = {Outer.InnerSteps}.");
        }

        if (Outer.InnerSteps < Fragments)
        {
            throw new ArgumentOutOfRangeException(nameof(Fragments), Fragments, $"H = {Outer.InnerSteps} must be at least the fragment count to stagger the fragments.");
        }

        if (!double.IsFinite(Mixing) || Mixing < 0 || Mixing > 1)
        {
            throw new ArgumentOutOfRangeException(nameof(Mixing), Mixing, "The mixing factor must be in [0, 1].");
        }
    }
}
