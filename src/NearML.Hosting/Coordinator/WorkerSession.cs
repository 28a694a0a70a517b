using System.Security.Cryptography;
using NearML.Core.Contracts;
using NearML.Core.Protocol;
using NearML.Hosting.Jobs;

namespace NearML.Hosting.Coordinator;

/// <summary>A worker's decoded (or refused) update for one round.</summary>
/// <param name="Values">The decoded pseudo-gradient, or <see langword="null"/> when refused before averaging. The coordinator
/// decodes every round's update of a worker into the same buffer: it is valid until that worker's next round begins.</param>
/// <param name="SampleCount">Samples behind it.</param>
/// <param name="Loss">The worker's mean training loss.</param>
/// <param name="PayloadSha256">SHA-256 of the encoded payload.</param>
/// <param name="PayloadBytes">Encoded bytes.</param>
/// <param name="ComputeMilliseconds">From assignment to the last part.</param>
/// <param name="Reason">The rejection reason when <paramref name="Values"/> is null.</param>
/// <param name="Detail">The rejection detail.</param>
public sealed record SubmittedUpdate(float[]? Values, ulong SampleCount, float Loss, byte[] PayloadSha256, long PayloadBytes, long ComputeMilliseconds, string? Reason, string? Detail);

/// <summary>One admitted worker connection and its per-round state.</summary>
internal sealed class WorkerSession
{
    private readonly Lock _gate = new();
    private readonly CancellationTokenSource _closing;
    private long _round = -1;
    private long _baseVersion;
    private long _assignedAt;
    private TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private SubmittedUpdate? _update;
    private byte[]? _payload;
    private byte[]? _assembly;
    private float[]? _decoded;
    private bool _taken;
    private int _partsReceived;
    private long _partBytes;
    private uint _partCount;
    private byte[]? _partSha;
    private long _reportedSent;
    private long _reportedReceived;

    public WorkerSession(FrameConnection connection, AdmittedWorker admitted, string account, bool verified, CancellationToken serviceToken)
    {
        Connection = connection;
        Admitted = admitted;
        Account = account;
        Verified = verified;
        _closing = CancellationTokenSource.CreateLinkedTokenSource(serviceToken, connection.Closed);
        Participant = new NearML.Hosting.Rounds.RoundParticipant(this);
    }

    /// <summary>Gets this session as round protocols see it.</summary>
    public NearML.Hosting.Rounds.RoundParticipant Participant { get; }

    public FrameConnection Connection { get; }

    public AdmittedWorker Admitted { get; }

    public string Id => Admitted.WorkerId;

    public string Account { get; }

    public bool Verified { get; }

    public string KeyHex => Convert.ToHexStringLower(Admitted.PublicKey.Span);

    public SemaphoreSlim SendLock { get; } = new(1, 1);

    public CancellationToken Closing => _closing.Token;

    public string State { get; set; } = "admitted";

    public int Step { get; set; }

    public float Loss { get; set; }

    public string? CloseReason { get; private set; }

    public string CloseKind { get; private set; } = "left";

    public long Round
    {
        get
        {
            lock (_gate)
            {
                return _round;
            }
        }
    }

    public bool IsClosed => _closing.IsCancellationRequested;

    /// <summary>Gets when the first part of the current round's update arrived (default before one did).</summary>
    public DateTimeOffset UploadStartedAt { get; private set; }

    /// <summary>Gets when the current round's update was complete (or refused).</summary>
    public DateTimeOffset UploadEndedAt { get; private set; }

    /// <summary>Gets or sets the receipts the ledger holds for this worker's account.</summary>
    public long Receipts { get; set; }

    /// <summary>Gets or sets the throughput of its last accepted update (samples per second).</summary>
    public double SamplesPerSecond { get; set; }

    /// <summary>Gets the attestation verdict of its admission, as the dashboard shows it.</summary>
    public string Attestation => AttestationAdmissionPolicy.VendorOf(Admitted.EvidenceFormat) switch
    {
        NearML.Enclave.AttestationVendor.IntelTdx => "verified (tdx)",
        NearML.Enclave.AttestationVendor.AmdSevSnp => "verified (sev-snp)",
        NearML.Enclave.AttestationVendor.InsecureSimulated => "simulated (insecure)",
        _ => Admitted.EvidenceFormat.Length == 0 ? "unattested" : "unknown (" + Admitted.EvidenceFormat + ")",
    };

    public CoordinatorWorkerInfo Info() => new(Id, State, Round, Step, Loss, Connection.BytesSent, Connection.BytesReceived, Attestation, Receipts, SamplesPerSecond);

    public (long Sent, long Received) TakeTraffic()
    {
        var s = Connection.BytesSent;
        var r = Connection.BytesReceived;
        var delta = (s - _reportedSent, r - _reportedReceived);
        _reportedSent = s;
        _reportedReceived = r;
        return delta;
    }

    /// <summary>Starts a round for this worker; returns the task that completes when its update arrives or it leaves.</summary>
    public Task BeginRound(long round, long version, long nowTimestamp)
    {
        lock (_gate)
        {
            _round = round;
            _baseVersion = version;
            _assignedAt = nowTimestamp;
            _update = null;
            _payload = null;
            _taken = false;
            _partsReceived = 0;
            _partBytes = 0;
            UploadStartedAt = default;
            UploadEndedAt = default;
            _done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            if (IsClosed)
            {
                _done.TrySetResult();
            }

            State = "assigned";
            Step = 0;
            return _done.Task;
        }
    }

