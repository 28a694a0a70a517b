using NearML.Core;

namespace NearML.Training.Optim;

/// <summary>Common choices for the optimizers' <c>WeightDecayFilter</c>.</summary>
public static class WeightDecayFilters
{
    /// <summary>
    /// Decays tensors with two or more dimensions (weight matrices, convolution kernels, embeddings) and not biases or
    /// normalisation gains — the usual GPT recipe (e.g. nanoGPT's two parameter groups).
    /// </summary>
    public static Func<TensorEntry, bool> MatricesOnly { get; } = static e => e.Shape.Length >= 2;
}
