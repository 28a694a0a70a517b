using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NearML.Hosting.Coordinator;

namespace NearML.Hosting.Benchmarks;

internal static class Args
{
    public static double Get(string[] args, string name, double fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? double.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
    }

    public static string GetString(string[] args, string name, string fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }
}

/// <summary>One measured round of the coordinator.</summary>
internal sealed record RoundFigures(
    string Encoding, long Round, bool Warmup, int Workers, int Parameters, long PayloadBytes, long AllocatedBytes, double AllocatedToPayload,
    double CpuMs, double WallMs, double? CloseMs, double? ReduceMs, int Gen2, double LoadAverage);

/// <summary>
/// Drives a real coordinator (CoordinatorService in a generic host, TLS on loopback, SQLite state, checkpoints every round,
/// ledger receipts) through rounds of N workers × P parameters, and reports per round the coordinator's allocated bytes
/// (<see cref="GC.GetTotalAllocatedBytes(bool)"/> around the round span), the update payload bytes it received, their
/// ratio, its process CPU time, and the round close latency (last upload received → new global published, from the
/// coordinator's own <c>nearml.round.close_ms</c> tag).
/// </summary>
internal static class RoundsHarness
{
    public static async Task<int> RunAsync(string[] args)
    {
        var workers = (int)Args.Get(args, "--workers", 50);
        // the built-in "mlp" is 784 → hidden → hidden → 10: 679 gives 1,001,535 parameters
        var hidden = (int)Args.Get(args, "--hidden", 679);
        var rounds = (int)Args.Get(args, "--rounds", 5);
        var warmup = (int)Args.Get(args, "--warmup", 2);
        var download = Args.Get(args, "--download", 1) != 0;
        var encodings = Args.GetString(args, "--encodings", "int8,fp32").Split(',', StringSplitOptions.RemoveEmptyEntries);
        var json = Args.GetString(args, "--json", string.Empty);
        var dataset = WriteSyntheticDataset(Path.Combine(Path.GetTempPath(), "nearml-bench-data-" + Guid.NewGuid().ToString("N")));
        var all = new List<RoundFigures>();
        try
        {
            foreach (var encoding in encodings)
            {
                all.AddRange(await RunEncodingAsync(encoding, workers, hidden, rounds, warmup, download, dataset));
            }
        }
        finally
        {
            Directory.Delete(dataset, true);
        }

        var options = new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
        var lines = all.Select(f => JsonSerializer.Serialize(f, options)).ToList();
        foreach (var line in lines)
        {
            Console.WriteLine(line);
        }

        if (json.Length > 0)
        {
            await File.AppendAllLinesAsync(json, lines);
        }

        Console.WriteLine();
        Console.WriteLine("| encoding | workers × parameters | payload MB/round | allocated MB/round | allocated / payload | CPU ms/round | wall ms/round | round close ms | reduce ms | gen2 GCs/round | load 1m |");
        Console.WriteLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var group in all.Where(f => !f.Warmup).GroupBy(f => f.Encoding))
        {
            var g = group.ToList();
            var p = g[0];
            Console.WriteLine(string.Create(
                CultureInfo.InvariantCulture,
                $"| {p.Encoding} | {p.Workers} × {p.Parameters:N0} | {Median(g, f => f.PayloadBytes / 1e6):0.0} | {Median(g, f => f.AllocatedBytes / 1e6):0.0} | {Median(g, f => f.AllocatedToPayload):0.00}× | {Median(g, f => f.CpuMs):0} | {Median(g, f => f.WallMs):0} | {Median(g, f => f.CloseMs ?? double.NaN):0} | {Median(g, f => f.ReduceMs ?? double.NaN):0} | {Median(g, f => f.Gen2):0.#} | {Median(g, f => f.LoadAverage):0.0} |"));
        }

