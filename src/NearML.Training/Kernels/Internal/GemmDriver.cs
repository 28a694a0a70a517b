using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NearML.Training.Kernels.Internal;

/// <summary>
/// The packed, cache-blocked GEMM (Goto/BLIS-style blocking without barriers): C is cut into tasks of at most MC rows
/// (× a chunk of NR-wide column panels when rows are few) that any thread may claim. A task walks the depth in KC
/// blocks: it packs its A block (α applied) into the thread's buffer, then for each column panel runs the micro-kernel
/// down its rows. B is packed once per job into KC×NR panels shared by all threads; whichever task first needs a panel
/// packs it and stamps a per-panel flag, so no task ever waits for another.
/// </summary>
internal static unsafe class GemmDriver
{
    /// <summary>Depth block (elements of k per packed panel). A kc×32 B panel of 32 KB stays in L1.</summary>
    internal static int KcMax = 256;

    /// <summary>Rows of A per packed block, in micro-kernel rows (MC = MR × this); an MC×KC A block stays in L2.</summary>
    internal static int McPanels = 24;

    private static int s_generation;

    /// <summary>
    /// Products with at most this many rows read a non-transposed B in place instead of packing it: with few rows a
    /// packed panel is used too few times to repay its packing (the MLP's batch-64/128 layers).
    /// </summary>
    internal static int DirectBMaxRows = 128;

    /// <summary>Gets the micro-kernel family the CPU supports best.</summary>
    internal static GemmPath BestPath { get; } =
        Avx512F.IsSupported ? GemmPath.Avx512
        : Avx2.IsSupported && Fma.IsSupported ? GemmPath.Avx2
        : GemmPath.Portable;

    /// <summary>The name of the environment variable that lowers the kernels' instruction set at start.</summary>
    internal const string IsaVariable = "NEARML_ISA";

    /// <summary>
    /// Gets or sets the family <see cref="GemmPath.Auto"/> resolves to: <see cref="BestPath"/> unless
    /// <c>NEARML_ISA</c> asked for a lower one at start (or <see cref="KernelThreads.Isa"/> was set).
    /// </summary>
    internal static GemmPath SelectedPath { get; set; } = BestPath;

    /// <summary>Gets the reason <c>NEARML_ISA</c> was refused, or null when it was accepted (or absent).</summary>
    internal static string? SelectionError { get; private set; }

    /// <summary>Applies the <c>NEARML_ISA</c> value of this process; runs once, before the first product.</summary>
    internal static bool EnvironmentApplied { get; } = ApplySelection(Environment.GetEnvironmentVariable(IsaVariable));

    /// <summary>Selects the family for a <c>NEARML_ISA</c> value (see <see cref="Select"/>).</summary>
    /// <returns>True when the value was accepted.</returns>
    internal static bool ApplySelection(string? value)
    {
        var (path, error) = Select(value);
        SelectedPath = path;
        SelectionError = error;
        return error is null;
    }

    /// <summary>Forgets a refused <c>NEARML_ISA</c> (after the selection was set explicitly).</summary>
    internal static void ClearSelectionError() => SelectionError = null;

    /// <summary>Parses an instruction-set name (<c>avx512</c>, <c>avx2</c>, <c>portable</c>, <c>auto</c>, any case).</summary>
    /// <returns>The family, <see cref="GemmPath.Auto"/> for <c>auto</c> or an empty value, or null when the name is unknown.</returns>
    internal static GemmPath? Parse(string? name) => name?.Trim().ToUpperInvariant() switch
    {
        null or "" or "AUTO" => GemmPath.Auto,
        "AVX512" or "AVX-512" => GemmPath.Avx512,
        "AVX2" or "AVX2+FMA" => GemmPath.Avx2,
        "PORTABLE" or "SCALAR" or "VECTOR128" => GemmPath.Portable,
        _ => null,
    };

