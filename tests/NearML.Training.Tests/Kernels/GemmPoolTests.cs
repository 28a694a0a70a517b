using NearML.Training.Kernels;
using NearML.Training.Kernels.Internal;

namespace NearML.Training.Tests.Kernels;

/// <summary>
/// The GEMM worker pool (issue 17): products from several callers at once, a product while the pool is busy, a worker
/// stalled while it holds a task, each wait policy — always the bits of the single-threaded product, never a deadlock.
/// </summary>
[TestClass]
public sealed class GemmPoolTests
{
    private const string WorkerPrefix = "NearML GEMM worker";

    [TestCleanup]
    public void Restore()
    {
        GemmDriver.ClaimHook = null;
        KernelThreads.WaitPolicy = KernelWaitPolicy.Adaptive;
        GemmWorkers.ClearContention();
    }

    [TestMethod]
    [DataRow(KernelWaitPolicy.Adaptive)]
    [DataRow(KernelWaitPolicy.Active)]
    [DataRow(KernelWaitPolicy.Passive)]
    public void ManyCallers_ConcurrentProducts_MatchOneThreadBitwise(KernelWaitPolicy policy)
    {
        KernelThreads.WaitPolicy = policy;
        var failures = new List<string>();
        var callers = Enumerable.Range(0, 4).Select(caller => new Thread(() =>
        {
            var rng = new Random(100 + caller);
            for (var i = 0; i < 25; i++)
            {
                var (m, n, k) = (rng.Next(1, 160), rng.Next(1, 160), rng.Next(1, 300));
                var (ta, tb) = (rng.Next(2) == 1, rng.Next(2) == 1);
                var threads = rng.Next(2, 5);
                var p = Problem.Random(rng, ta, tb, m, n, k, beta: rng.Next(2) == 0 ? 0f : 0.5f);
                var single = p.Run(1);
                var multi = p.Run(threads);
                if (!single.AsSpan().SequenceEqual(multi))
                {
                    lock (failures)
                    {
                        failures.Add($"caller {caller}: {m}×{n}×{k} ta={ta} tb={tb} on {threads} threads differs");
                    }
                }
            }
        })
        {
            IsBackground = true, // a deadlocked caller fails the test instead of keeping the test host alive
        }).ToList();
        callers.ForEach(t => t.Start());
        foreach (var t in callers)
        {
            Assert.IsTrue(t.Join(TimeSpan.FromSeconds(60)), "a caller did not finish (deadlock?)");
        }

        Assert.AreEqual(0, failures.Count, string.Join("; ", failures));
    }

    [TestMethod]
    [DataRow(KernelWaitPolicy.Adaptive)]
    [DataRow(KernelWaitPolicy.Active)]
    [DataRow(KernelWaitPolicy.Passive)]
    public void WorkerStalledHoldingATask_ProductCompletesWithOneThreadBits(KernelWaitPolicy policy)
    {
        KernelThreads.WaitPolicy = policy;
        GemmWorkers.ClearContention();
        var p = Problem.Random(new Random(7), false, true, 190, 170, 300, beta: 0f);
        var expected = p.Run(1);
        p.Run(2); // workers exist and are warm

        using var workerClaimed = new ManualResetEventSlim();
        var stalls = 0;
        GemmDriver.ClaimHook = _ =>
        {
            if (Thread.CurrentThread.Name?.StartsWith(WorkerPrefix, StringComparison.Ordinal) == true)
            {
                if (Interlocked.Increment(ref stalls) == 1)
                {
                    workerClaimed.Set();
                    Thread.Sleep(60); // descheduled for a long time slice while holding its task
                }
            }
            else if (!workerClaimed.IsSet)
            {
                // The caller waits at its first task until the worker holds one, so the stall always happens.
                workerClaimed.Wait(TimeSpan.FromSeconds(10));
            }
        };
        var before = KernelThreads.ContentionEvents;
        float[]? actual = null;
        Bounded(() => actual = p.Run(2));
        GemmDriver.ClaimHook = null;

        Assert.IsTrue(stalls >= 1, "the worker never claimed a task");
        CollectionAssert.AreEqual(expected, actual);
        if (policy == KernelWaitPolicy.Adaptive)
        {
            // 60 ms of the 60+ ms product lost on the stalled worker: the window's verdict makes the pool passive.
            Assert.IsTrue(KernelThreads.ContentionEvents > before, "the stall was not seen as contention");
        }
        else
        {
            Assert.AreEqual(before, KernelThreads.ContentionEvents, "only the adaptive policy judges contention");
        }
    }

