namespace NearML.Core.Collectives;

/// <summary>
/// An in-process group of workers (tasks or threads in one process) that implements <see cref="ICollective"/>
/// exactly as a relay would: each contribution is encoded with its codec, decoded by the reducer, accumulated in
/// float32 in ascending worker-id order, and the mean is encoded again and decoded by every receiver. Results are
/// therefore bit-identical across runs regardless of thread timing, and the byte counts are those of the encodings.
/// </summary>
/// <remarks>Membership is elastic: <see cref="Join"/> adds a worker, disposing its endpoint removes it. A round waits
/// for the workers that were members when it opened, minus those that left.</remarks>
public sealed class InProcessCollectiveGroup
{
    private readonly Lock _gate = new();
    private readonly SortedDictionary<string, long> _members = new(StringComparer.Ordinal);
    private readonly Dictionary<long, Round> _rounds = [];
    private readonly HashSet<long> _completed = [];
    private readonly List<ContributionRejection> _rejections = [];
    private readonly ContributionPolicy _policy;

    /// <summary>Creates an empty group.</summary>
    /// <param name="policy">What the reducer accepts; <see langword="null"/> for the defaults.</param>
    public InProcessCollectiveGroup(ContributionPolicy? policy = null)
    {
        _policy = policy ?? new ContributionPolicy();
    }

    /// <summary>Gets the current members, ascending.</summary>
    public IReadOnlyList<string> Members
    {
        get
        {
            lock (_gate)
            {
                return [.. _members.Keys];
            }
        }
    }

    /// <summary>Gets every contribution rejected so far, in the order the rounds completed.</summary>
    public IReadOnlyList<ContributionRejection> Rejections
    {
        get
        {
            lock (_gate)
            {
                return [.. _rejections];
            }
        }
    }

    /// <summary>
    /// Adds a worker. It takes part in rounds that open after this call and whose tag is at least
    /// <paramref name="firstRound"/> (so a worker that will rejoin at a known round can be registered early, making
    /// the membership of every round independent of thread timing).
    /// </summary>
    /// <param name="workerId">A unique, non-empty id.</param>
    /// <param name="firstRound">The smallest round tag the worker takes part in.</param>
    /// <returns>The worker's endpoint; dispose it to leave the group.</returns>
    /// <exception cref="ArgumentException">The id is already a member.</exception>
    public ICollective Join(string workerId, long firstRound = long.MinValue)
    {
        ArgumentException.ThrowIfNullOrEmpty(workerId);
        lock (_gate)
        {
            if (!_members.TryAdd(workerId, firstRound))
            {
                throw new ArgumentException($"Worker '{workerId}' is already a member of the group.", nameof(workerId));
            }
        }

        return new Endpoint(this, workerId);
    }

    private void Leave(string workerId)
    {
        lock (_gate)
        {
            if (!_members.Remove(workerId))
            {
                return;
            }

            foreach (var r in _rounds.Values.ToList())
            {
                if (r.Expected.Remove(workerId))
                {
                    TryComplete(r);
                }
            }
        }
    }

    private Round Enter(string workerId, long round, RoundKind kind, object? contribution)
    {
        lock (_gate)
        {
            if (!_members.ContainsKey(workerId))
            {
                throw new InvalidOperationException($"Worker '{workerId}' is not a member of the group (it left or never joined).");
            }

            if (_completed.Contains(round))
            {
                throw new InvalidOperationException($"Round {round} has already completed; worker '{workerId}' is late or reused the tag.");
            }

            if (!_rounds.TryGetValue(round, out var r))
            {
                r = new Round(round, kind, new SortedSet<string>(_members.Where(m => m.Value <= round).Select(m => m.Key), StringComparer.Ordinal));
                _rounds.Add(round, r);
            }

            if (r.Kind != kind && contribution is not null && r.Kind != RoundKind.Unknown)
            {
                throw new InvalidOperationException($"Round {round} is a {r.Kind} round; worker '{workerId}' used it for a {kind}.");
            }

            if (r.Kind == RoundKind.Unknown && kind != RoundKind.Unknown)
            {
                r.Kind = kind;
            }

            if (!r.Expected.Contains(workerId) || r.Arrived.Contains(workerId))
            {
                throw new InvalidOperationException(r.Arrived.Contains(workerId)
                    ? $"Worker '{workerId}' already took part in round {round}."
                    : $"Worker '{workerId}' joined after round {round} opened; it takes part from the next round.");
            }

            r.Arrived.Add(workerId);
            if (contribution is not null)
            {
                r.Contributions[workerId] = contribution;
            }

            TryComplete(r);
            return r;
        }
    }

    // Called under _gate.
    private void TryComplete(Round r)
    {
        if (r.Completion.Task.IsCompleted || !r.Expected.IsSubsetOf(r.Arrived))
        {
            return;
        }

        _rounds.Remove(r.Tag);
        _completed.Add(r.Tag);
        try
        {
            object outcome = r.Kind == RoundKind.Gather ? CompleteGather(r) : CompleteReduce(r);
            r.Completion.SetResult(outcome);
        }
        catch (NearMLException ex)
        {
            r.Completion.SetException(ex);
        }
        catch (InvalidOperationException ex)
        {
            r.Completion.SetException(ex);
        }
    }

    private ReduceOutcome CompleteReduce(Round r)
    {
        var items = r.Contributions.OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => (Id: kv.Key, C: (ReduceContribution)kv.Value)).ToList();
        if (items.Count == 0)
        {
            return new ReduceOutcome([], 0, [], null, null);
        }

