namespace NearML.Hosting.Worker;

/// <summary>What the worker is doing.</summary>
public enum WorkerState
{
    /// <summary>The service has not started yet.</summary>
    NotStarted,

    /// <summary>Connecting to the coordinator and running the handshake.</summary>
    Connecting,

    /// <summary>Admitted; waiting for the next round's assignment (or for a receipt).</summary>
    Waiting,

    /// <summary>Downloading and verifying the global parameters.</summary>
    Downloading,

    /// <summary>Running the inner optimizer steps.</summary>
    Training,

    /// <summary>Sending the round's update.</summary>
    Uploading,

    /// <summary>Waiting before reconnecting after a fault.</summary>
    Reconnecting,

    /// <summary>Stopped cleanly (host shutdown).</summary>
    Stopped,

    /// <summary>The coordinator ended the job (a <c>Goodbye</c> without an invitation to rejoin); the worker does not reconnect.</summary>
    Completed,

    /// <summary>Stopped because of a permanent failure; see <see cref="WorkerStatus.LastError"/>.</summary>
    Failed,
}

/// <summary>
/// A live view of the worker, registered as a singleton by <c>AddNearMLWorker</c>. Properties are safe to read from any
/// thread; <see cref="StatusChanged"/> is raised (on the worker's thread, so handlers must be quick) after each change.
/// </summary>
public sealed class WorkerStatus
{
    private readonly Lock _lock = new();
    private WorkerState _state;
    private ulong _round;
    private int _step;
    private int _totalSteps;
    private float _loss = float.NaN;
    private long _bytesSent;
    private long _bytesReceived;
    private long _receipts;
    private ulong? _lastReceiptRound;
    private long _reconnects;
    private string? _lastError;
    private string? _jobId;
    private ulong? _parameterVersion;
    private string? _attestation;

    /// <summary>Raised after any property changed.</summary>
    public event EventHandler? StatusChanged;

    /// <summary>Gets what the worker is doing.</summary>
    public WorkerState State
    {
        get
        {
            lock (_lock)
            {
                return _state;
            }
        }
    }

    /// <summary>Gets the current (or last) round.</summary>
    public ulong Round
    {
        get
        {
            lock (_lock)
            {
                return _round;
            }
        }
    }

    /// <summary>Gets the inner step reached in the current round.</summary>
    public int Step
    {
        get
        {
            lock (_lock)
            {
                return _step;
            }
        }
    }

    /// <summary>Gets the number of inner steps planned for the current round.</summary>
    public int TotalSteps
    {
        get
        {
            lock (_lock)
            {
                return _totalSteps;
            }
        }
    }

    /// <summary>Gets the last training loss (NaN before the first step).</summary>
    public float Loss
    {
        get
        {
            lock (_lock)
            {
                return _loss;
            }
        }
    }

    /// <summary>Gets the bytes sent to coordinators over every connection (frame headers included).</summary>
    public long BytesSent => Interlocked.Read(ref _bytesSent);

    /// <summary>Gets the bytes received from coordinators over every connection (frame headers included).</summary>
    public long BytesReceived => Interlocked.Read(ref _bytesReceived);

    /// <summary>Gets the number of verified receipts appended to the receipts log by this process.</summary>
    public long Receipts => Interlocked.Read(ref _receipts);

    /// <summary>Gets the round of the last verified receipt, or <see langword="null"/>.</summary>
    public ulong? LastReceiptRound
    {
        get
        {
            lock (_lock)
            {
                return _lastReceiptRound;
            }
        }
    }

    /// <summary>Gets the number of reconnections after faults.</summary>
    public long Reconnects => Interlocked.Read(ref _reconnects);

    /// <summary>Gets the last error (transient or permanent), or <see langword="null"/>.</summary>
    public string? LastError
    {
        get
        {
            lock (_lock)
            {
                return _lastError;
            }
        }
    }

    /// <summary>Gets the current job id, or <see langword="null"/> before the first assignment.</summary>
    public string? JobId
    {
        get
        {
            lock (_lock)
            {
                return _jobId;
            }
        }
    }

    /// <summary>Gets the version of the global parameters the worker holds, or <see langword="null"/>.</summary>
    public ulong? ParameterVersion
    {
        get
        {
            lock (_lock)
            {
                return _parameterVersion;
            }
        }
    }

    /// <summary>Gets the attestation the worker joined with on its current (or last) connection — the provider whose
    /// evidence the coordinator admitted (<c>configfs-tsm</c>, <c>simulated</c>) or <c>none</c> — or <see langword="null"/>
    /// before its first admission.</summary>
    public string? Attestation
    {
        get
        {
            lock (_lock)
            {
                return _attestation;
            }
        }
    }

    /// <summary>Returns a one-line summary for logs and consoles.</summary>
    /// <returns>The summary.</returns>
    public override string ToString()
    {
        lock (_lock)
        {
            return FormattableString.Invariant(
                $"{_state} round {_round} step {_step}/{_totalSteps} loss {_loss:0.####} sent {BytesSent} B received {BytesReceived} B receipts {Receipts}{(_lastError is null ? string.Empty : " error: " + _lastError)}");
        }
    }

    internal void SetState(WorkerState state) => Update(() => _state = state);

    internal void SetError(string? error) => Update(() => _lastError = error);

    internal void SetAttestation(string provider) => Update(() => _attestation = provider);

    internal void SetFailed(string error) => Update(() =>
    {
        _state = WorkerState.Failed;
        _lastError = error;
    });

    internal void StartRound(string jobId, ulong round, int totalSteps) => Update(() =>
    {
        _jobId = jobId;
        _round = round;
        _step = 0;
        _totalSteps = totalSteps;
    });

    internal void SetParameterVersion(ulong? version) => Update(() => _parameterVersion = version);

    internal void SetProgress(int step, float loss) => Update(() =>
    {
        _step = step;
        _loss = loss;
    });

    internal void AddTraffic(long sent, long received)
    {
        if (sent != 0)
        {
            Interlocked.Add(ref _bytesSent, sent);
        }

        if (received != 0)
        {
            Interlocked.Add(ref _bytesReceived, received);
        }

        if (sent != 0 || received != 0)
        {
            StatusChanged?.Invoke(this, EventArgs.Empty);
        }
    }

    internal void AddReceipt(ulong round) => Update(() =>
    {
        Interlocked.Increment(ref _receipts);
        _lastReceiptRound = round;
    });

    internal void AddReconnect()
    {
        Interlocked.Increment(ref _reconnects);
        StatusChanged?.Invoke(this, EventArgs.Empty);
    }

    private void Update(Action change)
    {
        lock (_lock)
        {
            change();
        }

        StatusChanged?.Invoke(this, EventArgs.Empty);
    }
}
