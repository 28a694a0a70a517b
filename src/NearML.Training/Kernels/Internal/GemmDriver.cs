using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace NearML.Training.Kernels.Internal;

/// <summary>
/// The packed, cache-blocked GEMM (Goto/BLIS loop structure): C is cut into NC-wide column blocks, the depth into KC
/// blocks; each (jc, pc) block packs its B slab once (shared by all threads), then every MC×(chunk of NR panels) task
/// packs its A block (alpha applied) into the thread's buffer and runs the micro-kernel over it.
/// </summary>
internal static unsafe class GemmDriver
{
    /// <summary>Depth block (elements of k per packed panel). A kc×32 B panel of 32 KB stays in L1.</summary>
    internal static int KcMax = 256;

    /// <summary>Rows of A per packed block, in micro-kernel rows (MC = MR × this); an MC×KC A block stays in L2.</summary>
    internal static int McPanels = 24;

    /// <summary>Columns of B per packed slab.</summary>
    internal static int NcMax = 2048;

    private static int s_generation;

    /// <summary>Gets the micro-kernel family the CPU supports best.</summary>
    internal static GemmPath BestPath { get; } =
        Avx512F.IsSupported ? GemmPath.Avx512
        : Avx2.IsSupported && Fma.IsSupported ? GemmPath.Avx2
        : GemmPath.Portable;

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

    /// <summary>Fills in blocking and ticket counts for a job whose problem fields are set, and opens it.</summary>
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
        var ncMax = Math.Max(nr, NcMax);
        var mcMax = mr * Math.Max(1, McPanels);
        job.PcBlocks = CeilDiv(job.K, kcMax);
        job.Kc = CeilDiv(job.K, job.PcBlocks);
        job.JcBlocks = CeilDiv(job.N, ncMax);
        job.Nc = RoundUp(CeilDiv(job.N, job.JcBlocks), nr);
        job.JcBlocks = CeilDiv(job.N, job.Nc);
        job.RowBlocks = CeilDiv(job.M, mcMax);
        job.Mc = RoundUp(CeilDiv(job.M, job.RowBlocks), mr);
        job.RowBlocks = CeilDiv(job.M, job.Mc);
        job.MaxPackTasks = threads == 1 ? 1 : 2 * threads;
        job.ChunkTarget = threads == 1 ? 1 : CeilDiv(4 * threads, job.RowBlocks);
        job.SharedB = sharedB.Get((nint)job.Kc * job.Nc);

        var total = 0;
        for (var jb = 0; jb < job.JcBlocks; jb++)
        {
            var nc = Math.Min(job.Nc, job.N - (jb * job.Nc));
            var panels = CeilDiv(nc, nr);
            total += job.PcBlocks * (PackTasks(job, panels) + (job.RowBlocks * ColumnChunks(job, panels)));
        }