    [TestMethod]
    public void Adaptive_StalledWorkersTurnThePoolPassive_ProductsStayCorrectAndUseTheWorkers()
    {
        KernelThreads.WaitPolicy = KernelWaitPolicy.Adaptive;
        var p = Problem.Random(new Random(9), false, false, 256, 256, 256, beta: 0f);
        var expected = p.Run(1);

        var workerClaims = 0;
        GemmDriver.ClaimHook = _ =>
        {
            if (Thread.CurrentThread.Name?.StartsWith(WorkerPrefix, StringComparison.Ordinal) == true)
            {
                Interlocked.Increment(ref workerClaims);
                Thread.Sleep(40); // every worker task stalls: the first 30 ms window loses most of its time
            }
        };

        var before = KernelThreads.ContentionEvents;
        Bounded(() =>
        {
            for (var i = 0; i < 20 && !GemmWorkers.Contended; i++)
            {
                CollectionAssert.AreEqual(expected, p.Run(2));
            }
        });

        Assert.IsTrue(GemmWorkers.Contended, "20 stalled products did not make the pool passive");
        Assert.IsTrue(KernelThreads.ContentionEvents > before);

        // Passive: workers block between products but still take tasks; results keep the 1-thread bits.
        GemmDriver.ClaimHook = _ =>
        {
            if (Thread.CurrentThread.Name?.StartsWith(WorkerPrefix, StringComparison.Ordinal) == true)
            {
                Interlocked.Increment(ref workerClaims);
            }
        };
        Volatile.Write(ref workerClaims, 0);
        var big = Problem.Random(new Random(10), false, false, 512, 512, 512, beta: 0f);
        var bigExpected = big.Run(1);
        Bounded(() =>
        {
            for (var i = 0; i < 5; i++)
            {
                CollectionAssert.AreEqual(bigExpected, big.Run(2));
            }
        });

        if (Environment.ProcessorCount >= 2)
        {
            Assert.IsTrue(Volatile.Read(ref workerClaims) > 0, "no worker took a task of five 512³ products while passive");
        }

        // The passive period ends: spinning again, and a quiet window does not turn it passive.
        GemmWorkers.ClearContention();
        GemmDriver.ClaimHook = null;
        Assert.IsFalse(GemmWorkers.Contended);
        CollectionAssert.AreEqual(expected, p.Run(2));
    }

    [TestMethod]
    public void ProductWhilePoolBusy_RunsOnItsCallerWithoutWaiting()
    {
        var holder = Problem.Random(new Random(10), false, false, 200, 200, 200, beta: 0f);
        var other = Problem.Random(new Random(11), true, false, 150, 140, 260, beta: 1f);
        var holderExpected = holder.Run(1);
        var otherExpected = other.Run(1);
        holder.Run(2);

        using var holding = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var holderThread = -1;
        GemmDriver.ClaimHook = _ =>
        {
            if (Thread.CurrentThread.Name?.StartsWith(WorkerPrefix, StringComparison.Ordinal) == true && !holding.IsSet)
            {
                holding.Set();
                release.Wait(TimeSpan.FromSeconds(30)); // the pool stays busy until the other product is done
            }
            else if (!holding.IsSet && Environment.CurrentManagedThreadId == Volatile.Read(ref holderThread))
            {
                holding.Wait(TimeSpan.FromSeconds(10));
            }
        };

        float[]? holderActual = null;
        var first = new Thread(() =>
        {
            Volatile.Write(ref holderThread, Environment.CurrentManagedThreadId);
            holderActual = holder.Run(2);
        })
        {
            IsBackground = true,
        };
        first.Start();
        Assert.IsTrue(holding.Wait(TimeSpan.FromSeconds(10)), "the held product never reached a worker");

        var otherActual = other.Run(2); // the pool is busy: this runs on this thread alone, now
        CollectionAssert.AreEqual(otherExpected, otherActual);
        Assert.IsTrue(first.IsAlive, "the held product finished before it was released");

        release.Set();
        Assert.IsTrue(first.Join(TimeSpan.FromSeconds(30)), "the held product did not finish after its worker was released");
        GemmDriver.ClaimHook = null;
        CollectionAssert.AreEqual(holderExpected, holderActual);
    }

