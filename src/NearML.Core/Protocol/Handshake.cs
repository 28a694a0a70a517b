using System.Buffers;
using System.Security.Cryptography;
using Google.Protobuf;
using NearML.Core.Contracts;
using NearML.Core.Protocol.Internal;

namespace NearML.Core.Protocol;

/// <summary>Worker-side handshake settings.</summary>
public sealed class WorkerHandshakeOptions
{
    /// <summary>Gets or sets the worker's name, shown in the coordinator's logs (1–128 characters).</summary>
    /// <value>The default value is empty, which is invalid.</value>
    public string WorkerId { get; set; } = string.Empty;

    /// <summary>
    /// Gets or sets the proof, signed by the key the coordinator bound <see cref="WorkerId"/> to, that the id moves to this
    /// worker's key (<see cref="KeyRotationProof.Create"/>); <see langword="null"/> on an ordinary join.
    /// </summary>
    /// <value>The default value is <see langword="null"/>.</value>
    public KeyRotation? KeyRotation { get; set; }

    /// <summary>Gets or sets the capabilities announced in <see cref="Hello"/>.</summary>
    /// <value>The default value is <see langword="null"/> (none announced).</value>
    public WorkerCapabilities? Capabilities { get; set; }

    /// <summary>Gets or sets the source of attestation evidence; <see langword="null"/> sends none.</summary>
    /// <value>The default value is <see langword="null"/>.</value>
    public IAttestationEvidenceProvider? EvidenceProvider { get; set; }

    /// <summary>Gets or sets the deadline for the whole handshake.</summary>
    /// <value>The default value is 10 seconds.</value>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Gets or sets how the worker answers the job announced in <see cref="Challenge.Job"/>: the layout
    /// fingerprint of its build of the job's model, or empty when it cannot build it (sent in <see cref="Evidence.LayoutFingerprint"/>).</summary>
    /// <value>The default value is <see langword="null"/> (no fingerprint sent).</value>
    public Func<JobDescriptor, string>? LayoutFingerprint { get; set; }

    /// <summary>Gets or sets the version announced (tests use this to play an incompatible peer).</summary>
    internal ProtocolVersion? VersionOverride { get; set; }
}

/// <summary>Coordinator-side handshake settings.</summary>
public sealed class CoordinatorHandshakeOptions
{
    /// <summary>Gets or sets who may join once their identity is proven.</summary>
    /// <value>The default value is <see langword="null"/>, which is invalid.</value>
    public IAdmissionPolicy? Policy { get; set; }

    /// <summary>Gets the evidence formats announced as accepted.</summary>
    public IList<string> AcceptedEvidenceFormats { get; } = [];

    /// <summary>Gets or sets a value indicating whether a worker without evidence is refused before the policy is asked.</summary>
    /// <value>The default value is <see langword="false"/>.</value>
    public bool EvidenceRequired { get; set; }

    /// <summary>Gets or sets the heartbeat interval told to admitted workers.</summary>
    /// <value>The default value is 15 seconds (see docs/protocol.md for the CPU cost per heartbeat).</value>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Gets or sets the silence after which a worker is considered gone.</summary>
    /// <value>The default value is 45 seconds.</value>
    public TimeSpan HeartbeatTimeout { get; set; } = TimeSpan.FromSeconds(45);

    /// <summary>Gets or sets the deadline for the whole handshake.</summary>
    /// <value>The default value is 10 seconds.</value>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Gets or sets where the <see cref="Challenge"/>'s 32-byte coordinator nonce comes from (an attestation verifier's nonce
    /// store, so evidence answering it can be accepted once); <see langword="null"/> draws it from the CSPRNG.
    /// </summary>
    /// <value>The default value is <see langword="null"/>.</value>
    public Func<byte[]>? NonceSource { get; set; }

    /// <summary>Gets or sets the job announced in the <see cref="Challenge"/> (workers answer with their layout fingerprint).</summary>
    /// <value>The default value is <see langword="null"/> (none announced).</value>
    public JobDescriptor? Job { get; set; }
}

/// <summary>A worker the coordinator admitted.</summary>
/// <param name="WorkerId">The worker's name.</param>
/// <param name="PublicKey">The worker's proven ed25519 public key.</param>
/// <param name="Capabilities">Announced capabilities.</param>
/// <param name="SessionId">The session id sent in <see cref="Admission"/>.</param>
/// <param name="EvidenceFormat">The evidence format accepted, empty if none.</param>
/// <param name="Version">The worker's protocol version.</param>
public sealed record AdmittedWorker(
    string WorkerId, ReadOnlyMemory<byte> PublicKey, WorkerCapabilities Capabilities, string SessionId, string EvidenceFormat, ProtocolVersion Version);