        var codec = items[0].C.Codec;
        var length = items[0].C.Length;
        foreach (var (id, c) in items)
        {
            if (c.Length != length)
            {
                throw new LayoutMismatchException($"Round {r.Tag}: worker '{id}' contributed {c.Length} values but worker '{items[0].Id}' contributed {length}.");
            }

            if (c.Codec.Name != codec.Name)
            {
                throw new InvalidOperationException($"Round {r.Tag}: worker '{id}' used codec '{c.Codec.Name}' but worker '{items[0].Id}' used '{codec.Name}'.");
            }
        }

        // Decode every contribution, then run the one screen (ContributionScreen) over the decoded ones.
        var rejections = new List<ContributionRejection>();
        var decoded = new List<(string Id, float[] Values, double Weight)>();
        foreach (var (id, c) in items)
        {
            if (!double.IsFinite(c.Weight) || c.Weight <= 0)
            {
                rejections.Add(new ContributionRejection(id, r.Tag, RejectionReason.InvalidWeight, $"weight {c.Weight} is not positive and finite"));
                continue;
            }

            var values = new float[length];
            try
            {
                codec.Decode(c.Encoded, values);
            }
            catch (InvalidDataFormatException ex)
            {
                rejections.Add(new ContributionRejection(id, r.Tag, RejectionReason.Malformed, ex.Message));
                continue;
            }

            decoded.Add((id, values, c.Weight));
        }

        // The one reducer: screen, then the float32 weighted mean in ascending worker-id order (deterministic).
        var candidates = decoded.Select(d => new ScreenCandidate(d.Id, d.Values, d.Weight)).ToList();
        var acc = new float[length];
        var reduced = ContributionScreen.Reduce(r.Tag, candidates, _policy, acc);
        rejections.AddRange(reduced.Screen.Rejections);
        _rejections.AddRange(rejections);
        if (!reduced.HasResult)
        {
            return new ReduceOutcome([], 0, rejections, null, codec);
        }

        var totalWeight = reduced.TotalWeight;
        var accepted = reduced.Screen.Accepted.Select(a => decoded[a.Index]).ToList();
        var encoded = new byte[codec.GetEncodedLength(length)];
        codec.Encode(acc, encoded);
        return new ReduceOutcome([.. accepted.Select(a => a.Id)], totalWeight, rejections, encoded, codec);
    }

    private static GatherOutcome CompleteGather(Round r)
    {
        var payloads = r.Contributions.OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => new GatheredPayload(kv.Key, (ReadOnlyMemory<byte>)kv.Value)).ToList();
        return new GatherOutcome(payloads);
    }

    private enum RoundKind
    {
        Unknown,
        Reduce,
        Gather,
    }

    private sealed class Round(long tag, RoundKind kind, SortedSet<string> expected)
    {
        public long Tag { get; } = tag;

        public RoundKind Kind { get; set; } = kind;

        public SortedSet<string> Expected { get; } = expected;

        public HashSet<string> Arrived { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, object> Contributions { get; } = new(StringComparer.Ordinal);

        public TaskCompletionSource<object> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private sealed record ReduceContribution(byte[] Encoded, int Length, double Weight, IPayloadCodec Codec);

    private sealed record ReduceOutcome(IReadOnlyList<string> Participants, double TotalWeight,
        IReadOnlyList<ContributionRejection> Rejections, byte[]? EncodedMean, IPayloadCodec? Codec);

    private sealed record GatherOutcome(IReadOnlyList<GatheredPayload> Payloads);

    private sealed class Endpoint(InProcessCollectiveGroup group, string workerId) : ICollective
    {
        private int _disposed;

        public string WorkerId { get; } = workerId;

        public CollectiveStatistics Statistics { get; } = new();

        public async ValueTask<ReduceResult> AllReduceMeanAsync(long round, ReadOnlyMemory<float> values, double weight,
            IPayloadCodec codec, Memory<float> result, CancellationToken cancellationToken = default)
        {
            ArgumentNullException.ThrowIfNull(codec);
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            if (result.Length != values.Length)
            {
                throw new LayoutMismatchException($"The result buffer holds {result.Length} values but {values.Length} are contributed.");
            }

            var encoded = new byte[codec.GetEncodedLength(values.Length)];
            codec.Encode(values.Span, encoded);
            var r = group.Enter(WorkerId, round, RoundKind.Reduce, new ReduceContribution(encoded, values.Length, weight, codec));
            var outcome = (ReduceOutcome)await r.Completion.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            long received = 0;
            if (outcome.EncodedMean is { } mean)
            {
                outcome.Codec!.Decode(mean, result.Span);
                received = mean.Length;
            }

            var rejected = outcome.Rejections.Any(x => x.WorkerId == WorkerId);
            Statistics.Record(encoded.Length, received, rejected);
            return new ReduceResult(round, outcome.Participants, outcome.TotalWeight, outcome.Rejections, encoded.Length, received);
        }

        public async ValueTask<GatherResult> AllGatherAsync(long round, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            var copy = payload.ToArray();
            var r = group.Enter(WorkerId, round, RoundKind.Gather, (ReadOnlyMemory<byte>)copy);
            var outcome = (GatherOutcome)await r.Completion.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            long received = 0;
            foreach (var p in outcome.Payloads)
            {
                if (p.WorkerId != WorkerId)
                {
                    received += p.Payload.Length;
                }
            }

            Statistics.Record(copy.Length, received);
            return new GatherResult(round, outcome.Payloads, copy.Length, received);
        }

        public ValueTask AbstainAsync(long round, CancellationToken cancellationToken = default)
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            cancellationToken.ThrowIfCancellationRequested();
            group.Enter(WorkerId, round, RoundKind.Unknown, null);
            return ValueTask.CompletedTask;
        }

        public ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                group.Leave(WorkerId);
            }

            return ValueTask.CompletedTask;
        }
    }
}
