using System.Buffers.Binary;
using System.Globalization;
using System.Numerics.Tensors;
using NearML.Core;
using NearML.Core.Collectives;
using NearML.Training.Sync.Internal;

namespace NearML.Training.Sync;

/// <summary>
/// DeMo, decoupled momentum optimization (arXiv 2411.19870), matching the reference implementation
/// (github.com/bloc97/DeMo): every step each worker updates its momentum δ ← β·δ + lr·g, transforms δ per chunk with
/// an orthonormal DCT-II (chunk = largest divisor of each dimension ≤ <see cref="DeMoOptions.Chunk"/>, separable in
/// 2-D), keeps the top-k coefficients by magnitude per chunk, subtracts their inverse transform from δ, and
/// all-gathers them. Each coefficient is averaged over the workers that sent it, transformed back, and every worker
/// applies p ← p·(1 − lr·wd) − lr·sign(aggregate).
/// </summary>
/// <remarks>
/// Wire format of one worker's message, per tensor in layout order, per chunk in row-major chunk order, k entries in
/// ascending index order: the coefficient index within the chunk (uint16 little-endian when a chunk has at most 65,536
/// coefficients, else uint32) followed by its float32 value. Nothing else is sent: the layout fixes every count. A
/// received message with the wrong length, an index out of range or repeated within a chunk, a non-finite value or
/// an absurd norm (see <see cref="DeMoOptions.Policy"/>) is rejected with a reason and not averaged in.
/// </remarks>
public sealed class DeMoStrategy : SyncStrategy
{
    private readonly DeMoOptions _options;
    private readonly DctPlan[] _plans;
    private readonly int[] _k;
    private readonly int[] _indexBytes;
    private readonly ParameterSet _momentum;
    private readonly ParameterSet _aggregate;
    private readonly float[] _coefficients;
    private readonly float[] _kept;
    private readonly float[] _dense;
    private readonly float[] _sum;
    private readonly int[] _count;
    private readonly float[] _heapKeys;
    private readonly int[] _order;
    private readonly byte[] _message;

    /// <summary>Creates the strategy.</summary>
    /// <param name="collective">This worker's endpoint.</param>
    /// <param name="parameters">The model's parameters (equal on every worker at the start).</param>
    /// <param name="options">Settings; <see langword="null"/> for the reference defaults.</param>
    public DeMoStrategy(ICollective collective, ParameterSet parameters, DeMoOptions? options = null)
        : base(collective, parameters)
    {
        _options = options ?? new DeMoOptions();
        _options.Validate();
        var entries = parameters.Layout.Entries;
        _plans = new DctPlan[entries.Length];
        _k = new int[entries.Length];
        _indexBytes = new int[entries.Length];
        long messageBytes = 0, referenceBytes = 0;
        for (var t = 0; t < entries.Length; t++)
        {
            var plan = new DctPlan([.. entries[t].Shape], _options.Chunk);
            _plans[t] = plan;
            _k[t] = Math.Clamp(_options.TopK, 1, plan.CoefficientsPerChunk);
            _indexBytes[t] = plan.CoefficientsPerChunk <= 65536 ? 2 : 4;
            messageBytes += (long)plan.ChunkCount * _k[t] * (_indexBytes[t] + 4);
            referenceBytes += (long)plan.ChunkCount * _k[t] * 12;
        }

        MessageBytes = checked((int)messageBytes);
        ReferenceMessageBytes = referenceBytes;
        _momentum = parameters.CreateZeros();
        _aggregate = parameters.CreateZeros();
        var maxLen = entries.Length == 0 ? 0 : entries.Max(e => e.Length);
        _coefficients = new float[maxLen];
        _kept = new float[maxLen];
        _dense = new float[maxLen];
        _sum = new float[parameters.Length];
        _count = new int[parameters.Length];
        var maxTopK = _k.Length == 0 ? 1 : _k.Max();
        _heapKeys = new float[maxTopK];
        _order = new int[maxTopK];
        _message = new byte[MessageBytes];
    }