    /// <summary>
    /// The family for a <c>NEARML_ISA</c> value: a known name the CPU supports selects that family (<c>auto</c> or none
    /// the best one); an unknown or unsupported name yields <see cref="BestPath"/> and the reason it was refused.
    /// </summary>
    internal static (GemmPath Path, string? Error) Select(string? value)
    {
        var parsed = Parse(value);
        if (parsed is null)
        {
            return (BestPath, $"{IsaVariable}='{value}' is not one of avx512, avx2, portable, auto.");
        }

        if (!IsSupported(parsed.Value))
        {
            return (BestPath, $"{IsaVariable}='{value}' asks for instructions this CPU lacks (best: {Name(BestPath)}).");
        }

        return (parsed.Value == GemmPath.Auto ? BestPath : parsed.Value, null);
    }

    /// <summary>The display name of a family: "AVX-512", "AVX2+FMA" or "portable".</summary>
    internal static string Name(GemmPath path) => path switch
    {
        GemmPath.Avx512 => "AVX-512",
        GemmPath.Avx2 => "AVX2+FMA",
        GemmPath.Auto => Name(BestPath),
        _ => "portable",
    };

    /// <summary>Whether <paramref name="path"/> can run on this CPU.</summary>
    internal static bool IsSupported(GemmPath path) => path switch
    {
        GemmPath.Auto or GemmPath.Portable => true,
        GemmPath.Avx2 => Avx2.IsSupported && Fma.IsSupported,
        GemmPath.Avx512 => Avx512F.IsSupported,
        _ => false,
    };

    /// <summary>Micro-kernel rows of <paramref name="path"/>.</summary>
    internal static int MR(GemmPath path) => path switch
    {
        GemmPath.Avx512 => Avx512MicroKernel.MR,
        GemmPath.Avx2 => Avx2MicroKernel.MR,
        _ => PortableMicroKernel.MR,
    };

    /// <summary>Micro-kernel columns of <paramref name="path"/>.</summary>
    internal static int NR(GemmPath path) => path switch
    {
        GemmPath.Avx512 => Avx512MicroKernel.NR,
        GemmPath.Avx2 => Avx2MicroKernel.NR,
        _ => PortableMicroKernel.NR,
    };

    /// <summary>Fills in blocking and task counts for a job whose problem fields are set, and opens it.</summary>
    internal static void Prepare(GemmJob job, int threads, PackBuffer sharedB)
    {
        var mr = MR(job.Path);
        var nr = NR(job.Path);

        // Close the ticket counter under the new generation before touching anything else, so a late worker still
        // holding the previous generation can no longer claim a ticket.
        var gen = Interlocked.Increment(ref s_generation);
        Volatile.Write(ref job.Tickets, ((long)gen << 32) | int.MaxValue);
        job.Generation = gen;
        job.Threads = threads;

        var kcMax = Math.Max(1, KcMax);
        var mcMax = mr * Math.Max(1, McPanels);
        job.PcBlocks = CeilDiv(job.K, kcMax);
        job.Kc = CeilDiv(job.K, job.PcBlocks);
        job.Panels = CeilDiv(job.N, nr);

        // Tasks: row slices of at most MC rows (split finer, down to MR rows, so every thread gets several tasks),
        // and column chunks only when there are too few rows. B is packed once, lazily, by whichever task first needs a
        // panel, so tasks never wait for each other.
        var microRows = CeilDiv(job.M, mr);
        var target = threads == 1 ? 1 : 4 * threads;
        var rowTasks = Math.Max(CeilDiv(job.M, mcMax), Math.Min(microRows, target));
        job.MTask = RoundUp(CeilDiv(job.M, rowTasks), mr);
        job.RowTasks = CeilDiv(job.M, job.MTask);
        job.ColTasks = Math.Max(1, Math.Min(job.Panels, CeilDiv(target, job.RowTasks)));
        job.TotalTickets = job.RowTasks * job.ColTasks;
        job.DirectB = !job.TransB && job.M <= DirectBMaxRows;

        var flags = job.PcBlocks * job.Panels;
        if (job.Ready.Length < flags)
        {
            job.Ready = new int[Math.Max(flags, 2 * job.Ready.Length)];
        }

        job.SharedB = sharedB.Get((nint)job.K * job.Panels * nr);
        job.Done = 0;
        Volatile.Write(ref job.Tickets, (long)gen << 32);
    }

