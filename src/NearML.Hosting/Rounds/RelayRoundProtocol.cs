using System.Buffers;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using NearML.Core.Contracts;
using NearML.Hosting.Coordinator;
using NearML.Hosting.Jobs;

namespace NearML.Hosting.Rounds;

/// <summary>
/// DDP and DeMo rounds (coordinator relay): every exchange of the engine's strategy (a weighted mean or an all-gather,
/// tagged by step) is collected from the round's cohort and answered to each contributor; a reduce goes through Core's
/// one reducer (weight and non-finite refusal, no norm rules). A member that disconnects is dropped from the exchanges;
/// a contribution with NaN/Inf values, a bad weight or a wrong length is rejected with a logged reason. The round still
/// ends with one fp32 <c>Update</c> per worker (the change of its parameters), screened and averaged like plain DiLoCo's;
/// the mean change becomes the new global parameters (every worker applied the same steps: no outer optimizer).
/// </summary>
/// <remarks>
/// Steady state allocates nothing the size of the exchanged vectors: contributions are decoded into buffers kept across
/// exchanges (one per cohort slot), reduced into a kept mean buffer, and the result is encoded once into a buffer rented
/// from <see cref="ArrayPool{T}.Shared"/> that every recipient's send shares and the last completed send returns
/// (<see cref="SharedPayload"/>). Only the incoming frames' own payload bytes (parsed by the connection) remain per step.
/// </remarks>
internal sealed partial class RelayRoundProtocol(NearMLCoordinatorOptions options, ILogger logger, NearMLMetrics metrics) : IRoundProtocol
{
    private static readonly TimeSpan RelaySweepInterval = TimeSpan.FromMilliseconds(100);
    private readonly UpdateReduction _updates = new();

    public string Name => "relay";

    public int MinimumCohort => 1;

    public UpdateEncoding UpdateEncoding => UpdateEncoding.Fp32;

    public async Task<RoundResult> RunAsync(RoundContext context, CancellationToken cancellationToken)
    {
        var round = context.Round;
        BeginRelayRound(round, [.. context.Cohort.Select(p => p.Session)]);
        try
        {
            await UpdateReduction.AssignAllAsync(context, cancellationToken).ConfigureAwait(false);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var remaining = context.Deadline - context.Time.GetUtcNow();
            var delay = Task.Delay(remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero, context.Time, timeout.Token);
            var all = Task.WhenAll(context.Cohort.Select(p => p.Submitted));

            // Exchanges whose missing members have left are completed with the others.
            while (!all.IsCompleted && !delay.IsCompleted)
            {
                await Task.WhenAny(all, delay, Task.Delay(RelaySweepInterval, context.Time, timeout.Token)).ConfigureAwait(false);
                SweepRelay();
            }

            await timeout.CancelAsync().ConfigureAwait(false);
        }
        finally
        {
            EndRelayRound(round);
        }

        cancellationToken.ThrowIfCancellationRequested();
        var mean = _updates.MeanBuffer(context.Parameters);
        var reduced = _updates.CollectAndReduce(context, mean);
        if (reduced.Accepted.Count == 0)
        {
            return reduced.ToResult(updated: false);
        }

        // Every worker applied the same steps, so the mean change is the new state (no outer optimizer).
        System.Numerics.Tensors.TensorPrimitives.Subtract(context.Parameters.Buffer, mean.Buffer, context.Parameters.Buffer);
        return reduced.ToResult(updated: true);
    }

    public bool OnMessage(RoundParticipant from, IMessage message)
    {
        if (message is not RelayContribution contribution)
        {
            return false;
        }

        OnRelayContribution(from.Session, contribution);
        return true;
    }

    private readonly Lock _relayLock = new();
    private readonly Dictionary<long, RelayExchange> _relayExchanges = [];
    private RelayRound? _relayRound;

    // Kept across exchanges and rounds (used only under _relayLock): the decoded contributions, one buffer per slot, and
    // the weighted mean; resized only when the exchanged length changes.
    private readonly List<float[]> _decoded = [];
    private readonly List<NearML.Core.Collectives.ScreenCandidate> _candidates = [];
    private float[] _relayMean = [];