        job.TotalTickets = total;
        job.Done = 0;
        Volatile.Write(ref job.Tickets, (long)gen << 32);
    }

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

    /// <summary>Waits until every ticket of the job has finished.</summary>
    internal static void WaitAll(GemmJob job)
    {
        var spin = default(SpinWait);
        while (Volatile.Read(ref job.Done) < job.TotalTickets)
        {
            spin.SpinOnce(-1);
        }
    }

    private static int PackTasks(GemmJob job, int panels) => Math.Min(panels, job.MaxPackTasks);

    private static int ColumnChunks(GemmJob job, int panels) => Math.Min(panels, job.ChunkTarget);

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
        int ticket;
        while ((ticket = Claim(job, generation)) >= 0)
        {
            // Decode the ticket: column block, depth block, phase, task within the phase.
            var t = ticket;
            var phaseBase = 0;
            var jb = 0;
            int nc, panels, packTasks, chunks, perPc;
            while (true)
            {
                nc = Math.Min(job.Nc, job.N - (jb * job.Nc));
                panels = CeilDiv(nc, TK.NR);
                packTasks = PackTasks(job, panels);
                chunks = ColumnChunks(job, panels);
                perPc = packTasks + (job.RowBlocks * chunks);
                var blockTickets = job.PcBlocks * perPc;
                if (t < blockTickets)
                {
                    break;
                }

                t -= blockTickets;
                phaseBase += blockTickets;
                jb++;
            }

            var pb = t / perPc;
            var r = t - (pb * perPc);
            var isPack = r < packTasks;
            var phaseStart = phaseBase + (pb * perPc) + (isPack ? 0 : packTasks);
            if (Volatile.Read(ref job.Done) < phaseStart)
            {
                var spin = default(SpinWait);
                while (Volatile.Read(ref job.Done) < phaseStart)
                {
                    spin.SpinOnce(-1);
                }
            }

            var jc = jb * job.Nc;
            var pc = pb * job.Kc;
            var kc = Math.Min(job.Kc, job.K - pc);
            if (isPack)
            {
                var p0 = (int)((long)r * panels / packTasks);
                var p1 = (int)((long)(r + 1) * panels / packTasks);
                for (var panel = p0; panel < p1; panel++)
                {
                    var col = panel * TK.NR;
                    PackBPanel<TK>(job, jc + col, Math.Min(TK.NR, nc - col), pc, kc, job.SharedB + ((nint)panel * kc * TK.NR));
                }
            }
            else
            {
                r -= packTasks;
                var rb = r / chunks;
                var cc = r - (rb * chunks);
                var ic = rb * job.Mc;
                var mc = Math.Min(job.Mc, job.M - ic);
                var aBlock = state.PackedA.Get((nint)job.Mc * job.Kc);
                if (state.AGeneration != job.Generation || state.APcIndex != pb || state.ARowBlock != rb)
                {
                    PackA<TK>(job, ic, mc, pc, kc, aBlock);
                    state.AGeneration = job.Generation;
                    state.APcIndex = pb;
                    state.ARowBlock = rb;
                }

                var accumulate = pb != 0 || !job.OverwriteFirst;
                var p0 = (int)((long)cc * panels / chunks);
                var p1 = (int)((long)(cc + 1) * panels / chunks);
                for (var panel = p0; panel < p1; panel++)
                {
                    var col = panel * TK.NR;
                    var nr = Math.Min(TK.NR, nc - col);
                    var bPanel = job.SharedB + ((nint)panel * kc * TK.NR);
                    var cCol = job.C + jc + col;
                    for (var ir = 0; ir < mc; ir += TK.MR)
                    {
                        var mr = Math.Min(TK.MR, mc - ir);
                        var cTile = cCol + ((nint)(ic + ir) * job.Ldc);
                        var aPanel = aBlock + ((nint)ir * kc);
                        if (mr == TK.MR && nr == TK.NR)
                        {
                            TK.Run(kc, aPanel, bPanel, cTile, job.Ldc, accumulate);
                        }
                        else
                        {
                            TK.Run(kc, aPanel, bPanel, edge, TK.NR, accumulate: false);
                            MergeEdge(edge, TK.NR, cTile, job.Ldc, mr, nr, accumulate);
                        }
                    }
                }
            }

            Interlocked.Increment(ref job.Done);
        }
    }

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

    /// <summary>Packs rows [ic, ic+mc) × depth [pc, pc+kc) of α·op(A) into MR-row panels (k-major, zero-padded).</summary>
    private static void PackA<TK>(GemmJob job, int ic, int mc, int pc, int kc, float* dst)
        where TK : struct, IMicroKernel
    {
        var mrFull = TK.MR;
        var alpha = job.Alpha;
        var lda = job.Lda;
        for (var ir = 0; ir < mc; ir += mrFull)
        {
            var mr = Math.Min(mrFull, mc - ir);
            var d = dst + ((nint)ir * kc);
            if (!job.TransA)
            {
                // op(A)[i, p] = A[i, p]: read each row contiguously, write with stride MR.
                var src = job.A + ((nint)(ic + ir) * lda) + pc;
                for (var i = 0; i < mr; i++)
                {
                    var s = src + (i * lda);
                    var dd = d + i;
                    for (var p = 0; p < kc; p++)
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
                // op(A)[i, p] = A[p, i]: MR contiguous values per k.
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

    /// <summary>Packs columns [col, col+nr) × depth [pc, pc+kc) of op(B) into one NR-wide panel (k-major, zero-padded).</summary>
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
            // op(B)[p, j] = B[j, p]: read each stored row contiguously, write with stride NR.
            var src = job.B + ((nint)col * ldb) + pc;
            for (var j = 0; j < nr; j++)
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
