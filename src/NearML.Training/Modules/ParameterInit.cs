using NearML.Training.Modules.Internal;

namespace NearML.Training.Modules;

/// <summary>How a declared parameter is initialised (see <see cref="Module.AddParameter"/>).</summary>
public readonly record struct ParameterInit
{
    private ParameterInit(ParameterInitKind kind, float scale)
    {
        Kind = kind;
        Scale = scale;
    }

    /// <summary>Gets the distribution.</summary>
    public ParameterInitKind Kind { get; }

    /// <summary>Gets the bound (uniform) or standard deviation (normal); 0 for constants.</summary>
    public float Scale { get; }

    /// <summary>Gets all zeros (biases, LayerNorm β).</summary>
    public static ParameterInit Zeros => new(ParameterInitKind.Zeros, 0f);

    /// <summary>Gets all ones (LayerNorm γ).</summary>
    public static ParameterInit Ones => new(ParameterInitKind.Ones, 0f);

    /// <summary>U(−<paramref name="bound"/>, +<paramref name="bound"/>), e.g. PyTorch's 1/√fan_in for linear layers.</summary>
    /// <param name="bound">The bound (positive, finite).</param>
    /// <returns>The initialisation.</returns>
    public static ParameterInit Uniform(float bound)
    {
        if (!(bound > 0f) || !float.IsFinite(bound))
        {
            throw new ArgumentOutOfRangeException(nameof(bound), bound, "The bound must be positive and finite.");
        }

        return new(ParameterInitKind.Uniform, bound);
    }

    /// <summary>N(0, <paramref name="std"/>²), e.g. 0.02 for GPT-style weights.</summary>
    /// <param name="std">The standard deviation (positive, finite).</param>
    /// <returns>The initialisation.</returns>
    public static ParameterInit Normal(float std)
    {
        if (!(std > 0f) || !float.IsFinite(std))
        {
            throw new ArgumentOutOfRangeException(nameof(std), std, "The standard deviation must be positive and finite.");
        }

        return new(ParameterInitKind.Normal, std);
    }

    internal InitKind ToKind() => Kind switch
    {
        ParameterInitKind.Uniform => InitKind.Uniform,
        ParameterInitKind.Normal => InitKind.Normal,
        ParameterInitKind.Ones => InitKind.Ones,
        _ => InitKind.Zeros,
    };
}

/// <summary>The distributions of <see cref="ParameterInit"/>.</summary>
public enum ParameterInitKind
{
    /// <summary>All zeros (the default value).</summary>
    Zeros,

    /// <summary>All ones.</summary>
    Ones,

    /// <summary>Uniform in ±scale.</summary>
    Uniform,

    /// <summary>Normal with standard deviation scale.</summary>
    Normal,
}
