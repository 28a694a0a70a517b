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

/// <summary>
/// Issue 15 §2: a 100 MiB ParameterSet over loopback TLS through NearML's framing (FrameConnection, ParameterTransfer:
/// 1 MiB chunks, per-chunk BLAKE3 verify, root check) within 80% of a bare SslStream copy of the same bytes, measured in
/// the same run: the two alternate (NearML, bare, NearML, bare, ...) after one warm-up each, and each side's median is
/// compared. CPU time and allocated bytes are the process's (both ends live in this process); <c>--alloc-trace</c> adds
/// the runtime's allocation samples by type.
/// </summary>
internal static class TransferHarness
{
    public static async Task<int> RunAsync(string[] args)
    {
        var megabytes = (int)Args.Get(args, "--mb", 100);
        var runs = (int)Args.Get(args, "--runs", 3);
        var json = args.Contains("--json") ? args[Array.IndexOf(args, "--json") + 1] : null;
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
        var bytes = (long)set.Length * 4;
        await using var bare = await RawTlsBaseline.StartAsync(System.Runtime.InteropServices.MemoryMarshal.AsBytes(set.Buffer.AsSpan()).ToArray());
        Console.WriteLine($"ParameterSet of {bytes / 1048576.0:0.0} MiB over loopback TLS 1.3 (chunks {ParameterManifest.DefaultChunkSize >> 20} MiB, per-chunk BLAKE3 verify, root check) vs a bare SslStream pair (64 KiB writes), alternating; {Environment.ProcessorCount} cores, load {LoadAverage():0.0}");
        var nearml = new List<(double Rate, double CpuMs)>();
        var baseline = new List<(double Rate, double CpuMs)>();
        var chunks = (bytes + ParameterManifest.DefaultChunkSize - 1) / ParameterManifest.DefaultChunkSize;
        var allocatedPerChunk = new List<double>();
        using var ticks = args.Contains("--alloc-trace") ? new AllocationTicks() : null;
        for (var run = 0; run <= runs; run++)
        {
            var cpu = Environment.CpuUsage.TotalTime;
            var allocated = GC.GetTotalAllocatedBytes(precise: true);
            var clock = Stopwatch.StartNew();
            await connection.SendAsync(new ParameterRequest { ParameterVersion = (ulong)run });
            await ParameterTransfer.ReceiveAsync(connection, destination, (ulong)run, coordinator.Root);
            clock.Stop();
            var n = (bytes / clock.Elapsed.TotalSeconds / 1e9, (Environment.CpuUsage.TotalTime - cpu).TotalMilliseconds);

            // Both ends, the bare baseline idle: everything this process allocated during the transfer, per 1 MiB chunk.
            var perChunk = (GC.GetTotalAllocatedBytes(precise: true) - allocated) / (double)chunks;
            var b = await bare.CopyAsync();
            var label = run == 0 ? "warm-up" : $"run {run}";
            Console.WriteLine($"  {label,-8} NearML {n.Item1,6:0.00} GB/s CPU {n.Item2,6:0} ms alloc {perChunk,7:0} B/chunk | bare {b.Rate,6:0.00} GB/s CPU {b.CpuMs,6:0} ms alloc {bare.LastAllocated / (double)chunks,7:0} B/MiB | load {LoadAverage():0.0}");
            if (run > 0)
            {
                nearml.Add(n);
                baseline.Add(b);
                allocatedPerChunk.Add(perChunk);
                if (json is not null)
                {
                    await File.AppendAllTextAsync(json, string.Create(System.Globalization.CultureInfo.InvariantCulture,
                        $"{{\"bench\":\"tls_transfer\",\"mib\":{megabytes},\"run\":{run},\"nearml_gbps\":{n.Item1:0.000},\"nearml_cpu_ms\":{n.Item2:0},\"nearml_alloc_bytes_per_chunk\":{perChunk:0},\"bare_gbps\":{b.Rate:0.000},\"bare_cpu_ms\":{b.CpuMs:0},\"loadavg_1m\":{LoadAverage():0.00}}}\n"));
                }
            }
        }

        if (!set.Buffer.AsSpan().SequenceEqual(destination.Buffer))
        {
            Console.Error.WriteLine("MISMATCH: received parameters differ");
            return 1;
        }

        await connection.SendAsync(new Goodbye());
        foreach (var (type, approx) in ticks?.Top ?? [])
        {
            Console.WriteLine($"  allocated ~{approx / 1e6,8:0.0} MB of {type}");
        }

        var nearmlRate = Median(nearml.Select(x => x.Rate));
        var bareRate = Median(baseline.Select(x => x.Rate));
        var nearmlCpu = Median(nearml.Select(x => x.CpuMs));
        var bareCpu = Median(baseline.Select(x => x.CpuMs));
        var gigabytes = bytes / 1e9;
        Console.WriteLine($"median of {runs}: NearML {nearmlRate:0.00} GB/s ({nearmlCpu:0} ms CPU = {nearmlCpu / 1000 / gigabytes:0.00} CPU-s/GB, {Median(allocatedPerChunk):0} B allocated per chunk), bare SslStream {bareRate:0.00} GB/s ({bareCpu:0} ms CPU = {bareCpu / 1000 / gigabytes:0.00} CPU-s/GB) -> NearML reaches {nearmlRate / bareRate:P0} of bare TLS speed (target >= 80%) at {nearmlCpu / bareCpu:0.00}x its CPU time");
        return 0;
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted[sorted.Count / 2];
    }