/// <summary>
/// The worker's side of the handshake: Hello → (Challenge | Refusal) → Evidence (with the identity signature over the transcript
/// and the TLS channel binding) → (Admission | Refusal).
/// </summary>
public static class WorkerHandshake
{
    /// <summary>Runs the handshake on a fresh connection.</summary>
    /// <param name="connection">The connection (TLS to the coordinator).</param>
    /// <param name="identity">The worker's identity key.</param>
    /// <param name="options">Settings.</param>
    /// <param name="cancellationToken">Cancels the handshake.</param>
    /// <returns>The coordinator's admission.</returns>
    /// <exception cref="AdmissionRefusedException">The coordinator refused the worker.</exception>
    /// <exception cref="ProtocolException">The coordinator is incompatible, misbehaved, or the handshake timed out.</exception>
    public static async Task<Admission> RunAsync(
        FrameConnection connection, IWorkerIdentity identity, WorkerHandshakeOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(identity);
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrEmpty(options.WorkerId) || options.WorkerId.Length > 128)
        {
            throw new ArgumentException($"WorkerId must have 1 to 128 characters; got '{options.WorkerId}'.", nameof(options));
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(options.Timeout);
        var token = deadline.Token;
        try
        {
            var hello = new Hello
            {
                Version = options.VersionOverride ?? WireProtocol.CurrentVersion,
                WorkerId = options.WorkerId,
                IdentityPublicKey = ByteString.CopyFrom(identity.PublicKey.Span),
                Capabilities = options.Capabilities ?? new WorkerCapabilities(),
                WorkerNonce = ByteString.CopyFrom(RandomNumberGenerator.GetBytes(32)),
                KeyRotation = options.KeyRotation,
            };
            var helloBytes = hello.ToByteArray();
            await connection.SendSerializedAsync(FrameType.Hello, helloBytes, token).ConfigureAwait(false);

            var frame = await Handshakes.ReceiveAsync(connection, token).ConfigureAwait(false);
            if (frame.Type == FrameType.Refusal)
            {
                throw Handshakes.Refused(Handshakes.Parse(Refusal.Parser, frame));
            }

            if (frame.Type != FrameType.Challenge)
            {
                throw Handshakes.Unexpected(frame, "Challenge or Refusal");
            }

            var challenge = Handshakes.Parse(Challenge.Parser, frame);
            if (!WireProtocol.IsCompatible(challenge.Version))
            {
                var fault = new ProtocolException(
                    ErrorCode.IncompatibleVersion,
                    $"the coordinator speaks protocol {WireProtocol.Format(challenge.Version)}; this worker speaks {WireProtocol.MajorVersion}.{WireProtocol.MinorVersion} (major versions must match)");
                await connection.FailAsync(fault).ConfigureAwait(false);
                throw fault;
            }

            if (challenge.CoordinatorNonce.Length != 32)
            {
                throw new ProtocolException(ErrorCode.MalformedFrame, $"Challenge.coordinator_nonce has {challenge.CoordinatorNonce.Length} bytes, expected 32");
            }

            var transcript = HandshakeTranscript.Compute(helloBytes, frame.Bytes, connection.ChannelBinding.Span);
            AttestationEvidence? evidence = null;
            if (options.EvidenceProvider is not null)
            {
                evidence = await options.EvidenceProvider.GetEvidenceAsync(HandshakeTranscript.ReportData(transcript), challenge.AcceptedEvidenceFormats, token).ConfigureAwait(false);
            }

            await connection.SendAsync(
                new Evidence
                {
                    Format = evidence?.Format ?? string.Empty,
                    Evidence_ = evidence is null ? ByteString.Empty : ByteString.CopyFrom(evidence.Data.Span),
                    IdentitySignature = ByteString.CopyFrom(identity.Sign(HandshakeTranscript.SignedMessage(transcript))),
                    LayoutFingerprint = challenge.Job is not null && options.LayoutFingerprint is not null ? options.LayoutFingerprint(challenge.Job) ?? string.Empty : string.Empty,
                    EventLog = evidence is null || evidence.EventLog.IsEmpty ? ByteString.Empty : ByteString.CopyFrom(evidence.EventLog.Span),
                },
                token).ConfigureAwait(false);

            var verdict = await Handshakes.ReceiveAsync(connection, token).ConfigureAwait(false);
            return verdict.Type switch
            {
                FrameType.Admission => Handshakes.Parse(Admission.Parser, verdict),
                FrameType.Refusal => throw Handshakes.Refused(Handshakes.Parse(Refusal.Parser, verdict)),
                _ => throw Handshakes.Unexpected(verdict, "Admission or Refusal"),
            };
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new ProtocolException(ErrorCode.Timeout, $"the handshake did not complete within {options.Timeout.TotalSeconds:0.#} s");
        }
    }
}