    [TestMethod]
    [DataRow(KernelWaitPolicy.Adaptive)]
    [DataRow(KernelWaitPolicy.Active)]
    [DataRow(KernelWaitPolicy.Passive)]
    public void SteadyState_EachPolicy_AllocatesNothingOnTheCaller(KernelWaitPolicy policy)
    {
        KernelThreads.WaitPolicy = policy;
        var p = Problem.Random(new Random(12), false, false, 160, 150, 140, beta: 0f);
        for (var i = 0; i < 5; i++)
        {
            p.RunInPlace(2);
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 50; i++)
        {
            p.RunInPlace(2);
        }

        Assert.AreEqual(0L, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [TestMethod]
    public void WaitPolicy_DefaultsToAdaptive_AndRejectsUndefinedValues()
    {
        Assert.AreEqual(KernelWaitPolicy.Adaptive, KernelThreads.WaitPolicy);
        foreach (var bad in new[] { (KernelWaitPolicy)(-1), (KernelWaitPolicy)3, (KernelWaitPolicy)int.MaxValue })
        {
            var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => KernelThreads.WaitPolicy = bad);
            Assert.AreEqual("value", e.ParamName);
            Assert.AreEqual(KernelWaitPolicy.Adaptive, KernelThreads.WaitPolicy);
        }

        foreach (var good in Enum.GetValues<KernelWaitPolicy>())
        {
            KernelThreads.WaitPolicy = good;
            Assert.AreEqual(good, KernelThreads.WaitPolicy);
        }
    }

    /// <summary>Runs <paramref name="action"/> on its own thread; fails (instead of hanging) if it does not end in 60 s.</summary>
    private static void Bounded(Action action)
    {
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                action();
            }
            catch (Exception e)
            {
                error = e;
            }
        })
        {
            IsBackground = true, // a deadlock fails the test instead of keeping the test host alive
        };
        thread.Start();
        Assert.IsTrue(thread.Join(TimeSpan.FromSeconds(60)), "the products did not finish in 60 s (deadlock?)");
        if (error is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
        }
    }

    /// <summary>One product with its operands; runs it on a given thread count with the pool always eligible.</summary>
    private sealed class Problem
    {
        private readonly bool _ta;
        private readonly bool _tb;
        private readonly float _beta;
        private readonly float[] _a;
        private readonly float[] _b;
        private readonly float[] _c0;
        private readonly float[] _c;

        private Problem(bool ta, bool tb, int m, int n, int k, float beta, float[] a, float[] b, float[] c0)
        {
            (_ta, _tb, M, N, K, _beta, _a, _b, _c0) = (ta, tb, m, n, k, beta, a, b, c0);
            _c = new float[c0.Length];
        }

        public int M { get; }

        public int N { get; }

        public int K { get; }

        public static Problem Random(Random rng, bool ta, bool tb, int m, int n, int k, float beta)
        {
            static float[] Fill(Random r, int length)
            {
                var x = new float[length];
                for (var i = 0; i < x.Length; i++)
                {
                    x[i] = (float)((r.NextDouble() * 2) - 1);
                }

                return x;
            }

            return new Problem(ta, tb, m, n, k, beta, Fill(rng, m * k), Fill(rng, k * n), Fill(rng, m * n));
        }

        public float[] Run(int threads)
        {
            RunInPlace(threads);
            return (float[])_c.Clone();
        }

        public void RunInPlace(int threads)
        {
            _c0.CopyTo(_c, 0);
            Gemm.Sgemm(
                GemmPath.Auto, threads, _ta, _tb, M, N, K, 1f,
                _a, _ta ? M : K, _b, _tb ? K : N, _beta, _c, N, parallelThreshold: 0);
        }
    }
}
