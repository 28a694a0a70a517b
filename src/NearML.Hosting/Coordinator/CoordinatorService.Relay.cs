using System.Buffers.Binary;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using NearML.Core.Contracts;

namespace NearML.Hosting.Coordinator;

/// <summary>
/// DDP and DeMo rounds (coordinator relay): every exchange of the engine's strategy (a weighted mean or an all-gather, tagged by step)
/// is collected from the round's cohort and answered to each contributor. A member that disconnects is dropped from the exchanges;
/// a reduce contribution with NaN/Inf values, a bad weight or a wrong length is rejected with a logged reason. The round still ends
/// with one fp32 <see cref="Update"/> per worker (the change of its parameters), whose mean becomes the new global parameters.
/// </summary>
public sealed partial class CoordinatorService
{
    private readonly Lock _relayLock = new();
    private readonly Dictionary<long, RelayExchange> _relayExchanges = [];
    private RelayRound? _relayRound;

    [LoggerMessage(EventId = 7040, EventName = "RelayContributionRejected", Level = LogLevel.Warning,
        Message = "Round {Round} relay exchange {Tag}: contribution of '{WorkerId}' rejected ({Reason}): {Detail}")]
    private static partial void LogRelayRejected(ILogger logger, long round, long tag, string workerId, string reason, string detail);

    [LoggerMessage(EventId = 7041, EventName = "RelayFrameIgnored", Level = LogLevel.Debug, Message = "Relay frame of '{WorkerId}' for round {Round}, exchange {Tag} ({Kind}) ignored: {Reason}")]
    private static partial void LogRelayIgnored(ILogger logger, string workerId, ulong round, long tag, RelayKind kind, string reason);

    [LoggerMessage(EventId = 7042, EventName = "RelayRoundSummary", Level = LogLevel.Information,
        Message = "Round {Round}: {Exchanges} relay exchanges completed ({Strategy})")]
    private static partial void LogRelaySummary(ILogger logger, long round, int exchanges, string strategy);

    private bool IsRelay => _options.SyncStrategyKind != NearML.Core.Contracts.SyncStrategy.Diloco;

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

        LogRelaySummary(_logger, round, completed, _options.SyncStrategy);
    }

    private void OnRelayContribution(WorkerSession session, RelayContribution c)
    {
        List<(WorkerSession, RelayResult)>? answers = null;
        lock (_relayLock)
        {
            var r = _relayRound;
            if (r is null || c.JobId != _options.JobId || (long)c.Round != r.Round || !r.Cohort.Contains(session))
            {
                LogRelayIgnored(_logger, session.Id, c.Round, c.Tag, c.Kind, "not a relay round of this job that the worker belongs to");
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
                LogRelayIgnored(_logger, session.Id, c.Round, c.Tag, c.Kind, "the kind differs from the exchange's (counted as an abstention)");
                exchange.Entries[session.Id] = (session, null);
            }
            else if (!exchange.Entries.TryAdd(session.Id, (session, c.Kind == RelayKind.Abstain ? null : c)))
            {
                LogRelayIgnored(_logger, session.Id, c.Round, c.Tag, c.Kind, "a second contribution to the exchange");
                return;
            }

            answers = TryCompleteLocked(r, exchange);
        }

        Answer(answers);
    }

    /// <summary>Completes the exchanges whose only missing members have left (called periodically while a relay round runs).</summary>
    private void SweepRelay()
    {
        var all = new List<(WorkerSession, RelayResult)>();
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

    private static void Answer(List<(WorkerSession Session, RelayResult Result)>? answers)
    {
        if (answers is null)
        {
            return;
        }

        foreach (var (s, result) in answers)
        {
            _ = SendAsync(s, result, CancellationToken.None);
        }
    }

    private List<(WorkerSession, RelayResult)>? TryCompleteLocked(RelayRound r, RelayExchange exchange)
    {
        if (r.Cohort.Any(s => !s.IsClosed && !exchange.Entries.ContainsKey(s.Id)))
        {
            return null;
        }

        _relayExchanges.Remove(exchange.Tag);
        r.Completed++;
        var contributors = exchange.Entries.Values
            .Where(e => e.Contribution is not null && !e.Session.IsClosed)
            .OrderBy(e => e.Session.Id, StringComparer.Ordinal)
            .ToList();
        var result = new RelayResult { JobId = _options.JobId, Round = (ulong)r.Round, Tag = exchange.Tag, Kind = exchange.Kind };
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
            Reduce(r.Round, exchange.Tag, contributors, result);
        }

        return [.. contributors.Select(e => (e.Session, result))];
    }

    private void Reduce(long round, long tag, List<(WorkerSession Session, RelayContribution? Contribution)> contributors, RelayResult result)
    {
        var accepted = new List<(string Id, float[] Values, double Weight)>();
        int? length = null;
        foreach (var (s, c) in contributors)
        {
            string? reason = null, detail = null;
            float[]? values = null;
            if (c!.Codec != "fp32")
            {
                (reason, detail) = ("Malformed", $"codec '{c.Codec}' is not served by the relay (fp32 only)");
            }
            else if (!double.IsFinite(c.Weight) || c.Weight <= 0)
            {
                (reason, detail) = ("InvalidWeight", $"weight {c.Weight}");
            }
            else if (c.Payload.Length % 4 != 0 || (length is { } n && c.Payload.Length != n * 4))
            {
                (reason, detail) = ("Malformed", $"{c.Payload.Length} bytes");
            }
            else
            {
                values = new float[c.Payload.Length / 4];
                var span = c.Payload.Span;
                for (var i = 0; i < values.Length; i++)
                {
                    values[i] = BinaryPrimitives.ReadSingleLittleEndian(span[(i * 4)..]);
                    if (!float.IsFinite(values[i]))
                    {
                        (reason, detail) = ("NonFinite", $"value {values[i]} at index {i} of {values.Length}");
                        break;
                    }
                }
            }

            if (reason is not null)
            {
                LogRelayRejected(_logger, round, tag, s.Id, reason, detail!);
                _metrics.UpdateRejected(reason);
                result.Rejections.Add($"{s.Id}: {reason}: {detail}");
                continue;
            }

            length ??= values!.Length;
            accepted.Add((s.Id, values!, c.Weight));
        }

        if (accepted.Count == 0)
        {
            return;
        }

        var total = accepted.Sum(a => a.Weight);
        var mean = new float[length!.Value];
        foreach (var (id, values, weight) in accepted)
        {
            System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(values, (float)(weight / total), mean, mean);
            result.Participants.Add(id);
        }

        var bytes = new byte[mean.Length * 4];
        for (var i = 0; i < mean.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), mean[i]);
        }

        result.TotalWeight = total;
        result.Payload = UnsafeByteOperations.UnsafeWrap(bytes);
    }

    private sealed class RelayRound(long round, IReadOnlyList<WorkerSession> cohort)
    {
        public long Round { get; } = round;

        public IReadOnlyList<WorkerSession> Cohort { get; } = cohort;

        public int Completed { get; set; }
    }

    private sealed class RelayExchange(long tag, RelayKind kind)
    {
        public long Tag { get; } = tag;

        public RelayKind Kind { get; set; } = kind;

        public Dictionary<string, (WorkerSession Session, RelayContribution? Contribution)> Entries { get; } = new(StringComparer.Ordinal);
    }
}
