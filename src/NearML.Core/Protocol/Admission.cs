using System.Net;
using NearML.Core.Contracts;

namespace NearML.Core.Protocol;

/// <summary>Attestation evidence a worker presents, in some format, whose report data is the handshake's report data.</summary>
/// <param name="Format">Format name, e.g. <c>simulated</c>, <c>sev-snp</c>, <c>tdx</c>.</param>
/// <param name="Data">The evidence bytes.</param>
public sealed record AttestationEvidence(string Format, ReadOnlyMemory<byte> Data)
{
    /// <summary>Gets the TDX event log sent with the evidence (<c>Evidence.event_log</c>), empty for none.</summary>
    /// <value>The default value is empty.</value>
    public ReadOnlyMemory<byte> EventLog { get; init; }
}

/// <summary>Produces attestation evidence on the worker, binding the given report data (see docs/protocol.md).</summary>
public interface IAttestationEvidenceProvider
{
    /// <summary>Produces evidence whose report data is <paramref name="reportData"/>.</summary>
    /// <param name="reportData">64 bytes binding the worker's key, both nonces and the TLS channel.</param>
    /// <param name="acceptedFormats">The formats the coordinator accepts (may be empty).</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>The evidence, or <see langword="null"/> if none can be produced.</returns>
    ValueTask<AttestationEvidence?> GetEvidenceAsync(ReadOnlyMemory<byte> reportData, IReadOnlyList<string> acceptedFormats, CancellationToken cancellationToken);
}

/// <summary>Everything the coordinator knows about a worker asking to be admitted, after its identity signature checked out.</summary>
public sealed class AdmissionRequest
{
    internal AdmissionRequest(Hello hello, Evidence evidence, ReadOnlyMemory<byte> reportData, ReadOnlyMemory<byte> coordinatorNonce, EndPoint? remoteEndPoint)
    {
        CoordinatorNonce = coordinatorNonce;
        EventLog = evidence.EventLog.Memory;
        WorkerId = hello.WorkerId;
        PublicKey = hello.IdentityPublicKey.ToByteArray();
        Capabilities = hello.Capabilities ?? new WorkerCapabilities();
        Version = hello.Version;
        EvidenceFormat = evidence.Format;
        Evidence = evidence.Evidence_.Memory;
        ReportData = reportData;
        RemoteEndPoint = remoteEndPoint;
        KeyRotation = hello.KeyRotation;
        LayoutFingerprint = evidence.LayoutFingerprint;
    }

    /// <summary>Gets the layout fingerprint of the worker's build of the announced job's model (empty when it has none).</summary>
    public string LayoutFingerprint { get; }

    /// <summary>Gets the worker's self-chosen name.</summary>
    public string WorkerId { get; }

    /// <summary>Gets the worker's verified ed25519 public key (32 bytes).</summary>
    public ReadOnlyMemory<byte> PublicKey { get; }

    /// <summary>Gets the worker's announced capabilities.</summary>
    public WorkerCapabilities Capabilities { get; }

    /// <summary>Gets the worker's protocol version (compatible with this build).</summary>
    public ProtocolVersion Version { get; }

    /// <summary>Gets the evidence format, empty if none was given.</summary>
    public string EvidenceFormat { get; }

    /// <summary>Gets the attestation evidence bytes.</summary>
    public ReadOnlyMemory<byte> Evidence { get; }

    /// <summary>Gets the report data the evidence must bind (64 bytes).</summary>
    public ReadOnlyMemory<byte> ReportData { get; }

    /// <summary>Gets the coordinator's nonce sent in this handshake's <see cref="Challenge"/> (32 bytes; the report data commits to it).</summary>
    public ReadOnlyMemory<byte> CoordinatorNonce { get; }

    /// <summary>Gets the TDX event log the worker sent with its evidence, empty for none.</summary>
    public ReadOnlyMemory<byte> EventLog { get; }

    /// <summary>Gets the worker's address.</summary>
    public EndPoint? RemoteEndPoint { get; }

    /// <summary>
    /// Gets the worker's proof that its id moves from a previous key to <see cref="PublicKey"/>, or <see langword="null"/>
    /// on an ordinary join (check it with <see cref="KeyRotationProof.Verify"/>).
    /// </summary>
    public KeyRotation? KeyRotation { get; }
}

/// <summary>A coordinator's verdict on an <see cref="AdmissionRequest"/>.</summary>
public sealed class AdmissionDecision
{
    private AdmissionDecision(bool admitted, RefusalReason reason, string message)
    {
        IsAdmitted = admitted;
        Reason = reason;
        Message = message;
    }

    /// <summary>Gets a decision that admits the worker.</summary>
    public static AdmissionDecision Admit { get; } = new(true, RefusalReason.Unspecified, string.Empty);

    /// <summary>Gets a value indicating whether the worker is admitted.</summary>
    public bool IsAdmitted { get; }

    /// <summary>Gets the refusal reason (when not admitted).</summary>
    public RefusalReason Reason { get; }

    /// <summary>Gets the refusal explanation (when not admitted).</summary>
    public string Message { get; }

    /// <summary>Creates a refusal.</summary>
    /// <param name="reason">Reason code.</param>
    /// <param name="message">Explanation for the worker's operator, naming the offending value.</param>
    /// <returns>The decision.</returns>
    public static AdmissionDecision Refuse(RefusalReason reason, string message)
    {
        ArgumentException.ThrowIfNullOrEmpty(message);
        if (reason == RefusalReason.Unspecified)
        {
            throw new ArgumentOutOfRangeException(nameof(reason), reason, "A refusal needs a reason.");
        }

        return new AdmissionDecision(false, reason, message);
    }
}

/// <summary>Decides whether a worker whose identity was proven may join (typically by verifying its attestation evidence).</summary>
public interface IAdmissionPolicy
{
    /// <summary>Evaluates a request.</summary>
    /// <param name="request">The request.</param>
    /// <param name="cancellationToken">Cancels the evaluation.</param>
    /// <returns>The decision.</returns>
    ValueTask<AdmissionDecision> EvaluateAsync(AdmissionRequest request, CancellationToken cancellationToken);
}

/// <summary>Built-in admission policies.</summary>
public static class AdmissionPolicies
{
    /// <summary>Gets a policy that admits every worker that proves its identity key, with or without evidence. For development and tests only.</summary>
    public static IAdmissionPolicy AdmitAnyIdentity { get; } = new AdmitAll();

    private sealed class AdmitAll : IAdmissionPolicy
    {
        public ValueTask<AdmissionDecision> EvaluateAsync(AdmissionRequest request, CancellationToken cancellationToken) =>
            ValueTask.FromResult(AdmissionDecision.Admit);
    }
}
