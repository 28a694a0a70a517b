namespace NearML.Training.Kernels.Internal;

/// <summary>Which micro-kernel family a GEMM runs on.</summary>
internal enum GemmPath
{
    /// <summary>The best the CPU supports.</summary>
    Auto = 0,

    /// <summary>AVX-512F 8×32 micro-kernel.</summary>
    Avx512 = 1,

    /// <summary>AVX2 + FMA 6×16 micro-kernel.</summary>
    Avx2 = 2,

    /// <summary>Portable <see cref="System.Runtime.Intrinsics.Vector128{T}"/> 6×8 micro-kernel (ARM64, x64 without AVX2).</summary>
    Portable = 3,
}

/// <summary>
/// One GEMM call, described with raw pointers (the caller keeps the spans pinned until the job completes) and cut into
/// independent tasks (tickets) that any thread may claim.
/// </summary>
internal sealed unsafe class GemmJob
{
    public GemmPath Path;
    public bool TransA;
    public bool TransB;
    public int M;
    public int N;
    public int K;
    public float Alpha;
    public float* A;
    public float* B;
    public float* C;
    public nint Lda;
    public nint Ldb;
    public nint Ldc;

    /// <summary>Whether the first depth block overwrites C (β = 0) instead of accumulating into it.</summary>
    public bool OverwriteFirst;

    /// <summary>Whether full-width B panels are read in place (row stride Ldb) instead of packed.</summary>
    public bool DirectB;

    // blocking
    public int Kc;
    public int PcBlocks;
    public int Panels;
    public int MTask;
    public int RowTasks;
    public int ColTasks;
    public int Threads;

    /// <summary>Per (depth block, panel): the generation whose B panel is packed there.</summary>
    public int[] Ready = [];

    /// <summary>The packed B (K × Panels·NR), shared by all threads of the job.</summary>
    public float* SharedB;

    public int Generation;
    public int TotalTickets;

    /// <summary>High 32 bits: generation; low 32 bits: next ticket.</summary>
    public long Tickets;

    /// <summary>Number of finished tickets.</summary>
    public int Done;

    /// <summary>Set by the thread that finishes the last ticket (the pool's job only; null for single-threaded jobs).</summary>
    public ManualResetEventSlim? Finished;
}

/// <summary>Per-thread state: its packing buffer for A blocks.</summary>
internal sealed class GemmThreadState
{
    public readonly PackBuffer PackedA = new();
}
