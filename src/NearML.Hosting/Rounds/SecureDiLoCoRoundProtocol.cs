using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using NearML.Aggregation;
using NearML.Core;
using NearML.Core.Contracts;
using NearML.Core.Contracts.Aggregation;
using NearML.Hosting.Coordinator;
using NearML.Hosting.Jobs;

namespace NearML.Hosting.Rounds;

/// <summary>
/// Secure DiLoCo rounds: the cohort runs NearML.Aggregation's SecAgg+ (SecAgg on the complete graph for small cohorts)
/// over <c>AggregationEnvelope</c> frames, so the coordinator learns only the fixed-point sum of the weighted
/// pseudo-gradients. The decoded mean goes to the job's <see cref="NearML.Training.Sync.NesterovOuterOptimizer"/>, as in
/// plain rounds. Individual weights stay hidden: each contributor is credited with its assigned work (H × batch samples).
/// </summary>
internal sealed class SecureDiLoCoRoundProtocol(NearMLCoordinatorOptions options, ILogger logger) : IRoundProtocol
{
    private volatile SecureRound? _secure;
    private ParameterSet? _mean;

    /// <summary>Gets how many mean buffers were allocated (tests: one for a job, however many rounds).</summary>
    internal int MeanBuffersAllocated { get; private set; }

    public string Name => "secure-diloco";

    /// <summary>SecAgg needs at least three members (two could unmask each other).</summary>
    public int MinimumCohort => 3;

    public UpdateEncoding UpdateEncoding => UpdateEncodings.Parse(options.UpdateEncoding);

    /// <summary>The fixed-point encoding every member of a secure round uses (see docs/hosting.md).</summary>
    internal static FixedPointEncoder CreateEncoder(NearMLCoordinatorOptions o, int clients) =>
        new(o.SecureClipRange, o.SecureValueBits, clients, maxWeight: o.InnerSteps);

    public bool OnMessage(RoundParticipant from, IMessage message)
    {
        if (message is not AggregationEnvelope envelope)
        {
            return false;
        }

        var secure = _secure;
        if (secure is null || (long)envelope.Round != secure.Round || envelope.JobId != options.JobId || !secure.Index.TryGetValue(from, out var id))
        {
            CoordinatorLog.Ignored(logger, from.Id, $"an aggregation envelope for round {envelope.Round} outside a secure round it belongs to");
            return true;
        }

        ClientMessage parsed;
        try
        {
            parsed = AggregationRound.ParseClientMessage(envelope.Payload.Span);
        }
        catch (InvalidDataFormatException ex)
        {
            CoordinatorLog.Ignored(logger, from.Id, $"a malformed aggregation message: {ex.Message}");
            return true;
        }

        if (parsed.Sender != id || parsed.JobId != options.JobId || (long)parsed.Round != secure.Round)
        {
            CoordinatorLog.Ignored(logger, from.Id, $"an aggregation message claiming sender {parsed.Sender} (its id is {id}) or another round/job");
            return true;
        }

        secure.Inbox.Enqueue((id, parsed, envelope.Payload.ToByteArray()));
        return true;
    }

