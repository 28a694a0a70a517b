using System.Diagnostics;

namespace NearML.Training.Kernels.Internal;

/// <summary>
/// The persistent GEMM worker pool: dedicated background threads that claim tasks of a product next to its caller. How
/// they wait follows <see cref="KernelThreads.WaitPolicy"/>: spinning briefly after each job (back-to-back products of a
/// training step find them awake) while the cores look free, blocking at once while they look shared (issue 17). One job
/// runs at a time; a caller that finds the pool busy runs its product single-threaded instead of waiting. Dispatch
/// allocates nothing.
/// </summary>
/// <remarks>
/// Contention is measured as time lost two ways: a spinning worker that sees a gap of more than
/// <see cref="PreemptedMicroseconds"/> between two looks at the clock was descheduled while it spun (the gap is lost); a
/// caller that waits for the last tasks longer than two task-times (estimated from its own tasks) plus
/// <see cref="StraggleSlackMicroseconds"/> waited on a descheduled worker (the wait is lost). When the lost time exceeds
/// <see cref="LostFraction"/> of a window of <see cref="WindowMilliseconds"/> of products, the verdict makes the pool
/// passive for <see cref="ContendedMilliseconds"/> (workers block after each job, callers block for the last tasks), then
/// spinning is tried again; a load that persists doubles the passive period up to 16×. Passive costs about a tenth on a
/// free machine and spinning several times that on a shared one, hence quick to turn passive and slow to turn back.
/// </remarks>
internal static class GemmWorkers
{
    private static readonly Lock s_gate = new();
    private static readonly GemmJob s_job = new() { Finished = new ManualResetEventSlim(initialState: false, spinCount: 1) };
    private static readonly PackBuffer s_sharedB = new();
    private static readonly GemmThreadState s_callerState = new();
    private static Worker[] s_workers = [];
    private static int s_published;
    private static long s_contendedUntil;
    private static long s_contentionEvents;
    private static long s_windowBusy;
    private static long s_windowLost;
    private static long s_spinLost;
    private static int s_periodScale = 1;

    /// <summary>How long an idle worker spins before it blocks, in microseconds (while spinning is allowed).</summary>
    internal static int SpinMicroseconds { get; set; } = 200;

    /// <summary>How long a caller spins for the last tasks before it blocks, while the pool is passive, in microseconds.</summary>
    internal static int PassiveSpinMicroseconds { get; set; } = 5;

    /// <summary>A gap between two looks at the clock of a spinning worker above this means it was descheduled.</summary>
    internal static int PreemptedMicroseconds { get; set; } = 500;

    /// <summary>Slack added to the two task-times a caller waits for the last tasks before it calls the pool contended.</summary>
    internal static int StraggleSlackMicroseconds { get; set; } = 50;

    /// <summary>Product time (caller's wall clock) per contention verdict, in milliseconds.</summary>
    internal static int WindowMilliseconds { get; set; } = 30;

    /// <summary>The share of a window's product time that, lost on descheduled workers, makes the pool passive.</summary>
    internal static double LostFraction { get; set; } = 0.3;

    /// <summary>
    /// How long the pool stays passive after contention was detected, in milliseconds; doubled (up to 16×) each time the
    /// contention is found again right after a passive period.
    /// </summary>
    internal static int ContendedMilliseconds { get; set; } = 100;

    /// <summary>Gets how many times contention was detected since the process started (tests, diagnostics).</summary>
    internal static long ContentionEvents => Volatile.Read(ref s_contentionEvents);

    /// <summary>Gets a value indicating whether the adaptive policy is currently passive.</summary>
    internal static bool Contended => Stopwatch.GetTimestamp() < Volatile.Read(ref s_contendedUntil);

    /// <summary>Ends a passive period of the adaptive policy (tests).</summary>
    /// <remarks>Takes no lock (a test cleaning up after a deadlocked product must not hang); call it between products.</remarks>
    internal static void ClearContention()
    {
        Volatile.Write(ref s_contendedUntil, 0);
        s_periodScale = 1;
        s_windowBusy = 0;
        s_windowLost = 0;
        Interlocked.Exchange(ref s_spinLost, 0);
    }

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

            var start = Stopwatch.GetTimestamp();
            GemmDriver.Work(job, job.Generation, s_callerState);
            if (Volatile.Read(ref job.Done) >= job.TotalTickets)
            {
                Account(Stopwatch.GetTimestamp() - start, 0);
                return true;
            }

