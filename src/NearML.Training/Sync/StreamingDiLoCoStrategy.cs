using System.Globalization;
using NearML.Core;
using NearML.Core.Collectives;
using NearML.Training.Optim;

namespace NearML.Training.Sync;

/// <summary>
/// Streaming DiLoCo (arXiv 2501.18512): the parameters are cut into F fragments (<see cref="FragmentPartition"/>),
/// each synchronized every H inner steps on a staggered schedule: fragment p (0-based) exchanges its
/// pseudo-gradient at local steps ⌊(p+1)·H/F⌋ + k·H. The exchange overlaps τ further inner steps; when it lands,
/// the outer Nesterov step updates that fragment of θ_global and the fragment's local values become
/// α·local + (1−α)·global. Only one fragment travels at a time, so the peak bytes per exchange drop by F.
/// </summary>
public sealed class StreamingDiLoCoStrategy : SyncStrategy
{
    private readonly Optimizer _inner;
    private readonly StreamingDiLoCoOptions _options;
    private readonly IPayloadCodec _codec;
    private readonly ParameterSet _global;
    private readonly ParameterSet _momentum;
    private readonly (int Offset, int Length)[][] _fragments;
    private readonly float[][] _delta;
    private readonly float[][] _mean;
    private readonly long[] _samples;
    private readonly long[] _rounds;
    private readonly Task<ReduceResult>?[] _pending;
    private readonly long[] _applyAt;

    /// <summary>Creates the strategy. The current <paramref name="parameters"/> become the global parameters.</summary>
    /// <param name="collective">This worker's endpoint.</param>
    /// <param name="parameters">The model's parameters (equal on every worker at the start).</param>
    /// <param name="innerOptimizer">The local optimizer; its state never leaves the worker.</param>
    /// <param name="options">Settings; <see langword="null"/> for the defaults.</param>
    public StreamingDiLoCoStrategy(ICollective collective, ParameterSet parameters, Optimizer innerOptimizer, StreamingDiLoCoOptions? options = null)
        : base(collective, parameters)
    {
        ArgumentNullException.ThrowIfNull(innerOptimizer);
        innerOptimizer.Layout.EnsureSameAs(parameters.Layout);
        _options = options ?? new StreamingDiLoCoOptions();
        _options.Validate();
        _inner = innerOptimizer;
        _codec = PayloadCodecs.Create(_options.Outer.Encoding, _options.Outer.QuantizationBlockSize);
        _global = parameters.Clone();
        _momentum = parameters.CreateZeros();
        _fragments = Partition(parameters.Layout, _options.Fragments, _options.Partition);
        var f = _fragments.Length;
        _delta = new float[f][];
        _mean = new float[f][];
        for (var p = 0; p < f; p++)
        {
            var n = _fragments[p].Sum(r => r.Length);
            _delta[p] = new float[n];
            _mean[p] = new float[n];
        }

        _samples = new long[f];
        _rounds = new long[f];
        _pending = new Task<ReduceResult>?[f];
        _applyAt = new long[f];
    }

    /// <inheritdoc/>
    public override string Kind => "streaming-diloco";

    /// <inheritdoc/>
    public override ParameterSet GlobalParameters => _global;

    /// <summary>Gets the fragments as (offset, length) ranges of the flat parameter buffer.</summary>
    public IReadOnlyList<IReadOnlyList<(int Offset, int Length)>> Fragments => _fragments;

    /// <summary>Gets the local step at which fragment <paramref name="fragment"/> first exchanges.</summary>
    /// <param name="fragment">The fragment index.</param>
    /// <returns>⌊(p+1)·H/F⌋.</returns>
    public long FirstSyncStep(int fragment) => (long)(fragment + 1) * _options.Outer.InnerSteps / _fragments.Length;

    /// <inheritdoc/>
    public override async ValueTask<SyncStepResult> StepAsync(ParameterSet gradients, int samples, CancellationToken cancellationToken = default)
    {
        ValidateStep(gradients, samples);
        _inner.Step(Parameters, gradients);
        LocalStep++;
        for (var p = 0; p < _samples.Length; p++)
        {
            _samples[p] += samples;
        }

        var synced = false;
        int participants = 0, rejected = 0;
        for (var p = 0; p < _fragments.Length; p++)
        {
            if (_pending[p] is not null && _applyAt[p] <= LocalStep)
            {
                var r = await CompleteAsync(p, cancellationToken).ConfigureAwait(false);
                synced = true;
                participants = Math.Max(participants, r.Participants.Count);
                rejected += r.Rejections.Count;
            }
        }

        var h = _options.Outer.InnerSteps;
        for (var p = 0; p < _fragments.Length; p++)
        {
            var first = FirstSyncStep(p);
            if (LocalStep < first || (LocalStep - first) % h != 0)
            {
                continue;
            }

            Start(p, cancellationToken);
            if (_options.Overlap == 0)
            {
                var r = await CompleteAsync(p, cancellationToken).ConfigureAwait(false);
                synced = true;
                participants = Math.Max(participants, r.Participants.Count);
                rejected += r.Rejections.Count;
            }
        }

        return synced ? new SyncStepResult(true, participants, rejected) : SyncStepResult.Local;
    }

