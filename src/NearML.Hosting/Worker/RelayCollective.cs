using Google.Protobuf;
using NearML.Core.Collectives;
using NearML.Core.Contracts;
using NearML.Core.Protocol;
using NearML.Hosting.Jobs;

namespace NearML.Hosting.Worker;

/// <summary>
/// The worker's <see cref="ICollective"/> for DDP and DeMo rounds: every exchange is one <see cref="RelayContribution"/> to the
/// coordinator, which answers with the <see cref="RelayResult"/> computed over the round's cohort (star topology). Only the round's
/// training loop reads from the connection while it runs, so the collective reads the answer itself; heartbeats are skipped and any
/// other frame ends the round (it is handed back to the session through <paramref name="defer"/>).
/// </summary>
/// <param name="workerId">This worker's id.</param>
/// <param name="jobId">The job.</param>
/// <param name="round">The job round the exchanges belong to.</param>
/// <param name="send">Sends a frame to the coordinator.</param>
/// <param name="receive">Receives the next frame (bounded by the session's idle timeout).</param>
/// <param name="defer">Hands a frame that is not part of the relay back to the session.</param>
internal sealed class RelayCollective(
    string workerId, string jobId, ulong round,
    Func<IMessage, CancellationToken, ValueTask> send,
    Func<CancellationToken, Task<IMessage?>> receive,
    Action<IMessage> defer) : ICollective
{
    private readonly CollectiveStatistics _statistics = new();

    /// <inheritdoc/>
    public string WorkerId => workerId;

    /// <inheritdoc/>
    public CollectiveStatistics Statistics => _statistics;

    /// <inheritdoc/>
    public async ValueTask<ReduceResult> AllReduceMeanAsync(long round1, ReadOnlyMemory<float> values, double weight, IPayloadCodec codec,
        Memory<float> result, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(codec);
        if (!UpdateEncodings.TryFromCodec(codec, out var encoding))
        {
            throw new ArgumentException($"codec '{codec.Name}' is not a wire encoding ({string.Join(", ", UpdateEncodings.Names)}).", nameof(codec));
        }

        var payload = new byte[codec.GetEncodedLength(values.Length)];
        codec.Encode(values.Span, payload);
        await send(new RelayContribution
        {
            JobId = jobId, Round = round, Tag = round1, Kind = RelayKind.Reduce, Weight = weight, Encoding = encoding,
            Payload = UnsafeByteOperations.UnsafeWrap(payload),
        }, cancellationToken).ConfigureAwait(false);
        var answer = await WaitAsync(round1, RelayKind.Reduce, cancellationToken).ConfigureAwait(false);
        _statistics.Record(payload.Length, answer.Payload.Length, answer.Rejections.Count > 0);
        if (answer.Participants.Count > 0)
        {
            if (answer.Payload.Length != codec.GetEncodedLength(result.Length))
            {
                throw new ProtocolException(ErrorCode.MalformedFrame,
                    $"relay result {round}/{round1}: {answer.Payload.Length} bytes, expected {codec.GetEncodedLength(result.Length)} ({codec.Name})");
            }

            codec.Decode(answer.Payload.Span, result.Span);
        }

        var rejections = answer.Rejections.Select(r => new ContributionRejection(r, round1, RejectionReason.Malformed, r)).ToList();
        return new ReduceResult(round1, [.. answer.Participants], answer.TotalWeight, rejections, payload.Length, answer.Payload.Length);
    }

    /// <inheritdoc/>
    public async ValueTask<GatherResult> AllGatherAsync(long round1, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        await send(new RelayContribution
        {
            JobId = jobId, Round = round, Tag = round1, Kind = RelayKind.Gather, Payload = ByteString.CopyFrom(payload.Span),
        }, cancellationToken).ConfigureAwait(false);
        var answer = await WaitAsync(round1, RelayKind.Gather, cancellationToken).ConfigureAwait(false);
        if (answer.Payloads.Count != answer.Participants.Count)
        {
            throw new ProtocolException(ErrorCode.MalformedFrame,
                $"relay result {round}/{round1}: {answer.Payloads.Count} payloads for {answer.Participants.Count} participants");
        }

        var gathered = new List<GatheredPayload>(answer.Participants.Count);
        long received = 0;
        for (var i = 0; i < answer.Participants.Count; i++)
        {
            gathered.Add(new GatheredPayload(answer.Participants[i], answer.Payloads[i].Memory));
            if (answer.Participants[i] != workerId)
            {
                received += answer.Payloads[i].Length;
            }
        }

        _statistics.Record(payload.Length, received);
        return new GatherResult(round1, gathered, payload.Length, received);
    }

    /// <inheritdoc/>
    public ValueTask AbstainAsync(long round1, CancellationToken cancellationToken = default) =>
        send(new RelayContribution { JobId = jobId, Round = round, Tag = round1, Kind = RelayKind.Abstain }, cancellationToken);

    /// <inheritdoc/>
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private async Task<RelayResult> WaitAsync(long tag, RelayKind kind, CancellationToken cancellationToken)
    {
        while (true)
        {
            var message = await receive(cancellationToken).ConfigureAwait(false);
            switch (message)
            {
                case Heartbeat:
                    continue;
                case RelayResult r when r.JobId == jobId && r.Round == round && r.Tag == tag && r.Kind == kind:
                    return r;
                case RelayResult:
                    // A late answer of an exchange this worker no longer waits for.
                    continue;
                case null:
                    throw new ProtocolException(ErrorCode.ConnectionClosed, "the coordinator closed the connection during a relay exchange");
                default:
                    defer(message);
                    throw new RelayAbortedException($"relay exchange {round}/{tag} ended by {message.Descriptor.Name} from the coordinator");
            }
        }
    }
}

/// <summary>The coordinator moved on (next assignment, goodbye, error) while this worker waited for a relay result.</summary>
internal sealed class RelayAbortedException(string message) : Exception(message);
