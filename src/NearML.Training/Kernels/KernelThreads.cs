using NearML.Training.Kernels.Internal;

namespace NearML.Training.Kernels;

/// <summary>
/// Process-wide threading settings of the compute kernels (<see cref="Gemm"/>).
/// </summary>
/// <remarks>
/// Products run on the calling thread plus <c>Count − 1</c> persistent background workers that claim the product's tasks
/// (tiles of C, each computed whole by one thread, so the split never changes the result's bits). How the threads wait
/// follows <see cref="WaitPolicy"/>: by default the workers spin for a short while after each product (so the next
/// product of a training step starts without a wake-up) and then sleep, and the caller spins for the last tasks — until
/// the machine's cores turn out to be shared with other busy processes, when both block instead for a while.
/// Only one multi-threaded product runs at a time; a product issued while the pool is busy runs on its caller alone.
/// </remarks>
public static class KernelThreads
{
    /// <summary>The largest accepted <see cref="Count"/>.</summary>
    public const int MaxCount = 256;

    private static int s_count = Math.Clamp(Environment.ProcessorCount, 1, MaxCount);
    private static long s_threshold = 1L << 20;
    private static int s_waitPolicy = (int)KernelWaitPolicy.Adaptive;

    /// <summary>Gets or sets the number of threads a large product uses (the caller included).</summary>
    /// <value>The default value is <see cref="Environment.ProcessorCount"/>.</value>
    /// <exception cref="ArgumentOutOfRangeException">The value is below 1 or above <see cref="MaxCount"/>.</exception>
    public static int Count
    {
        get => Volatile.Read(ref s_count);
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, MaxCount);
            Volatile.Write(ref s_count, value);
        }
    }

    /// <summary>
    /// Gets or sets the work (m·n·k multiply-adds) below which a product runs single-threaded, because waking the
    /// workers would cost more than it saves.
    /// </summary>
    /// <value>The default value is 2²⁰ (e.g. 128×128×64).</value>
    /// <exception cref="ArgumentOutOfRangeException">The value is negative.</exception>
    public static long ParallelThreshold
    {
        get => Volatile.Read(ref s_threshold);
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            Volatile.Write(ref s_threshold, value);
        }
    }

    /// <summary>Gets or sets how the threads of a multi-threaded product wait (spin or block).</summary>
    /// <value>The default value is <see cref="KernelWaitPolicy.Adaptive"/>: spin while the cores look free; block while
    /// more than 30 % of the products' time is lost waiting on descheduled workers, for a tenth of a second at a time (up
    /// to 1.6 s while the load persists).</value>
    /// <exception cref="ArgumentOutOfRangeException">The value is not a defined <see cref="KernelWaitPolicy"/>.</exception>
    public static KernelWaitPolicy WaitPolicy
    {
        get => (KernelWaitPolicy)Volatile.Read(ref s_waitPolicy);
        set
        {
            if (value is not (KernelWaitPolicy.Adaptive or KernelWaitPolicy.Active or KernelWaitPolicy.Passive))
            {
                throw new ArgumentOutOfRangeException(nameof(value), value, "Not a defined KernelWaitPolicy.");
            }

            Volatile.Write(ref s_waitPolicy, (int)value);
        }
    }

    /// <summary>
    /// Gets how many times since the process started the <see cref="KernelWaitPolicy.Adaptive"/> policy found the cores
    /// shared with other busy threads (and blocked instead of spinning for a while): a diagnostic for slow training steps.
    /// </summary>
    public static long ContentionEvents => GemmWorkers.ContentionEvents;

    /// <summary>Gets the best instruction-set family this CPU supports.</summary>
    public static KernelIsa BestIsa => ToIsa(GemmDriver.BestPath);

    /// <summary>
    /// Gets or sets the instruction-set family the kernels run on. At start it is <see cref="BestIsa"/>, or the lower
    /// family the <c>NEARML_ISA</c> environment variable names (<c>avx512</c>, <c>avx2</c>, <c>portable</c>, <c>auto</c>).
    /// </summary>
    /// <exception cref="InvalidOperationException">(get) <c>NEARML_ISA</c> names an unknown instruction set or one this
    /// CPU lacks; the message says which. Setting the property clears the condition.</exception>
    /// <exception cref="PlatformNotSupportedException">(set) This CPU lacks the instructions of the value.</exception>
    /// <exception cref="ArgumentOutOfRangeException">(set) The value is not a defined <see cref="KernelIsa"/>.</exception>
    public static KernelIsa Isa
    {
        get
        {
            if (GemmDriver.SelectionError is { } error)
            {
                throw new InvalidOperationException(error);
            }

            return ToIsa(GemmDriver.SelectedPath);
        }

        set
        {
            var path = value switch
            {
                KernelIsa.Avx512 => GemmPath.Avx512,
                KernelIsa.Avx2 => GemmPath.Avx2,
                KernelIsa.Portable => GemmPath.Portable,
                _ => throw new ArgumentOutOfRangeException(nameof(value), value, "Not a defined KernelIsa."),
            };
            if (!GemmDriver.IsSupported(path))
            {
                throw new PlatformNotSupportedException(
                    $"The {GemmDriver.Name(path)} kernels need instructions this CPU lacks (best: {GemmDriver.Name(GemmDriver.BestPath)}).");
            }

            GemmDriver.SelectedPath = path;
            GemmDriver.ClearSelectionError();
        }
    }

    /// <summary>
    /// Gets the instruction set the kernels run on, for logs: "AVX-512", "AVX2+FMA" or "portable", followed by
    /// " (NEARML_ISA, CPU best: …)" when it is lower than the CPU's best, or a refusal when <c>NEARML_ISA</c> is invalid.
    /// </summary>
    public static string InstructionSet
    {
        get
        {
            if (GemmDriver.SelectionError is { } error)
            {
                return $"refused: {error}";
            }

            var selected = GemmDriver.SelectedPath;
            return selected == GemmDriver.BestPath
                ? GemmDriver.Name(selected)
                : $"{GemmDriver.Name(selected)} (forced; CPU best: {GemmDriver.Name(GemmDriver.BestPath)})";
        }
    }

    private static KernelIsa ToIsa(GemmPath path) => path switch
    {
        GemmPath.Avx512 => KernelIsa.Avx512,
        GemmPath.Avx2 => KernelIsa.Avx2,
        _ => KernelIsa.Portable,
    };
}
