using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Google.Protobuf;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NearML.Core;
using NearML.Core.Contracts;
using NearML.Core.Protocol;
using NearML.Hosting.Jobs;
using NearML.Hosting.Rounds;
using NearML.Hosting.Settlement;
using NearML.Training.Engines;
using NearML.Hosting.State;
using NearML.Ledger;
using NearML.Training;
using NearML.Training.Data;
using NearML.Training.Modules;
using NearML.Training.Sync;

namespace NearML.Hosting.Coordinator;

/// <summary>
/// The coordinator: listens for workers over TLS, admits them by attestation policy, and runs DiLoCo rounds with a cohort
/// of whoever is connected (docs/protocol.md, "Rounds"): assignment, parameter download, updates until the round's
/// deadline, rejection of non-finite and outlier updates, sample-weighted mean, outer Nesterov step, round record,
/// background checkpoint, one signed ledger receipt per accepted update, and settlement per epoch (dry run by default).
/// It resumes from the last checkpoint after a restart and stops gracefully (Goodbye to every worker, final checkpoint).
/// </summary>
public sealed partial class CoordinatorService : BackgroundService
{
    private const int EvaluationBatch = 500;
    private static readonly TimeSpan SendTimeout = TimeSpan.FromSeconds(30);

    private static readonly TimeSpan RelaySweepInterval = TimeSpan.FromMilliseconds(100);
    private readonly NearMLCoordinatorOptions _options;
    private readonly CoordinatorStatus _status;
    private readonly NearMLMetrics _metrics;
    private readonly ILogger<CoordinatorService> _logger;
    private readonly TimeProvider _time;
    private readonly AttestationAdmissionPolicy _attestation;
    private readonly ConcurrentDictionary<string, WorkerSession> _sessions = new(StringComparer.Ordinal);
    private readonly Dictionary<(long Round, string Account), long> _credited = [];
    private readonly ConcurrentDictionary<string, long> _receiptCounts = new(StringComparer.Ordinal);
    private readonly RefusalLogLimiter _refusals;
    private readonly IRoundProtocol _protocol;
    private readonly PublishedParameters _published = new();
    private volatile bool _stopping;
    private long _currentRound;
    private readonly JobRegistry _registry;
    private readonly ICoordinatorStateBackend _stateBackend;
    private readonly SettlementService _settlement;
    private readonly SettlementService? _ownSettlement;
    private JobDataset? _dataset;
    private ModelConfig? _modelConfig;
    private CoordinatorJob? _job;

    /// <summary>Initializes the service (use <c>AddNearMLCoordinator</c>).</summary>
    /// <param name="options">The validated options.</param>
    /// <param name="status">The live status.</param>
    /// <param name="metrics">The metrics.</param>
    /// <param name="attestation">The admission policy.</param>
    /// <param name="logger">The logger.</param>
    /// <param name="timeProvider">The clock.</param>
    /// <param name="registry">The models and datasets jobs can name (<see langword="null"/>: the built-ins only).</param>
    /// <param name="stateBackend">Where the state, ledger and settlement stores are kept (<see langword="null"/>: SQLite files in <see cref="NearMLCoordinatorOptions.DataDirectory"/>).</param>
    /// <param name="roundProtocol">The protocol every round runs (<see langword="null"/>: the built-in one the options ask for —
    /// plain DiLoCo, secure DiLoCo or the DDP/DeMo relay).</param>
    /// <param name="settlement">Settles each closed epoch (<see langword="null"/>: a component of its own, without pooled HTTP clients).</param>
    public CoordinatorService(
        IOptions<NearMLCoordinatorOptions> options,
        CoordinatorStatus status,
        NearMLMetrics metrics,
        AttestationAdmissionPolicy attestation,
        ILogger<CoordinatorService> logger,
        TimeProvider timeProvider,
        JobRegistry? registry = null,
        ICoordinatorStateBackend? stateBackend = null,
        IRoundProtocol? roundProtocol = null,
        SettlementService? settlement = null)
    {
        _registry = registry ?? JobRegistry.BuiltIn;
        _stateBackend = stateBackend ?? SqliteStateBackend.Instance;
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _status = status ?? throw new ArgumentNullException(nameof(status));
        _metrics = metrics ?? throw new ArgumentNullException(nameof(metrics));
        _attestation = attestation ?? throw new ArgumentNullException(nameof(attestation));
        _logger = logger ?? throw new ArgumentNullException(nameof(logger));
        _time = timeProvider ?? throw new ArgumentNullException(nameof(timeProvider));
        _refusals = new RefusalLogLimiter(_logger, _time, _options.RefusalLogInterval, _options.RefusalLogBurst);
        _protocol = roundProtocol ?? RoundProtocols.ForOptions(_options, _logger, _metrics);
        _settlement = settlement ?? (_ownSettlement = new SettlementService(options, status, timeProvider: timeProvider, stateBackend: _stateBackend));
    }