            // Two task-times past the caller's own end (its tasks took about threads/total of the product each) plus slack:
            // a worker still busy after that was most likely descheduled in the middle of its task.
            var worked = Stopwatch.GetTimestamp() - start;
            var straggle = (2 * worked * threads / Math.Max(1, job.TotalTickets)) + Ticks(StraggleSlackMicroseconds);
            var policy = KernelThreads.WaitPolicy;
            var spin = policy switch
            {
                KernelWaitPolicy.Active => long.MaxValue,
                KernelWaitPolicy.Passive => Ticks(PassiveSpinMicroseconds),
                _ => Contended ? Ticks(PassiveSpinMicroseconds) : straggle,
            };
            var waited = GemmDriver.WaitAll(job, spin);
            Account(worked + waited, waited > straggle ? waited : 0);
            return true;
        }
        finally
        {
            s_gate.Exit();
        }
    }

    /// <summary>Whether idle workers may spin now.</summary>
    private static bool MaySpin() => KernelThreads.WaitPolicy switch
    {
        KernelWaitPolicy.Active => true,
        KernelWaitPolicy.Passive => false,
        _ => !Contended,
    };

    /// <summary>
    /// Adds one product's time and the part of it lost waiting on a descheduled worker to the current window; a window of
    /// <see cref="WindowMilliseconds"/> of products that lost more than <see cref="LostFraction"/> of its time (and idle
    /// workers' time off the CPU counts as lost too) makes the adaptive policy passive. Called under the pool's gate.
    /// </summary>
    private static void Account(long busy, long lost)
    {
        s_windowBusy += busy;
        s_windowLost += lost;
        if (s_windowBusy < WindowMilliseconds * Stopwatch.Frequency / 1000)
        {
            return;
        }

        var lostTotal = s_windowLost + Interlocked.Exchange(ref s_spinLost, 0);
        if (KernelThreads.WaitPolicy == KernelWaitPolicy.Adaptive && lostTotal > LostFraction * s_windowBusy)
        {
            MarkContended();
        }

        s_windowBusy = 0;
        s_windowLost = 0;
    }

    private static void MarkContended()
    {
        // Found contended again right after a passive period: the load persists, so the next period is twice as long (up
        // to 16×), sparing windows spent re-testing it; otherwise it starts again at ContendedMilliseconds. The cap bounds
        // how long the pool stays passive after the load is gone (1.6 s).
        var now = Stopwatch.GetTimestamp();
        var ended = Volatile.Read(ref s_contendedUntil);
        s_periodScale = ended != 0 && now - ended < ContendedMilliseconds * Stopwatch.Frequency / 1000
            ? Math.Min(16, 2 * s_periodScale)
            : 1;
        Volatile.Write(ref s_contendedUntil, now + (s_periodScale * ContendedMilliseconds * Stopwatch.Frequency / 1000));
        Interlocked.Increment(ref s_contentionEvents);
    }

    private static long Ticks(int microseconds) => microseconds * Stopwatch.Frequency / 1_000_000;

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
            var spinTicks = Ticks(SpinMicroseconds);
            var preempted = Ticks(PreemptedMicroseconds);
            var last = Stopwatch.GetTimestamp();
            var deadline = last + spinTicks;
            var spinning = MaySpin();
            while (true)
            {
                var published = Volatile.Read(ref s_published);
                if (published != seen)
                {
                    return published;
                }

                if (spinning)
                {
                    for (var round = 0; round < 32; round++)
                    {
                        Thread.SpinWait(16);
                    }

                    var now = Stopwatch.GetTimestamp();
                    if (now - last > preempted)
                    {
                        // Descheduled while spinning: the cores are shared, and spinning burns this process's share. It
                        // counts as lost time of the current window (a lone preemption by a daemon does not tip it).
                        Interlocked.Add(ref s_spinLost, now - last);
                    }

                    last = now;
                    spinning = now <= deadline && MaySpin();
                    continue;
                }

                // Reset before re-checking the generation: a job published after the check sets the event again.
                Wake.Wait();
                Wake.Reset();
                last = Stopwatch.GetTimestamp();
                deadline = last + spinTicks;
                spinning = MaySpin();
            }
        }
    }
}