    /// <summary>Gets how many decode and mean buffers were allocated so far (tests: constant in steady state).</summary>
    internal int BuffersAllocated { get; private set; }

    [LoggerMessage(EventId = 7040, EventName = "RelayContributionRejected", Level = LogLevel.Warning,
        Message = "Round {Round} relay exchange {Tag}: contribution of '{WorkerId}' rejected ({Reason}): {Detail}")]
    private static partial void LogRelayRejected(ILogger logger, long round, long tag, string workerId, string reason, string detail);

    [LoggerMessage(EventId = 7041, EventName = "RelayFrameIgnored", Level = LogLevel.Debug, Message = "Relay frame of '{WorkerId}' for round {Round}, exchange {Tag} ({Kind}) ignored: {Reason}")]
    private static partial void LogRelayIgnored(ILogger logger, string workerId, ulong round, long tag, RelayKind kind, string reason);

    [LoggerMessage(EventId = 7042, EventName = "RelayRoundSummary", Level = LogLevel.Information,
        Message = "Round {Round}: {Exchanges} relay exchanges completed ({Strategy})")]
    private static partial void LogRelaySummary(ILogger logger, long round, int exchanges, string strategy);

    private static readonly NearML.Core.Collectives.ContributionPolicy RelayPolicy = new() { RejectNonFinite = true, MaxNormToMedianRatio = null };

    private void BeginRelayRound(long round, IReadOnlyList<WorkerSession> cohort)
    {
        lock (_relayLock)
        {
            _relayExchanges.Clear();
            _relayRound = new RelayRound(round, cohort);
        }
    }

    private void EndRelayRound(long round)
    {
        int completed;
        lock (_relayLock)
        {
            completed = _relayRound?.Completed ?? 0;
            _relayExchanges.Clear();
            _relayRound = null;
        }

        LogRelaySummary(logger, round, completed, options.SyncStrategy);
    }

    private void OnRelayContribution(WorkerSession session, RelayContribution c)
    {
        List<(WorkerSession, RelayResult, SharedPayload?)>? answers = null;
        lock (_relayLock)
        {
            var r = _relayRound;
            if (r is null || c.JobId != options.JobId || (long)c.Round != r.Round || !r.Cohort.Contains(session))
            {
                LogRelayIgnored(logger, session.Id, c.Round, c.Tag, c.Kind, "not a relay round of this job that the worker belongs to");
                return;
            }

            if (r.CompletedTags.Contains((long)c.Tag))
            {
                LogRelayIgnored(logger, session.Id, c.Round, c.Tag, c.Kind, "the exchange has already completed");
                return;
            }

            if (!_relayExchanges.TryGetValue(c.Tag, out var exchange))
            {
                exchange = new RelayExchange(c.Tag, c.Kind == RelayKind.Abstain ? RelayKind.Unspecified : c.Kind);
                _relayExchanges[c.Tag] = exchange;
            }

            if (exchange.Kind == RelayKind.Unspecified && c.Kind != RelayKind.Abstain)
            {
                exchange.Kind = c.Kind;
            }

            if (c.Kind is not (RelayKind.Abstain or RelayKind.Reduce or RelayKind.Gather) || (c.Kind != RelayKind.Abstain && c.Kind != exchange.Kind))
            {
                LogRelayIgnored(logger, session.Id, c.Round, c.Tag, c.Kind, "the kind differs from the exchange's (counted as an abstention)");
                exchange.Entries[session.Id] = (session, null);
            }
            else if (!exchange.Entries.TryAdd(session.Id, (session, c.Kind == RelayKind.Abstain ? null : c)))
            {
                LogRelayIgnored(logger, session.Id, c.Round, c.Tag, c.Kind, "a second contribution to the exchange");
                return;
            }

            answers = TryCompleteLocked(r, exchange);
        }

        Answer(answers);
    }

    /// <summary>Completes the exchanges whose only missing members have left (called periodically while a relay round runs).</summary>
    private void SweepRelay()
    {
        var all = new List<(WorkerSession, RelayResult, SharedPayload?)>();
        lock (_relayLock)
        {
            if (_relayRound is not { } r)
            {
                return;
            }

            foreach (var exchange in _relayExchanges.Values.ToList())
            {
                if (TryCompleteLocked(r, exchange) is { } answers)
                {
                    all.AddRange(answers);
                }
            }
        }

        Answer(all);
    }

