using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using NearML.Hosting;
using NearML.Hosting.Worker;

namespace NearML.Samples.Worker;

/// <summary>
/// N worker hosts in one process (load tests): each is a full generic host with its own AddNearMLWorker, identity and
/// data directory, so the coordinator sees N independent TLS connections and identities; only the .NET runtime (and
/// whatever the worker service shares per process) is shared. With churn, a random running worker is stopped gracefully
/// every ~1.5 s and started again ~2 s later (a new host with the same identity), so the cohort changes between rounds.
/// </summary>
internal static class WorkerSwarm
{
    public static async Task<int> RunAsync(
        IConfiguration configuration, int count, bool printProgress, bool churn, int churnSeed, Func<IConfiguration, string?, string?, bool, bool, IHost> buildHost)
    {
        var prefix = configuration["NearML:Worker:WorkerId"] is { Length: > 0 } id ? id : "swarm";
        var dataRoot = configuration["NearML:Worker:DataDirectory"] is { Length: > 0 } d ? d : "nearml-swarm";
        var random = new Random(churnSeed);

        using var stopping = new CancellationTokenSource();
        using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c =>
        {
            c.Cancel = true;
            stopping.Cancel();
        });
        using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, c =>
        {
            c.Cancel = true;
            stopping.Cancel();
        });

        var names = Enumerable.Range(0, count).Select(i => $"{prefix}-{i:D2}").ToArray();
        var hosts = new IHost?[count];
        IHost Build(int i) => buildHost(configuration, names[i], Path.Combine(dataRoot, names[i]), printProgress, false);

        // Join: build all, then start all at once.
        for (var i = 0; i < count; i++)
        {
            hosts[i] = Build(i);
        }

        var started = System.Diagnostics.Stopwatch.StartNew();
        await Task.WhenAll(hosts.Select(h => h!.StartAsync(stopping.Token))).ConfigureAwait(false);
        Console.WriteLine($"SWARM STARTED count={count} ms={started.ElapsedMilliseconds}");

        var restarts = new List<Task>();
        try
        {
            while (!stopping.IsCancellationRequested)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(churn ? 1000 + random.Next(1000) : 1000), stopping.Token).ConfigureAwait(false);
                if (hosts.All(h => h is not null && h.Services.GetRequiredService<WorkerStatus>().State is WorkerState.Completed or WorkerState.Failed))
                {
                    // the coordinator completed the job (or refused every worker): nothing is left to do
                    break;
                }
                if (!churn)
                {
                    continue;
                }

                var running = Enumerable.Range(0, count).Where(i => hosts[i] is not null).ToArray();
                if (running.Length <= count / 2)
                {
                    continue;
                }

                var victim = running[random.Next(running.Length)];
                var host = hosts[victim]!;
                hosts[victim] = null;
                Console.WriteLine($"SWARM LEAVE id={names[victim]}");
                restarts.Add(LeaveAndRejoinAsync(victim, host));
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }

        await Task.WhenAll(restarts).ConfigureAwait(false);
        await Task.WhenAll(hosts.Where(h => h is not null).Select(async h =>
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            await h!.StopAsync(timeout.Token).ConfigureAwait(false);
            h.Dispose();
        })).ConfigureAwait(false);
        Console.WriteLine("STOPPED");
        return 0;

        async Task LeaveAndRejoinAsync(int index, IHost host)
        {
            using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15)))
            {
                await host.StopAsync(timeout.Token).ConfigureAwait(false);
            }

            host.Dispose();
            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(1500 + Random.Shared.Next(1000)), stopping.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            var fresh = Build(index);
            await fresh.StartAsync(stopping.Token).ConfigureAwait(false);
            hosts[index] = fresh;
            Console.WriteLine($"SWARM REJOIN id={names[index]}");
        }
    }
}