        Console.WriteLine($"medians of {rounds} measured rounds after {warmup} warm-up rounds; {Environment.ProcessorCount} cores; downloads {(download ? "on" : "off")}");
        return 0;
    }

    private static double Median<T>(List<T> items, Func<T, double> selector)
    {
        var values = items.Select(selector).Order().ToList();
        return values.Count == 0 ? double.NaN : values[values.Count / 2];
    }

    private static async Task<List<RoundFigures>> RunEncodingAsync(string encoding, int workers, int hidden, int rounds, int warmup, bool download, string dataset)
    {
        var data = Path.Combine(Path.GetTempPath(), "nearml-bench-coord-" + Guid.NewGuid().ToString("N"));
        var figures = new List<RoundFigures>();
        var gate = new Lock();
        var starts = new Dictionary<Activity, (long Alloc, TimeSpan Cpu, long Timestamp, int Gen2)>();
        var payloads = new Dictionary<long, long>();
        var reduce = new Dictionary<long, double>();
        var parameters = 0;
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == NearMLTracing.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStarted = a =>
            {
                // (the round's tags are set just after this callback: key the start by the span)
                if (a.OperationName == NearMLTracing.Round)
                {
                    lock (gate)
                    {
                        starts[a] = (GC.GetTotalAllocatedBytes(true), Environment.CpuUsage.TotalTime, Stopwatch.GetTimestamp(), GC.CollectionCount(2));
                    }
                }
            },
            ActivityStopped = a =>
            {
                if (a.OperationName == NearMLTracing.Round && a.GetTagItem("nearml.round") is long r)
                {
                    var alloc = GC.GetTotalAllocatedBytes(true);
                    var cpu = Environment.CpuUsage.TotalTime;
                    var now = Stopwatch.GetTimestamp();
                    var gen2 = GC.CollectionCount(2);
                    lock (gate)
                    {
                        var s = starts[a];
                        starts.Remove(a);
                        var payload = payloads.GetValueOrDefault(r);
                        var allocated = alloc - s.Alloc;
                        figures.Add(new RoundFigures(
                            encoding, r, r < warmup, workers, parameters, payload, allocated, payload > 0 ? (double)allocated / payload : double.NaN,
                            (cpu - s.Cpu).TotalMilliseconds, Stopwatch.GetElapsedTime(s.Timestamp, now).TotalMilliseconds,
                            a.GetTagItem("nearml.round.close_ms") as double?, reduce.TryGetValue(r, out var ms) ? ms : null, gen2 - s.Gen2, LoadAverage()));
                    }
                }
                else if (a.OperationName == NearMLTracing.Upload && a.GetTagItem("nearml.round") is long ur && a.GetTagItem("nearml.update.bytes") is long bytes)
                {
                    lock (gate)
                    {
                        payloads[ur] = payloads.GetValueOrDefault(ur) + bytes;
                    }
                }
                else if (a.OperationName == NearMLTracing.Aggregate && a.Parent?.GetTagItem("nearml.round") is long ar)
                {
                    lock (gate)
                    {
                        reduce[ar] = a.Duration.TotalMilliseconds;
                    }
                }
            },
        };
        ActivitySource.AddActivityListener(listener);

        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = TimeSpan.FromSeconds(60));
        builder.Services.AddNearMLCoordinator(o =>
        {
            o.Port = 0;
            o.DataDirectory = data;
            o.DatasetDirectory = dataset;
            o.ShardCount = 4 * workers;
            o.Model = "mlp";
            o.ModelConfigJson = $$"""{"hidden":{{hidden}}}""";
            o.Rounds = warmup + rounds;
            o.InnerSteps = 5;
            o.BatchSize = 16;
            o.UpdateEncoding = encoding;
            o.InnerLearningRate = 0.01;
            o.MinWorkers = workers;
            o.MaxWorkers = workers;
            o.RoundTimeout = TimeSpan.FromMinutes(5);
            o.HeartbeatInterval = TimeSpan.FromSeconds(10);
            o.AllowUnattestedWorkers = true;
            o.EvaluateEveryRounds = 0;
            o.SettleEveryRounds = warmup + rounds;
            o.MaxPendingHandshakes = workers;
            o.MaxPendingHandshakesPerAddress = workers;
            o.HandshakeRatePerAddress = 1e6;
            o.HandshakeBurstPerAddress = 1_000_000;
        });
        using var host = builder.Build();
        await host.StartAsync();
        var status = host.Services.GetRequiredService<CoordinatorStatus>();
        await status.Listening;
        parameters = (int)status.ParameterCount;
        Console.Error.WriteLine($"{encoding}: coordinator on port {status.Port}, {parameters:N0} parameters; starting {workers} workers (load {LoadAverage():0.0})");
        using var child = StartWorkers(status.Port, status.Fingerprint!, workers, download);
        try
        {
            await status.CompletedTask.WaitAsync(TimeSpan.FromMinutes(30));
        }
        finally
        {
            await host.StopAsync();
            if (!child.WaitForExit(TimeSpan.FromSeconds(60)))
            {
                child.Kill(entireProcessTree: true);
            }

            try
            {
                Directory.Delete(data, true);
            }
            catch (IOException)
            {
            }
        }

        lock (gate)
        {
            return [.. figures.OrderBy(f => f.Round)];
        }
    }

    private static Process StartWorkers(int port, string fingerprint, int count, bool download)
    {
        var self = Environment.ProcessPath!;
        var info = new ProcessStartInfo(self) { UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            info.ArgumentList.Add(Assembly.GetEntryAssembly()!.Location);
        }

        foreach (var a in new[] { "workers", "--port", port.ToString(CultureInfo.InvariantCulture), "--fingerprint", fingerprint, "--count", count.ToString(CultureInfo.InvariantCulture), "--download", download ? "1" : "0" })
        {
            info.ArgumentList.Add(a);
        }

        return Process.Start(info)!;
    }

    private static double LoadAverage()
    {
        try
        {
            return double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return double.NaN;
        }
    }

    /// <summary>Writes a small stand-in for Fashion-MNIST (the four IDX files): only shard sizes matter here, no one trains.</summary>
    private static string WriteSyntheticDataset(string directory)
    {
        Directory.CreateDirectory(directory);
        var rng = new Random(7);
        foreach (var (prefix, count) in new[] { ("train", 4000), ("t10k", 200) })
        {
            var pixels = new byte[count * 784];
            rng.NextBytes(pixels);
            var labels = new byte[count];
            for (var i = 0; i < count; i++)
            {
                labels[i] = (byte)rng.Next(10);
            }

            WriteIdx(Path.Combine(directory, $"{prefix}-images-idx3-ubyte"), [count, 28, 28], pixels);
            WriteIdx(Path.Combine(directory, $"{prefix}-labels-idx1-ubyte"), [count], labels);
        }

        return directory;
    }

    private static void WriteIdx(string path, int[] dims, byte[] data)
    {
        using var fs = File.Create(path);
        var header = new byte[4 + (4 * dims.Length)];
        header[2] = 0x08;
        header[3] = (byte)dims.Length;
        for (var i = 0; i < dims.Length; i++)
        {
            BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4 + (4 * i)), dims[i]);
        }

        fs.Write(header);
        fs.Write(data);
    }
}