    public async Task<RoundResult> RunAsync(RoundContext context, CancellationToken cancellationToken)
    {
        var o = options;
        var ct = cancellationToken;
        var round = context.Round;
        var cohort = context.Cohort;
        var time = context.Time;
        var n = cohort.Count;
        var parameterCount = context.Parameters.Length;
        var encoder = CreateEncoder(o, n);

        // The active (malicious-server) variant: every worker signs its keys and its survivor view with the ed25519 key it
        // proved in the handshake, and checks every roster entry and view against these keys (docs/secure-aggregation.md).
        var identityKeys = cohort.Select(s => s.IdentityKey.ToArray()).ToArray();
        AggregationConfig config;
        try
        {
            try
            {
                // Plan for at least one dropout: the finder counts ⌊δ·n⌋ dropouts, which is 0 for cohorts under 20 at δ = 0.05 and
                // would give a graph that cannot survive a single worker leaving mid-round.
                var dropoutFraction = Math.Max(0.05, 1.0 / n);
                config = AggregationRound.CreateConfig(o.JobId, (ulong)round, AggregationProtocol.SecaggPlus, n, FixedPointEncoder.EncodedLength(parameterCount), encoder.RingBits,
                    corruptFraction: 0.05, dropoutFraction: dropoutFraction, identityKeys: identityKeys);
            }
            catch (ArgumentException)
            {
                // Cohorts too small for a sparse SecAgg+ graph run SecAgg on the complete graph (same messages).
                config = AggregationRound.CreateConfig(o.JobId, (ulong)round, AggregationProtocol.Secagg, n, FixedPointEncoder.EncodedLength(parameterCount), encoder.RingBits,
                    corruptFraction: 0.05, identityKeys: identityKeys);
            }
        }
        catch (ArgumentException ex)
        {
            // E.g. two admitted workers presenting the same identity key: no signed round can tell them apart.
            CoordinatorLog.SecureRoundFailed(logger, round, $"no secure configuration for this cohort: {ex.Message}");
            return RoundResult.Empty(n);
        }

        using var aggregateSpan = NearMLTracing.Start(NearMLTracing.Aggregate); // the whole SecAgg(+) exchange
        var server = new SecureAggregationServer(config);
        var secure = new SecureRound(round, cohort);
        _secure = secure;
        try
        {
            var sends = new List<Task>(n);
            for (var i = 0; i < n; i++)
            {
                var clientId = i;
                sends.Add(context.AssignAsync(cohort[i], h =>
                {
                    h.SecureAggregation = new SecureAggregationSettings
                    {
                        ClientId = (uint)clientId,
                        Config = config,
                        ClipRange = o.SecureClipRange,
                        ValueBits = (uint)o.SecureValueBits,
                        MaxWeight = (uint)o.InnerSteps,
                    };
                }, ct));
            }

            await Task.WhenAll(sends).ConfigureAwait(false);
            var expected = Enumerable.Range(0, n).Select(i => (uint)i).ToHashSet();
            var phaseTimeout = TimeSpan.FromTicks(Math.Min(TimeSpan.FromSeconds(30).Ticks, o.RoundTimeout.Ticks / 4));
            var phaseDeadline = context.Deadline;
            var masked = new Dictionary<uint, (byte[] Hash, long Bytes, long Ms)>();
            AggregationResult? result = null;
            while (true)
            {
                var received = new HashSet<uint>();
                while (true)
                {
                    while (secure.Inbox.TryDequeue(out var item))
                    {
                        if (!expected.Contains(item.Id) || !received.Add(item.Id))
                        {
                            continue;
                        }

                        try
                        {
                            server.Receive(item.Message);
                            if (item.Message.BodyCase == ClientMessage.BodyOneofCase.MaskedInput)
                            {
                                masked[item.Id] = (SHA256.HashData(item.Raw), item.Raw.Length, (long)time.GetElapsedTime(context.StartedTimestamp).TotalMilliseconds);
                            }
                        }
                        catch (AggregationProtocolException ex)
                        {
                            context.Reject(cohort[(int)item.Id], "AggregationProtocol", ex.Message);
                        }
                    }

                    var pending = expected.Where(i => !received.Contains(i) && !cohort[(int)i].IsClosed).ToList();
                    if (pending.Count == 0 || time.GetUtcNow() >= phaseDeadline)
                    {
                        break;
                    }

                    await Task.Delay(TimeSpan.FromMilliseconds(20), time, ct).ConfigureAwait(false);
                }

                IReadOnlyList<ServerMessage> next;
                try
                {
                    next = server.Advance();
                }
                catch (AggregationFailedException ex)
                {
                    CoordinatorLog.SecureRoundFailed(logger, round, ex.Message);
                    break;
                }

                if (server.Phase == AggregationPhase.Completed)
                {
                    result = server.Finish();
                    break;
                }

                expected = next.Select(m => m.Recipient).ToHashSet();
                var deliveries = next.Select(m => cohort[(int)m.Recipient].SendAsync(
                    new AggregationEnvelope { JobId = o.JobId, Round = (ulong)round, Payload = m.ToByteString(), PartIndex = 0, PartCount = 1 },
                    ct)).ToList();
                await Task.WhenAll(deliveries).ConfigureAwait(false);
                phaseDeadline = time.GetUtcNow() + phaseTimeout;
            }

            if (result is null)
            {
                return RoundResult.Empty(n);
            }

            // The fixed-point sum is exact; its decoded mean takes the same outer step as plain rounds.
            // Decoded into the protocol's kept mean buffer (DecodeMean overwrites it whole): no parameter-sized buffer per round.
            var kept = _mean;
            var mean = UpdateReduction.KeptBuffer(ref _mean, context.Parameters);
            if (!ReferenceEquals(kept, mean))
            {
                MeanBuffersAllocated++;
            }

            var totalWeight = encoder.DecodeMean(result.Sum, mean.Data);
            context.OuterOptimizer.Step(context.Parameters, mean);
            var accepted = new List<RoundContribution>();
            long bytes = 0;
            foreach (var id in result.Contributors)
            {
                var m = masked.TryGetValue(id, out var v) ? v : (new byte[32], 0L, 0L);
                bytes += m.Item2;

                // Individual weights stay hidden: each contributor is credited with its assigned work (H × batch samples).
                accepted.Add(new RoundContribution(cohort[(int)id], new SubmittedUpdate(null, (ulong)o.InnerSteps * (ulong)o.BatchSize, float.NaN, m.Item1, m.Item2, m.Item3, null, null)));
            }

            CoordinatorLog.SecureRoundCompleted(logger, round, result.Contributors.Count, n, totalWeight);
            return new RoundResult(true, accepted, n - accepted.Count, double.NaN, bytes);
        }
        finally
        {
            _secure = null;
        }
    }

    private sealed class SecureRound(long round, IReadOnlyList<RoundParticipant> cohort)
    {
        public long Round { get; } = round;

        public Dictionary<RoundParticipant, uint> Index { get; } = cohort.Select((s, i) => (s, (uint)i)).ToDictionary(x => x.s, x => x.Item2);

        public ConcurrentQueue<(uint Id, ClientMessage Message, byte[] Raw)> Inbox { get; } = new();
    }
}