/// <summary>
/// The coordinator's side of the handshake: checks the version, sends a fresh 32-byte nonce, verifies the worker's ed25519
/// signature over the transcript (which includes the nonce and the TLS channel binding, so a replayed or relayed handshake
/// fails), then asks the <see cref="IAdmissionPolicy"/>.
/// </summary>
public static class CoordinatorHandshake
{
    /// <summary>Runs the handshake on a freshly accepted connection.</summary>
    /// <param name="connection">The connection.</param>
    /// <param name="options">Settings; <see cref="CoordinatorHandshakeOptions.Policy"/> is required.</param>
    /// <param name="cancellationToken">Cancels the handshake.</param>
    /// <returns>The admitted worker.</returns>
    /// <exception cref="AdmissionRefusedException">The worker was refused; a <see cref="Refusal"/> was sent before this is thrown.</exception>
    /// <exception cref="ProtocolException">The worker misbehaved or the handshake timed out.</exception>
    public static async Task<AdmittedWorker> RunAsync(
        FrameConnection connection, CoordinatorHandshakeOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Policy is null)
        {
            throw new ArgumentException("CoordinatorHandshakeOptions.Policy is required.", nameof(options));
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(options.Timeout);
        var token = deadline.Token;
        try
        {
            var helloFrame = await Handshakes.ReceiveAsync(connection, token).ConfigureAwait(false);
            if (helloFrame.Type != FrameType.Hello)
            {
                throw Handshakes.Unexpected(helloFrame, "Hello");
            }

            var hello = Handshakes.Parse(Hello.Parser, helloFrame);
            if (!WireProtocol.IsCompatible(hello.Version))
            {
                await RefuseAsync(
                    connection,
                    RefusalReason.IncompatibleVersion,
                    $"worker '{hello.WorkerId}' speaks protocol {WireProtocol.Format(hello.Version)}; this coordinator speaks {WireProtocol.MajorVersion}.{WireProtocol.MinorVersion} (major versions must match)",
                    token).ConfigureAwait(false);
            }

            if (hello.WorkerId.Length is 0 or > 128)
            {
                await RefuseAsync(connection, RefusalReason.MalformedHandshake, $"Hello.worker_id must have 1 to 128 characters, got {hello.WorkerId.Length}", token).ConfigureAwait(false);
            }

            if (hello.IdentityPublicKey.Length != Ed25519Identity.PublicKeySize || hello.WorkerNonce.Length != 32)
            {
                await RefuseAsync(
                    connection,
                    RefusalReason.MalformedHandshake,
                    $"Hello.identity_public_key must have 32 bytes (got {hello.IdentityPublicKey.Length}) and Hello.worker_nonce 32 bytes (got {hello.WorkerNonce.Length})",
                    token).ConfigureAwait(false);
            }

            var nonce = options.NonceSource?.Invoke() ?? RandomNumberGenerator.GetBytes(32);
            if (nonce.Length != 32)
            {
                throw new InvalidOperationException($"CoordinatorHandshakeOptions.NonceSource returned {nonce.Length} bytes; the coordinator nonce is 32 bytes.");
            }

            var challenge = new Challenge
            {
                Version = WireProtocol.CurrentVersion,
                CoordinatorNonce = ByteString.CopyFrom(nonce),
                EvidenceRequired = options.EvidenceRequired,
            };
            challenge.AcceptedEvidenceFormats.AddRange(options.AcceptedEvidenceFormats);
            if (options.Job is not null)
            {
                challenge.Job = options.Job;
            }

            var challengeBytes = challenge.ToByteArray();
            await connection.SendSerializedAsync(FrameType.Challenge, challengeBytes, token).ConfigureAwait(false);

            var evidence = await connection.ReceiveAsync<Evidence>(token).ConfigureAwait(false);
            var transcript = HandshakeTranscript.Compute(helloFrame.Bytes, challengeBytes, connection.ChannelBinding.Span);
            if (!Ed25519Identity.Verify(hello.IdentityPublicKey.Span, HandshakeTranscript.SignedMessage(transcript), evidence.IdentitySignature.Span))
            {
                await RefuseAsync(
                    connection,
                    RefusalReason.BadSignature,
                    $"the identity signature of worker '{hello.WorkerId}' does not verify over this session's transcript (wrong key, replayed handshake, or a relay between different TLS sessions)",
                    token).ConfigureAwait(false);
            }

            if (options.EvidenceRequired && evidence.Format.Length == 0)
            {
                await RefuseAsync(connection, RefusalReason.AttestationRequired, $"worker '{hello.WorkerId}' sent no attestation evidence; this coordinator requires it", token).ConfigureAwait(false);
            }

            if (evidence.Format.Length > 0 && options.AcceptedEvidenceFormats.Count > 0 && !options.AcceptedEvidenceFormats.Contains(evidence.Format))
            {
                await RefuseAsync(
                    connection,
                    RefusalReason.AttestationFailed,
                    $"evidence format '{evidence.Format}' is not accepted (accepted: {string.Join(", ", options.AcceptedEvidenceFormats)})",
                    token).ConfigureAwait(false);
            }

            var request = new AdmissionRequest(hello, evidence, HandshakeTranscript.ReportData(transcript), nonce, connection.RemoteEndPoint);
            var decision = await options.Policy.EvaluateAsync(request, token).ConfigureAwait(false);
            if (!decision.IsAdmitted)
            {
                await RefuseAsync(connection, decision.Reason, decision.Message, token).ConfigureAwait(false);
            }

            var sessionId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
            await connection.SendAsync(
                new Admission
                {
                    SessionId = sessionId,
                    HeartbeatIntervalMs = (uint)options.HeartbeatInterval.TotalMilliseconds,
                    HeartbeatTimeoutMs = (uint)options.HeartbeatTimeout.TotalMilliseconds,
                    MaxFrameSize = (uint)connection.Options.MaxFrameSize,
                },
                token).ConfigureAwait(false);
            connection.MarkAdmitted();
            return new AdmittedWorker(request.WorkerId, request.PublicKey, request.Capabilities, sessionId, request.EvidenceFormat, hello.Version);
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new ProtocolException(ErrorCode.Timeout, $"the handshake did not complete within {options.Timeout.TotalSeconds:0.#} s");
        }
    }