    /// <inheritdoc/>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await RunAsync(stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (OperationCanceledException ex) when (LeaseLost)
        {
            CoordinatorLog.LeaseLost(_logger, _options.JobId, _leaseDescription);
            var lost = new CoordinatorStateException(StateProblem.Storage, _leaseDescription, $"the coordinator lost its lease ({_leaseDescription}): another coordinator may serve the job now, so this one stopped", ex);
            _status.SetFailed(lost);
            throw lost;
        }
        catch (Exception ex)
        {
            CoordinatorLog.Failed(_logger, ex);
            _status.SetFailed(ex);
            throw;
        }
    }

    private async Task RunAsync(CancellationToken ct)
    {
        var o = _options;
        var data = Directory.CreateDirectory(o.DataDirectory).FullName;
        using var job = await Task.Run(() => CoordinatorJob.Load(o, _registry), ct).ConfigureAwait(false);
        _job = job;
        var dataset = job.Dataset;
        _dataset = dataset;
        var model = job.Model;
        var modelConfig = job.ModelConfig;
        _modelConfig = modelConfig;
        var layout = model.Layout;
        var normBound = o.MaxUpdateNorm ?? DefaultMaxUpdateNorm(o.InnerSteps, o.InnerLearningRate, model.Parameters.Length);
        CoordinatorLog.UpdateScreen(_logger, normBound, o.MaxUpdateNorm is null ? "derived: InnerSteps × InnerLearningRate × √parameters" : "MaxUpdateNorm", o.MaxUpdateNormToMedianRatio ?? double.NaN, UpdateReduction.NormHistory);
        CoordinatorLog.JobLoaded(_logger, o.JobId, modelConfig.Architecture, model.Parameters.Length, dataset.Manifest.Name, dataset.ShardCount, dataset.ManifestRootHex, o.Rounds, o.InnerSteps);
        if (o.DeprecatedCompression is { } compression)
        {
            CoordinatorLog.DeprecatedOption(_logger, "Compression", nameof(o.UpdateEncoding), "--encoding", compression);
        }

        if (o.CountsUnattestedWork)
        {
            CoordinatorLog.InsecureAdmission(_logger, o.SimulatedAttestationAccepted, o.AllowUnattestedWorkers);
        }

        // Shared state (PostgreSQL): wait as standby until this process holds the lease; then load it exactly like a restart.
        using var lease = await AcquireLeaseAsync(data, ct).ConfigureAwait(false);
        _leaseDescription = lease.Description;
        using var lost = lease.Lost.Register(() => _leaseLost = true);
        using var serving = CancellationTokenSource.CreateLinkedTokenSource(ct, lease.Lost);
        ct = serving.Token;

        // Cross-checks coordinator.db, ledger.db, checkpoints, settlements and ledger-signer.key, or refuses to start.
        using var folder = CoordinatorStateFolder.Open(data, _stateBackend, o.JobId, _logger, ct);
        var state = folder.State;
        var ledger = folder.Ledger;
        var signer = folder.Signer;
        state.EnsureJob(o.JobId, modelConfig.Architecture, modelConfig.ConfigJson, dataset.ManifestRootHex, Describe(o), NowMs());
        var outer = new NesterovOuterOptimizer(layout, o.OuterLearningRate, o.OuterMomentum, nesterov: true);
        long nextRound = 0;
        long version = 0;
        var checkpoint = CheckpointStore.LoadLatest(state, layout);
        if (checkpoint is not null)
        {
            model.Parameters.CopyFrom(checkpoint.Parameters);
            outer.MomentumBuffer.CopyFrom(checkpoint.Momentum);
            nextRound = checkpoint.Round + 1;
            version = checkpoint.ParameterVersion;
            if (_logger.IsEnabled(LogLevel.Information))
            {
                var resumedFrom = state.LatestCheckpoint()?.Path ?? CheckpointStore.FileName(checkpoint.Round);
                CoordinatorLog.Resumed(_logger, o.JobId, checkpoint.Round, version, resumedFrom);
            }

        }

        LoadCredited(ledger, o.JobId);
        UpdateLedgerStatus(ledger);
        var settlements = state.ReadSettlements();
        foreach (var s in settlements)
        {
            _status.AddSettlement(s.Epoch, s.Hash, s.Receiver, UInt128.TryParse(s.Amount, CultureInfo.InvariantCulture, out var amount) ? amount : 0, s.DryRun);
        }

        var settledEpochs = settlements.Select(s => s.Epoch).ToHashSet();

        using var certificate = LoadCertificate(data);
        var fingerprint = CoordinatorCertificate.GetFingerprint(certificate);
        var handshake = new CoordinatorHandshakeOptions
        {
            Policy = new SessionAdmission(this, state),
            EvidenceRequired = _attestation.EvidenceRequired,
            HeartbeatInterval = o.HeartbeatInterval,
            HeartbeatTimeout = o.HeartbeatInterval * 3,
            Timeout = o.HandshakeTimeout,
            Job = job.Spec.ToDescriptor(),
            NonceSource = _attestation.Verifier.IssueNonce,
        };
        foreach (var f in _attestation.AcceptedFormats)
        {
            handshake.AcceptedEvidenceFormats.Add(f);
        }

        Publish(model.Parameters, version);
        _currentRound = nextRound;
        _status.SetRound(nextRound, version);
        var listenerOptions = new ProtocolListenerOptions
        {
            // One block pool for every worker's uploads and downloads: rounds then reuse the same buffers instead of allocating them.
            Connection = new FrameConnectionOptions
            {
                MaxFrameSize = o.MaxFrameSize,
                SendBufferLimit = Math.Max(4 << 20, o.MaxFrameSize),
                ReceiveBufferLimit = Math.Max(4 << 20, o.MaxFrameSize),
                BufferPool = new FrameBufferPool(maxRetainedBytes: Math.Min(1L << 30, o.MaxWorkers * (8L << 20))),
            },
            TlsHandshakeTimeout = o.HandshakeTimeout,
            // Admitted workers first: they have MaxWorkers × 2 slots (a reconnecting worker briefly holds two); clients still
            // in their handshake have a separate, small budget, per address too, so a flood cannot take a joining worker's slot.
            MaxConnections = (o.MaxWorkers * 2) + o.MaxPendingHandshakes,
            MaxPendingHandshakes = o.MaxPendingHandshakes,
            MaxPendingHandshakesPerAddress = o.MaxPendingHandshakesPerAddress,
            HandshakeRatePerAddress = o.HandshakeRatePerAddress,
            HandshakeBurstPerAddress = o.HandshakeBurstPerAddress,
            TimeProvider = _time,
            ConnectionFaulted = OnConnectionFaulted,
        };
        var listener = new ProtocolListener(
            new IPEndPoint(IPAddress.Parse(o.ListenAddress), o.Port),
            certificate,
            (connection, token) => ServeAsync(connection, handshake, state, token),
            listenerOptions);
        await using (listener.ConfigureAwait(false))
        {
            var checkpoints = new CheckpointStore(Path.Combine(data, CheckpointStore.FolderName), state, o.JobId, o.CheckpointsToKeep, _time, ex => CoordinatorLog.CheckpointFailed(_logger, ex));
            await using (checkpoints.ConfigureAwait(false))
            {
                listener.Start();
                if (_logger.IsEnabled(LogLevel.Information))
                {
                    var endPoint = listener.LocalEndPoint.ToString();
                    CoordinatorLog.Listening(_logger, o.JobId, endPoint, fingerprint);
                }

                _status.SetListening(o.JobId, listener.LocalEndPoint.Port, fingerprint, model.Parameters.Length);
                var momentumCopies = new ConcurrentBag<ParameterSet>();
                var lastCompleted = nextRound - 1;
                var lastCheckpointed = nextRound - 1;
                try
                {
                    // An epoch whose last round was recorded but not settled — the coordinator died in between (a crash, or
                    // a failover to a standby) — is settled now, before the next round opens a later epoch.
                    var openEpoch = nextRound >= o.Rounds ? long.MaxValue : Math.Max(nextRound / o.SettleEveryRounds, ledger.Head.LastEpoch);
                    foreach (var missed in ledger.Store.ListEpochs().Where(e => e < openEpoch && !settledEpochs.Contains(e)).Order().ToList())
                    {
                        if (await _settlement.SettleAsync(missed, ledger, state, ct).ConfigureAwait(false))
                        {
                            settledEpochs.Add(missed);
                        }
                    }

                    for (var round = nextRound; round < o.Rounds; round++)
                    {
                        using var roundSpan = NearMLTracing.StartRound(o.JobId, round);
                        var outcome = await NearMLTracing.Traced(roundSpan, RunRoundAsync(round, version, model, outer, ct)).ConfigureAwait(false);
                        NearMLTracing.RoundOutcome(roundSpan, outcome.Cohort, outcome.Accepted.Count, outcome.Rejected, outcome.MeanLoss);
                        version = outcome.Version;
                        double? accuracy = null;
                        var evaluate = o.EvaluateEveryRounds > 0 && ((round + 1) % o.EvaluateEveryRounds == 0 || round == o.Rounds - 1);
                        if (evaluate)
                        {
                            accuracy = await Task.Run(() => job.Evaluate(EvaluationBatch, o.EvaluationSamples, ct).Accuracy, ct).ConfigureAwait(false);
                            _metrics.Accuracy(accuracy.Value);
                        }

                        // Receipts of a round go to its epoch, never backwards, and never into an epoch already settled
                        // (a job resumed with more rounds after its last, partial epoch was settled).
                        var epoch = Math.Max(round / o.SettleEveryRounds, ledger.Head.LastEpoch);
                        if (settledEpochs.Count > 0 && epoch <= settledEpochs.Max())
                        {
                            epoch = settledEpochs.Max() + 1;
                        }

                        var receipts = AppendReceipts(ledger, signer, round, epoch, outcome.Accepted);
                        var anchor = ledger.Head;
                        state.RecordRound(new RoundRecord(round, version, outcome.Cohort, outcome.Accepted.Count, outcome.Rejected, outcome.MeanLoss, accuracy, outcome.UpdateBytes, outcome.StartedMs, NowMs()), anchor.Count, anchor.LastHash);
                        lastCompleted = round;
                        var epochEnds = (round + 1) % o.SettleEveryRounds == 0 || round == o.Rounds - 1;
                        if ((round + 1) % o.CheckpointEveryRounds == 0 || epochEnds)
                        {
                            EnqueueCheckpoint(checkpoints, round, version, model.Parameters, outer.MomentumBuffer, momentumCopies);
                            _metrics.CheckpointWritten();
                            lastCheckpointed = round;
                        }

                        await SendReceiptsAsync(round, receipts, ct).ConfigureAwait(false);
                        ReportTraffic();
                        var info = new CoordinatorRoundInfo(round, outcome.Cohort, outcome.Accepted.Count, outcome.Rejected, outcome.MeanLoss, accuracy, outcome.Duration, outcome.UpdateBytes, [.. outcome.Accepted.Select(a => a.Participant.Id)]);
                        _status.AddRound(info);
                        _metrics.RoundCompleted(round, outcome.Duration, outcome.Accepted.Count > 0);
                        CoordinatorLog.RoundCompleted(_logger, round, outcome.Duration, outcome.Accepted.Count, outcome.Cohort, outcome.MeanLoss, version,
                            accuracy is { } a ? string.Create(CultureInfo.InvariantCulture, $", test accuracy {a:P2}") : string.Empty);
                        if (epochEnds && !settledEpochs.Contains(epoch))
                        {
                            // Epoch closed: the settlement component pays it (awaited, so the next round's receipts see it settled).
                            if (await _settlement.SettleAsync(epoch, ledger, state, ct).ConfigureAwait(false))
                            {
                                settledEpochs.Add(epoch);
                            }
                        }

                        _currentRound = round + 1;
                        _status.SetRound(round + 1, version);
                    }

                    await checkpoints.FlushAsync(ct).ConfigureAwait(false);
                    CoordinatorLog.JobComplete(_logger, o.JobId, o.Rounds, _status.LastAccuracy is { } acc ? acc.ToString("P2", CultureInfo.InvariantCulture) : "n/a");
                    _status.SetCompleted();
                    await SayGoodbyeAsync("the job is complete", rejoinLater: false).ConfigureAwait(false);
                }
                finally
                {
                    _stopping = true;
                    if (!_status.Completed && !LeaseLost)
                    {
                        CoordinatorLog.Stopping(_logger, _sessions.Count);
                        await SayGoodbyeAsync("the coordinator is shutting down", rejoinLater: true).ConfigureAwait(false);
                        if (lastCompleted > lastCheckpointed && outer.MomentumBuffer is var momentum)
                        {
                            checkpoints.Enqueue(new CoordinatorCheckpoint(lastCompleted, version, model.Parameters.Clone(), momentum.Clone()));
                        }
                    }

                    using var flush = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                    await checkpoints.FlushAsync(flush.Token).ConfigureAwait(false);
                    ReportTraffic();
                }
            }
        }
    }

    private async Task<RoundOutcome> RunRoundAsync(long round, long version, ITrainableModel model, NesterovOuterOptimizer outer, CancellationToken ct)
    {
        var o = _options;
        var started = _time.GetTimestamp();
        var waited = 0;
        List<WorkerSession> cohort;
        while (true)
        {
            cohort = [.. _sessions.Values.Where(s => !s.IsClosed).OrderBy(s => s.Id, StringComparer.Ordinal).Take(o.MaxWorkers)];
            if (cohort.Count >= Math.Max(o.MinWorkers, _protocol.MinimumCohort))
            {
                break;
            }

            if (waited++ % 50 == 0)
            {
                CoordinatorLog.WaitingForWorkers(_logger, cohort.Count, o.MinWorkers, round);
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), _time, ct).ConfigureAwait(false);
            started = _time.GetTimestamp();
        }

        _metrics.RoundStarted(round);
        var startedMs = NowMs();
        var deadline = _time.GetUtcNow() + o.RoundTimeout;
        var assignment = _dataset!.Assign(cohort.Select(s => s.Id).ToList());
        var manifest = _published.Current.Manifest;
        var traceParent = NearMLTracing.TraceParentOfRound();
        if (_logger.IsEnabled(LogLevel.Information))
        {
            var names = string.Join(", ", cohort.Select(s => s.Id));
            CoordinatorLog.RoundStarted(_logger, round, cohort.Count, names, version, o.RoundTimeout);
        }

        // The round protocol does the rest (Rounds/): assignment, exchanges, the one reducer, the outer step.
        var context = new RoundContext(
            round,
            version,
            [.. cohort.Select(s => s.Participant)],
            deadline,
            started,
            o,
            model.Parameters,
            outer,
            _time,
            _logger,
            (participant, customize, token) =>
            {
                var s = participant.Session;
                participant.BeginRound(round, version, _time.GetTimestamp());
                var h = HyperParameters();
                customize?.Invoke(h);
                var job = new JobAssignment
                {
                    JobId = o.JobId,
                    Round = (ulong)round,
                    ParameterVersion = (ulong)version,
                    ParameterRoot = ByteString.CopyFrom(manifest.Root),
                    Model = _modelConfig,
                    HyperParameters = h,
                    DeadlineUnixMs = deadline.ToUnixTimeMilliseconds(),
                    TraceParent = traceParent,
                };
                job.ShardIds.AddRange(assignment.ShardsOf(s.Id).Select(i => (uint)i));
                _job!.Stamp(job);
                var send = SendAsync(s, job, token);
                _status.SetWorker(s.Info());
                return send;
            },
            participant => assignment.ShardsOf(participant.Id).Sum(i => (long)_dataset.Manifest.Shards[i].Count),
            (participant, reason, detail) => Reject(round, participant.Session, reason, detail));
        var result = await _protocol.RunAsync(context, ct).ConfigureAwait(false);
        if (result.Updated)
        {
            version++;
            Publish(model.Parameters, version);
            RecordRoundClose(cohort);
        }
        else
        {
            CoordinatorLog.EmptyRound(_logger, round, version);
        }

        foreach (var _ in result.Accepted)
        {
            _metrics.UpdateAccepted();
        }

        return new RoundOutcome(version, cohort.Count, result.Accepted, result.Rejected, result.MeanLoss, result.UpdateBytes, startedMs, _time.GetElapsedTime(started));
    }

    /// <summary>
    /// Tags the round span with <c>nearml.round.close_ms</c>: from the last cohort upload received to the new global
    /// parameters published (what benchmarks/NearML.Hosting.Benchmarks reports as round close).
    /// </summary>
    private void RecordRoundClose(List<WorkerSession> cohort)
    {
        if (System.Diagnostics.Activity.Current is not { } span || span.OperationName != NearMLTracing.Round)
        {
            return;
        }

        var last = default(DateTimeOffset);
        foreach (var s in cohort)
        {
            if (s.UploadEndedAt > last)
            {
                last = s.UploadEndedAt;
            }
        }

        if (last != default)
        {
            span.SetTag("nearml.round.close_ms", Math.Max(0, (_time.GetUtcNow() - last).TotalMilliseconds));
        }
    }

    /// <summary>
    /// The weight (and the work a receipt pays for) of an update: what the worker claims, capped by what its assignment
    /// allows — InnerSteps × BatchSize samples, and no more than the records of the shards it was assigned.
    /// </summary>
    internal static ulong CreditedSamples(ulong claimed, int innerSteps, int batchSize, long assignedRecords) =>
        Math.Min(claimed, Math.Min((ulong)innerSteps * (ulong)batchSize, (ulong)Math.Max(0, assignedRecords)));

    /// <summary>
    /// The default absolute bound on an update's Euclidean norm: H inner AdamW steps of learning rate η move each of the
    /// P parameters by at most about η per step, so ‖Δ‖ ≤ H · η · √P (every coordinate moving a full step the same way
    /// every step, which honest training never reaches).
    /// </summary>
    internal static double DefaultMaxUpdateNorm(int innerSteps, double innerLearningRate, int parameterCount) =>
        innerSteps * innerLearningRate * Math.Sqrt(parameterCount);

    private void Reject(long round, WorkerSession s, string reason, string detail)
    {
        CoordinatorLog.UpdateRejected(_logger, round, s.Id, reason, detail);
        _metrics.UpdateRejected(reason);
    }

    private List<(WorkerSession Session, SignedReceipt Receipt, byte[] Entry, long Sequence)> AppendReceipts(
        ContributionLedger ledger, NearKeyPair signer, long round, long epoch, IReadOnlyList<RoundContribution> accepted)
    {
        // Each signed receipt is Borsh-encoded once: those bytes are the ledger entry's payload and the Receipt frame's entry.
        var fresh = new List<(WorkerSession, SignedReceipt, byte[])>();
        var result = new List<(WorkerSession, SignedReceipt, byte[], long)>();
        foreach (var (participant, u) in accepted)
        {
            var s = participant.Session;
            if (_credited.TryGetValue((round, s.Account), out var seq))
            {
                CoordinatorLog.AlreadyCredited(_logger, round, s.Id, seq);
                continue;
            }

            var receipt = new ContributionReceipt(
                _options.JobId, round, s.Account, u.SampleCount, 0, (uint)_options.InnerSteps, (ulong)Math.Max(0, u.ComputeMilliseconds),
                s.Verified ? NearML.Ledger.AttestationVerdict.Verified : NearML.Ledger.AttestationVerdict.Unattested, u.PayloadSha256, NowMs());
            var signed = SignedReceipt.Sign(receipt, signer);
            fresh.Add((s, signed, signed.ToBorsh()));
            s.SamplesPerSecond = u.ComputeMilliseconds > 0 ? u.SampleCount * 1000.0 / u.ComputeMilliseconds : 0;
        }

        if (fresh.Count == 0)
        {
            return result;
        }

        var head = ledger.AppendPayloads(epoch, fresh.Select(f => f.Item3).ToList());
        var first = head.Count - fresh.Count;
        for (var i = 0; i < fresh.Count; i++)
        {
            var seq = first + i;
            _credited[(round, fresh[i].Item1.Account)] = seq;
            result.Add((fresh[i].Item1, fresh[i].Item2, fresh[i].Item3, seq));
            fresh[i].Item1.Receipts = _receiptCounts.AddOrUpdate(fresh[i].Item1.Account, 1, (_, n) => n + 1);
            _status.SetWorker(fresh[i].Item1.Info());
        }

        _metrics.Receipts(fresh.Count);
        if (_logger.IsEnabled(LogLevel.Information))
        {
            var headHex = Convert.ToHexStringLower(head.LastHash);
            CoordinatorLog.ReceiptsAppended(_logger, fresh.Count, round, epoch, head.Count, headHex);
        }

        UpdateLedgerStatus(ledger);
        return result;
    }

    private async Task SendReceiptsAsync(long round, List<(WorkerSession Session, SignedReceipt Receipt, byte[] Entry, long Sequence)> receipts, CancellationToken ct)
    {
        var sends = new List<Task>();
        foreach (var (s, r, entry, seq) in receipts)
        {
            if (s.IsClosed)
            {
                continue;
            }

            sends.Add(SendAsync(
                s,
                new Receipt
                {
                    JobId = _options.JobId,
                    Round = (ulong)round,
                    Sequence = (ulong)seq,
                    Entry = UnsafeByteOperations.UnsafeWrap(entry),
                    Signature = UnsafeByteOperations.UnsafeWrap(r.CoordinatorSignature),
                },
                ct));
        }

        await Task.WhenAll(sends).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public override void Dispose()
    {
        _refusals.Dispose();
        _ownSettlement?.Dispose();
        base.Dispose();
    }

    private void OnConnectionFaulted(EndPoint? remote, Exception ex)
    {
        var code = ex is ProtocolException pe ? pe.Code.ToString() : ex.GetType().Name;
        var address = remote?.ToString() ?? "?";
        if (ex is ProtocolException { Code: ErrorCode.Refused })
        {
            _metrics.WorkerRefused("ConnectionLimit");
        }

        if (_refusals.TryLog(code, address))
        {
            CoordinatorLog.ConnectionFault(_logger, address, code, ex.Message);
        }
    }

    private async Task ServeAsync(FrameConnection connection, CoordinatorHandshakeOptions handshake, ICoordinatorStateStore state, CancellationToken token)
    {
        var remote = connection.RemoteEndPoint?.ToString() ?? "?";
        AdmittedWorker admitted;
        try
        {
            admitted = await NearMLTracing.TraceJoinAsync("coordinator", remote, () => CoordinatorHandshake.RunAsync(connection, handshake, token)).ConfigureAwait(false);
        }
        catch (AdmissionRefusedException ex)
        {
            _metrics.WorkerRefused(ex.Reason.ToString());
            if (_refusals.TryLog(ex.Reason.ToString(), remote))
            {
                CoordinatorLog.Refused(_logger, remote, ex.Reason.ToString(), ex.CoordinatorMessage);
                TryRecord(state, "?", string.Empty, "refused", $"{remote}: {ex.Reason}: {ex.CoordinatorMessage}");
            }

            return;
        }
        catch (ProtocolException ex)
        {
            if (_refusals.TryLog(ex.Code.ToString(), remote))
            {
                CoordinatorLog.ConnectionFault(_logger, remote, ex.Code.ToString(), ex.Message);
            }

            _metrics.WorkerRefused(ex.Code.ToString());
            await connection.FailAsync(ex).ConfigureAwait(false);
            return;
        }

        var key = NearPublicKey.FromBytes(admitted.PublicKey.Span);
        var account = NearAccountId.IsValid(admitted.WorkerId) ? admitted.WorkerId : key.ImplicitAccountId;
        var verified = admitted.EvidenceFormat.Length > 0 && AttestationAdmissionPolicy.VendorOf(admitted.EvidenceFormat) is not NearML.Enclave.AttestationVendor.InsecureSimulated;
        var session = new WorkerSession(connection, admitted, account, verified, token) { Receipts = _receiptCounts.GetValueOrDefault(account) };
        if (_sessions.TryRemove(admitted.WorkerId, out var previous))
        {
            previous.Close("replaced", "the same worker reconnected");
        }

        _sessions[admitted.WorkerId] = session;
        _metrics.WorkerAdmitted();
        CoordinatorLog.Admitted(_logger, admitted.WorkerId, Convert.ToHexStringLower(SHA256.HashData(admitted.PublicKey.Span))[..16], admitted.EvidenceFormat, remote);
        TryRecord(state, admitted.WorkerId, session.KeyHex, "join", admitted.EvidenceFormat);
        _status.SetWorker(session.Info());
        var heartbeats = connection.RunHeartbeatsAsync(_options.HeartbeatInterval, session.Closing);
        try
        {
            await ReadLoopAsync(session).ConfigureAwait(false);
        }
        catch (ProtocolException ex)
        {
            session.Close("dropped", $"protocol fault {ex.Code}: {ex.Message}");
            if (!ex.IsRemote)
            {
                await connection.FailAsync(ex).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (session.Closing.IsCancellationRequested)
        {
            session.Close(token.IsCancellationRequested || _stopping ? "left" : "dropped", token.IsCancellationRequested || _stopping ? "the coordinator stopped" : session.CloseReason ?? "connection closed");
        }
        finally
        {
            session.Close(session.CloseKind, session.CloseReason ?? "connection closed");
            await heartbeats.ConfigureAwait(false);
            _sessions.TryRemove(new KeyValuePair<string, WorkerSession>(admitted.WorkerId, session));
            CoordinatorLog.WorkerLeft(_logger, session.Id, session.CloseKind, session.CloseReason ?? "connection closed");
            TryRecord(state, session.Id, session.KeyHex, session.CloseKind, session.CloseReason ?? string.Empty);
            ReportTraffic(session);
            _status.SetWorker(session.Info());
            await connection.DisposeAsync().ConfigureAwait(false);
            session.Dispose();
        }
    }

    private async Task ReadLoopAsync(WorkerSession session)
    {
        var connection = session.Connection;
        var idleLimit = _options.HeartbeatInterval * 3;
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(session.Closing);
        while (true)
        {
            idle.CancelAfter(idleLimit);
            IMessage? message;
            try
            {
                message = await connection.ReceiveAsync(idle.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!session.Closing.IsCancellationRequested)
            {
                session.Close("dropped", $"no frame for {idleLimit.TotalSeconds:0.#} s (heartbeat timeout)");
                return;
            }

            switch (message)
            {
                case null:
                    session.Close("dropped", "the worker closed the connection without Goodbye");
                    return;
                case Heartbeat:
                    break;
                case Goodbye bye:
                    session.Close("left", $"Goodbye: {bye.Message}{(bye.RejoinLater ? " (will rejoin)" : string.Empty)}");
                    return;
                case Error error:
                    session.Close("dropped", $"the worker reported {error.Code}: {error.Message}");
                    return;
                case Progress p:
                    session.Step = (int)p.Step;
                    session.Loss = p.Loss;
                    session.State = "training";
                    _metrics.Steps(0, p.SamplesPerSecond);
                    _status.SetWorker(session.Info());
                    break;
                case ParameterRequest request:
                    // The idle timer must not fire while this loop is busy sending (a large set on a slow link).
                    idle.CancelAfter(Timeout.InfiniteTimeSpan);
                    await SendParametersAsync(session, request).ConfigureAwait(false);
                    break;
                case AggregationEnvelope or RelayContribution when !_protocol.OnMessage(session.Participant, message):
                    CoordinatorLog.Ignored(_logger, session.Id, $"a {message.Descriptor.Name} frame: the {_protocol.Name} round protocol does not use it");
                    break;
                case Update update:
                    var ignored = session.Receive(update, _protocol.UpdateEncoding, _published.Current.Parameters.Length, _time.GetTimestamp(), _time);
                    if (ignored is not null)
                    {
                        CoordinatorLog.Ignored(_logger, session.Id, ignored);
                    }

                    _status.SetWorker(session.Info());
                    break;
                default:
                    if (!_protocol.OnMessage(session.Participant, message))
                    {
                        throw new ProtocolException(ErrorCode.UnexpectedMessage, $"a worker may not send {message.Descriptor.Name} after admission");
                    }

                    break;
            }
        }
    }

    private async Task SendParametersAsync(WorkerSession session, ParameterRequest request)
    {
        var current = _published.Current;
        if ((long)request.ParameterVersion != current.Version)
        {
            throw new ProtocolException(ErrorCode.UnexpectedMessage, $"parameter version {request.ParameterVersion} was requested but only version {current.Version} is served");
        }

        if (request.ResumeOffset != 0)
        {
            throw new ProtocolException(ErrorCode.UnexpectedMessage, $"resume_offset {request.ResumeOffset} is not supported; request the whole set (0)");
        }

        session.State = "downloading";
        _status.SetWorker(session.Info());
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(session.Closing);
        timeout.CancelAfter(_options.RoundTimeout);
        // The snapshot stays untouched while this download reads it (a newer version goes to another buffer).
        var published = _published.Acquire();
        try
        {
            if (published.Version != current.Version)
            {
                throw new ProtocolException(ErrorCode.UnexpectedMessage, $"parameter version {request.ParameterVersion} was requested but version {published.Version} was published meanwhile");
            }

            await session.SendLock.WaitAsync(timeout.Token).ConfigureAwait(false);
            try
            {
                await ParameterTransfer.SendAsync(session.Connection, published.Parameters, (ulong)published.Version, published.Manifest, timeout.Token).ConfigureAwait(false);
            }
            finally
            {
                session.SendLock.Release();
            }
        }
        catch (OperationCanceledException) when (!session.Closing.IsCancellationRequested)
        {
            throw new ProtocolException(ErrorCode.Timeout, $"sending parameter version {published.Version} did not finish within RoundTimeout {_options.RoundTimeout}");
        }
        finally
        {
            published.Release();
        }
    }

    /// <summary>
    /// Queues the checkpoint of a round without copying the parameters: the published snapshot of this version is the
    /// checkpoint's parameters (held until written), and the momentum is copied into a recycled buffer.
    /// </summary>
    private void EnqueueCheckpoint(CheckpointStore checkpoints, long round, long version, ParameterSet parameters, ParameterSet momentum, ConcurrentBag<ParameterSet> momentumCopies)
    {
        var snapshot = _published.Acquire();
        if (snapshot.Version != version)
        {
            snapshot.Release();
            checkpoints.Enqueue(new CoordinatorCheckpoint(round, version, parameters.Clone(), momentum.Clone()));
            return;
        }

        if (!momentumCopies.TryTake(out var copy) || !copy.Layout.Equals(momentum.Layout))
        {
            copy = new ParameterSet(momentum.Layout);
        }

        copy.CopyFrom(momentum);
        try
        {
            checkpoints.Enqueue(new CoordinatorCheckpoint(round, version, snapshot.Parameters, copy), _ =>
            {
                snapshot.Release();
                momentumCopies.Add(copy);
            });
        }
        catch (InvalidOperationException)
        {
            snapshot.Release();
            throw;
        }
    }

    internal static async Task SendAsync(WorkerSession session, IMessage message, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct, session.Closing);
        timeout.CancelAfter(SendTimeout);
        try
        {
            await session.SendLock.WaitAsync(timeout.Token).ConfigureAwait(false);
            try
            {
                await session.Connection.SendAsync(message, timeout.Token).ConfigureAwait(false);
            }
            finally
            {
                session.SendLock.Release();
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            session.Close("dropped", session.IsClosed ? session.CloseReason ?? "closed" : $"could not send {message.Descriptor.Name} within {SendTimeout.TotalSeconds:0} s");
        }
        catch (ProtocolException ex)
        {
            session.Close("dropped", $"sending {message.Descriptor.Name} failed: {ex.Message}");
        }
        catch (ObjectDisposedException)
        {
            session.Close("dropped", "the connection is closed");
        }
    }

    private async Task SayGoodbyeAsync(string message, bool rejoinLater)
    {
        var sends = _sessions.Values.Select(s => SendAsync(s, new Goodbye { Message = message, RejoinLater = rejoinLater }, CancellationToken.None)).ToList();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            await Task.WhenAll(sends).WaitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        foreach (var s in _sessions.Values)
        {
            s.Close("left", "the coordinator said goodbye: " + message);
        }
    }

    private void Publish(ParameterSet parameters, long version) => _published.Publish(parameters, version);

    private HyperParameters HyperParameters()
    {
        var o = _options;
        var h = new HyperParameters
        {
            SyncStrategy = o.SyncStrategyKind,
            InnerSteps = (uint)o.InnerSteps,
            BatchSize = (uint)o.BatchSize,
            InnerLearningRate = o.InnerLearningRate,
            WeightDecay = o.WeightDecay,
            OuterLearningRate = o.OuterLearningRate,
            OuterMomentum = o.OuterMomentum,
            UpdateEncoding = _protocol.UpdateEncoding,
            RoundProtocol = _protocol.Name,
            Seed = (ulong)o.Seed,
        };
        return h;
    }

    private void LoadCredited(ContributionLedger ledger, string jobId)
    {
        foreach (var entry in ledger.Store.Read(0))
        {
            var r = SignedReceipt.Parse(entry.Payload, $"ledger entry {entry.Sequence}").Receipt;
            if (r.JobId == jobId)
            {
                if (_credited.TryAdd((r.Round, r.WorkerId), entry.Sequence))
                {
                    _receiptCounts.AddOrUpdate(r.WorkerId, 1, (_, n) => n + 1);
                }
            }
        }
    }

    private void UpdateLedgerStatus(ContributionLedger ledger)
    {
        var head = ledger.Head;
        _status.SetLedger(head.Count, Convert.ToHexStringLower(head.LastHash));
    }

    private void ReportTraffic()
    {
        foreach (var s in _sessions.Values)
        {
            ReportTraffic(s);
        }
    }

    private void ReportTraffic(WorkerSession session)
    {
        var (sent, received) = session.TakeTraffic();
        _status.AddTraffic(received, sent);
        _metrics.Bytes("coordinator", sent, received);
    }

    private void TryRecord(ICoordinatorStateStore state, string workerId, string key, string kind, string detail)
    {
        try
        {
            state.RecordMembership(NowMs(), workerId, key, kind, Interlocked.Read(ref _currentRound), detail);
        }
        catch (Exception ex) when (ex is CoordinatorStateException or ObjectDisposedException or InvalidOperationException)
        {
            // The store is closing (shutdown), or the disk is full: membership events are then not recorded.
        }
    }

    private long NowMs() => _time.GetUtcNow().ToUnixTimeMilliseconds();

    private X509Certificate2 LoadCertificate(string data) =>
        _options.CertificatePath is { } path
            ? X509CertificateLoader.LoadPkcs12FromFile(path, _options.CertificatePassword)
            : CoordinatorCertificate.LoadOrCreateDevelopment(Path.Combine(data, "coordinator-dev.pfx"), [_options.ListenAddress, "localhost"], _time);

    private static string Describe(NearMLCoordinatorOptions o) => string.Create(
        CultureInfo.InvariantCulture,
        $"rounds={o.Rounds} H={o.InnerSteps} batch={o.BatchSize} lr={o.InnerLearningRate} wd={o.WeightDecay} outer_lr={o.OuterLearningRate} outer_momentum={o.OuterMomentum} encoding={o.UpdateEncoding} seed={o.Seed} shards={o.ShardCount}");

    private sealed record RoundOutcome(long Version, int Cohort, IReadOnlyList<RoundContribution> Accepted, int Rejected, double MeanLoss, long UpdateBytes, long StartedMs, TimeSpan Duration);

    /// <summary>
    /// Shutdown, identity-binding, capacity and duplicate checks before the attestation policy; after it admits, the worker
    /// id is bound to the key durably (first key wins; a rotation needs the bound key's signature over the new key).
    /// </summary>
    private sealed class SessionAdmission(CoordinatorService owner, ICoordinatorStateStore state) : IAdmissionPolicy
    {
        public async ValueTask<AdmissionDecision> EvaluateAsync(AdmissionRequest request, CancellationToken cancellationToken)
        {
            if (owner._stopping)
            {
                return AdmissionDecision.Refuse(RefusalReason.ShuttingDown, "the coordinator is shutting down; try again later");
            }

            var id = request.WorkerId;
            var keyHex = Convert.ToHexStringLower(request.PublicKey.Span);
            WorkerKeyBinding? bound;
            try
            {
                bound = state.ReadWorkerKey(id);
            }
            catch (Exception ex) when (ex is Microsoft.Data.Sqlite.SqliteException or ObjectDisposedException or InvalidOperationException)
            {
                return AdmissionDecision.Refuse(RefusalReason.ShuttingDown, "the coordinator's state is not available; try again later");
            }

            string? rotateFrom = null;
            if (bound is not null && !string.Equals(bound.PublicKeyHex, keyHex, StringComparison.Ordinal))
            {
                var boundFingerprint = Fingerprint(Convert.FromHexString(bound.PublicKeyHex));
                if (request.KeyRotation is null)
                {
                    return AdmissionDecision.Refuse(
                        RefusalReason.DuplicateIdentity,
                        $"worker id '{id}' is bound to another identity key ({boundFingerprint}); join under another id, or send a KeyRotation signed by that key");
                }

                if (!KeyRotationProof.Verify(request.KeyRotation, Convert.FromHexString(bound.PublicKeyHex), id, request.PublicKey.Span, out var problem))
                {
                    return AdmissionDecision.Refuse(RefusalReason.BadSignature, $"key rotation of worker id '{id}' (bound to {boundFingerprint}) refused: {problem}");
                }

                rotateFrom = bound.PublicKeyHex;
            }

            if (owner._sessions.TryGetValue(id, out var existing))
            {
                if (!existing.Admitted.PublicKey.Span.SequenceEqual(request.PublicKey.Span) && rotateFrom is null)
                {
                    return AdmissionDecision.Refuse(RefusalReason.DuplicateIdentity, $"worker id '{id}' is connected with another identity key");
                }
            }
            else if (owner._sessions.Count >= owner._options.MaxWorkers)
            {
                return AdmissionDecision.Refuse(RefusalReason.CohortFull, $"{owner._sessions.Count} workers are connected (MaxWorkers = {owner._options.MaxWorkers}); try again later");
            }

            if (owner._job?.Spec.Check(request) is { } refusal)
            {
                return refusal;
            }

            var decision = await owner._attestation.EvaluateAsync(request, cancellationToken).ConfigureAwait(false);
            if (!decision.IsAdmitted)
            {
                return decision;
            }

            try
            {
                if (rotateFrom is not null)
                {
                    if (!state.RotateWorkerKey(id, rotateFrom, keyHex, owner.NowMs()))
                    {
                        return AdmissionDecision.Refuse(RefusalReason.DuplicateIdentity, $"worker id '{id}' was rebound by another join during this handshake");
                    }

                    var from = Fingerprint(Convert.FromHexString(rotateFrom));
                    var to = Fingerprint(request.PublicKey.Span);
                    CoordinatorLog.KeyRotated(owner._logger, id, from, to);
                }
                else if (bound is null)
                {
                    var binding = state.BindWorkerKey(id, keyHex, owner.NowMs());
                    if (!string.Equals(binding.PublicKeyHex, keyHex, StringComparison.Ordinal))
                    {
                        return AdmissionDecision.Refuse(RefusalReason.DuplicateIdentity, $"worker id '{id}' was bound to another identity key by a concurrent join");
                    }

                    var fingerprint = Fingerprint(request.PublicKey.Span);
                    CoordinatorLog.KeyBound(owner._logger, id, fingerprint);
                }
            }
            catch (Exception ex) when (ex is Microsoft.Data.Sqlite.SqliteException or ObjectDisposedException or InvalidOperationException)
            {
                return AdmissionDecision.Refuse(RefusalReason.ShuttingDown, "the coordinator's state is not available; try again later");
            }

            return decision;
        }

        private static string Fingerprint(ReadOnlySpan<byte> key) => Convert.ToHexStringLower(SHA256.HashData(key))[..16];
    }
}
