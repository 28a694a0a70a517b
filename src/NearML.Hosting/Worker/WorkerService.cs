using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Authentication;
using System.Security.Cryptography;
using Google.Protobuf;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using System.Globalization;
using NearML.Aggregation;
using NearML.Core;
using NearML.Core.Contracts;
using NearML.Core.Contracts.Aggregation;
using NearML.Core.Protocol;
using NearML.Enclave;
using NearML.Hosting.Jobs;
using NearML.Training.Engines;
using NearML.Ledger;
using NearML.Training.Tensors;

namespace NearML.Hosting.Worker;

/// <summary>
/// The NearML worker as a hosted service: connects to the coordinator over TLS, proves its ed25519 identity (with attestation
/// evidence when configured), then takes part in DiLoCo rounds (or DDP / DeMo rounds whose per-step exchanges the coordinator
/// relays) — download and verify the global parameters when their version
/// changed, run the inner AdamW steps on its shards, send the compressed pseudo-gradient, verify and log the receipt — until the
/// host stops. Faults reconnect with exponential backoff and jitter; a permanent refusal stops the worker with
/// <see cref="WorkerStatus.LastError"/> set. Register with <c>services.AddNearMLWorker(...)</c>.
/// </summary>
public sealed partial class WorkerService : BackgroundService
{
    /// <summary>Largest update payload slice sent in one <see cref="Update"/> frame.</summary>
    public const int MaxUpdatePartBytes = 1 << 20;

    private static readonly TimeSpan ProgressInterval = TimeSpan.FromSeconds(1);

    /// <summary>Time kept free before the round deadline for encoding and sending the update.</summary>
    private static readonly TimeSpan UploadReserve = TimeSpan.FromSeconds(1);

    private readonly NearMLWorkerOptions _options;
    private readonly WorkerStatus _status;
    private readonly ILogger _logger;
    private readonly ILoggerFactory _loggerFactory;
    private readonly TimeProvider _time;
    private readonly IHostApplicationLifetime? _lifetime;
    private readonly NearMLMetrics? _metrics;
    private Ed25519Identity? _identity;
    private CoordinatorTrust? _trust;
    private CoordinatorAddresses? _addresses;
    private IAttestationEvidenceProvider? _evidence;
    private WorkerReceiptLog? _receipts;
    private WorkerJob? _job;
    private readonly JobRegistry _registry;

    /// <summary>Initializes the service (use <c>AddNearMLWorker</c> rather than calling this).</summary>
    /// <param name="options">Validated options.</param>
    /// <param name="status">The shared status object.</param>
    /// <param name="loggerFactory">Logging.</param>
    /// <param name="timeProvider">The clock (deadlines, receipts); <see langword="null"/> for the system clock.</param>
    /// <param name="lifetime">The host lifetime, used only when <see cref="NearMLWorkerOptions.StopApplicationOnFatalError"/> or <see cref="NearMLWorkerOptions.StopApplicationOnCompletion"/> is set.</param>
    /// <param name="metrics">The <c>NearML</c> meter's instruments, or <see langword="null"/> for no metrics.</param>
    /// <param name="registry">The models and datasets this worker can train (<see langword="null"/>: the built-ins only).</param>
    public WorkerService(
        IOptions<NearMLWorkerOptions> options,
        WorkerStatus status,
        ILoggerFactory loggerFactory,
        TimeProvider? timeProvider = null,
        IHostApplicationLifetime? lifetime = null,
        NearMLMetrics? metrics = null,
        JobRegistry? registry = null)
    {
        _registry = registry ?? JobRegistry.BuiltIn;
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(status);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        _options = options.Value;
        _status = status;
        _loggerFactory = loggerFactory;
        _logger = loggerFactory.CreateLogger<WorkerService>();
        _time = timeProvider ?? TimeProvider.System;
        _lifetime = lifetime;
        _metrics = metrics;
    }

