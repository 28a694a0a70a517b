using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using Google.Protobuf;
using NearML.Aggregation;
using NearML.Core;
using NearML.Core.Contracts;
using NearML.Core.Contracts.Aggregation;
using NearML.Training.Modules;

namespace NearML.Hosting.Coordinator;

/// <summary>Secure rounds: the cohort runs NearML.Aggregation's SecAgg+ over <c>AggregationEnvelope</c> frames.</summary>
public sealed partial class CoordinatorService
{
    private volatile SecureRound? _secure;

    /// <summary>The fixed-point encoding every member of a secure round uses (see docs/hosting.md).</summary>
    internal static FixedPointEncoder CreateEncoder(NearMLCoordinatorOptions o, int clients) =>
        new(o.SecureClipRange, o.SecureValueBits, clients, maxWeight: o.InnerSteps);

    private void OnEnvelope(WorkerSession session, AggregationEnvelope envelope)
    {
        var secure = _secure;
        if (secure is null || (long)envelope.Round != secure.Round || envelope.JobId != _options.JobId || !secure.Index.TryGetValue(session, out var id))
        {
            CoordinatorLog.Ignored(_logger, session.Id, $"an aggregation envelope for round {envelope.Round} outside a secure round it belongs to");
            return;
        }

        ClientMessage message;
        try
        {
            message = AggregationRound.ParseClientMessage(envelope.Payload.Span);
        }
        catch (InvalidDataFormatException ex)
        {
            CoordinatorLog.Ignored(_logger, session.Id, $"a malformed aggregation message: {ex.Message}");
            return;
        }

        if (message.Sender != id || message.JobId != _options.JobId || (long)message.Round != secure.Round)
        {
            CoordinatorLog.Ignored(_logger, session.Id, $"an aggregation message claiming sender {message.Sender} (its id is {id}) or another round/job");
            return;
        }

        secure.Inbox.Enqueue((id, message, envelope.Payload.ToByteArray()));
    }

    private async Task<RoundOutcome> RunSecureRoundAsync(long round, long version, List<WorkerSession> cohort, NearML.Training.Engines.ITrainableModel model, NearML.Training.Sync.NesterovOuterOptimizer outer, long started, long startedMs, DateTimeOffset deadline, CancellationToken ct)
    {
        var o = _options;
        var n = cohort.Count;
        var parameterCount = model.Parameters.Length;
        var encoder = CreateEncoder(o, n);
        // The active (malicious-server) variant: every worker signs its keys and its survivor view with the ed25519 key it
        // proved in the handshake, and checks every roster entry and view against these keys (docs/secure-aggregation.md).
        var identityKeys = cohort.Select(s => s.Admitted.PublicKey.ToArray()).ToArray();
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
            CoordinatorLog.SecureRoundFailed(_logger, round, $"no secure configuration for this cohort: {ex.Message}");
            CoordinatorLog.EmptyRound(_logger, round, version);
            return new RoundOutcome(version, n, [], n, double.NaN, 0, startedMs, _time.GetElapsedTime(started));
        }

