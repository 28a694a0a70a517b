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
        double maxWork = double.Parse(Option(args, "--max-work", "2e10"), CultureInfo.InvariantCulture);
        Console.WriteLine($"# machine: {Environment.ProcessorCount} cores, load average {File.ReadAllText("/proc/loadavg").Split(' ')[0]} at start");
        Console.WriteLine("| protocol | n | entries | k / t | dropout | client masking ms (mean) | client total ms (mean) | server total ms | server unmasking ms | upload B/client | plain b-bit B | expansion | vs int8 |");
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
                        failures += RunOne(protocol == "secagg" ? AggregationProtocol.Secagg : AggregationProtocol.SecaggPlus, n, len, drop, maxWork) ? 0 : 1;
                    }
                }
            }
        }

        return failures == 0 ? 0 : 1;
    }

    private static string Option(string[] args, string name, string fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }

    private static bool RunOne(AggregationProtocol protocol, int n, int entries, double dropout, double maxWork)
    {
        var encoder = new FixedPointEncoder(1f, 8, n);
        int length = FixedPointEncoder.EncodedLength(entries);
        var config = AggregationRound.CreateConfig("bench", 1, protocol, n, length, encoder.RingBits, corruptFraction: 0.05, dropoutFraction: Math.Max(0.05, dropout));
        string name = protocol == AggregationProtocol.Secagg ? "SecAgg" : "SecAgg+";
        double work = (double)n * (config.Degree + 1) * length;
        if (work > maxWork)
        {
            Console.WriteLine($"| {name} | {n} | {entries:N0} | {config.Degree} / {config.Threshold} | {dropout:P0} | skipped: n·(k+1)·L = {work:E1} mask elements to simulate (> --max-work) | | | | | | | |");
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
        var upload = new long[n];
        var server = new SecureAggregationServer(config);
        long serverTicks = 0;

        void Feed(ClientMessage m)
        {
            upload[m.Sender] += m.CalculateSize();
            long t0 = Stopwatch.GetTimestamp();
            server.Receive(m);
            serverTicks += Stopwatch.GetTimestamp() - t0;
        }

        var starts = new ClientMessage[n];
        Parallel.For(0, n, i =>
        {
            long t0 = Stopwatch.GetTimestamp();
            starts[i] = parties[i].Start();
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
            var outgoing = server.Advance();
            serverTicks += Stopwatch.GetTimestamp() - t0;
            phase++;
            // Batches keep at most a few masked inputs alive at once.
            const int Batch = 8;
            for (int b = 0; b < outgoing.Count; b += Batch)
            {
                var batch = outgoing.Skip(b).Take(Batch).Where(m => !(phase >= 2 && dropped.Contains(m.Recipient))).ToArray();
                var replies = new ClientMessage[batch.Length];
                Parallel.For(0, batch.Length, j =>
                {
                    long c0 = Stopwatch.GetTimestamp();
                    replies[j] = parties[batch[j].Recipient].Handle(batch[j]);
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
        double serverMs = serverTicks * 1000.0 / Stopwatch.Frequency;
        double up = survivors.Average(i => (double)upload[i]);
        var plain = new ClientMessage { JobId = "bench", Round = 1, Sender = 1, PlainInput = new PlainInput { Vector = ByteString.CopyFrom(new byte[RingPacking.PackedLength(length, encoder.RingBits)]) } }.CalculateSize();
        Console.WriteLine($"| {name} | {n} | {entries:N0} | {config.Degree} / {config.Threshold} | {dropout:P0} | {masking:F1} | {clientTotal:F1} | {serverMs:F0} | {server.UnmaskingTime.TotalMilliseconds:F0} | {up:N0} | {plain:N0} | {up / plain:F3}× | {up / entries:F2}× |{(exact ? string.Empty : " **SUM WRONG**")}");
        Console.Error.WriteLine($"  ({name} n={n} L={entries} drop={dropout}: wall {sw.Elapsed.TotalSeconds:F1} s, exact={exact})");
        return exact;
    }
}