    /// <summary>
    /// Loads (or creates) the identity key, prepares certificate trust, the attestation provider and the receipts log, then
    /// starts the worker loop. Configuration problems fail here, so the host does not start with a worker that cannot work.
    /// </summary>
    /// <param name="cancellationToken">Aborts starting.</param>
    /// <returns>A task that completes when the worker loop is running.</returns>
    /// <exception cref="InvalidOperationException">The identity key, data folder or attestation provider cannot be set up; the message says why.</exception>
    public override Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            Directory.CreateDirectory(_options.DataDirectory);
            _identity = Ed25519Identity.LoadOrCreate(_options.IdentityPath);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or NearMLException or CryptographicException)
        {
            throw new InvalidOperationException(
                $"{NearMLWorkerOptions.SectionName}: cannot load or create the worker identity key '{Path.GetFullPath(_options.IdentityPath)}': {ex.Message}", ex);
        }

        _trust = _options.CreateTrust();
        _addresses = CoordinatorAddresses.FromOptions(_options);
        _evidence = CreateEvidenceProvider();
        _receipts = new WorkerReceiptLog(
            _options.DataDirectory,
            string.IsNullOrWhiteSpace(_options.CoordinatorReceiptKey) ? null : NearPublicKey.Parse(_options.CoordinatorReceiptKey));
        if (_logger.IsEnabled(LogLevel.Information))
        {
            var all = string.Join(", ", _addresses.All);
            LogStarting(_logger, _options.WorkerId, _identity.Fingerprint, all, _trust.IsPinned ? "pinned certificate" : "CA validation", _options.AttestationProvider);
        }

        return base.StartAsync(cancellationToken);
    }

    /// <inheritdoc/>
    public override void Dispose()
    {
        _identity?.Dispose();
        (_evidence as IDisposable)?.Dispose();
        base.Dispose();
    }

    /// <inheritdoc/>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var backoff = new ReconnectBackoff(_options.InitialReconnectDelay, _options.MaxReconnectDelay);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await RunSessionAsync(backoff, stoppingToken).ConfigureAwait(false);
                if (stoppingToken.IsCancellationRequested)
                {
                    break;
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (CoordinatorFinishedException ex)
            {
                _status.SetState(WorkerState.Completed);
                LogCoordinatorFinished(_logger, ex.Message);
                if (_options.StopApplicationOnCompletion)
                {
                    _lifetime?.StopApplication();
                }

                return;
            }
            catch (Exception ex) when (IsPermanent(ex))
            {
                var message = Describe(ex);
                _status.SetFailed(message);
                LogFatal(_logger, message, ex);
                if (_options.StopApplicationOnFatalError)
                {
                    _lifetime?.StopApplication();
                }

                return;
            }
            catch (Exception ex)
            {
                var message = Describe(ex);
                _status.SetError(message);
                if (ex is ProtocolException or AdmissionRefusedException or IOException or ReceiptVerificationException)
                {
                    LogConnectionFault(_logger, message);
                }
                else
                {
                    LogUnexpectedFault(_logger, message, ex);
                }
            }

            // Several coordinators (a serving one and standbys): the next address at once; back off after all failed.
            var addresses = _addresses!;
            var delay = addresses.Failed() ? backoff.Next() : _options.InitialReconnectDelay / 2;
            _status.SetState(WorkerState.Reconnecting);
            _status.AddReconnect();
            LogReconnecting(_logger, delay.TotalSeconds, backoff.Attempt);
            if (addresses.All.Count > 1 && _logger.IsEnabled(LogLevel.Information))
            {
                var next = addresses.Current.ToString();
                LogNextCoordinator(_logger, next, addresses.CurrentIndex + 1, addresses.All.Count);
            }
            try
            {
                await Task.Delay(delay, _time, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        _status.SetState(WorkerState.Stopped);
        LogStopped(_logger, _options.WorkerId);
    }

    private async Task RunSessionAsync(ReconnectBackoff backoff, CancellationToken stopping)
    {
        _status.SetState(WorkerState.Connecting);
        var address = _addresses!.Current;
        FrameConnection connection;
        using (var connectDeadline = CancellationTokenSource.CreateLinkedTokenSource(stopping))
        {
            connectDeadline.CancelAfter(_options.ConnectTimeout);
            try
            {
                connection = await ProtocolConnector.ConnectAsync(
                    address.Host, address.Port, _trust!, null, null, connectDeadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
            {
                throw new ProtocolException(
                    ErrorCode.Timeout, $"connecting to {address} took longer than {_options.ConnectTimeout.TotalSeconds:0.#} s");
            }
        }

        var session = new Session(this, connection);
        try
        {
            await session.RunAsync(backoff, stopping).ConfigureAwait(false);
        }
        finally
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            session.SyncTraffic();
        }
    }

    private IAttestationEvidenceProvider? CreateEvidenceProvider()
    {
        switch (_options.AttestationProvider)
        {
            case NearMLWorkerOptions.ConfigFsTsmProvider:
                var tsm = new ConfigFsTsmAttestationProvider(logger: _loggerFactory.CreateLogger<ConfigFsTsmAttestationProvider>());
                if (!tsm.IsAvailable || !Directory.Exists(ConfigFsTsmRoot))
                {
                    throw new InvalidOperationException(
                        $"{NearMLWorkerOptions.SectionName}:AttestationProvider is 'configfs-tsm' but {ConfigFsTsmRoot} does not exist on this machine: " +
                        "it needs Linux 6.7+ with CONFIG_TSM_REPORTS and configfs mounted, inside an Intel TDX or AMD SEV-SNP guest. " +
                        "Use 'none' (no evidence) or, for development only, 'simulated'.");
                }

                return WorkerAttestation.ToEvidenceProvider(tsm);
            case NearMLWorkerOptions.SimulatedProvider:
                LogSimulatedAttestation(_logger);
                return WorkerAttestation.ToEvidenceProvider(
                    new InsecureSimulatedAttestationProvider(_loggerFactory.CreateLogger<InsecureSimulatedAttestationProvider>()));
            default:
                return null;
        }
    }

    /// <summary>Gets the configfs-tsm folder checked at start (internal so tests can point it elsewhere).</summary>
    internal static string ConfigFsTsmRoot { get; set; } = "/sys/kernel/config/tsm";

    private static bool IsPermanent(Exception ex) => ex switch
    {
        AdmissionRefusedException refused => !refused.IsTransient,
        ProtocolException { Code: ErrorCode.IncompatibleVersion } => true,
        ProtocolException { Code: ErrorCode.AuthenticationFailed, InnerException: AuthenticationException } => true,
        WorkerFatalException or JobConfigurationException => true,
        _ => false,
    };

    private static string Describe(Exception ex) => ex switch
    {
        AdmissionRefusedException refused => $"refused by the coordinator ({refused.Reason}): {refused.CoordinatorMessage}",
        ProtocolException { IsRemote: true } p => $"the coordinator closed the connection ({p.Code}): {p.Message}",
        _ => ex.Message,
    };

    /// <summary>One admitted connection: the receive loop and the rounds run on it.</summary>
    private sealed partial class Session(WorkerService owner, FrameConnection connection)
    {
        private long _syncedSent;
        private long _syncedReceived;
        private PendingReceipt? _pending;
        private IMessage? _deferred;
        private TimeSpan _idleTimeout;
        private int _maxPart = MaxUpdatePartBytes;

        private WorkerStatus Status => owner._status;

        private ILogger Logger => owner._logger;

        public void SyncTraffic()
        {
            var sent = connection.BytesSent;
            var received = connection.BytesReceived;
            var dSent = sent - _syncedSent;
            var dReceived = received - _syncedReceived;
            _syncedSent = sent;
            _syncedReceived = received;
            Status.AddTraffic(dSent, dReceived);
            owner._metrics?.Bytes("worker", dSent, dReceived);
        }

        public async Task RunAsync(ReconnectBackoff backoff, CancellationToken stopping)
        {
            var options = owner._options;
            var admission = await NearMLTracing.TraceJoinAsync("worker", options.WorkerId, () => WorkerHandshake.RunAsync(
                connection,
                owner._identity!,
                new WorkerHandshakeOptions
                {
                    WorkerId = options.WorkerId,
                    EvidenceProvider = owner._evidence,
                    Timeout = options.ConnectTimeout,
                    Capabilities = CreateCapabilities(options, owner._registry),
                    LayoutFingerprint = job => owner.AnswerJob(job),
                },
                stopping)).ConfigureAwait(false);
            backoff.Reset();
            owner._addresses!.Admitted();
            Status.SetAttestation(owner._evidence is null ? NearMLWorkerOptions.NoProvider : options.AttestationProvider);
            Status.SetError(null);
            SyncTraffic();
            var interval = admission.HeartbeatIntervalMs > 0 ? TimeSpan.FromMilliseconds(admission.HeartbeatIntervalMs) : TimeSpan.FromSeconds(15);
            _idleTimeout = admission.HeartbeatTimeoutMs > 0 ? TimeSpan.FromMilliseconds(admission.HeartbeatTimeoutMs) : interval * 3;
            if (admission.MaxFrameSize > 0)
            {
                _maxPart = (int)Math.Min(MaxUpdatePartBytes, admission.MaxFrameSize - 1024);
            }

            _maxPart = Math.Min(_maxPart, connection.Options.MaxFrameSize - 1024);
            LogAdmitted(Logger, options.WorkerId, admission.SessionId, interval.TotalSeconds);
            owner._job?.ResetOptimizer();
            Status.SetState(WorkerState.Waiting);

            using var session = CancellationTokenSource.CreateLinkedTokenSource(stopping);
            var heartbeats = connection.RunHeartbeatsAsync(interval, session.Token);
            try
            {
                await ServeAsync(stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                await SayGoodbyeAsync(_pending is not null || Status.State is WorkerState.Training or WorkerState.Downloading or WorkerState.Uploading).ConfigureAwait(false);
                throw;
            }
            finally
            {
                await session.CancelAsync().ConfigureAwait(false);
                await heartbeats.ConfigureAwait(false);
                SyncTraffic();
            }
        }

        private async Task SayGoodbyeAsync(bool midRound)
        {
            using var timeout = new CancellationTokenSource(owner._options.StopTimeout);
            try
            {
                await connection.SendAsync(
                    new Goodbye { Message = midRound ? "worker shutting down mid-round; drop this round" : "worker shutting down", RejoinLater = true },
                    timeout.Token).ConfigureAwait(false);
                LogGoodbyeSent(Logger, midRound);
            }
            catch (Exception ex) when (ex is ProtocolException or OperationCanceledException or ObjectDisposedException)
            {
                LogGoodbyeFailed(Logger, ex.Message);
            }
        }

        private async Task ServeAsync(CancellationToken stopping)
        {
            while (true)
            {
                var message = await ReceiveAsync(stopping).ConfigureAwait(false);
                SyncTraffic();
                switch (message)
                {
                    case JobAssignment assignment:
                        if (_pending is { } missed)
                        {
                            LogNoReceipt(Logger, missed.Round);
                            _pending = null;
                        }

                        _pending = await RunRoundAsync(assignment, stopping).ConfigureAwait(false);
                        Status.SetState(WorkerState.Waiting);
                        break;
                    case Receipt receipt:
                        HandleReceipt(receipt);
                        break;
                    case Goodbye { RejoinLater: false } goodbye:
                        throw new CoordinatorFinishedException(goodbye.Message);
                    case Goodbye goodbye:
                        throw new ProtocolException(ErrorCode.ConnectionClosed, $"the coordinator said goodbye: {goodbye.Message}") { IsRemote = true };
                    case Error error:
                        throw new ProtocolException(error.Code, $"peer reported {error.Code}: {error.Message}") { IsRemote = true };
                    case Heartbeat:
                        break;
                    case AggregationEnvelope envelope:
                        // Late messages of a secure round this worker already finished or left.
                        LogStaleEnvelope(Logger, envelope.Round);
                        break;
                    case null:
                        throw new ProtocolException(ErrorCode.ConnectionClosed, "the coordinator closed the connection");
                    default:
                        throw new ProtocolException(ErrorCode.UnexpectedMessage, $"unexpected {message.Descriptor.Name} from the coordinator while waiting for a round");
                }
            }
        }

        private async Task<IMessage?> ReceiveAsync(CancellationToken stopping)
        {
            if (_deferred is { } deferred)
            {
                _deferred = null;
                return deferred;
            }

            using var idle = CancellationTokenSource.CreateLinkedTokenSource(stopping);
            idle.CancelAfter(_idleTimeout);
            try
            {
                return await connection.ReceiveAsync(idle.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
            {
                throw new ProtocolException(ErrorCode.Timeout, $"nothing from the coordinator for {_idleTimeout.TotalSeconds:0.#} s (heartbeat timeout)");
            }
        }

        private void HandleReceipt(Receipt frame)
        {
            if (_pending is not { } pending || pending.Round != frame.Round || pending.JobId != frame.JobId)
            {
                LogReceiptUnexpected(Logger, frame.JobId, frame.Round);
                return;
            }

            try
            {
                var receipt = owner._receipts!.VerifyAndAppend(frame, pending.JobId, pending.Round, pending.UpdateHash, owner._time.GetUtcNow().ToUnixTimeMilliseconds());
                _pending = null;
                Status.AddReceipt(frame.Round);
                owner._metrics?.Receipts(1);
                LogReceipt(Logger, frame.Round, frame.Sequence, receipt.Receipt.Receipt.SamplesProcessed);
            }
            catch (ReceiptVerificationException ex)
            {
                _pending = null;
                Status.SetError("receipt rejected: " + ex.Message);
                LogReceiptRejected(Logger, frame.Round, ex.Message);
            }
        }

        private async Task<PendingReceipt?> RunRoundAsync(JobAssignment assignment, CancellationToken stopping)
        {
            var hp = assignment.HyperParameters ?? throw new ProtocolException(ErrorCode.MalformedFrame, $"JobAssignment for round {assignment.Round} has no hyper_parameters");
            if (assignment.Model is null)
            {
                throw new ProtocolException(ErrorCode.MalformedFrame, $"JobAssignment for round {assignment.Round} has no model");
            }

            if (hp.SyncStrategy is not (SyncStrategy.Diloco or SyncStrategy.Ddp or SyncStrategy.Demo))
            {
                throw new WorkerFatalException($"job '{assignment.JobId}' uses sync strategy {hp.SyncStrategy}; this worker implements DILOCO, DDP and DEMO");
            }

            var secure = hp.SecureAggregation is not null;
            if (!secure && hp.SyncStrategy == SyncStrategy.Diloco && (hp.UpdateEncoding == UpdateEncoding.Unspecified || !Enum.IsDefined(hp.UpdateEncoding)))
            {
                throw new WorkerFatalException(
                    $"job '{assignment.JobId}' asks for update encoding {UpdateEncodings.Format(hp.UpdateEncoding)}; this worker implements {string.Join(", ", UpdateEncodings.Names)}");
            }

            var steps = (int)Math.Min(hp.InnerSteps, int.MaxValue);
            if (steps < 1 || hp.BatchSize < 1)
            {
                throw new WorkerFatalException($"job '{assignment.JobId}' has inner_steps {hp.InnerSteps} and batch_size {hp.BatchSize}; both must be at least 1");
            }

            Status.StartRound(assignment.JobId, assignment.Round, steps);
            LogAssignment(Logger, assignment.JobId, assignment.Round, assignment.ParameterVersion, steps, assignment.ShardIds.Count);
            var job = owner._job;
            if (job is null || !job.Matches(assignment))
            {
                job = WorkerJob.Create(assignment, owner._options.DatasetDirectory, owner._registry, owner._options.ThreadCount);
                owner._job?.Dispose();
                owner._job = job;
                LogJobBuilt(Logger, assignment.JobId, assignment.Model.Architecture, job.Model.Parameters.Length);
            }

            var deadline = assignment.DeadlineUnixMs > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(assignment.DeadlineUnixMs) : DateTimeOffset.MaxValue;
            if (deadline != DateTimeOffset.MaxValue && deadline - owner._time.GetUtcNow() < UploadReserve)
            {
                // Too late for even one step and the upload: skip cleanly, before asking for parameters.
                LogRoundSkipped(Logger, assignment.Round, (deadline - owner._time.GetUtcNow()).TotalSeconds);
                return null;
            }

            var root = assignment.ParameterRoot.ToByteArray();
            if (job.Holds(assignment.ParameterVersion, root))
            {
                LogParametersCached(Logger, assignment.ParameterVersion);
            }
            else
            {
                Status.SetState(WorkerState.Downloading);
                job.InvalidateGlobal();
                Status.SetParameterVersion(null);
                var before = connection.BytesReceived;
                var clock = Stopwatch.GetTimestamp();
                await connection.SendAsync(new ParameterRequest { ParameterVersion = assignment.ParameterVersion }, stopping).ConfigureAwait(false);
                using (var download = CancellationTokenSource.CreateLinkedTokenSource(stopping))
                {
                    // Bounded by the round deadline: parameters that arrive after it are of no use for this round.
                    if (assignment.DeadlineUnixMs > 0)
                    {
                        var left = DateTimeOffset.FromUnixTimeMilliseconds(assignment.DeadlineUnixMs) - owner._time.GetUtcNow();
                        download.CancelAfter(left > TimeSpan.Zero ? left : TimeSpan.Zero);
                    }

                    try
                    {
                        await ParameterTransfer.ReceiveAsync(connection, job.Global, assignment.ParameterVersion, assignment.ParameterRoot.Memory, download.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
                    {
                        throw new ProtocolException(ErrorCode.Timeout, $"the parameters of version {assignment.ParameterVersion} did not arrive before the round {assignment.Round} deadline");
                    }
                }

                job.SetGlobal(assignment.ParameterVersion, root);
                Status.SetParameterVersion(assignment.ParameterVersion);
                SyncTraffic();
                var downloaded = connection.BytesReceived - before;
                var milliseconds = Stopwatch.GetElapsedTime(clock).TotalMilliseconds;
                LogParametersDownloaded(Logger, assignment.ParameterVersion, downloaded, milliseconds);
            }

            job.LoadGlobal();
            if (hp.SyncStrategy != SyncStrategy.Diloco)
            {
                return await RunRelayRoundAsync(job, assignment, hp, steps, deadline, stopping).ConfigureAwait(false);
            }

            var trainer = job.EnsureTrainer(hp.InnerLearningRate, hp.WeightDecay);
            Status.SetState(WorkerState.Training);
            var shards = assignment.ShardIds.Select(static s => (int)s).ToArray();
            var seed = unchecked(hp.Seed * 0x9E3779B97F4A7C15UL + assignment.Round);
            var run = new InnerRun(steps);
            using var progressStop = CancellationTokenSource.CreateLinkedTokenSource(stopping);
            var progress = SendProgressAsync(assignment.Round, run, progressStop.Token);
            InnerResult result;

            // Training stops at the next step on shutdown, or when the connection dies (nothing could be sent anyway).
            using var trainingStop = CancellationTokenSource.CreateLinkedTokenSource(stopping, connection.Closed);
            var roundContext = NearMLTracing.RemoteRound(assignment.TraceParent);
            try
            {
                using var trainSpan = NearMLTracing.StartTrain(owner._options.WorkerId, assignment.Round, roundContext);
                result = await NearMLTracing.Traced(trainSpan, Task.Run(() => Train(job, trainer, shards, (int)hp.BatchSize, seed, deadline, run, trainingStop.Token), trainingStop.Token)).ConfigureAwait(false);
                trainSpan?.SetTag("nearml.steps", result.Steps);
            }
            catch (NonFiniteValueException ex)
            {
                LogNonFinite(Logger, assignment.Round, ex.Message);
                return null;
            }
            catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
            {
                throw new ProtocolException(ErrorCode.ConnectionClosed, $"the connection to the coordinator was lost during round {assignment.Round}");
            }
            finally
            {
                await progressStop.CancelAsync().ConfigureAwait(false);
                await progress.ConfigureAwait(false);
            }

            owner._metrics?.Steps(result.Steps, result.Elapsed > TimeSpan.Zero ? result.Samples / result.Elapsed.TotalSeconds : 0);
            if (result.Steps == 0)
            {
                LogRoundSkipped(Logger, assignment.Round, (deadline - owner._time.GetUtcNow()).TotalSeconds);
                return null;
            }

            if (result.Steps < steps)
            {
                LogRoundCutShort(Logger, assignment.Round, result.Steps, steps);
            }

            Status.SetProgress(result.Steps, result.LastLoss);
            Status.SetState(WorkerState.Uploading);
            if (secure)
            {
                var masked = await RunSecureAggregationAsync(job, assignment, hp, result, stopping).ConfigureAwait(false);
                return masked is null ? null : new PendingReceipt(assignment.JobId, assignment.Round, masked);
            }

            using var uploadSpan = NearMLTracing.StartUpload(owner._options.WorkerId, assignment.Round, UpdateEncodings.NameOf(hp.UpdateEncoding), roundContext);
            var hash = await NearMLTracing.Traced(uploadSpan, SendUpdateAsync(job, assignment, hp, result, stopping)).ConfigureAwait(false);
            return new PendingReceipt(assignment.JobId, assignment.Round, hash);
        }

        private InnerResult Train(
            WorkerJob job, ITrainableModel trainer, int[] shards, int batchSize, ulong seed, DateTimeOffset deadline, InnerRun run, CancellationToken cancellationToken)
        {
            var source = job.Dataset.CreateBatchSource(shards, batchSize, seed);
            var epoch = 0;
            source.StartEpoch(epoch);
            var batch = source.CreateBatch();
            var time = owner._time;
            var start = Stopwatch.GetTimestamp();
            long samples = 0;
            double lossSum = 0;
            var lastLoss = float.NaN;
            var step = 0;

            // Keep room after the last step for encoding and sending the update: UploadReserve, or two mean steps if longer.
            var reserve = UploadReserve;
            for (; step < run.TotalSteps; step++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var meanStep = step == 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(start) / step;
                var margin = reserve > meanStep * 2 ? reserve : meanStep * 2;
                if (deadline != DateTimeOffset.MaxValue && time.GetUtcNow() + meanStep + margin > deadline)
                {
                    break;
                }

                if (!source.TryFill(batch))
                {
                    source.StartEpoch(++epoch);
                    if (!source.TryFill(batch))
                    {
                        throw new WorkerFatalException($"shards [{string.Join(", ", shards)}] give no training batch of {batchSize} samples");
                    }
                }

                lastLoss = trainer.TrainStep(batch);
                samples += batch.Count;
                lossSum += (double)lastLoss * batch.Count;
                var elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
                run.Report(step + 1, lastLoss, elapsed > 0 ? samples / elapsed : 0);
            }

            return new InnerResult(step, samples, samples > 0 ? (float)(lossSum / samples) : float.NaN, lastLoss, Stopwatch.GetElapsedTime(start));
        }

        private async Task SendProgressAsync(ulong round, InnerRun run, CancellationToken cancellationToken)
        {
            using var timer = new PeriodicTimer(ProgressInterval, owner._time);
            var lastStep = 0;
            try
            {
                while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
                {
                    var (step, loss, rate) = run.Read();
                    if (step == lastStep)
                    {
                        continue;
                    }

                    lastStep = step;
                    Status.SetProgress(step, loss);
                    await connection.SendAsync(
                        new Progress { Round = round, Step = (uint)step, TotalSteps = (uint)run.TotalSteps, Loss = loss, SamplesPerSecond = rate },
                        cancellationToken).ConfigureAwait(false);
                    SyncTraffic();
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
            }
            catch (ProtocolException ex)
            {
                // The connection is gone; the round's own sends will report it.
                LogProgressFailed(Logger, ex.Message);
            }
        }

        /// <summary>
        /// Secure aggregation (SecAgg+, contract §8): the fixed-point, step-weighted Δ is masked by NearML.Aggregation's client state
        /// machine, whose messages travel in <see cref="AggregationEnvelope"/> frames. Returns the SHA-256 of the MaskedInput message
        /// sent (what the receipt credits), or <see langword="null"/> when the worker did not send one.
        /// </summary>
        private async Task<byte[]?> RunSecureAggregationAsync(WorkerJob job, JobAssignment assignment, HyperParameters hp, InnerResult result, CancellationToken stopping)
        {
            var settings = hp.SecureAggregation;
            if (settings.Config is null || settings.ValueBits > int.MaxValue || settings.MaxWeight > int.MaxValue)
            {
                throw new ProtocolException(
                    ErrorCode.MalformedFrame,
                    $"secure round {assignment.Round}: the assignment's secure_aggregation settings are malformed (config {(settings.Config is null ? "missing" : "present")}, value_bits {settings.ValueBits}, max_weight {settings.MaxWeight})");
            }

            var config = settings.Config;
            var clientId = settings.ClientId;
            var clip = settings.ClipRange;
            var valueBits = (int)settings.ValueBits;
            var maxWeight = (int)settings.MaxWeight;

            job.Model.PullParameters();
            job.Delta.SetDifference(job.Global, job.Model.Parameters);
            if (owner._options.InjectNanUpdate)
            {
                job.Delta.Data.Fill(float.NaN);
                LogNanInjected(Logger, assignment.Round);
            }

            if (!job.Delta.IsFinite)
            {
                LogSecureSkipped(Logger, assignment.Round, "the pseudo-gradient is not finite");
                return null;
            }

            var weight = Math.Min(result.Steps, maxWeight);
            FixedPointEncoder encoder;
            try
            {
                encoder = new FixedPointEncoder((float)clip, valueBits, (int)config.NumClients, maxWeight);
            }
            catch (ArgumentException ex)
            {
                LogSecureSkipped(Logger, assignment.Round, $"the fixed-point settings are invalid: {ex.Message}");
                return null;
            }

            if (encoder.RingBits != (int)config.RingBits || config.VectorLength != (uint)FixedPointEncoder.EncodedLength(job.Delta.Length))
            {
                LogSecureSkipped(Logger, assignment.Round,
                    $"ring bits {encoder.RingBits} / vector length {FixedPointEncoder.EncodedLength(job.Delta.Length)} differ from the round's {config.RingBits} / {config.VectorLength}");
                return null;
            }

            // The worker's local floor: the signed (malicious-server) variant, its own identity at its id, and a (k, t) no
            // weaker than NearMLWorkerOptions.SecureAggregationMinimum. A weaker proposal is refused, with the reason sent back.
            var identity = owner._identity!;
            if (owner._options.SecureAggregationMinimum.Check(config, clientId, identity.PublicKey.Span) is { } refusal)
            {
                LogSecureSkipped(Logger, assignment.Round, $"the coordinator's aggregation configuration was refused: {refusal}");
                await SendEnvelopeAsync(assignment, new ClientMessage { JobId = config.JobId, Round = config.Round, Sender = clientId, Refusal = new NearML.Core.Contracts.Aggregation.Refusal { Reason = refusal } }, stopping).ConfigureAwait(false);
                return null;
            }

            var input = new uint[FixedPointEncoder.EncodedLength(job.Delta.Length)];
            encoder.Encode(job.Delta.Data, weight, input);
            var client = new SecureAggregationClient(config, clientId, input, identity);
            byte[]? maskedHash = null;
            var before = connection.BytesSent;
            await SendEnvelopeAsync(assignment, client.Start(), stopping).ConfigureAwait(false);
            while (client.Phase is not (AggregationPhase.Completed or AggregationPhase.Failed))
            {
                var message = await ReceiveAsync(stopping).ConfigureAwait(false);
                SyncTraffic();
                if (message is Heartbeat)
                {
                    continue;
                }

                if (message is not AggregationEnvelope envelope)
                {
                    // The coordinator moved on (next assignment, receipt, goodbye, close): leave the round, let the session handle it.
                    _deferred = message;
                    LogSecureLeft(Logger, assignment.Round, client.Phase);
                    break;
                }

                if (envelope.Round != assignment.Round || envelope.JobId != assignment.JobId)
                {
                    LogStaleEnvelope(Logger, envelope.Round);
                    continue;
                }

                ClientMessage reply;
                try
                {
                    reply = client.Handle(AggregationRound.ParseServerMessage(envelope.Payload.Span));
                }
                catch (Exception ex) when (ex is AggregationProtocolException or InvalidDataFormatException or InvalidProtocolBufferException)
                {
                    LogSecureSkipped(Logger, assignment.Round, $"the coordinator's aggregation message was refused: {ex.Message}");
                    break;
                }

                var payload = await SendEnvelopeAsync(assignment, reply, stopping).ConfigureAwait(false);
                if (reply.BodyCase == ClientMessage.BodyOneofCase.MaskedInput)
                {
                    maskedHash = SHA256.HashData(payload);
                }
            }

            if (client.Phase == AggregationPhase.Failed)
            {
                LogSecureSkipped(Logger, assignment.Round, $"the aggregation client refused the round: {client.RefusalReason}");
            }

            SyncTraffic();
            var secureBytes = connection.BytesSent - before;
            LogSecureDone(Logger, assignment.Round, client.Phase, weight, secureBytes);
            return maskedHash;
        }

        private async Task<byte[]> SendEnvelopeAsync(JobAssignment assignment, ClientMessage message, CancellationToken stopping)
        {
            var payload = message.ToByteArray();
            await connection.SendAsync(
                new AggregationEnvelope { JobId = assignment.JobId, Round = assignment.Round, Payload = ByteString.CopyFrom(payload), PartIndex = 0, PartCount = 1 },
                stopping).ConfigureAwait(false);
            return payload;
        }

        private async Task<byte[]> SendUpdateAsync(WorkerJob job, JobAssignment assignment, HyperParameters hp, InnerResult result, CancellationToken stopping, UpdateEncoding? encodingOverride = null)
        {
            var encoding = encodingOverride ?? hp.UpdateEncoding;
            job.Model.PullParameters();
            job.Delta.SetDifference(job.Global, job.Model.Parameters);
            if (owner._options.InjectNanUpdate)
            {
                job.Delta.Data.Fill(float.NaN);
                LogNanInjected(Logger, assignment.Round);
            }

            byte[] payload;
            string encodingName;
            try
            {
                encodingName = UpdateEncodings.NameOf(encoding);
                payload = new byte[UpdateEncodings.GetEncodedLength(encoding, job.Delta.Length)];
                UpdateEncodings.Encode(encoding, job.Delta.Data, payload);
            }
            catch (JobConfigurationException ex)
            {
                throw new WorkerFatalException($"job '{assignment.JobId}' asks for update encoding {UpdateEncodings.Format(encoding)}: {ex.Message}", ex);
            }

            var hash = SHA256.HashData(payload);
            var digest = ByteString.CopyFrom(hash);
            var parts = Math.Max(1, (payload.Length + _maxPart - 1) / _maxPart);
            var before = connection.BytesSent;
            for (var i = 0; i < parts; i++)
            {
                var offset = i * _maxPart;
                var length = Math.Min(_maxPart, payload.Length - offset);
                await connection.SendAsync(
                    new Update
                    {
                        Round = assignment.Round,
                        BaseParameterVersion = assignment.ParameterVersion,
                        Encoding = encoding,
                        Payload = UnsafeByteOperations.UnsafeWrap(payload.AsMemory(offset, length)),
                        SampleCount = (ulong)result.Samples,
                        Loss = result.MeanLoss,
                        PartIndex = (uint)i,
                        PartCount = (uint)parts,
                        PayloadSha256 = digest,
                    },
                    stopping).ConfigureAwait(false);
            }

            SyncTraffic();
            LogUpdateSent(Logger, assignment.Round, encodingName, payload.Length, parts, connection.BytesSent - before, result.Samples, result.MeanLoss);
            return hash;
        }

        private static WorkerCapabilities CreateCapabilities(NearMLWorkerOptions options, JobRegistry registry)
        {
            var capabilities = new WorkerCapabilities
            {
                ModelKeys = { registry.ModelKeys },
                DatasetKeys = { registry.DatasetKeys },
                Device = $"cpu:{RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant()}",
                Software = $"NearML.Hosting/{typeof(WorkerService).Assembly.GetName().Version}",
                MemoryBytes = (ulong)Math.Max(0, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes),
            };
            capabilities.Features.Add("diloco");
            capabilities.Features.Add("ddp");
            capabilities.Features.Add("demo");
            capabilities.Features.Add("fp32");
            capabilities.Features.Add("fp16");
            capabilities.Features.Add("int8");
            capabilities.Features.Add("int4");
            switch (options.AttestationProvider)
            {
                case NearMLWorkerOptions.SimulatedProvider:
                    capabilities.EvidenceFormats.Add(WorkerAttestation.SimulatedFormat);
                    break;
                case NearMLWorkerOptions.ConfigFsTsmProvider:
                    capabilities.EvidenceFormats.Add(WorkerAttestation.TdxFormat);
                    capabilities.EvidenceFormats.Add(WorkerAttestation.SevSnpFormat);
                    break;
            }

            return capabilities;
        }
    }

    /// <summary>The coordinator said goodbye without inviting the worker back (the job is complete).</summary>
    private sealed class CoordinatorFinishedException(string message) : Exception(message);

    private sealed record PendingReceipt(string JobId, ulong Round, byte[] UpdateHash);

    private readonly record struct InnerResult(int Steps, long Samples, float MeanLoss, float LastLoss, TimeSpan Elapsed);

    /// <summary>Progress shared between the training thread and the progress sender.</summary>
    private sealed class InnerRun(int totalSteps)
    {
        private readonly Lock _lock = new();
        private int _step;
        private float _loss = float.NaN;
        private double _rate;

        public int TotalSteps { get; } = totalSteps;

        public void Report(int step, float loss, double rate)
        {
            lock (_lock)
            {
                _step = step;
                _loss = loss;
                _rate = rate;
            }
        }

        public (int Step, float Loss, double Rate) Read()
        {
            lock (_lock)
            {
                return (_step, _loss, _rate);
            }
        }
    }
}