    private static void Answer(List<(WorkerSession Session, RelayResult Result, SharedPayload? Payload)>? answers)
    {
        if (answers is null)
        {
            return;
        }

        foreach (var (s, result, payload) in answers)
        {
            if (payload is null)
            {
                _ = CoordinatorService.SendAsync(s, result, CancellationToken.None);
            }
            else
            {
                _ = SendAndReleaseAsync(s, result, payload);
            }
        }
    }

    // The result frame is serialized into the connection's pipe during the send; the shared payload goes back to the pool
    // when the last recipient's send has completed (or failed).
    private static async Task SendAndReleaseAsync(WorkerSession session, RelayResult result, SharedPayload payload)
    {
        try
        {
            await CoordinatorService.SendAsync(session, result, CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            payload.Release();
        }
    }

    private List<(WorkerSession, RelayResult, SharedPayload?)>? TryCompleteLocked(RelayRound r, RelayExchange exchange)
    {
        if (r.Cohort.Any(s => !s.IsClosed && !exchange.Entries.ContainsKey(s.Id)))
        {
            return null;
        }

        _relayExchanges.Remove(exchange.Tag);
        r.CompletedTags.Add((long)exchange.Tag);
        r.Completed++;
        var contributors = exchange.Entries.Values
            .Where(e => e.Contribution is not null && !e.Session.IsClosed)
            .OrderBy(e => e.Session.Id, StringComparer.Ordinal)
            .ToList();
        var result = new RelayResult { JobId = options.JobId, Round = (ulong)r.Round, Tag = exchange.Tag, Kind = exchange.Kind };
        SharedPayload? payload = null;
        if (exchange.Kind == RelayKind.Gather)
        {
            foreach (var (s, c) in contributors)
            {
                result.Participants.Add(s.Id);
                result.Payloads.Add(c!.Payload);
            }
        }
        else
        {
            payload = Reduce(r.Round, exchange.Tag, contributors, result);
        }

        if (payload is not null)
        {
            // One reference per recipient, taken before any send starts; none left: the buffer goes back at once.
            payload.AddReferences(contributors.Count);
            payload.Release();
        }

        var answers = new List<(WorkerSession, RelayResult, SharedPayload?)>(contributors.Count);
        foreach (var e in contributors)
        {
            answers.Add((e.Session, result, payload));
        }

        return answers;
    }

    /// <summary>Reduces an exchange into <paramref name="result"/>; returns the shared payload the result wraps (one reference held), if any.</summary>
    private SharedPayload? Reduce(long round, long tag, List<(WorkerSession Session, RelayContribution? Contribution)> contributions, RelayResult result)
    {
        // Frames the relay cannot decode are refused here; weights and values go through the one reducer
        // (Core's ContributionScreen: weight, non-finite refusal; no norm rules, as before) and its weighted mean.
        var candidates = _candidates;
        candidates.Clear();
        int? length = null;
        foreach (var (s, c) in contributions)
        {
            string? detail = null;
            if (c!.Encoding != UpdateEncoding.Fp32)
            {
                detail = $"encoding {UpdateEncodings.Format(c.Encoding)} is not served by the relay (fp32 only)";
            }
            else if (c.Payload.Length % 4 != 0 || (length is { } n && c.Payload.Length != n * 4))
            {
                detail = $"{c.Payload.Length} bytes";
            }

            if (detail is not null)
            {
                RejectRelay(round, tag, s.Id, "Malformed", detail, result);
                continue;
            }

            var values = DecodeBuffer(candidates.Count, c.Payload.Length / 4);
            NearML.Core.Collectives.Float32Codec.Instance.Decode(c.Payload.Span, values);
            if (double.IsFinite(c.Weight) && c.Weight > 0)
            {
                length ??= values.Length;
            }

            candidates.Add(new NearML.Core.Collectives.ScreenCandidate(s.Id, values, c.Weight));
        }

        if (candidates.Count == 0)
        {
            return null;
        }

        if (length is { } meanLength && _relayMean.Length != meanLength)
        {
            _relayMean = new float[meanLength];
            BuffersAllocated++;
        }

        // No contribution with a valid weight: the reducer refuses them all and writes nothing.
        var mean = length is null ? [] : _relayMean;
        var reduced = NearML.Core.Collectives.ContributionScreen.Reduce(round, candidates, RelayPolicy, mean);
        foreach (var r in reduced.Screen.Rejections)
        {
            RejectRelay(round, tag, r.WorkerId, r.Reason.ToString(), r.Detail, result);
        }

        if (!reduced.HasResult)
        {
            candidates.Clear();
            return null;
        }

        foreach (var a in reduced.Screen.Accepted)
        {
            result.Participants.Add(candidates[a.Index].WorkerId);
        }

        candidates.Clear();
        var payload = SharedPayload.Rent(mean.Length * 4);
        NearML.Core.Collectives.Float32Codec.Instance.Encode(mean, payload.Span);
        result.TotalWeight = reduced.TotalWeight;
        result.Payload = UnsafeByteOperations.UnsafeWrap(payload.Memory);
        return payload;
    }

    /// <summary>The kept decode buffer of the <paramref name="slot"/>-th contribution, exactly <paramref name="length"/> long.</summary>
    private float[] DecodeBuffer(int slot, int length)
    {
        while (_decoded.Count <= slot)
        {
            _decoded.Add([]);
        }

        if (_decoded[slot].Length != length)
        {
            _decoded[slot] = new float[length];
            BuffersAllocated++;
        }

        return _decoded[slot];
    }

    private void RejectRelay(long round, long tag, string workerId, string reason, string detail, RelayResult result)
    {
        LogRelayRejected(logger, round, tag, workerId, reason, detail);
        metrics.UpdateRejected(reason);
        result.Rejections.Add($"{workerId}: {reason}: {detail}");
    }

    /// <summary>
    /// An encoded relay result shared by every recipient's send: a buffer rented from <see cref="ArrayPool{T}.Shared"/>,
    /// returned when the last reference is released (the reducer's own reference, then one per send).
    /// </summary>
    internal sealed class SharedPayload
    {
        private readonly int _length;
        private byte[]? _array;
        private int _references = 1;

        private SharedPayload(byte[] array, int length)
        {
            _array = array;
            _length = length;
        }

        /// <summary>Gets the encoded bytes (valid while a reference is held).</summary>
        public ReadOnlyMemory<byte> Memory => (_array ?? throw new ObjectDisposedException(nameof(SharedPayload))).AsMemory(0, _length);

        /// <summary>Gets the bytes to encode into (the reducer, before the first send).</summary>
        public Span<byte> Span => (_array ?? throw new ObjectDisposedException(nameof(SharedPayload))).AsSpan(0, _length);

        /// <summary>Rents a payload of <paramref name="length"/> bytes with one reference held by the caller.</summary>
        public static SharedPayload Rent(int length) => new(ArrayPool<byte>.Shared.Rent(length), length);

        /// <summary>Takes <paramref name="count"/> more references.</summary>
        public void AddReferences(int count) => Interlocked.Add(ref _references, count);

        /// <summary>Drops a reference; the last returns the buffer to the pool.</summary>
        public void Release()
        {
            var n = Interlocked.Decrement(ref _references);
            if (n == 0 && Interlocked.Exchange(ref _array, null) is { } array)
            {
                ArrayPool<byte>.Shared.Return(array);
            }
            else if (n < 0)
            {
                throw new InvalidOperationException("A relay payload was released more often than it was referenced.");
            }
        }
    }

    private sealed class RelayRound(long round, IReadOnlyList<WorkerSession> cohort)
    {
        public long Round { get; } = round;

        public IReadOnlyList<WorkerSession> Cohort { get; } = cohort;

        public int Completed { get; set; }

        /// <summary>Gets the tags whose exchange has completed this round: a late contribution must not open it again.</summary>
        public HashSet<long> CompletedTags { get; } = [];
    }

    private sealed class RelayExchange(long tag, RelayKind kind)
    {
        public long Tag { get; } = tag;

        public RelayKind Kind { get; set; } = kind;

        public Dictionary<string, (WorkerSession Session, RelayContribution? Contribution)> Entries { get; } = new(StringComparer.Ordinal);
    }
}