    /// <summary>Largest K·N (floats of packed B) one job packs; wider products are cut into column slabs.</summary>
    internal static long MaxPackedB { get; set; } = 4L << 20;

    /// <summary>Claims and runs tickets of <paramref name="job"/> until none is left.</summary>
    internal static void Work(GemmJob job, int generation, GemmThreadState state)
    {
        switch (job.Path)
        {
            case GemmPath.Avx512:
                Work<Avx512MicroKernel>(job, generation, state);
                break;
            case GemmPath.Avx2:
                Work<Avx2MicroKernel>(job, generation, state);
                break;
            default:
                Work<PortableMicroKernel>(job, generation, state);
                break;
        }
    }

    /// <summary>
    /// Waits until every ticket of the job has finished: spins for up to <paramref name="spinTicks"/> (Stopwatch ticks),
    /// then blocks on <see cref="GemmJob.Finished"/> (spins throughout when the job has no event).
    /// </summary>
    /// <returns>How long it waited, in Stopwatch ticks (0 when everything had finished).</returns>
    internal static long WaitAll(GemmJob job, long spinTicks = long.MaxValue)
    {
        if (Volatile.Read(ref job.Done) >= job.TotalTickets)
        {
            return 0;
        }

        var start = Stopwatch.GetTimestamp();
        var finished = job.Finished;
        var spin = default(SpinWait);
        while (Volatile.Read(ref job.Done) < job.TotalTickets)
        {
            if (finished is null || Stopwatch.GetTimestamp() - start < spinTicks)
            {
                spin.SpinOnce(-1);
                continue;
            }

            // Reset, then re-check: the last ticket's Set after the check wakes the Wait; a late Set of an earlier job
            // only costs one more round.
            finished.Reset();
            if (Volatile.Read(ref job.Done) >= job.TotalTickets)
            {
                break;
            }

            finished.Wait();
        }

        return Stopwatch.GetTimestamp() - start;
    }

    /// <summary>Counts one finished ticket; the last one of the job sets <see cref="GemmJob.Finished"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Finish(GemmJob job)
    {
        if (Interlocked.Increment(ref job.Done) == job.TotalTickets)
        {
            job.Finished?.Set();
        }
    }

    /// <summary>Test hook: runs right after a thread claimed a ticket (e.g. to stall a worker holding one).</summary>
    internal static Action<int>? ClaimHook { get; set; }

    /// <summary>Floats past a packed A block that the 6-row transposes may overwrite (see <see cref="Transpose.Block6x8"/>).</summary>
    private const int PackSlack = 8;

    /// <summary>Stored rows of a transposed A packed together (see <see cref="PackATransposedPanels"/>).</summary>
    private const int TransposedChunk = 8;

    private static int CeilDiv(int a, int b) => (a + b - 1) / b;

    private static int RoundUp(int a, int b) => CeilDiv(a, b) * b;

