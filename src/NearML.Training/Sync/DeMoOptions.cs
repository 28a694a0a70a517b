using NearML.Core.Collectives;

namespace NearML.Training.Sync;

/// <summary>Settings of <see cref="DeMoStrategy"/>, with the reference implementation's defaults (arXiv 2411.19870).</summary>
public sealed class DeMoOptions
{
    /// <summary>Gets or sets the learning rate (scales both the momentum accumulation and the sign step).</summary>
    /// <value>The default value is 0.0004 (the paper's OLMo configurations).</value>
    public double LearningRate { get; set; } = 4e-4;

    /// <summary>Gets or sets β, the decay of the decoupled momentum.</summary>
    /// <value>The default value is 0.999.</value>
    public double CompressionDecay { get; set; } = 0.999;

    /// <summary>Gets or sets k, the coefficients kept per chunk (clamped to the chunk's coefficient count).</summary>
    /// <value>The default value is 32.</value>
    public int TopK { get; set; } = 32;

    /// <summary>Gets or sets the target chunk size per dimension (the largest divisor of the dimension ≤ this is used).</summary>
    /// <value>The default value is 64.</value>
    public int Chunk { get; set; } = 64;

    /// <summary>Gets or sets the decoupled weight decay (p ← p·(1 − lr·wd) before the sign step).</summary>
    /// <value>The default value is 0.</value>
    public double WeightDecay { get; set; }

    /// <summary>Gets or sets what each receiver accepts from the other workers' messages.</summary>
    /// <value>The default value is a <see cref="ContributionPolicy"/> with its defaults.</value>
    public ContributionPolicy Policy { get; set; } = new();

    internal void Validate()
    {
        if (!double.IsFinite(LearningRate) || LearningRate <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "The learning rate must be positive and finite.");
        }

        if (!double.IsFinite(CompressionDecay) || CompressionDecay < 0 || CompressionDecay >= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(CompressionDecay), CompressionDecay, "The decay must be in [0, 1).");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(TopK, 1, nameof(TopK));
        ArgumentOutOfRangeException.ThrowIfLessThan(Chunk, 1, nameof(Chunk));
        if (!double.IsFinite(WeightDecay) || WeightDecay < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(WeightDecay), WeightDecay, "The weight decay must be non-negative and finite.");
        }

        ArgumentNullException.ThrowIfNull(Policy, nameof(Policy));
    }
}
