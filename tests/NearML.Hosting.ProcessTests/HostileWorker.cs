using System.Collections.Concurrent;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;
using NearML.Core.Contracts;
using NearML.Core.Protocol;
using NearML.Enclave;
using NearML.Hosting.Jobs;
using NearML.Hosting.Worker;

namespace NearML.Hosting.ProcessTests;

/// <summary>What a <see cref="HostileWorker"/> sends for a round.</summary>
internal enum HostileUpdate
{
    /// <summary>Random signs of a plausible step size (an update of honest scale that carries no training) claiming 2^62 samples.</summary>
    NoiseWithHugeClaim,

    /// <summary>All zeros claiming 2^62 samples (paid for nothing, if it were accepted).</summary>
    ZeroWithHugeClaim,

    /// <summary>Every value ±1000 (a poisoning update, norm ≈ 1000·√P).</summary>
    HugeNorm,
}

/// <summary>
/// A hostile worker in the test process, written only against the public protocol types (ProtocolConnector,
/// WorkerHandshake, the .proto messages, UpdateEncoding): it is admitted with simulated evidence like any worker, then
/// answers every assignment without training, with the update <see cref="Plan"/> chooses for the round.
/// </summary>
internal sealed class HostileWorker : IAsyncDisposable
{
    public const ulong HugeClaim = 1UL << 62;

    private readonly CancellationTokenSource _stop = new();
    private readonly FrameConnection _connection;
    private readonly Func<ulong, HostileUpdate> _plan;
    private Task? _loop;
    private Task? _heartbeats;

    private HostileWorker(FrameConnection connection, Func<ulong, HostileUpdate> plan)
    {
        _connection = connection;
        _plan = plan;
    }

    public ConcurrentDictionary<ulong, HostileUpdate> Sent { get; } = new();

    public ConcurrentQueue<Receipt> Receipts { get; } = new();

    public Exception? Fault { get; private set; }

    public Func<ulong, HostileUpdate> Plan => _plan;

    /// <summary>Connects and runs the handshake; throws <see cref="AdmissionRefusedException"/> when refused.</summary>
    public static async Task<HostileWorker> JoinAsync(int port, string fingerprint, string workerId, Ed25519Identity identity, Func<ulong, HostileUpdate> plan, CancellationToken cancellationToken, KeyRotation? rotation = null)
    {
        var connection = await ProtocolConnector.ConnectAsync("127.0.0.1", port, CoordinatorTrust.Pinned(fingerprint), cancellationToken: cancellationToken).ConfigureAwait(false);
        try
        {
            using var evidence = new SimulatedEvidenceProvider();
            var admission = await WorkerHandshake.RunAsync(connection, identity, new WorkerHandshakeOptions
                {
                    WorkerId = workerId,
                    EvidenceProvider = evidence,
                    KeyRotation = rotation,
                    // It claims the job's model and dataset and echoes the announced layout fingerprint: it never builds the model.
                    Capabilities = new WorkerCapabilities { ModelKeys = { "mlp" }, DatasetKeys = { JobDataset.FashionMnistName }, EvidenceFormats = { "simulated" } },
                    LayoutFingerprint = job => job.LayoutFingerprint,
                }, cancellationToken).ConfigureAwait(false);
            var worker = new HostileWorker(connection, plan);
            worker._heartbeats = connection.RunHeartbeatsAsync(TimeSpan.FromMilliseconds(admission.HeartbeatIntervalMs), worker._stop.Token);
            worker._loop = Task.Run(worker.LoopAsync, CancellationToken.None);
            return worker;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        foreach (var t in new[] { _loop, _heartbeats })
        {
            if (t is not null)
            {
                try
                {
                    await t.WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is OperationCanceledException or ProtocolException or TimeoutException or ObjectDisposedException)
                {
                }
            }
        }

        await _connection.DisposeAsync().ConfigureAwait(false);
        _stop.Dispose();
    }

    private async Task LoopAsync()
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                switch (await _connection.ReceiveAsync(_stop.Token).ConfigureAwait(false))
                {
                    case null or Goodbye:
                        return;
                    case JobAssignment a:
                        await AnswerAsync(a).ConfigureAwait(false);
                        break;
                    case Receipt r:
                        Receipts.Enqueue(r);
                        break;
                    default:
                        break;
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException && _stop.IsCancellationRequested)
        {
        }
        catch (Exception ex) when (ex is ProtocolException or IOException or ObjectDisposedException)
        {
            Fault = ex;
        }
    }

    private async Task AnswerAsync(JobAssignment a)
    {
        var count = a.Model.Tensors.Sum(t => t.Shape.Aggregate(1L, (p, d) => p * d));
        var kind = _plan(a.Round);
        var delta = new float[count];
        var random = new Random((int)a.Round);
        // A plausible per-coordinate step for "noise": a tenth of what H AdamW steps can move a coordinate (η · H / 10).
        var plausible = (float)(a.HyperParameters.InnerLearningRate * a.HyperParameters.InnerSteps / 10);
        for (var i = 0; i < delta.Length; i++)
        {
            delta[i] = kind switch
            {
                HostileUpdate.NoiseWithHugeClaim => random.Next(2) == 0 ? -plausible : plausible,
                HostileUpdate.HugeNorm => random.Next(2) == 0 ? -1000f : 1000f,
                _ => 0f,
            };
        }

        var encoding = a.HyperParameters.UpdateEncoding;
        var payload = UpdateEncodings.Encode(encoding, delta);
        var sha = System.Security.Cryptography.SHA256.HashData(payload);
        const int Part = 1 << 20;
        var parts = (payload.Length + Part - 1) / Part;
        for (var i = 0; i < parts; i++)
        {
            var slice = payload.AsMemory(i * Part, Math.Min(Part, payload.Length - (i * Part)));
            await _connection.SendAsync(
                new Update
                {
                    Round = a.Round,
                    BaseParameterVersion = a.ParameterVersion,
                    Encoding = encoding,
                    Payload = ByteString.CopyFrom(slice.Span),
                    SampleCount = HugeClaim,
                    Loss = 0.0001f,
                    PartIndex = (uint)i,
                    PartCount = (uint)parts,
                    PayloadSha256 = ByteString.CopyFrom(sha),
                },
                _stop.Token).ConfigureAwait(false);
        }

        Sent[a.Round] = kind;
    }

    /// <summary>NearML.Enclave's simulated evidence, bound to the handshake (what the sample worker's "simulated" provider sends).</summary>
    private sealed class SimulatedEvidenceProvider : IAttestationEvidenceProvider, IDisposable
    {
        private readonly InsecureSimulatedAttestationProvider _provider = new(NullLogger<InsecureSimulatedAttestationProvider>.Instance);

        public async ValueTask<NearML.Core.Protocol.AttestationEvidence?> GetEvidenceAsync(ReadOnlyMemory<byte> reportData, IReadOnlyList<string> acceptedFormats, CancellationToken cancellationToken) =>
            WorkerAttestation.EncodeEvidence(await _provider.GetEvidenceAsync(reportData, cancellationToken).ConfigureAwait(false));

        public void Dispose() => _provider.Dispose();
    }
}