    internal static double LoadAverage()
    {
        try
        {
            return double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return double.NaN;
        }
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

/// <summary>Bare TLS 1.3 over loopback: 64 KiB writes of one buffer through an SslStream pair, reads into another.</summary>
internal sealed class RawTlsBaseline : IAsyncDisposable
{
    private readonly X509Certificate2 _certificate;
    private readonly System.Net.Security.SslStream _server;
    private readonly System.Net.Security.SslStream _client;
    private readonly byte[] _payload;
    private readonly byte[] _target;

    private RawTlsBaseline(X509Certificate2 certificate, System.Net.Security.SslStream server, System.Net.Security.SslStream client, byte[] payload)
    {
        _certificate = certificate;
        _server = server;
        _client = client;
        _payload = payload;
        _target = new byte[payload.Length];
    }

    public static async Task<RawTlsBaseline> StartAsync(byte[] payload)
    {
        var certificate = CoordinatorCertificate.CreateDevelopment();
        using var listener = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var client = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { NoDelay = true };
        var acceptTask = listener.AcceptAsync();
        await client.ConnectAsync(listener.LocalEndPoint!);
        var server = await acceptTask;
        var fingerprint = CoordinatorCertificate.GetFingerprint(certificate);
        var serverTls = new System.Net.Security.SslStream(new System.Net.Sockets.NetworkStream(server, true));
        var clientTls = new System.Net.Security.SslStream(new System.Net.Sockets.NetworkStream(client, true));
        await Task.WhenAll(
            serverTls.AuthenticateAsServerAsync(new System.Net.Security.SslServerAuthenticationOptions { ServerCertificate = certificate, EnabledSslProtocols = System.Security.Authentication.SslProtocols.Tls13 }),
            clientTls.AuthenticateAsClientAsync(new System.Net.Security.SslClientAuthenticationOptions
            {
                TargetHost = "localhost",
                EnabledSslProtocols = System.Security.Authentication.SslProtocols.Tls13,
                RemoteCertificateValidationCallback = (_, c, _, _) => c is not null && CoordinatorCertificate.GetFingerprint(c) == fingerprint,
            }));
        return new RawTlsBaseline(certificate, serverTls, clientTls, payload);
    }

    /// <summary>Gets the bytes this process allocated during the last copy.</summary>
    public long LastAllocated { get; private set; }

    /// <summary>Copies the payload once; returns GB/s and process CPU milliseconds.</summary>
    public async Task<(double Rate, double CpuMs)> CopyAsync()
    {
        var allocated = GC.GetTotalAllocatedBytes(precise: true);
        var cpu = Environment.CpuUsage.TotalTime;
        var clock = Stopwatch.StartNew();
        var write = Task.Run(async () =>
        {
            for (var offset = 0; offset < _payload.Length; offset += 65536)
            {
                await _server.WriteAsync(_payload.AsMemory(offset, Math.Min(65536, _payload.Length - offset)));
            }
        });
        var read = 0;
        while (read < _target.Length)
        {
            read += await _client.ReadAsync(_target.AsMemory(read));
        }

        await write;
        clock.Stop();
        LastAllocated = GC.GetTotalAllocatedBytes(precise: true) - allocated;
        return (_payload.Length / clock.Elapsed.TotalSeconds / 1e9, (Environment.CpuUsage.TotalTime - cpu).TotalMilliseconds);
    }

    public async ValueTask DisposeAsync()
    {
        await _server.DisposeAsync();
        await _client.DisposeAsync();
        _certificate.Dispose();
    }
}

/// <summary>Counts the runtime's allocation-tick events (one per ~100 KB allocated) by type name, to find who allocates.</summary>
internal sealed class AllocationTicks : System.Diagnostics.Tracing.EventListener
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, long> _bytes = new();

    public IEnumerable<KeyValuePair<string, long>> Top => _bytes.OrderByDescending(static p => p.Value).Take(12);

    protected override void OnEventSourceCreated(System.Diagnostics.Tracing.EventSource eventSource)
    {
        if (eventSource.Name == "Microsoft-Windows-DotNETRuntime")
        {
            EnableEvents(eventSource, System.Diagnostics.Tracing.EventLevel.Verbose, (System.Diagnostics.Tracing.EventKeywords)0x1);
        }
    }

    protected override void OnEventWritten(System.Diagnostics.Tracing.EventWrittenEventArgs eventData)
    {
        if (eventData.EventName?.StartsWith("GCAllocationTick", StringComparison.Ordinal) == true && eventData.Payload is { } payload && eventData.PayloadNames is { } names)
        {
            var type = payload[names.IndexOf("TypeName")]?.ToString() ?? "?";
            _bytes.AddOrUpdate(type, 100_000, static (_, v) => v + 100_000);
        }
    }
}
