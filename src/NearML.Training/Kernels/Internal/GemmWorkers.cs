using System.Diagnostics;

namespace NearML.Training.Kernels.Internal;

/// <summary>
/// The persistent GEMM worker pool: dedicated background threads that spin briefly after each job (back-to-back
/// products in a training step find them awake) and then block on an event. One job runs at a time; a caller that
/// finds the pool busy runs its product single-threaded instead of waiting. Dispatch allocates nothing.
/// </summary>
internal static class GemmWorkers
{
    private static readonly Lock s_gate = new();
    private static readonly GemmJob s_job = new();
    private static readonly PackBuffer s_sharedB = new();
    private static readonly GemmThreadState s_callerState = new();
    private static Worker[] s_workers = [];
    private static int s_published;

    /// <summary>How long an idle worker spins before it blocks, in microseconds.</summary>
    internal static int SpinMicroseconds { get; set; } = 200;

    /// <summary>Runs a job on <paramref name="threads"/> threads (the caller included); false if the pool is busy.</summary>
    /// <param name="setup">Problem description; its fields are copied into the pool's job.</param>
    /// <param name="threads">Threads to use, at least 2.</param>
    internal static unsafe bool TryRun(GemmJob setup, int threads)
    {
        if (!s_gate.TryEnter())
        {
            return false;
        }

        try
        {
            EnsureWorkers(threads - 1);
            var job = s_job;
            job.Path = setup.Path;
            job.TransA = setup.TransA;
            job.TransB = setup.TransB;
            job.M = setup.M;
            job.N = setup.N;
            job.K = setup.K;
            job.Alpha = setup.Alpha;
            job.A = setup.A;
            job.B = setup.B;
            job.C = setup.C;
            job.Lda = setup.Lda;
            job.Ldb = setup.Ldb;
            job.Ldc = setup.Ldc;
            job.OverwriteFirst = setup.OverwriteFirst;
            GemmDriver.Prepare(job, threads, s_sharedB);
            Volatile.Write(ref s_published, job.Generation);
            for (var i = 0; i < threads - 1; i++)
            {
                s_workers[i].Wake.Set();
            }

            GemmDriver.Work(job, job.Generation, s_callerState);
            GemmDriver.WaitAll(job);
            return true;
        }
        finally
        {
            s_gate.Exit();
        }
    }

    private static void EnsureWorkers(int count)
    {
        if (s_workers.Length >= count)
        {
            return;
        }

        var grown = new Worker[count];
        Array.Copy(s_workers, grown, s_workers.Length);
        for (var i = s_workers.Length; i < count; i++)
        {
            grown[i] = new Worker(i + 1);
        }

        s_workers = grown;
    }

    private sealed class Worker
    {
        private readonly GemmThreadState _state = new();
        private readonly int _index;

        public Worker(int index)
        {
            _index = index;
            var thread = new Thread(Loop, maxStackSize: 256 * 1024)
            {
                IsBackground = true,
                Name = $"NearML GEMM worker {index}",
            };
            thread.Start();
        }

        public ManualResetEventSlim Wake { get; } = new(initialState: false, spinCount: 1);

        private void Loop()
        {
            var seen = Volatile.Read(ref s_published);
            while (true)
            {
                seen = WaitForJob(seen);
                var job = s_job;
                if (_index < job.Threads)
                {
                    GemmDriver.Work(job, seen, _state);
                }
            }
        }

        private int WaitForJob(int seen)
        {
            var spinTicks = SpinMicroseconds * Stopwatch.Frequency / 1_000_000;
            var deadline = Stopwatch.GetTimestamp() + spinTicks;
            var round = 0;
            while (true)
            {
                var published = Volatile.Read(ref s_published);
                if (published != seen)
                {
                    return published;
                }

                if ((++round & 31) == 0 && Stopwatch.GetTimestamp() > deadline)
                {
                    // Reset before re-checking the generation: a job published after the check sets the event again.
                    Wake.Wait();
                    Wake.Reset();
                    deadline = Stopwatch.GetTimestamp() + spinTicks;
                    continue;
                }

                Thread.SpinWait(16);
            }
        }
    }
}