    /// <inheritdoc/>
    public override string Kind => "demo";

    /// <inheritdoc/>
    public override ParameterSet GlobalParameters => Parameters;

    /// <summary>Gets the exact size of one worker's message per step, in bytes.</summary>
    public int MessageBytes { get; }

    /// <summary>Gets what the reference implementation reports for the same message (int64 index + float32 value per
    /// kept coefficient: 12 bytes), for comparison.</summary>
    public long ReferenceMessageBytes { get; }

    /// <summary>Gets the decoupled momentum δ (after the transmitted part was removed).</summary>
    internal ParameterSet Momentum => _momentum;

    /// <summary>Gets the last aggregated, inverse-transformed update (before the sign).</summary>
    internal ParameterSet LastAggregate => _aggregate;

    /// <summary>Gets this worker's last message.</summary>
    internal ReadOnlySpan<byte> LastMessage => _message;

    /// <summary>Gets the chunk plan of tensor <paramref name="tensor"/> (rows/cols of chunks, chunk sizes).</summary>
    internal DctPlan PlanOf(int tensor) => _plans[tensor];

    /// <inheritdoc/>
    public override async ValueTask<SyncStepResult> StepAsync(ParameterSet gradients, int samples, CancellationToken cancellationToken = default)
    {
        ValidateStep(gradients, samples);
        var lr = (float)_options.LearningRate;
        var beta = (float)_options.CompressionDecay;
        if (_options.WeightDecay != 0)
        {
            Parameters.Scale((float)(1.0 - (_options.LearningRate * _options.WeightDecay)));
        }

        var entries = Layout.Entries;
        var pos = 0;
        for (var t = 0; t < entries.Length; t++)
        {
            var e = entries[t];
            var delta = _momentum.Data.Slice((int)e.Offset, e.Length);
            var grad = gradients.Data.Slice((int)e.Offset, e.Length);
            for (var i = 0; i < delta.Length; i++)
            {
                delta[i] = (delta[i] * beta) + (lr * grad[i]);
            }

            var plan = _plans[t];
            var coef = _coefficients.AsSpan(0, e.Length);
            plan.Encode(delta, coef);
            var kept = _kept.AsSpan(0, e.Length);
            kept.Clear();
            var kk = plan.CoefficientsPerChunk;
            for (var c = 0; c < plan.ChunkCount; c++)
            {
                var chunk = coef.Slice(c * kk, kk);
                var keptChunk = kept.Slice(c * kk, kk);
                var k = _k[t];
                SelectTopK(chunk, k);
                foreach (var idx in _order.AsSpan(0, k))
                {
                    var v = chunk[idx];
                    WriteEntry(_message, ref pos, _indexBytes[t], idx, v);
                    keptChunk[idx] = v;
                }
            }

            // δ ← δ − IDCT(transmitted coefficients)
            var dense = _dense.AsSpan(0, e.Length);
            plan.Decode(kept, dense);
            TensorPrimitives.Subtract(delta, dense, delta);
        }

        var gathered = await Collective.AllGatherAsync(LocalStep, _message, cancellationToken).ConfigureAwait(false);
        LocalStep++;
        var accepted = Aggregate(gathered);

        if (accepted > 0)
        {
            for (var i = 0; i < Parameters.Length; i++)
            {
                var a = _aggregate.Buffer[i];
                var s = a > 0 ? 1f : a < 0 ? -1f : 0f;
                Parameters.Buffer[i] -= lr * s;
            }
        }

        return new SyncStepResult(true, accepted, gathered.Payloads.Count - accepted);
    }

