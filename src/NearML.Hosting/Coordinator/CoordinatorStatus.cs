namespace NearML.Hosting.Coordinator;

/// <summary>One connected (or recently seen) worker as the coordinator sees it.</summary>
/// <param name="Id">The worker id from its Hello.</param>
/// <param name="State">admitted, downloading, training, submitted, left, dropped.</param>
/// <param name="Round">The round it is working on (−1 before its first assignment).</param>
/// <param name="Step">Its last reported inner step.</param>
/// <param name="Loss">Its last reported loss.</param>
/// <param name="BytesSent">Bytes the coordinator sent to it on this connection.</param>
/// <param name="BytesReceived">Bytes the coordinator received from it on this connection.</param>
/// <param name="Attestation">The admission's attestation verdict: <c>verified (tdx)</c>, <c>verified (sev-snp)</c>, <c>simulated (insecure)</c> or <c>unattested</c>.</param>
/// <param name="Receipts">Receipts the ledger holds for the worker's account in this job.</param>
/// <param name="SamplesPerSecond">Its throughput in its last accepted round (samples ÷ time from assignment to upload; 0 before one).</param>
public sealed record CoordinatorWorkerInfo(
    string Id, string State, long Round, int Step, float Loss, long BytesSent, long BytesReceived, string Attestation = "unattested", long Receipts = 0, double SamplesPerSecond = 0);

/// <summary>One signed settlement transaction.</summary>
/// <param name="Epoch">The ledger epoch it settles.</param>
/// <param name="Hash">The transaction hash (base58).</param>
/// <param name="Receiver">The receiving account.</param>
/// <param name="Amount">The amount in yoctoNEAR as decimal text (empty when not recorded).</param>
/// <param name="DryRun">Whether it was only signed, not sent.</param>
public sealed record CoordinatorSettlementInfo(long Epoch, string Hash, string Receiver, string Amount, bool DryRun);

/// <summary>The outcome of one completed round.</summary>
/// <param name="Round">The round.</param>
/// <param name="Cohort">Workers that received the assignment.</param>
/// <param name="Accepted">Updates averaged in.</param>
/// <param name="Rejected">Updates rejected (non-finite, norm, malformed).</param>
/// <param name="MeanLoss">The sample-weighted mean of the accepted workers' losses (NaN when none).</param>
/// <param name="Accuracy">Test accuracy after the round, when evaluated.</param>
/// <param name="Duration">Wall time from assignment to outer step.</param>
/// <param name="UpdateBytes">Payload bytes of the accepted updates.</param>
/// <param name="AcceptedWorkers">The ids (as in their Hello) of the workers whose updates were averaged in.</param>
public sealed record CoordinatorRoundInfo(long Round, int Cohort, int Accepted, int Rejected, double MeanLoss, double? Accuracy, TimeSpan Duration, long UpdateBytes, IReadOnlyList<string> AcceptedWorkers);

/// <summary>What a coordinator process is doing with its job's state (docs/failover.md).</summary>
public enum CoordinatorRole
{
    /// <summary>Loading the job and asking for the lease.</summary>
    Starting,

    /// <summary>Another coordinator holds the lease on the shared state: this one does not listen, and asks again every <see cref="NearMLCoordinatorOptions.LeaseRetryInterval"/>.</summary>
    Standby,

    /// <summary>This coordinator holds the lease: it loaded the state and serves workers.</summary>
    Serving,
}