        using var aggregateSpan = NearMLTracing.Start(NearMLTracing.Aggregate); // the whole SecAgg(+) exchange
        var server = new SecureAggregationServer(config);
        var secure = new SecureRound(round, cohort);
        _secure = secure;
        try
        {
            var published = _published!;
            var assignment = _dataset!.Assign(cohort.Select(s => s.Id).ToList());
            var configText = Convert.ToBase64String(config.ToByteArray());
            var sends = new List<Task>(n);
            for (var i = 0; i < n; i++)
            {
                var s = cohort[i];
                _ = s.BeginRound(round, version, _time.GetTimestamp());
                var h = HyperParameters(secure: true);
                h.Extra["secagg_client_id"] = i.ToString(CultureInfo.InvariantCulture);
                h.Extra["secagg_config"] = configText;
                h.Extra["secagg_clip"] = o.SecureClipRange.ToString("R", CultureInfo.InvariantCulture);
                h.Extra["secagg_value_bits"] = o.SecureValueBits.ToString(CultureInfo.InvariantCulture);
                h.Extra["secagg_max_weight"] = o.InnerSteps.ToString(CultureInfo.InvariantCulture);
                var job = new JobAssignment
                {
                    JobId = o.JobId,
                    Round = (ulong)round,
                    ParameterVersion = (ulong)version,
                    ParameterRoot = ByteString.CopyFrom(published.Manifest.Root),
                    Model = _modelConfig,
                    HyperParameters = h,
                    DeadlineUnixMs = deadline.ToUnixTimeMilliseconds(),
                };
                job.ShardIds.AddRange(assignment.ShardsOf(s.Id).Select(x => (uint)x));
                _job!.Stamp(job);
                sends.Add(SendAsync(s, job, ct));
                _status.SetWorker(s.Info());
            }

            await Task.WhenAll(sends).ConfigureAwait(false);
            var expected = Enumerable.Range(0, n).Select(i => (uint)i).ToHashSet();
            var phaseTimeout = TimeSpan.FromTicks(Math.Min(TimeSpan.FromSeconds(30).Ticks, o.RoundTimeout.Ticks / 4));
            var phaseDeadline = deadline;
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
                                masked[item.Id] = (SHA256.HashData(item.Raw), item.Raw.Length, (long)_time.GetElapsedTime(started).TotalMilliseconds);
                            }
                        }
                        catch (AggregationProtocolException ex)
                        {
                            Reject(round, cohort[(int)item.Id], "AggregationProtocol", ex.Message);
                        }
                    }

                    var pending = expected.Where(i => !received.Contains(i) && !cohort[(int)i].IsClosed).ToList();
                    if (pending.Count == 0 || _time.GetUtcNow() >= phaseDeadline)
                    {
                        break;
                    }

                    await Task.Delay(TimeSpan.FromMilliseconds(20), _time, ct).ConfigureAwait(false);
                }

                IReadOnlyList<ServerMessage> next;
                try
                {
                    next = server.Advance();
                }
                catch (AggregationFailedException ex)
                {
                    CoordinatorLog.SecureRoundFailed(_logger, round, ex.Message);
                    break;
                }

                if (server.Phase == AggregationPhase.Completed)
                {
                    result = server.Finish();
                    break;
                }

                expected = next.Select(m => m.Recipient).ToHashSet();
                var deliveries = next.Select(m => SendAsync(
                    cohort[(int)m.Recipient],
                    new AggregationEnvelope { JobId = o.JobId, Round = (ulong)round, Payload = m.ToByteString(), PartIndex = 0, PartCount = 1 },
                    ct)).ToList();
                await Task.WhenAll(deliveries).ConfigureAwait(false);
                phaseDeadline = _time.GetUtcNow() + phaseTimeout;
            }

            var accepted = new List<(WorkerSession Session, SubmittedUpdate Update)>();
            double meanLoss = double.NaN;
            long bytes = 0;
            if (result is not null)
            {
                var mean = new float[parameterCount];
                var totalWeight = encoder.DecodeMean(result.Sum, mean);
                var meanSet = model.Parameters.CreateZeros();
                mean.CopyTo(meanSet.Data);
                outer.Step(model.Parameters, meanSet);
                version++;
                Publish(model.Parameters, version);
                foreach (var id in result.Contributors)
                {
                    var m = masked.TryGetValue(id, out var v) ? v : (new byte[32], 0L, 0L);
                    bytes += m.Item2;
                    // Individual weights stay hidden: each contributor is credited with its assigned work (H × batch samples).
                    accepted.Add((cohort[(int)id], new SubmittedUpdate(null, (ulong)o.InnerSteps * (ulong)o.BatchSize, float.NaN, m.Item1, m.Item2, m.Item3, null, null)));
                    _metrics.UpdateAccepted();
                }

                CoordinatorLog.SecureRoundCompleted(_logger, round, result.Contributors.Count, n, totalWeight);
            }
            else
            {
                CoordinatorLog.EmptyRound(_logger, round, version);
            }

            return new RoundOutcome(version, n, accepted, n - accepted.Count, meanLoss, bytes, startedMs, _time.GetElapsedTime(started));
        }
        finally
        {
            _secure = null;
        }
    }

    private sealed class SecureRound(long round, List<WorkerSession> cohort)
    {
        public long Round { get; } = round;

        public Dictionary<WorkerSession, uint> Index { get; } = cohort.Select((s, i) => (s, (uint)i)).ToDictionary(x => x.s, x => x.Item2);

        public ConcurrentQueue<(uint Id, ClientMessage Message, byte[] Raw)> Inbox { get; } = new();
    }
}
