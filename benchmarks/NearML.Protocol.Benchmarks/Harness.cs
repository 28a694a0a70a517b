using System.Diagnostics;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using NearML.Core;
using NearML.Core.Contracts;
using NearML.Core.Protocol;

namespace NearML.Protocol.Benchmarks;

internal static class Args
{
    public static double Get(string[] args, string name, double fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? double.Parse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture) : fallback;
    }
}

/// <summary>A loopback coordinator that admits anyone, answers ParameterRequests with a cached manifest, and echoes heartbeats.</summary>
internal sealed class LoopbackCoordinator : IAsyncDisposable
{
    private readonly X509Certificate2 _certificate = CoordinatorCertificate.CreateDevelopment();
    private readonly ProtocolListener _listener;
    private readonly ParameterSet? _parameters;
    private readonly ParameterManifest? _manifest;
    private readonly TimeSpan _heartbeat;

    public LoopbackCoordinator(ParameterSet? parameters, TimeSpan heartbeat)
    {
        _parameters = parameters;
        _manifest = parameters is null ? null : ParameterManifest.Compute(parameters);
        _heartbeat = heartbeat;
        _listener = new ProtocolListener(
            new IPEndPoint(IPAddress.Loopback, 0),
            _certificate,
            ServeAsync,
            // Every benchmark client connects from 127.0.0.1: lift the per-address handshake rate limit (the idle harness opens 200 at once).
            new ProtocolListenerOptions
            {
                ConnectionFaulted = static (remote, ex) => Console.Error.WriteLine($"fault {remote}: {ex.Message}"),
                HandshakeRatePerAddress = 1e6,
                HandshakeBurstPerAddress = 1_000_000,
            });
        _listener.Start();
    }

    public int Port => _listener.LocalEndPoint.Port;

    public CoordinatorTrust Trust => CoordinatorTrust.Pinned(CoordinatorCertificate.GetFingerprint(_certificate));

    public ReadOnlyMemory<byte> Root => _manifest?.GetRoot() ?? default;