    private static async Task RefuseAsync(FrameConnection connection, RefusalReason reason, string message, CancellationToken cancellationToken)
    {
        await connection.SendAsync(
            new Refusal { Reason = reason, Message = message, CoordinatorVersion = WireProtocol.CurrentVersion },
            cancellationToken).ConfigureAwait(false);
        throw new AdmissionRefusedException(reason, message);
    }
}

internal static class Handshakes
{
    public static async Task<RawFrame> ReceiveAsync(FrameConnection connection, CancellationToken cancellationToken)
    {
        while (true)
        {
            var frame = await connection.ReceiveFrameAsync(cancellationToken).ConfigureAwait(false)
                ?? throw new ProtocolException(ErrorCode.ConnectionClosed, "the peer closed the connection during the handshake");
            if (frame.Type == FrameType.Heartbeat)
            {
                continue;
            }

            if (frame.Type == FrameType.Error)
            {
                var error = (Error)frame.ToMessage();
                throw new ProtocolException(error.Code, $"peer reported {error.Code}: {error.Message}") { IsRemote = true };
            }

            return new RawFrame(frame.Type, frame.Payload.ToArray(), frame.StreamOffset);
        }
    }

    public static T Parse<T>(MessageParser<T> parser, RawFrame frame)
        where T : IMessage<T>
    {
        try
        {
            return parser.ParseFrom(frame.Bytes);
        }
        catch (InvalidProtocolBufferException ex)
        {
            throw new ProtocolException(
                ErrorCode.MalformedFrame, $"frame at byte {frame.StreamOffset}: {frame.Bytes.Length}-byte {frame.Type} payload is not a valid message: {ex.Message}", ex);
        }
    }

    public static ProtocolException Unexpected(RawFrame frame, string expected) =>
        new(ErrorCode.UnexpectedMessage, $"expected {expected} but received {frame.Type} (frame at byte {frame.StreamOffset})");

    public static AdmissionRefusedException Refused(Refusal refusal) => new(refusal.Reason, refusal.Message);

    internal readonly record struct RawFrame(FrameType Type, byte[] Bytes, long StreamOffset);
}