    /// <inheritdoc/>
    public override async ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        for (var p = 0; p < _fragments.Length; p++)
        {
            if (_pending[p] is not null)
            {
                await CompleteAsync(p, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <inheritdoc/>
    protected override void EnsureQuiescent()
    {
        if (_pending.Any(t => t is not null))
        {
            throw new InvalidOperationException("A fragment exchange is in flight; call FlushAsync or capture state between exchanges.");
        }
    }

    /// <inheritdoc/>
    protected override IReadOnlyList<(string Part, ParameterSet Set)> StateParts() =>
        [("local", Parameters), ("global", _global), ("outer_momentum", _momentum)];

    /// <inheritdoc/>
    protected override void WriteMetadata(IDictionary<string, string> metadata)
    {
        metadata["nearml.streaming.fragments"] = _fragments.Length.ToString(CultureInfo.InvariantCulture);
        metadata["nearml.streaming.rounds"] = string.Join(',', _rounds.Select(r => r.ToString(CultureInfo.InvariantCulture)));
        metadata["nearml.streaming.samples"] = string.Join(',', _samples.Select(r => r.ToString(CultureInfo.InvariantCulture)));
        metadata["nearml.streaming.encoding"] = _codec.Name;
    }

    /// <inheritdoc/>
    protected override void ReadMetadata(IReadOnlyDictionary<string, string> metadata)
    {
        var f = ReadLong(metadata, "nearml.streaming.fragments");
        if (f != _fragments.Length)
        {
            throw new InvalidDataFormatException("sync state", -1, $"the state has {f} fragments, this strategy {_fragments.Length}");
        }

        var rounds = ParseList(metadata, "nearml.streaming.rounds");
        var samples = ParseList(metadata, "nearml.streaming.samples");
        rounds.CopyTo(_rounds, 0);
        samples.CopyTo(_samples, 0);
    }

    private long[] ParseList(IReadOnlyDictionary<string, string> metadata, string key)
    {
        if (!metadata.TryGetValue(key, out var text))
        {
            throw new InvalidDataFormatException("sync state", -1, $"metadata '{key}' is missing");
        }

        var parts = text.Split(',');
        if (parts.Length != _fragments.Length)
        {
            throw new InvalidDataFormatException("sync state", -1, $"metadata '{key}' has {parts.Length} entries, expected {_fragments.Length}");
        }

        var values = new long[parts.Length];
        for (var i = 0; i < parts.Length; i++)
        {
            if (!long.TryParse(parts[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out values[i]))
            {
                throw new InvalidDataFormatException("sync state", -1, $"metadata '{key}' entry {i} is not an integer");
            }
        }

        return values;
    }

    private void Start(int p, CancellationToken cancellationToken)
    {
        var delta = _delta[p];
        var g = _global.Data;
        var l = Parameters.Data;
        var k = 0;
        foreach (var (offset, length) in _fragments[p])
        {
            for (var i = 0; i < length; i++)
            {
                delta[k++] = g[offset + i] - l[offset + i];
            }
        }

        var round = (_rounds[p] * _fragments.Length) + p;
        var weight = _samples[p];
        _rounds[p]++;
        _samples[p] = 0;
        _pending[p] = Collective.AllReduceMeanAsync(round, delta, weight, _codec, _mean[p], cancellationToken).AsTask();
        _applyAt[p] = LocalStep + _options.Overlap;
    }

    private async ValueTask<ReduceResult> CompleteAsync(int p, CancellationToken cancellationToken)
    {
        var task = _pending[p]!;
        _pending[p] = null;
        var r = await task.WaitAsync(cancellationToken).ConfigureAwait(false);
        RejectionLog.AddRange(r.Rejections);
        var alpha = (float)_options.Mixing;
        var k = 0;
        foreach (var (offset, length) in _fragments[p])
        {
            var global = _global.Data.Slice(offset, length);
            if (r.HasResult)
            {
                NesterovOuterOptimizer.Step(global, _mean[p].AsSpan(k, length), _momentum.Data.Slice(offset, length),
                    (float)_options.Outer.OuterLearningRate, (float)_options.Outer.OuterMomentum, _options.Outer.Nesterov);
            }

            var local = Parameters.Data.Slice(offset, length);
            for (var i = 0; i < length; i++)
            {
                local[i] = (alpha * local[i]) + ((1f - alpha) * global[i]);
            }

            k += length;
        }

        return r;
    }

    internal static (int Offset, int Length)[][] Partition(ParameterLayout layout, int fragments, FragmentPartition partition)
    {
        var total = (int)layout.TotalLength;
        if (partition == FragmentPartition.BalancedElements)
        {
            if (fragments > total)
            {
                throw new ArgumentOutOfRangeException(nameof(fragments), fragments, $"Cannot cut {total} elements into {fragments} fragments.");
            }

            var result = new (int, int)[fragments][];
            for (var p = 0; p < fragments; p++)
            {
                var start = (int)((long)total * p / fragments);
                var end = (int)((long)total * (p + 1) / fragments);
                result[p] = [(start, end - start)];
            }

            return result;
        }

        // Strided layers: group consecutive tensors sharing the prefix before the last '.'.
        var layers = new List<List<TensorEntry>>();
        string? current = null;
        foreach (var e in layout.Entries)
        {
            var dot = e.Name.LastIndexOf('.');
            var prefix = dot > 0 ? e.Name[..dot] : e.Name;
            if (prefix != current)
            {
                layers.Add([]);
                current = prefix;
            }

            layers[^1].Add(e);
        }

        if (layers.Count < fragments)
        {
            throw new ArgumentOutOfRangeException(nameof(fragments), fragments,
                $"The layout has {layers.Count} layers, fewer than {fragments} fragments; use FragmentPartition.BalancedElements.");
        }

        var groups = new List<(int, int)>[fragments];
        for (var p = 0; p < fragments; p++)
        {
            groups[p] = [];
        }

        for (var j = 0; j < layers.Count; j++)
        {
            foreach (var e in layers[j])
            {
                groups[j % fragments].Add(((int)e.Offset, e.Length));
            }
        }

        return [.. groups.Select(g => g.ToArray())];
    }
}
