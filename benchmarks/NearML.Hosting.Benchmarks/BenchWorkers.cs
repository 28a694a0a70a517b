using System.Globalization;
using System.Security.Cryptography;
using Google.Protobuf;
using NearML.Core;
using NearML.Core.Contracts;
using NearML.Core.Protocol;
using NearML.Hosting.Jobs;
using NearML.Hosting.Worker;

namespace NearML.Hosting.Benchmarks;

/// <summary>
/// The cohort, in its own process: N protocol-level workers over real TLS connections. Each answers every JobAssignment
/// like the real worker does on the wire — downloads the global parameters (hash-verified), then sends its pre-encoded
/// pseudo-gradient as <c>Update</c> parts of up to <see cref="WorkerService.MaxUpdatePartBytes"/> — but without training,
/// so the coordinator's round is the only work being measured.
/// </summary>
internal static class BenchWorkers
{
    public static async Task<int> RunAsync(string[] args)
    {
        var port = (int)Args.Get(args, "--port", 0);
        var fingerprint = Args.GetString(args, "--fingerprint", string.Empty);
        var count = (int)Args.Get(args, "--count", 50);
        var download = Args.Get(args, "--download", 1) != 0;
        using var stop = new CancellationTokenSource();
        var connections = new List<FrameConnection>();
        var loops = new List<Task>();
        for (var i = 0; i < count; i++)
        {
            var id = "bench-" + i.ToString("D3", CultureInfo.InvariantCulture);
            var connection = await ProtocolConnector.ConnectAsync("127.0.0.1", port, CoordinatorTrust.Pinned(fingerprint));
            using var identity = Ed25519Identity.FromSeed(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes("bench-worker:" + id)));
            var admission = await WorkerHandshake.RunAsync(connection, identity, new WorkerHandshakeOptions
            {
                WorkerId = id,
                Capabilities = new WorkerCapabilities { ModelKeys = { "mlp" }, DatasetKeys = { JobDataset.FashionMnistName } },
                LayoutFingerprint = job => job.LayoutFingerprint,
            });
            connections.Add(connection);
            var heartbeats = connection.RunHeartbeatsAsync(TimeSpan.FromMilliseconds(admission.HeartbeatIntervalMs), stop.Token);
            loops.Add(Task.Run(() => LoopAsync(connection, i, download, stop.Token)));
            loops.Add(heartbeats);
        }

        Console.Out.WriteLine($"workers: {count} admitted");
        await Task.WhenAll(loops.Take(count * 2).Where((_, k) => k % 2 == 0));
        await stop.CancelAsync();
        await Task.WhenAll(loops);
        foreach (var c in connections)
        {
            await c.DisposeAsync();
        }

        return 0;
    }

    private static async Task LoopAsync(FrameConnection connection, int index, bool download, CancellationToken ct)
    {
        ParameterSet? parameters = null;
        byte[]? payload = null;
        ByteString? digest = null;
        UpdateEncoding? encoding = null;
        try
        {
            while (await connection.ReceiveAsync(ct) is { } message)
            {
                if (message is Goodbye)
                {
                    return;
                }

                if (message is not JobAssignment a)
                {
                    continue;
                }

                parameters ??= new ParameterSet(new ParameterLayout(a.Model.Tensors.Select(t => (t.Name, t.Shape.ToArray()))));
                if (payload is null || encoding != a.HyperParameters.UpdateEncoding)
                {
                    // A small, worker-specific pseudo-gradient (|Δ| ≤ 1e-3: well inside the coordinator's norm screen).
                    encoding = a.HyperParameters.UpdateEncoding;
                    var rng = new Random(1000 + index);
                    var delta = new float[parameters.Length];
                    for (var i = 0; i < delta.Length; i++)
                    {
                        delta[i] = (float)((rng.NextDouble() - 0.5) * 2e-3);
                    }

                    payload = UpdateEncodings.Encode(encoding.Value, delta);
                    digest = ByteString.CopyFrom(SHA256.HashData(payload));
                }

                if (download)
                {
                    await connection.SendAsync(new ParameterRequest { ParameterVersion = a.ParameterVersion }, ct);
                    await ParameterTransfer.ReceiveAsync(connection, parameters, a.ParameterVersion, a.ParameterRoot.Memory, ct);
                }

                var part = WorkerService.MaxUpdatePartBytes;
                var parts = Math.Max(1, (payload.Length + part - 1) / part);
                for (var i = 0; i < parts; i++)
                {
                    var offset = i * part;
                    await connection.SendAsync(
                        new Update
                        {
                            Round = a.Round,
                            BaseParameterVersion = a.ParameterVersion,
                            Encoding = a.HyperParameters.UpdateEncoding,
                            Payload = UnsafeByteOperations.UnsafeWrap(payload.AsMemory(offset, Math.Min(part, payload.Length - offset))),
                            SampleCount = a.HyperParameters.InnerSteps * a.HyperParameters.BatchSize,
                            Loss = 1.0f,
                            PartIndex = (uint)i,
                            PartCount = (uint)parts,
                            PayloadSha256 = digest,
                        },
                        ct);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (ProtocolException ex) when (ex.Code == ErrorCode.ConnectionClosed)
        {
        }
    }
}