    private static int Claim(GemmJob job, int generation)
    {
        var current = Volatile.Read(ref job.Tickets);
        while (true)
        {
            if ((int)(current >> 32) != generation)
            {
                return -1;
            }

            var ticket = (int)current;
            if (ticket >= job.TotalTickets)
            {
                return -1;
            }

            var seen = Interlocked.CompareExchange(ref job.Tickets, current + 1, current);
            if (seen == current)
            {
                ClaimHook?.Invoke(ticket);
                return ticket;
            }

            current = seen;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Work<TK>(GemmJob job, int generation, GemmThreadState state)
        where TK : struct, IMicroKernel
    {
        var edge = stackalloc float[TK.MR * TK.NR];
        var ready = job.Ready;
        int ticket;
        while ((ticket = Claim(job, generation)) >= 0)
        {
            var rt = ticket / job.ColTasks;
            var ct = ticket - (rt * job.ColTasks);
            var ic = rt * job.MTask;
            var mc = Math.Min(job.MTask, job.M - ic);
            var p0 = (int)((long)ct * job.Panels / job.ColTasks);
            var p1 = (int)((long)(ct + 1) * job.Panels / job.ColTasks);
            var aBlock = state.PackedA.Get(((nint)job.MTask * job.Kc) + PackSlack);

            // Concurrent tasks start their walk over the panels at different places (task t of T threads at t/T of the
            // way), so each packs a different part of the shared B instead of racing for the same panels.
            var span = p1 - p0;
            var start = p0 + (int)((long)(ticket % job.Threads) * span / job.Threads);
            for (var pb = 0; pb < job.PcBlocks; pb++)
            {
                var pc = pb * job.Kc;
                var kc = Math.Min(job.Kc, job.K - pc);
                PackA<TK>(job, ic, mc, pc, kc, aBlock);
                var accumulate = pb != 0 || !job.OverwriteFirst;
                var bBlock = job.SharedB + ((nint)pc * job.Panels * TK.NR);
                for (var step = 0; step < span; step++)
                {
                    var panel = start + step;
                    if (panel >= p1)
                    {
                        panel -= span;
                    }

                    var col = panel * TK.NR;
                    var nr = Math.Min(TK.NR, job.N - col);
                    float* bPanel;
                    nint ldb;
                    if (job.DirectB && nr == TK.NR)
                    {
                        // Few rows of A: packing B would cost as much as using it; read the full-width panel in place.
                        bPanel = job.B + ((nint)pc * job.Ldb) + col;
                        ldb = job.Ldb;
                    }
                    else
                    {
                        bPanel = bBlock + ((nint)panel * kc * TK.NR);
                        ldb = TK.NR;
                        ref var flag = ref ready[(pb * job.Panels) + panel];
                        if (Volatile.Read(ref flag) != generation)
                        {
                            // Tasks running at once start at different panels (see start), so they rarely pack the same
                            // one; if they do, both write identical values, and each reads the panel only after its own
                            // packing (or after seeing the flag) completed. (Without the staggered start, two tasks
                            // released together packed every panel at once from two cores, fighting over its lines.)
                            PackBPanel<TK>(job, col, nr, pc, kc, bPanel);
                            Volatile.Write(ref flag, generation);
                        }
                    }

                    var cCol = job.C + col;
                    for (var ir = 0; ir < mc; ir += TK.MR)
                    {
                        var mr = Math.Min(TK.MR, mc - ir);
                        var cTile = cCol + ((nint)(ic + ir) * job.Ldc);
                        var aPanel = aBlock + ((nint)ir * kc);
                        if (mr == TK.MR && nr == TK.NR)
                        {
                            TK.Run(kc, aPanel, bPanel, ldb, cTile, job.Ldc, accumulate);
                        }
                        else
                        {
                            TK.Run(kc, aPanel, bPanel, ldb, edge, TK.NR, accumulate: false);
                            MergeEdge(edge, TK.NR, cTile, job.Ldc, mr, nr, accumulate);
                        }
                    }
                }
            }

            Finish(job);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MergeEdge(float* tile, int ldt, float* c, nint ldc, int mr, int nr, bool accumulate)
    {
        for (var i = 0; i < mr; i++)
        {
            var src = tile + (i * ldt);
            var dst = c + (i * ldc);
            if (accumulate)
            {
                for (var j = 0; j < nr; j++)
                {
                    dst[j] += src[j];
                }
            }
            else
            {
                for (var j = 0; j < nr; j++)
                {
                    dst[j] = src[j];
                }
            }
        }
    }

    /// <summary>Whether packing may use AVX: not on the portable path, so it runs the code an ARM64 CPU runs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool UseAvx<TK>()
        where TK : struct, IMicroKernel => Avx.IsSupported && typeof(TK) != typeof(PortableMicroKernel);

    /// <summary>Packs rows [ic, ic+mc) × depth [pc, pc+kc) of α·op(A) into MR-row panels (k-major, zero-padded).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackA<TK>(GemmJob job, int ic, int mc, int pc, int kc, float* dst)
        where TK : struct, IMicroKernel
    {
        var mrFull = TK.MR;
        var alpha = job.Alpha;
        var lda = job.Lda;
        var first = job.TransA ? PackATransposedPanels<TK>(job, ic, mc, pc, kc, dst) : 0;
        for (var ir = first; ir < mc; ir += mrFull)
        {
            var mr = Math.Min(mrFull, mc - ir);
            var d = dst + ((nint)ir * kc);
            if (!job.TransA)
            {
                // op(A)[i, p] = A[i, p]: transpose 8×8 blocks where possible, else read each row contiguously and
                // write with stride MR.
                var src = job.A + ((nint)(ic + ir) * lda) + pc;
                var p0 = 0;
                if (UseAvx<TK>() && mrFull == 8 && mr == 8)
                {
                    var scale = Vector256.Create(alpha);
                    for (; p0 + 8 <= kc; p0 += 8)
                    {
                        Transpose.Block8x8(src + p0, lda, d + (p0 * 8), 8, scale);
                    }
                }
                else if (UseAvx<TK>() && mrFull == 6 && mr == 6)
                {
                    // Each block spills 2 zeros past its 48 floats: into the next block, the scalar tail below, the next
                    // panel (packed after this one) or the buffer's slack.
                    var scale = Vector256.Create(alpha);
                    for (; p0 + 8 <= kc; p0 += 8)
                    {
                        Transpose.Block6x8(src + p0, lda, d + (p0 * 6), scale);
                    }
                }

                for (var i = 0; i < mr; i++)
                {
                    var s = src + (i * lda);
                    var dd = d + i;
                    for (var p = p0; p < kc; p++)
                    {
                        dd[p * mrFull] = alpha * s[p];
                    }
                }

                for (var i = mr; i < mrFull; i++)
                {
                    for (var p = 0; p < kc; p++)
                    {
                        d[(p * mrFull) + i] = 0f;
                    }
                }
            }
            else
            {
                // op(A)[i, p] = A[p, i]: the partial last panel (full panels were packed above), zero-padded.
                var src = job.A + ((nint)pc * lda) + ic + ir;
                for (var p = 0; p < kc; p++)
                {
                    var s = src + (p * lda);
                    var dd = d + (p * mrFull);
                    var i = 0;
                    for (; i < mr; i++)
                    {
                        dd[i] = alpha * s[i];
                    }

                    for (; i < mrFull; i++)
                    {
                        dd[i] = 0f;
                    }
                }
            }
        }
    }

    /// <summary>
    /// Packs the full MR-row panels of rows [ic, ic+mc) × depth [pc, pc+kc) of α·Aᵀ (A stored k×m) in chunks of
    /// <see cref="TransposedChunk"/> stored rows: within a chunk, panel by panel, MR contiguous values per row. A chunk's
    /// source lines (a few rows × mc values) stay in L1 while every panel takes its part, and each panel's destination is
    /// written sequentially. (Walking one panel over the whole depth instead reads 24–32 bytes per stored row at a stride
    /// of lda: with lda a multiple of 1 KiB those rows fall into a couple of L1 sets and the next panel reloads the same
    /// lines from L2; walking all panels row by row writes MR·kc floats apart, again one set.)
    /// </summary>
    /// <returns>The rows packed (a multiple of MR); the caller packs the remaining partial panel.</returns>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int PackATransposedPanels<TK>(GemmJob job, int ic, int mc, int pc, int kc, float* dst)
        where TK : struct, IMicroKernel
    {
        var mrFull = TK.MR;
        var full = mc / mrFull * mrFull;
        var alpha = job.Alpha;
        var lda = job.Lda;
        var src = job.A + ((nint)pc * lda) + ic;
        if (UseAvx<TK>() && mrFull == 8)
        {
            var scale = Vector256.Create(alpha);
            for (var p0 = 0; p0 < kc; p0 += TransposedChunk)
            {
                var rows = Math.Min(TransposedChunk, kc - p0);
                for (var ir = 0; ir < full; ir += 8)
                {
                    var s = src + (p0 * lda) + ir;
                    var d = dst + ((nint)ir * kc) + (p0 * 8);
                    for (var p = 0; p < rows; p++)
                    {
                        Avx.Store(d + (p * 8), Avx.Multiply(Avx.LoadVector256(s + (p * lda)), scale));
                    }
                }
            }

            return full;
        }

        if (mrFull == 6)
        {
            // 4 + 2 values per row and panel: Vector128 (SSE / NEON) and one pair.
            var scale4 = Vector128.Create(alpha);
            for (var p0 = 0; p0 < kc; p0 += TransposedChunk)
            {
                var rows = Math.Min(TransposedChunk, kc - p0);
                for (var ir = 0; ir < full; ir += 6)
                {
                    var s = src + (p0 * lda) + ir;
                    var d = dst + ((nint)ir * kc) + (p0 * 6);
                    for (var p = 0; p < rows; p++)
                    {
                        var sp = s + (p * lda);
                        var dp = d + (p * 6);
                        (Vector128.Load(sp) * scale4).Store(dp);
                        dp[4] = alpha * sp[4];
                        dp[5] = alpha * sp[5];
                    }
                }
            }

            return full;
        }

        return 0;
    }

    /// <summary>Packs columns [col, col+nr) × depth [pc, pc+kc) of op(B) into one NR-wide panel (k-major, zero-padded).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackBPanel<TK>(GemmJob job, int col, int nr, int pc, int kc, float* dst)
        where TK : struct, IMicroKernel
    {
        var nrFull = TK.NR;
        var ldb = job.Ldb;
        if (!job.TransB)
        {
            // op(B)[p, j] = B[p, j]: NR contiguous values per k.
            var src = job.B + ((nint)pc * ldb) + col;
            var bytes = (long)nr * sizeof(float);
            for (var p = 0; p < kc; p++)
            {
                var d = dst + (p * nrFull);
                Buffer.MemoryCopy(src + (p * ldb), d, bytes, bytes);
                for (var j = nr; j < nrFull; j++)
                {
                    d[j] = 0f;
                }
            }
        }
        else
        {
            // op(B)[p, j] = B[j, p]: transpose 8×8 blocks where possible, else read each stored row contiguously and
            // write with stride NR.
            var src = job.B + ((nint)col * ldb) + pc;
            var j0 = 0;
            if (UseAvx<TK>() && nrFull % 8 == 0)
            {
                var one = Vector256.Create(1f);
                var kc8 = kc & ~7;
                for (; j0 + 8 <= nr; j0 += 8)
                {
                    for (var p = 0; p < kc8; p += 8)
                    {
                        Transpose.Block8x8(src + (j0 * ldb) + p, ldb, dst + (p * nrFull) + j0, nrFull, one);
                    }

                    for (var j = j0; j < j0 + 8; j++)
                    {
                        var s = src + (j * ldb);
                        for (var p = kc8; p < kc; p++)
                        {
                            dst[(p * nrFull) + j] = s[p];
                        }
                    }
                }
            }

            for (var j = j0; j < nr; j++)
            {
                var s = src + (j * ldb);
                var d = dst + j;
                for (var p = 0; p < kc; p++)
                {
                    d[p * nrFull] = s[p];
                }
            }

            for (var j = nr; j < nrFull; j++)
            {
                for (var p = 0; p < kc; p++)
                {
                    dst[(p * nrFull) + j] = 0f;
                }
            }
        }
    }
}
