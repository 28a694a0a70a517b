namespace NearML.Training.Data;

/// <summary>
/// Language-modelling batches of context windows over a token sequence: each sample is a window of
/// <see cref="ContextLength"/> tokens starting at <c>s</c> (inputs <c>tokens[s..s+T)</c>) with targets shifted by one
/// (<c>tokens[s+1..s+T+1)</c>), <c>s</c> uniform in <c>[0, len − T − 1]</c>.
/// In random mode every epoch draws fresh starts from (seed, epoch); in fixed mode (validation) the starts are drawn
/// once from the seed and every epoch yields the same batches in the same order. <see cref="TryFill"/> allocates nothing.
/// </summary>
public sealed class TextWindowBatchSource : IBatchSource
{
    private readonly ReadOnlyMemory<int> _tokens;
    private readonly ulong _seed;
    private readonly int[]? _fixedStarts;
    private SeededRandom _rng;
    private int _produced;

    /// <summary>Initializes a source.</summary>
    /// <param name="tokens">The token sequence (e.g. <see cref="TextDataset.Train"/>); needs more than <paramref name="contextLength"/> tokens.</param>
    /// <param name="batchSize">Windows per batch.</param>
    /// <param name="contextLength">Tokens per window (T).</param>
    /// <param name="batchesPerEpoch">Batches per epoch.</param>
    /// <param name="seed">The seed.</param>
    /// <param name="fixedWindows"><see langword="true"/> for the same windows every epoch (validation).</param>
    public TextWindowBatchSource(ReadOnlyMemory<int> tokens, int batchSize, int contextLength, int batchesPerEpoch, ulong seed, bool fixedWindows = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(contextLength);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchesPerEpoch);
        if (tokens.Length <= contextLength)
        {
            throw new ArgumentException($"{tokens.Length} tokens cannot hold a window of {contextLength} plus one target.", nameof(tokens));
        }

        _tokens = tokens;
        BatchSize = batchSize;
        ContextLength = contextLength;
        BatchesPerEpoch = batchesPerEpoch;
        _seed = seed;
        _rng = new SeededRandom(seed, 0);
        if (fixedWindows)
        {
            var total = checked(batchSize * batchesPerEpoch);
            _fixedStarts = new int[total];
            var rng = new SeededRandom(seed, ulong.MaxValue);
            for (var i = 0; i < total; i++)
            {
                _fixedStarts[i] = rng.NextInt(WindowCount);
            }
        }
    }

    /// <summary>Creates a fixed-window validation source (the same windows every time it is evaluated).</summary>
    /// <param name="tokens">The validation tokens.</param>
    /// <param name="batchSize">Windows per batch.</param>
    /// <param name="contextLength">Tokens per window.</param>
    /// <param name="batches">The number of batches.</param>
    /// <param name="seed">The seed.</param>
    /// <returns>The source.</returns>
    public static TextWindowBatchSource ForValidation(ReadOnlyMemory<int> tokens, int batchSize, int contextLength, int batches, ulong seed) =>
        new(tokens, batchSize, contextLength, batches, seed, fixedWindows: true);

    /// <inheritdoc/>
    public int BatchSize { get; }

    /// <summary>Gets the window length T.</summary>
    public int ContextLength { get; }

    /// <summary>Gets the number of batches per epoch.</summary>
    public int BatchesPerEpoch { get; }

    /// <summary>Gets a value indicating whether the windows are the same every epoch.</summary>
    public bool FixedWindows => _fixedStarts is not null;

    /// <summary>Gets the number of possible window starts (<c>len − T</c>).</summary>
    public int WindowCount => _tokens.Length - ContextLength;

    /// <inheritdoc/>
    public Batch CreateBatch() => new(BatchSize, 0, ContextLength, ContextLength);

    /// <inheritdoc/>
    public void StartEpoch(int epoch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        _rng = new SeededRandom(_seed, (ulong)epoch);
        _produced = 0;
    }

    /// <inheritdoc/>
    public bool TryFill(Batch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.TokensPerSample != ContextLength || batch.TargetsPerSample != ContextLength || batch.Capacity < BatchSize)
        {
            throw new ArgumentException($"The batch (capacity {batch.Capacity}, {batch.TokensPerSample} tokens, {batch.TargetsPerSample} targets) does not fit this source ({BatchSize} × {ContextLength}); use CreateBatch().", nameof(batch));
        }

        if (_produced >= BatchesPerEpoch)
        {
            batch.Count = 0;
            return false;
        }

        var tokens = _tokens.Span;
        var t = ContextLength;
        for (var i = 0; i < BatchSize; i++)
        {
            var start = _fixedStarts is not null ? _fixedStarts[(_produced * BatchSize) + i] : _rng.NextInt(WindowCount);
            tokens.Slice(start, t).CopyTo(batch.Tokens.AsSpan(i * t, t));
            tokens.Slice(start + 1, t).CopyTo(batch.Targets.AsSpan(i * t, t));
        }

        _produced++;
        batch.Count = BatchSize;
        return true;
    }
}