    private int Aggregate(GatherResult gathered)
    {
        Array.Clear(_sum);
        Array.Clear(_count);
        var parsed = new List<GatheredPayload>(gathered.Payloads.Count);
        var norms = new List<NormCandidate>(gathered.Payloads.Count);
        foreach (var p in gathered.Payloads)
        {
            var (ok, reason, detail, norm) = Screen(p.Payload.Span);
            if (!ok)
            {
                RejectionLog.Add(new ContributionRejection(p.WorkerId, gathered.Round, reason, detail));
                continue;
            }

            parsed.Add(p);
            norms.Add(new NormCandidate(p.WorkerId, norm, 1));
        }

        // The one screen (Core's ContributionScreen): the absolute bound and the median-ratio rule, as every reducer applies them.
        var screened = ContributionScreen.ScreenNorms(gathered.Round, norms, _options.Policy);
        RejectionLog.AddRange(screened.Rejections);
        var valid = screened.Accepted.Select(a => (Payload: parsed[a.Index], a.Norm)).ToList();

        // Sum in ascending worker-id order (the gather's order), count per coefficient.
        foreach (var (p, _) in valid)
        {
            var span = p.Payload.Span;
            var pos = 0;
            var entries = Layout.Entries;
            for (var t = 0; t < entries.Length; t++)
            {
                var plan = _plans[t];
                var baseIndex = (int)entries[t].Offset;
                for (var c = 0; c < plan.ChunkCount; c++)
                {
                    for (var j = 0; j < _k[t]; j++)
                    {
                        var (idx, v) = ReadEntry(span, ref pos, _indexBytes[t]);
                        var at = baseIndex + (c * plan.CoefficientsPerChunk) + idx;
                        _sum[at] += v;
                        _count[at]++;
                    }
                }
            }
        }

        var layoutEntries = Layout.Entries;
        for (var t = 0; t < layoutEntries.Length; t++)
        {
            var e = layoutEntries[t];
            var plan = _plans[t];
            var mean = _kept.AsSpan(0, e.Length);
            var sum = _sum.AsSpan((int)e.Offset, e.Length);
            var count = _count.AsSpan((int)e.Offset, e.Length);
            for (var i = 0; i < mean.Length; i++)
            {
                mean[i] = count[i] > 0 ? sum[i] / count[i] : 0f;
            }

            plan.Decode(mean, _aggregate.Data.Slice((int)e.Offset, e.Length));
        }

        return valid.Count;
    }

    private (bool Ok, RejectionReason Reason, string Detail, double Norm) Screen(ReadOnlySpan<byte> message)
    {
        if (message.Length != MessageBytes)
        {
            return (false, RejectionReason.Malformed, $"message has {message.Length} bytes, expected {MessageBytes}", 0);
        }

        var pos = 0;
        double sumSq = 0;
        var entries = Layout.Entries;
        for (var t = 0; t < entries.Length; t++)
        {
            var plan = _plans[t];
            for (var c = 0; c < plan.ChunkCount; c++)
            {
                var start = pos;
                for (var j = 0; j < _k[t]; j++)
                {
                    var at = pos;
                    var (idx, v) = ReadEntry(message, ref pos, _indexBytes[t]);
                    if (idx < 0 || idx >= plan.CoefficientsPerChunk)
                    {
                        return (false, RejectionReason.Malformed, $"tensor '{entries[t].Name}' chunk {c}: index {idx} at byte {at} is outside [0, {plan.CoefficientsPerChunk})", 0);
                    }

                    // Entries are written in ascending index order; a repeat or disorder is malformed.
                    if (j > 0)
                    {
                        var prev = start + ((j - 1) * (_indexBytes[t] + 4));
                        var (prevIdx, _) = ReadEntry(message, ref prev, _indexBytes[t]);
                        if (prevIdx >= idx)
                        {
                            return (false, RejectionReason.Malformed, $"tensor '{entries[t].Name}' chunk {c}: index {idx} at byte {at} repeats or is out of order", 0);
                        }
                    }

                    if (!float.IsFinite(v))
                    {
                        if (_options.Policy.RejectNonFinite)
                        {
                            return (false, RejectionReason.NonFinite, $"tensor '{entries[t].Name}' chunk {c}: value {v} at byte {at + _indexBytes[t]}", 0);
                        }

                        return (false, RejectionReason.NonFinite, "non-finite values cannot be averaged", 0);
                    }

                    sumSq += (double)v * v;
                }
            }
        }

        return (true, default, string.Empty, Math.Sqrt(sumSq));
    }