    private async Task ServeAsync(FrameConnection connection, CancellationToken cancellationToken)
    {
        await CoordinatorHandshake.RunAsync(connection, new CoordinatorHandshakeOptions { Policy = AdmissionPolicies.AdmitAnyIdentity }, cancellationToken);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var heartbeats = connection.RunHeartbeatsAsync(_heartbeat, stop.Token);
        try
        {
            while (await connection.ReceiveAsync(cancellationToken) is { } message)
            {
                if (message is ParameterRequest request)
                {
                    await ParameterTransfer.SendAsync(connection, _parameters!, request.ParameterVersion, _manifest, cancellationToken);
                }
                else if (message is Goodbye)
                {
                    break;
                }
            }
        }
        finally
        {
            await stop.CancelAsync();
            await heartbeats;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _listener.DisposeAsync();
        _certificate.Dispose();
    }
}

/// <summary>Target: a 100 MB ParameterSet over loopback TLS at ≥ 1 GB/s.</summary>
internal static class TransferHarness
{
    public static async Task<int> RunAsync(string[] args)
    {
        var megabytes = (int)Args.Get(args, "--mb", 100);
        var runs = (int)Args.Get(args, "--runs", 5);
        var floats = megabytes * 1024 * 1024 / 4;
        var set = ParameterSet.Create(("w", [floats]));
        var rng = new Random(1);
        for (var i = 0; i < set.Length; i++)
        {
            set.Data[i] = (float)rng.NextDouble();
        }

        await using var coordinator = new LoopbackCoordinator(set, TimeSpan.FromSeconds(5));
        await using var connection = await ProtocolConnector.ConnectAsync("127.0.0.1", coordinator.Port, coordinator.Trust);
        using var identity = Ed25519Identity.Generate();
        await WorkerHandshake.RunAsync(connection, identity, new WorkerHandshakeOptions { WorkerId = "bench" });
        var destination = set.CreateZeros();
        var bytes = (double)set.Length * 4;
        var rates = new List<double>();
        var cpus = new List<double>();
        Console.WriteLine($"ParameterSet of {bytes / 1e6:0.0} MB over loopback TLS 1.3 (chunks {ParameterManifest.DefaultChunkSize >> 20} MiB, per-chunk SHA-256 verify, root check), {Environment.ProcessorCount} cores");
        for (var run = 0; run <= runs; run++)
        {
            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            var clock = Stopwatch.StartNew();
            await connection.SendAsync(new ParameterRequest { ParameterVersion = (ulong)run });
            await ParameterTransfer.ReceiveAsync(connection, destination, (ulong)run, coordinator.Root);
            clock.Stop();
            var cpuUsed = Process.GetCurrentProcess().TotalProcessorTime - cpu;
            var rate = bytes / clock.Elapsed.TotalSeconds / 1e9;
            Console.WriteLine($"  {(run == 0 ? "warm-up" : $"run {run}"),-8} {clock.Elapsed.TotalMilliseconds,8:0.0} ms  {rate,6:0.00} GB/s  process CPU {cpuUsed.TotalMilliseconds,7:0} ms (both ends)");
            if (run > 0)
            {
                rates.Add(rate);
                cpus.Add(cpuUsed.TotalMilliseconds);
            }
        }

        if (!set.Buffer.AsSpan().SequenceEqual(destination.Buffer))
        {
            Console.Error.WriteLine("MISMATCH: received parameters differ");
            return 1;
        }

        rates.Sort();
        cpus.Sort();
        Console.WriteLine($"median {rates[rates.Count / 2]:0.00} GB/s, best {rates[^1]:0.00} GB/s (target >= 1 GB/s); median CPU {cpus[cpus.Count / 2]:0} ms");
        await connection.SendAsync(new Goodbye());

        // Baseline in the same run: the same bytes through a bare SslStream pair (no framing, no hashing, no pipes).
        var baseline = await RawTlsBaseline.MeasureAsync(System.Runtime.InteropServices.MemoryMarshal.AsBytes(set.Buffer.AsSpan()).ToArray(), runs);
        Console.WriteLine($"bare SslStream loopback baseline: median {baseline.Rate:0.00} GB/s, CPU {baseline.CpuMs:0} ms -> NearML transfer reaches {rates[rates.Count / 2] / baseline.Rate:P0} of bare TLS speed at {cpus[cpus.Count / 2] / baseline.CpuMs:0.00}x its CPU time");
        return 0;
    }
}

/// <summary>Target: 200 concurrent idle TLS connections with heartbeats at &lt; 1% of one core.</summary>
internal static class IdleHarness
{
    public static async Task<int> RunAsync(string[] args)
    {
        var count = (int)Args.Get(args, "--connections", 200);
        var interval = TimeSpan.FromSeconds(Args.Get(args, "--interval", 15));
        var window = TimeSpan.FromSeconds(Args.Get(args, "--window", 45));
        await using var coordinator = new LoopbackCoordinator(null, interval);
        var workers = new List<(FrameConnection Connection, Task Heartbeats, Task Reader)>();
        using var stop = new CancellationTokenSource();
        long frames = 0;
        for (var i = 0; i < count; i++)
        {
            var connection = await ProtocolConnector.ConnectAsync("127.0.0.1", coordinator.Port, coordinator.Trust);
            using var identity = Ed25519Identity.Generate();
            await WorkerHandshake.RunAsync(connection, identity, new WorkerHandshakeOptions { WorkerId = $"idle-{i}" });
            var reader = Task.Run(async () =>
            {
                try
                {
                    while (await connection.ReceiveFrameAsync(stop.Token) is not null)
                    {
                        Interlocked.Increment(ref frames);
                    }
                }
                catch (OperationCanceledException)
                {
                }
            });
            workers.Add((connection, connection.RunHeartbeatsAsync(interval, stop.Token), reader));
        }

        var settle = TimeSpan.FromSeconds(Args.Get(args, "--settle", 15));
        Console.WriteLine($"{count} TLS connections admitted; both ends send a heartbeat every {interval.TotalSeconds:0.#} s; settling {settle.TotalSeconds:0} s (JIT tiering, GC), measuring {window.TotalSeconds:0} s");
        await Task.Delay(settle);
        var process = Process.GetCurrentProcess();
        process.Refresh();
        var cpuBefore = process.TotalProcessorTime;
        var framesBefore = Interlocked.Read(ref frames);
        var clock = Stopwatch.StartNew();
        await Task.Delay(window);
        process.Refresh();
        var cpu = process.TotalProcessorTime - cpuBefore;
        var elapsed = clock.Elapsed;
        var workerFrames = Interlocked.Read(ref frames) - framesBefore;
        var share = cpu.TotalSeconds / elapsed.TotalSeconds * 100;
        Console.WriteLine($"process CPU {cpu.TotalMilliseconds:0} ms over {elapsed.TotalSeconds:0.0} s = {share:0.000}% of one core (target < 1%); {workerFrames / elapsed.TotalSeconds:0} heartbeats/s received by workers, as many by the coordinator (coordinator and workers in this process)");
        await stop.CancelAsync();
        foreach (var (connection, heartbeats, reader) in workers)
        {
            await heartbeats;
            await connection.DisposeAsync();
            await reader;
        }

        return share < 1 ? 0 : 1;
    }
}

/// <summary>Bare TLS 1.3 throughput over loopback: 64 KiB writes of one buffer, reads into another.</summary>
internal static class RawTlsBaseline
{
    public static async Task<(double Rate, double CpuMs)> MeasureAsync(byte[] payload, int runs)
    {
        using var certificate = CoordinatorCertificate.CreateDevelopment();
        using var listener = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var client = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { NoDelay = true };
        var acceptTask = listener.AcceptAsync();
        await client.ConnectAsync(listener.LocalEndPoint!);
        var server = await acceptTask;
        var fingerprint = CoordinatorCertificate.GetFingerprint(certificate);
        await using var serverTls = new System.Net.Security.SslStream(new System.Net.Sockets.NetworkStream(server, true));
        await using var clientTls = new System.Net.Security.SslStream(new System.Net.Sockets.NetworkStream(client, true));
        await Task.WhenAll(
            serverTls.AuthenticateAsServerAsync(new System.Net.Security.SslServerAuthenticationOptions { ServerCertificate = certificate, EnabledSslProtocols = System.Security.Authentication.SslProtocols.Tls13 }),
            clientTls.AuthenticateAsClientAsync(new System.Net.Security.SslClientAuthenticationOptions
            {
                TargetHost = "localhost",
                EnabledSslProtocols = System.Security.Authentication.SslProtocols.Tls13,
                RemoteCertificateValidationCallback = (_, c, _, _) => c is not null && CoordinatorCertificate.GetFingerprint(c) == fingerprint,
            }));
        var target = new byte[payload.Length];
        var rates = new List<double>();
        var cpus = new List<double>();
        for (var run = 0; run <= runs; run++)
        {
            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            var clock = Stopwatch.StartNew();
            var write = Task.Run(async () =>
            {
                for (var offset = 0; offset < payload.Length; offset += 65536)
                {
                    await serverTls.WriteAsync(payload.AsMemory(offset, Math.Min(65536, payload.Length - offset)));
                }
            });
            var read = 0;
            while (read < target.Length)
            {
                read += await clientTls.ReadAsync(target.AsMemory(read));
            }

            await write;
            if (run > 0)
            {
                rates.Add(payload.Length / clock.Elapsed.TotalSeconds / 1e9);
                cpus.Add((Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalMilliseconds);
            }
        }

        rates.Sort();
        cpus.Sort();
        return (rates[rates.Count / 2], cpus[cpus.Count / 2]);
    }
}
