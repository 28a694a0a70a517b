using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using NearML.Core.Contracts.Aggregation;

namespace NearML.Aggregation.Benchmarks;

/// <summary>
/// End-to-end rounds in one process: n clients and one server exchange real (serialized-size-counted) protobuf messages.
/// `e2e [--clients 100,1000] [--entries 100000,1000000] [--dropout 0,0.1] [--protocol plus,secagg] [--max-work 2e10]`.
/// Dropped clients leave after ShareKeys (they are in other clients' masks, so the server must recover their pairwise
/// masks: the expensive case). Client work runs on all cores across clients; server work is timed on its own.
/// </summary>
internal static class EndToEnd
{
    public static int Run(string[] args)
    {
        var clients = Option(args, "--clients", "100,1000").Split(',').Select(int.Parse).ToArray();
        var entries = Option(args, "--entries", "100000,1000000").Split(',').Select(int.Parse).ToArray();
        var dropouts = Option(args, "--dropout", "0,0.1").Split(',').Select(s => double.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        var protocols = Option(args, "--protocol", "plus,secagg").Split(',');
        double maxWork = double.Parse(Option(args, "--max-work", "5e10"), CultureInfo.InvariantCulture);
        s_parallelClientsFrom = args.Contains("--parallel-clients") ? 0 : int.Parse(Option(args, "--parallel-clients-from", "1000"));
        s_degree = int.Parse(Option(args, "--degree", "0"));
        s_threshold = int.Parse(Option(args, "--threshold", "0"));
        var start = Stopwatch.StartNew();
        Console.WriteLine($"# NearML secure aggregation e2e: {Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSArchitecture}, " +
            $"load average {LoadAverage()} at start; `e2e {string.Join(' ', args)}`");

        // Warm-up: one small round per protocol so that no measured row pays for JIT compilation.
        foreach (var protocol in protocols)
        {
            RunOne(Protocol(protocol), 20, 1000, 0.1, maxWork, print: false);
        }

        Console.WriteLine("| protocol | n | entries | k / t | dropout | client masking ms wall (CPU) | client total ms wall (CPU) | server total ms wall (CPU) | server unmasking ms wall (CPU) | upload B/client | plain b-bit B | expansion | load |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        int failures = 0;
        foreach (var protocol in protocols)
        {
            foreach (var n in clients)
            {
                foreach (var len in entries)
                {
                    foreach (var drop in dropouts)
                    {
                        failures += RunOne(Protocol(protocol), n, len, drop, maxWork, print: true) ? 0 : 1;
                    }
                }
            }
        }

        Console.WriteLine($"# load average {LoadAverage()} at end; {start.Elapsed.TotalSeconds:F0} s; {(failures == 0 ? "every row verified the exact survivors' sum" : $"{failures} rows FAILED")}");
        return failures == 0 ? 0 : 1;

        static AggregationProtocol Protocol(string name) => name == "secagg" ? AggregationProtocol.Secagg : AggregationProtocol.SecaggPlus;
    }

    private static string LoadAverage() => File.ReadAllText("/proc/loadavg").Split(' ')[0];

    /// <summary>
    /// The server's hot path at full size without simulating the clients: unpack-and-add n·(1−δ) bit-packed inputs, then
    /// remove (1−δ)·n self masks and δ·n·k·(1−δ) pairwise masks from one accumulator of L elements.
    /// `server-workload --clients 1000 --entries 1000000 --degree 32 --dropout 0.1`.
    /// </summary>
    public static int ServerWorkload(string[] args)
    {
        int n = int.Parse(Option(args, "--clients", "1000"));
        int len = int.Parse(Option(args, "--entries", "1000000")) + 1;
        int k = int.Parse(Option(args, "--degree", "32"));
        double drop = double.Parse(Option(args, "--dropout", "0.1"), CultureInfo.InvariantCulture);
        int bits = new FixedPointEncoder(1f, 8, n).RingBits;
        int survivors = n - (int)Math.Round(drop * n);
        int pairwise = (int)Math.Round(drop * n * k * survivors / n);
        var packed = new byte[RingPacking.PackedLength(len, bits)];
        System.Security.Cryptography.RandomNumberGenerator.Fill(packed);
        var acc = new uint[len];
        var masks = Enumerable.Range(0, survivors + pairwise)
            .Select(i => (new Internal.MaskPrg(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16)), i % 2 == 0)).ToList();
        Console.WriteLine($"# machine: {Environment.ProcessorCount} cores, load average {File.ReadAllText("/proc/loadavg").Split(' ')[0]} at start");
        double cpu0 = CpuMs();
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < survivors; i++)
        {
            RingPacking.UnpackAdd(packed, bits, acc);
        }

        var ingest = sw.Elapsed;
        double cpuIngest = CpuMs() - cpu0;
        sw.Restart();
        cpu0 = CpuMs();
        Internal.MaskApplier.ApplyAll(masks, acc);
        var unmask = sw.Elapsed;
        double cpuUnmask = CpuMs() - cpu0;
        Console.WriteLine($"n={n} L={len - 1:N0} b={bits} k={k} dropout={drop:P0}: ingest {survivors} inputs {ingest.TotalMilliseconds:F0} ms (CPU {cpuIngest:F0} ms); " +
            $"remove {survivors} self + {pairwise} pairwise masks {unmask.TotalMilliseconds:F0} ms (CPU {cpuUnmask:F0} ms); " +
            $"PRG {(double)masks.Count * len * 4 / unmask.TotalSeconds / 1e9:F2} GB/s wall; load {File.ReadAllText("/proc/loadavg").Split(' ')[0]} at end");
        return 0;
    }

    /// <summary>
    /// The client's hot path alone: copy the input, add k + 1 masks, bit-pack. `client-masking --entries 100000 --masks 29 --bits 15`.
    /// </summary>
    public static int ClientMasking(string[] args)
    {
        int len = int.Parse(Option(args, "--entries", "100000")) + 1;
        int count = int.Parse(Option(args, "--masks", "29"));
        int bits = int.Parse(Option(args, "--bits", "15"));
        var input = new uint[len];
        var masks = Enumerable.Range(0, count)
            .Select(i => (new Internal.MaskPrg(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16)), i % 2 == 0)).ToList();
        var y = new uint[len];
        var packed = new byte[RingPacking.PackedLength(len, bits)];
        for (int w = 0; w < 5; w++)
        {
            input.CopyTo(y, 0);
            Internal.MaskApplier.ApplyAll(masks, y);
            RingPacking.Pack(y, bits, packed);
        }

        const int Iterations = 50;
        double cpu0 = CpuMs();
        var sw = Stopwatch.StartNew();
        for (int it = 0; it < Iterations; it++)
        {
            input.CopyTo(y, 0);
            Internal.MaskApplier.ApplyAll(masks, y);
            RingPacking.Pack(y, bits, packed);
        }

        Console.WriteLine($"client masking, L={len - 1:N0}, {count} masks, b={bits}: {sw.Elapsed.TotalMilliseconds / Iterations:F2} ms wall, {(CpuMs() - cpu0) / Iterations:F2} ms CPU per client; load {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
        return 0;
    }

    private static int s_parallelClientsFrom;
    private static int s_degree;
    private static int s_threshold;

    private static double CpuMs() => Environment.CpuUsage.TotalTime.TotalMilliseconds;

    private static string Option(string[] args, string name, string fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }

    private static bool RunOne(AggregationProtocol protocol, int n, int entries, double dropout, double maxWork, bool print)
    {
        bool parallelClients = n >= s_parallelClientsFrom;
        var encoder = new FixedPointEncoder(1f, 8, n);
        int length = FixedPointEncoder.EncodedLength(entries);
        var config = s_degree > 0 && protocol == AggregationProtocol.SecaggPlus
            ? AggregationRound.CreateConfig("bench", 1, protocol, n, length, encoder.RingBits, s_degree, s_threshold)
            : AggregationRound.CreateConfig("bench", 1, protocol, n, length, encoder.RingBits, corruptFraction: 0.05, dropoutFraction: Math.Max(0.05, dropout));
        string name = protocol == AggregationProtocol.Secagg ? "SecAgg" : "SecAgg+";
        double work = (double)n * (config.Degree + 1) * length;
        if (work > maxWork)
        {
            Console.WriteLine($"| {name} | {n:N0} | {entries:N0} | {config.Degree} / {config.Threshold} | {dropout:P0} | not simulated: n·(k+1)·L = {work:E1} mask elements (> --max-work {maxWork:E0}) | | | | | | | {LoadAverage()} |");
            return true;
        }

        var rng = new Random(42);
        var update = Enumerable.Range(0, entries).Select(_ => (float)((rng.NextDouble() * 2) - 1)).ToArray();
        var input = new uint[length];
        encoder.Encode(update, 1, input);
        var dropped = new HashSet<uint>(Enumerable.Range(0, n).OrderBy(_ => rng.Next()).Take((int)Math.Round(dropout * n)).Select(i => (uint)i));

        var sw = Stopwatch.StartNew();
        var parties = new SecureAggregationClient[n];
        Parallel.For(0, n, i => parties[i] = new SecureAggregationClient(config, (uint)i, input.AsMemory()));
        var clientTicks = new long[n];
        var clientCpu = new double[n];
        var upload = new long[n];
        var server = new SecureAggregationServer(config);
        long serverTicks = 0;
        double serverCpu = 0, unmaskCpu = 0;

        void Feed(ClientMessage m)
        {
            upload[m.Sender] += m.CalculateSize();
            long t0 = Stopwatch.GetTimestamp();
            double c0 = CpuMs();
            server.Receive(m);
            serverCpu += CpuMs() - c0;
            serverTicks += Stopwatch.GetTimestamp() - t0;
        }

        var starts = new ClientMessage[n];
        var maskCpu = new double[n];
        Parallel.For(0, n, new ParallelOptions { MaxDegreeOfParallelism = parallelClients ? -1 : 1 }, i =>
        {
            long t0 = Stopwatch.GetTimestamp();
            double cpu0 = parallelClients ? 0 : CpuMs();
            starts[i] = parties[i].Start();
            clientCpu[i] += parallelClients ? 0 : CpuMs() - cpu0;
            clientTicks[i] += Stopwatch.GetTimestamp() - t0;
        });
        foreach (var m in starts)
        {
            Feed(m);
        }

        int phase = 0;
        while (server.Phase is not (AggregationPhase.Completed or AggregationPhase.Failed))
        {
            long t0 = Stopwatch.GetTimestamp();
            double cpu0 = CpuMs();
            bool unmasking = server.Phase == AggregationPhase.Unmasking;
            var outgoing = server.Advance();
            double cpu = CpuMs() - cpu0;
            serverCpu += cpu;
            unmaskCpu += unmasking ? cpu : 0;
            serverTicks += Stopwatch.GetTimestamp() - t0;
            phase++;
            // Batches keep at most a few masked inputs alive at once.
            int Batch = parallelClients ? 8 : 1;
            for (int b = 0; b < outgoing.Count; b += Batch)
            {
                var batch = outgoing.Skip(b).Take(Batch).Where(m => !(phase >= 2 && dropped.Contains(m.Recipient))).ToArray();
                var replies = new ClientMessage[batch.Length];
                Parallel.For(0, batch.Length, new ParallelOptions { MaxDegreeOfParallelism = parallelClients ? -1 : 1 }, j =>
                {
                    long c0 = Stopwatch.GetTimestamp();
                    double cpu0 = parallelClients ? 0 : CpuMs();
                    replies[j] = parties[batch[j].Recipient].Handle(batch[j]);
                    double used = parallelClients ? 0 : CpuMs() - cpu0;
                    clientCpu[batch[j].Recipient] += used;
                    maskCpu[batch[j].Recipient] += batch[j].BodyCase == ServerMessage.BodyOneofCase.SharesDelivery ? used : 0;
                    clientTicks[batch[j].Recipient] += Stopwatch.GetTimestamp() - c0;
                });
                foreach (var r in replies)
                {
                    Feed(r);
                }
            }
        }

        var result = server.Finish();
        uint mask = (1u << encoder.RingBits) - 1;
        uint count = (uint)result.Contributors.Count;
        bool exact = result.Contributors.Count == n - dropped.Count && Enumerable.Range(0, length).All(j => result.Sum[j] == ((input[j] * count) & mask));
        var survivors = Enumerable.Range(0, n).Where(i => !dropped.Contains((uint)i)).ToArray();
        double masking = survivors.Average(i => parties[i].MaskingTime.TotalMilliseconds);
        double clientTotal = survivors.Average(i => clientTicks[i] * 1000.0 / Stopwatch.Frequency);
        string clientCpuText = parallelClients ? "n/a" : survivors.Average(i => clientCpu[i]).ToString("F1", CultureInfo.InvariantCulture);
        string maskCpuText = parallelClients ? "n/a" : survivors.Average(i => maskCpu[i]).ToString("F1", CultureInfo.InvariantCulture);
        double serverMs = serverTicks * 1000.0 / Stopwatch.Frequency;
        double up = survivors.Average(i => (double)upload[i]);
        var plain = new ClientMessage { JobId = "bench", Round = 1, Sender = 1, PlainInput = new PlainInput { Vector = ByteString.CopyFrom(new byte[RingPacking.PackedLength(length, encoder.RingBits)]) } }.CalculateSize();
        if (print || !exact)
        {
            Console.WriteLine($"| {name}{(parallelClients ? " ‡" : string.Empty)} | {n:N0} | {entries:N0} | {config.Degree} / {config.Threshold} | {dropout:P0} | {masking:F1} ({maskCpuText}) | {clientTotal:F1} ({clientCpuText}) | {serverMs:F0} ({serverCpu:F0}) | {server.UnmaskingTime.TotalMilliseconds:F1} ({unmaskCpu:F0}) | {up:N0} | {plain:N0} | {up / plain:F3}× | {LoadAverage()} |{(exact ? string.Empty : " **SUM WRONG**")}");
        }

        Console.Error.WriteLine($"  ({name} n={n} L={entries} drop={dropout}: wall {sw.Elapsed.TotalSeconds:F1} s, exact={exact}, load {File.ReadAllText("/proc/loadavg").Split(' ')[0]})");
        return exact;
    }
}