    /// <summary>Takes the update of <paramref name="round"/>, if one arrived.</summary>
    public SubmittedUpdate? TakeUpdate(long round)
    {
        lock (_gate)
        {
            if (_round != round)
            {
                return null;
            }

            // Once taken (or looked for at the deadline) the round's update is closed: a later Update for the round is ignored,
            // so the buffer the protocol is reducing is never decoded into again before the next round.
            var u = _update;
            _update = null;
            _taken = true;
            return u;
        }
    }

    /// <summary>Handles one Update frame (part); returns a message when the frame was ignored.</summary>
    public string? Receive(Update update, UpdateEncoding encoding, int parameterCount, long nowTimestamp, TimeProvider time)
    {
        lock (_gate)
        {
            if (_round < 0 || (long)update.Round != _round)
            {
                return $"an update for round {update.Round} while its assignment is round {_round}";
            }

            if (_update is not null)
            {
                return $"a second update for round {_round}";
            }

            if (_taken)
            {
                return $"an update for round {_round} after the round closed";
            }

            var expected = UpdateEncodings.GetEncodedLength(encoding, parameterCount);
            string? refusal = null;
            if ((long)update.BaseParameterVersion != _baseVersion)
            {
                refusal = $"it is based on parameter version {update.BaseParameterVersion}, but round {_round} started from version {_baseVersion}";
            }
            else if (update.Encoding != encoding)
            {
                refusal = $"encoding {UpdateEncodings.Format(update.Encoding)} is not the job's '{UpdateEncodings.NameOf(encoding)}'";
            }
            else if (update.SampleCount == 0)
            {
                refusal = "sample_count is 0";
            }

            var count = Math.Max(1u, update.PartCount);
            if (_payload is null)
            {
                UploadStartedAt = time.GetUtcNow();
            }

            if (refusal is null)
            {
                if (_payload is null)
                {
                    if (update.PartIndex != 0)
                    {
                        refusal = $"the first part has index {update.PartIndex}";
                    }
                    else if (count > 1 && update.PayloadSha256.Length != 32)
                    {
                        refusal = $"a {count}-part update needs payload_sha256 (32 bytes), got {update.PayloadSha256.Length} bytes";
                    }
                    else if (count > (expected / 4096) + 2)
                    {
                        refusal = $"part_count {count} is absurd for a {expected}-byte payload";
                    }
                    else
                    {
                        // Every part lands in its final place in one buffer of the expected size (one copy per byte), kept
                        // for the next rounds; a single-part update is read where the frame's parse put it (no copy).
                        _payload = count == 1 ? [] : _assembly is { } a && a.Length == expected ? a : _assembly = new byte[expected];
                        _partsReceived = 0;
                        _partCount = count;
                        _partSha = update.PayloadSha256.ToByteArray();
                    }
                }
                else if (update.PartIndex != _partsReceived || count != _partCount || !update.PayloadSha256.Span.SequenceEqual(_partSha))
                {
                    refusal = $"part {update.PartIndex}/{count} does not follow part {_partsReceived - 1}/{_partCount} of the same payload";
                }
            }

            if (refusal is null)
            {
                var offset = _partBytes;
                _partBytes += update.Payload.Length;
                if (_partBytes > expected)
                {
                    refusal = $"the payload exceeds the {expected} bytes of {parameterCount} {encoding} values";
                }
                else
                {
                    if (_partCount > 1)
                    {
                        update.Payload.Span.CopyTo(_payload.AsSpan((int)offset));
                    }

                    _partsReceived++;
                }
            }

            if (refusal is null && _partsReceived < _partCount)
            {
                State = "uploading";
                return null;
            }

            var ms = (long)time.GetElapsedTime(_assignedAt, nowTimestamp).TotalMilliseconds;
            if (refusal is not null)
            {
                _update = new SubmittedUpdate(null, update.SampleCount, update.Loss, new byte[32], _partBytes, ms, "Malformed", refusal);
            }
            else
            {
                ReadOnlySpan<byte> payload = _partCount > 1 ? _payload.AsSpan(0, (int)_partBytes) : update.Payload.Span;
                var sha = SHA256.HashData(payload);
                if (_partSha is { Length: 32 } && !CryptographicOperations.FixedTimeEquals(sha, _partSha))
                {
                    _update = new SubmittedUpdate(null, update.SampleCount, update.Loss, sha, payload.Length, ms, "HashMismatch",
                        $"the reassembled payload's SHA-256 is {Convert.ToHexStringLower(sha)}, the update announced {Convert.ToHexStringLower(_partSha)}");
                }
                else
                {
                    var values = _decoded is { } d && d.Length == parameterCount ? d : _decoded = new float[parameterCount];
                    try
                    {
                        UpdateEncodings.Decode(encoding, payload, values);
                        _update = new SubmittedUpdate(values, update.SampleCount, update.Loss, sha, payload.Length, ms, null, null);
                    }
                    catch (NearML.Core.InvalidDataFormatException ex)
                    {
                        _update = new SubmittedUpdate(null, update.SampleCount, update.Loss, sha, payload.Length, ms, "Malformed", ex.Message);
                    }
                }
            }

            _payload = null;
            UploadEndedAt = time.GetUtcNow();
            State = "submitted";
            _done.TrySetResult();
            return null;
        }
    }

    public void Close(string kind, string reason)
    {
        lock (_gate)
        {
            if (CloseReason is null)
            {
                CloseReason = reason;
                CloseKind = kind;
            }

            State = kind;
            _done.TrySetResult();
        }

        try
        {
            _closing.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    public void Dispose()
    {
        _closing.Dispose();
        SendLock.Dispose();
    }
}
