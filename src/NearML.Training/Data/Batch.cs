namespace NearML.Training.Data;

/// <summary>
/// A reusable mini-batch buffer. Feature batches (images) fill <see cref="Features"/>; token batches (text) fill
/// <see cref="Tokens"/>. <see cref="Targets"/> holds class labels or next-token ids. Sources fill the same instance
/// every step so the training loop does not allocate.
/// </summary>
public sealed class Batch
{
    /// <summary>Creates a batch buffer.</summary>
    /// <param name="capacity">The largest number of samples it holds.</param>
    /// <param name="featuresPerSample">Float features per sample (0 for token batches).</param>
    /// <param name="tokensPerSample">Input tokens per sample (0 for feature batches).</param>
    /// <param name="targetsPerSample">Targets per sample (1 for classification, the context length for language modelling).</param>
    public Batch(int capacity, int featuresPerSample, int tokensPerSample, int targetsPerSample)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        ArgumentOutOfRangeException.ThrowIfNegative(featuresPerSample);
        ArgumentOutOfRangeException.ThrowIfNegative(tokensPerSample);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(targetsPerSample);
        Capacity = capacity;
        FeaturesPerSample = featuresPerSample;
        TokensPerSample = tokensPerSample;
        TargetsPerSample = targetsPerSample;
        Features = new float[capacity * featuresPerSample];
        Tokens = new int[capacity * tokensPerSample];
        Targets = new int[capacity * targetsPerSample];
    }

    /// <summary>Gets the largest number of samples the batch holds.</summary>
    public int Capacity { get; }

    /// <summary>Gets or sets the number of samples currently filled (≤ <see cref="Capacity"/>).</summary>
    public int Count { get; set; }

    /// <summary>Gets the number of float features per sample.</summary>
    public int FeaturesPerSample { get; }

    /// <summary>Gets the number of input tokens per sample.</summary>
    public int TokensPerSample { get; }

    /// <summary>Gets the number of targets per sample.</summary>
    public int TargetsPerSample { get; }

    /// <summary>Gets the feature buffer, row-major [Capacity × FeaturesPerSample]; the first Count rows are valid.</summary>
    public float[] Features { get; }

    /// <summary>Gets the token buffer, row-major [Capacity × TokensPerSample]; the first Count rows are valid.</summary>
    public int[] Tokens { get; }

    /// <summary>Gets the target buffer, row-major [Capacity × TargetsPerSample]; the first Count rows are valid.</summary>
    public int[] Targets { get; }
}

/// <summary>A seeded, resettable stream of mini-batches that fills a caller-owned <see cref="Batch"/>.</summary>
public interface IBatchSource
{
    /// <summary>Gets the number of samples in a full batch.</summary>
    int BatchSize { get; }

    /// <summary>Creates a batch buffer of the right shape for this source.</summary>
    /// <returns>A new buffer, to be reused for every call to <see cref="TryFill"/>.</returns>
    Batch CreateBatch();

    /// <summary>Starts an epoch (reshuffles deterministically from the source's seed and <paramref name="epoch"/>).</summary>
    /// <param name="epoch">The epoch number, from 0.</param>
    void StartEpoch(int epoch);

    /// <summary>Fills <paramref name="batch"/> with the next batch of the current epoch.</summary>
    /// <param name="batch">A buffer from <see cref="CreateBatch"/>.</param>
    /// <returns><see langword="false"/> when the epoch is exhausted (nothing was filled).</returns>
    bool TryFill(Batch batch);
}
