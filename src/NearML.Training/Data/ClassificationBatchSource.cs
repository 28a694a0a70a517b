namespace NearML.Training.Data;

/// <summary>
/// Mini-batches of a <see cref="LabeledDataset"/> (or a subset of its samples) in a seeded per-epoch order. Epoch
/// <c>e</c>'s order depends only on (seed, e), not on earlier epochs. The last partial batch of an epoch is kept
/// (its <see cref="Batch.Count"/> is smaller). <see cref="TryFill"/> copies into the caller's <see cref="Batch"/> and
/// allocates nothing.
/// </summary>
public sealed class ClassificationBatchSource : IBatchSource
{
    private readonly LabeledDataset _data;
    private readonly int[] _indices;
    private readonly int[] _order;
    private readonly ulong _seed;
    private int _cursor;
    private bool _started;

    /// <summary>Initializes a source over all samples of <paramref name="data"/>.</summary>
    /// <param name="data">The samples.</param>
    /// <param name="batchSize">Samples per full batch.</param>
    /// <param name="seed">The shuffle seed.</param>
    /// <param name="shuffle"><see langword="false"/> to keep the dataset's order (evaluation).</param>
    public ClassificationBatchSource(LabeledDataset data, int batchSize, ulong seed, bool shuffle = true)
        : this(data, null, batchSize, seed, shuffle)
    {
    }

    /// <summary>Initializes a source over some samples of <paramref name="data"/> (e.g. one worker's shard).</summary>
    /// <param name="data">The samples.</param>
    /// <param name="indices">The sample indices to draw from (copied); <see langword="null"/> for all.</param>
    /// <param name="batchSize">Samples per full batch.</param>
    /// <param name="seed">The shuffle seed.</param>
    /// <param name="shuffle"><see langword="false"/> to keep the given order (evaluation).</param>
    public ClassificationBatchSource(LabeledDataset data, IReadOnlyList<int>? indices, int batchSize, ulong seed, bool shuffle = true)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        _data = data;
        if (indices is null)
        {
            _indices = new int[data.Count];
            for (var i = 0; i < _indices.Length; i++)
            {
                _indices[i] = i;
            }
        }
        else
        {
            _indices = new int[indices.Count];
            for (var i = 0; i < _indices.Length; i++)
            {
                var ix = indices[i];
                if ((uint)ix >= (uint)data.Count)
                {
                    throw new ArgumentOutOfRangeException(nameof(indices), ix, $"Index #{i} is {ix}, outside [0, {data.Count}).");
                }

                _indices[i] = ix;
            }
        }

        if (_indices.Length == 0)
        {
            throw new ArgumentException("The source has no samples.", nameof(indices));
        }

        _order = new int[_indices.Length];
        BatchSize = batchSize;
        _seed = seed;
        Shuffle = shuffle;
    }

    /// <inheritdoc/>
    public int BatchSize { get; }

    /// <summary>Gets a value indicating whether each epoch is shuffled.</summary>
    public bool Shuffle { get; }

    /// <summary>Gets the number of samples per epoch.</summary>
    public int SampleCount => _indices.Length;

    /// <summary>Gets the number of batches per epoch (the last may be partial).</summary>
    public int BatchesPerEpoch => (_indices.Length + BatchSize - 1) / BatchSize;

    /// <summary>Gets the current epoch's sample order (dataset indices).</summary>
    public ReadOnlySpan<int> CurrentOrder => _order;

    /// <inheritdoc/>
    public Batch CreateBatch() => new(BatchSize, _data.FeaturesPerSample, 0, 1);

    /// <inheritdoc/>
    public void StartEpoch(int epoch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        _indices.CopyTo(_order, 0);
        if (Shuffle)
        {
            new SeededRandom(_seed, (ulong)epoch).Shuffle(_order.AsSpan());
        }

        _cursor = 0;
        _started = true;
    }

    /// <inheritdoc/>
    public bool TryFill(Batch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.FeaturesPerSample != _data.FeaturesPerSample || batch.TargetsPerSample != 1 || batch.Capacity < BatchSize)
        {
            throw new ArgumentException($"The batch (capacity {batch.Capacity}, {batch.FeaturesPerSample} features, {batch.TargetsPerSample} targets) does not fit this source ({BatchSize} × {_data.FeaturesPerSample} features, 1 target); use CreateBatch().", nameof(batch));
        }

        if (!_started)
        {
            StartEpoch(0);
        }

        var n = Math.Min(BatchSize, _order.Length - _cursor);
        if (n <= 0)
        {
            batch.Count = 0;
            return false;
        }

        var per = _data.FeaturesPerSample;
        var src = _data.Features;
        var dst = batch.Features;
        for (var i = 0; i < n; i++)
        {
            var s = _order[_cursor + i];
            Array.Copy(src, s * per, dst, i * per, per);
            batch.Targets[i] = _data.Labels[s];
        }

        _cursor += n;
        batch.Count = n;
        return true;
    }
}