/// <summary>
/// Live state of the coordinator, registered as a singleton by <c>AddNearMLCoordinator</c>: read it from a dashboard or a
/// test; <see cref="StatusChanged"/> fires (on the coordinator's threads) after each change.
/// </summary>
public sealed class CoordinatorStatus
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, CoordinatorWorkerInfo> _workers = new(StringComparer.Ordinal);
    private readonly List<CoordinatorRoundInfo> _rounds = [];
    private readonly List<CoordinatorSettlementInfo> _settlements = [];
    private readonly Dictionary<string, UInt128> _payouts = new(StringComparer.Ordinal);
    private readonly TaskCompletionSource _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _completed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TimeProvider _time;

    /// <summary>Initializes a status on the system clock.</summary>
    public CoordinatorStatus()
        : this(TimeProvider.System)
    {
    }

    /// <summary>Initializes a status whose timestamps (<see cref="ListeningSince"/>, <see cref="LastRoundCompletedAt"/>,
    /// <see cref="WorkersConnectedSince"/>) come from <paramref name="timeProvider"/>.</summary>
    /// <param name="timeProvider">The clock.</param>
    public CoordinatorStatus(TimeProvider timeProvider) => _time = timeProvider ?? throw new ArgumentNullException(nameof(timeProvider));

    /// <summary>Occurs after any change.</summary>
    public event EventHandler? StatusChanged;

    /// <summary>Gets the coordinator's role: starting, standby (another coordinator holds the lease) or serving.</summary>
    public CoordinatorRole Role { get; private set; }

    /// <summary>Gets when this coordinator became standby, or <see langword="null"/> when it never waited for the lease.</summary>
    public DateTimeOffset? StandbySince { get; private set; }

    /// <summary>Gets when this coordinator took the lease, or <see langword="null"/> before.</summary>
    public DateTimeOffset? LeaseAcquiredAt { get; private set; }

    /// <summary>Gets the job id.</summary>
    public string JobId { get; private set; } = string.Empty;

    /// <summary>Gets the actual TCP port (0 until listening).</summary>
    public int Port { get; private set; }

    /// <summary>Gets the TLS certificate's SHA-256 fingerprint (for workers to pin).</summary>
    public string? Fingerprint { get; private set; }

    /// <summary>Gets the number of trainable parameters of the job's model (0 until listening).</summary>
    public long ParameterCount { get; private set; }

    /// <summary>Gets the current round (the next one to run when idle).</summary>
    public long Round { get; private set; }

    /// <summary>Gets the version of the global parameters (outer steps applied).</summary>
    public long ParameterVersion { get; private set; }

    /// <summary>Gets the test accuracy at the last evaluation.</summary>
    public double? LastAccuracy { get; private set; }

    /// <summary>Gets the bytes received from workers (their uploads) since start.</summary>
    public long TotalBytesUp { get; private set; }

    /// <summary>Gets the bytes sent to workers (assignments, parameters, receipts) since start.</summary>
    public long TotalBytesDown { get; private set; }

    /// <summary>Gets the hex hash of the ledger's last entry.</summary>
    public string? LedgerRoot { get; private set; }

    /// <summary>Gets the number of ledger entries.</summary>
    public long LedgerEntries { get; private set; }

    /// <summary>Gets a value indicating whether every round of the job has completed.</summary>
    public bool Completed { get; private set; }

    /// <summary>Gets when the coordinator started listening (null before).</summary>
    public DateTimeOffset? ListeningSince { get; private set; }

    /// <summary>Gets when the last round of this run completed (null before the first).</summary>
    public DateTimeOffset? LastRoundCompletedAt { get; private set; }

    /// <summary>Gets since when at least one worker has been connected without a break (null while none is).</summary>
    public DateTimeOffset? WorkersConnectedSince { get; private set; }

    /// <summary>Gets the number of connected workers (admitted and neither left, dropped nor replaced).</summary>
    public int ConnectedWorkers
    {
        get
        {
            lock (_gate)
            {
                return CountConnected();
            }
        }
    }

    /// <summary>Gets the last fatal error, if the service stopped because of one.</summary>
    public string? LastError { get; private set; }

    /// <summary>Gets the settlement transaction hashes signed so far (base58), in order.</summary>
    public IReadOnlyList<string> Settlements
    {
        get
        {
            lock (_gate)
            {
                return [.. _settlements.Select(s => s.Hash)];
            }
        }
    }

    /// <summary>Gets the settlement transactions signed so far with their epoch, receiver and amount, in order.</summary>
    public IReadOnlyList<CoordinatorSettlementInfo> SettlementTransactions
    {
        get
        {
            lock (_gate)
            {
                return [.. _settlements];
            }
        }
    }

    /// <summary>Gets the cumulative settled payout per receiving account (yoctoNEAR as decimal text), dry runs included.</summary>
    public IReadOnlyDictionary<string, string> Payouts
    {
        get
        {
            lock (_gate)
            {
                return _payouts.ToDictionary(p => p.Key, p => p.Value.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparer.Ordinal);
            }
        }
    }

    /// <summary>Gets a snapshot of the workers.</summary>
    public IReadOnlyList<CoordinatorWorkerInfo> Workers
    {
        get
        {
            lock (_gate)
            {
                return [.. _workers.Values.OrderBy(w => w.Id, StringComparer.Ordinal)];
            }
        }
    }

    /// <summary>Gets the completed rounds of this run, in order.</summary>
    public IReadOnlyList<CoordinatorRoundInfo> Rounds
    {
        get
        {
            lock (_gate)
            {
                return [.. _rounds];
            }
        }
    }

    /// <summary>Gets a task that completes when the coordinator listens (faults if it cannot start).</summary>
    public Task Listening => _listening.Task;

    /// <summary>Gets a task that completes when the job's last round is done (faults if the service fails).</summary>
    public Task CompletedTask => _completed.Task;

    internal void SetStandby(string jobId)
    {
        lock (_gate)
        {
            JobId = jobId;
            Role = CoordinatorRole.Standby;
            StandbySince ??= _time.GetUtcNow();
        }

        Raise();
    }

    internal void SetLeaseAcquired()
    {
        lock (_gate)
        {
            LeaseAcquiredAt = _time.GetUtcNow();
        }

        Raise();
    }

    internal void SetListening(string jobId, int port, string fingerprint, long parameterCount)
    {
        lock (_gate)
        {
            Role = CoordinatorRole.Serving;
            JobId = jobId;
            ParameterCount = parameterCount;
            Port = port;
            Fingerprint = fingerprint;
            ListeningSince = _time.GetUtcNow();
        }

        _listening.TrySetResult();
        Raise();
    }

    internal void SetRound(long round, long version)
    {
        lock (_gate)
        {
            Round = round;
            ParameterVersion = version;
        }

        Raise();
    }

    internal void SetWorker(CoordinatorWorkerInfo info)
    {
        lock (_gate)
        {
            _workers[info.Id] = info;
            var connected = CountConnected();
            WorkersConnectedSince = connected == 0 ? null : WorkersConnectedSince ?? _time.GetUtcNow();
        }

        Raise();
    }

    internal void AddTraffic(long up, long down)
    {
        lock (_gate)
        {
            TotalBytesUp += up;
            TotalBytesDown += down;
        }
    }

    internal void AddRound(CoordinatorRoundInfo info)
    {
        lock (_gate)
        {
            _rounds.Add(info);
            LastRoundCompletedAt = _time.GetUtcNow();
            if (info.Accuracy is { } a)
            {
                LastAccuracy = a;
            }
        }

        Raise();
    }

    internal void SetAccuracy(double accuracy)
    {
        lock (_gate)
        {
            LastAccuracy = accuracy;
        }

        Raise();
    }

    internal void SetLedger(long entries, string root)
    {
        lock (_gate)
        {
            LedgerEntries = entries;
            LedgerRoot = root;
        }

        Raise();
    }

    internal void AddSettlement(long epoch, string hash, string receiver, UInt128 amount, bool dryRun)
    {
        lock (_gate)
        {
            _settlements.Add(new CoordinatorSettlementInfo(epoch, hash, receiver, amount == 0 ? string.Empty : amount.ToString(System.Globalization.CultureInfo.InvariantCulture), dryRun));
            _payouts[receiver] = (_payouts.TryGetValue(receiver, out var v) ? v : 0) + amount;
        }

        Raise();
    }

    internal void SetCompleted()
    {
        lock (_gate)
        {
            Completed = true;
        }

        _completed.TrySetResult();
        Raise();
    }

    internal void SetFailed(Exception error)
    {
        lock (_gate)
        {
            LastError = error.Message;
        }

        _listening.TrySetException(error);
        _completed.TrySetException(error);
        Raise();
    }

    /// <summary>The connected workers and since when, read together (the health check must not see one without the other).</summary>
    internal (int Connected, DateTimeOffset? Since) ConnectedWorkersSince()
    {
        lock (_gate)
        {
            return (CountConnected(), WorkersConnectedSince);
        }
    }

    private int CountConnected() => _workers.Values.Count(w => w.State is not ("left" or "dropped" or "replaced"));

    private void Raise() => StatusChanged?.Invoke(this, EventArgs.Empty);
}