    /// <summary>
    /// Puts the indices of the <paramref name="k"/> largest |values| of <paramref name="chunk"/> into
    /// <c>_order[..k]</c> in ascending index order: a size-k min-heap over one pass (O(n log k)); on equal magnitudes
    /// the lower index wins.
    /// </summary>
    private void SelectTopK(ReadOnlySpan<float> chunk, int k)
    {
        var keys = _heapKeys.AsSpan(0, k);
        var idx = _order.AsSpan(0, k);
        for (var i = 0; i < k; i++)
        {
            // Build the heap from the first k values.
            var key = MathF.Abs(chunk[i]);
            var at = i;
            while (at > 0)
            {
                var parent = (at - 1) >> 1;
                if (!Before(key, i, keys[parent], idx[parent]))
                {
                    break;
                }

                keys[at] = keys[parent];
                idx[at] = idx[parent];
                at = parent;
            }

            keys[at] = key;
            idx[at] = i;
        }

        for (var i = k; i < chunk.Length; i++)
        {
            var key = MathF.Abs(chunk[i]);
            if (!(key > keys[0]))
            {
                continue;
            }

            // Replace the smallest kept value and sift it down.
            var at = 0;
            while (true)
            {
                var child = (2 * at) + 1;
                if (child >= k)
                {
                    break;
                }

                if (child + 1 < k && Before(keys[child + 1], idx[child + 1], keys[child], idx[child]))
                {
                    child++;
                }

                if (!Before(keys[child], idx[child], key, i))
                {
                    break;
                }

                keys[at] = keys[child];
                idx[at] = idx[child];
                at = child;
            }

            keys[at] = key;
            idx[at] = i;
        }

        idx.Sort();

        // Heap order: "smaller" = lower magnitude, or equal magnitude and higher index (evicted first).
        static bool Before(float keyA, int indexA, float keyB, int indexB) => keyA < keyB || (keyA == keyB && indexA > indexB);
    }

    private static void WriteEntry(byte[] message, ref int pos, int indexBytes, int index, float value)
    {
        if (indexBytes == 2)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(message.AsSpan(pos, 2), (ushort)index);
        }
        else
        {
            BinaryPrimitives.WriteInt32LittleEndian(message.AsSpan(pos, 4), index);
        }

        pos += indexBytes;
        BinaryPrimitives.WriteSingleLittleEndian(message.AsSpan(pos, 4), value);
        pos += 4;
    }

    private static (int Index, float Value) ReadEntry(ReadOnlySpan<byte> message, ref int pos, int indexBytes)
    {
        var index = indexBytes == 2
            ? BinaryPrimitives.ReadUInt16LittleEndian(message.Slice(pos, 2))
            : BinaryPrimitives.ReadInt32LittleEndian(message.Slice(pos, 4));
        pos += indexBytes;
        var value = BinaryPrimitives.ReadSingleLittleEndian(message.Slice(pos, 4));
        pos += 4;
        return (index, value);
    }

    /// <inheritdoc/>
    protected override IReadOnlyList<(string Part, ParameterSet Set)> StateParts() =>
        [("params", Parameters), ("demo_momentum", _momentum)];

    /// <inheritdoc/>
    protected override void WriteMetadata(IDictionary<string, string> metadata) =>
        metadata["nearml.demo.message_bytes"] = MessageBytes.ToString(CultureInfo.InvariantCulture);
}
