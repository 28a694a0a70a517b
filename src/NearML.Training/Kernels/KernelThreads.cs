using NearML.Training.Kernels.Internal;

namespace NearML.Training.Kernels;

/// <summary>
/// Process-wide threading settings of the compute kernels (<see cref="Gemm"/>).
/// </summary>
/// <remarks>
/// Products run on the calling thread plus <c>Count − 1</c> persistent background workers. The workers spin for a
/// short while after each product (so the next product of a training step starts without a wake-up) and then sleep.
/// Only one multi-threaded product runs at a time; a product issued while the pool is busy runs on its caller alone.
/// </remarks>
public static class KernelThreads
{
    /// <summary>The largest accepted <see cref="Count"/>.</summary>
    public const int MaxCount = 256;

    private static int s_count = Math.Clamp(Environment.ProcessorCount, 1, MaxCount);
    private static long s_threshold = 1L << 20;

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

    /// <summary>Gets the SIMD micro-kernel the kernels use on this CPU: "AVX-512", "AVX2+FMA" or "portable".</summary>
    public static string InstructionSet => GemmDriver.BestPath switch
    {
        GemmPath.Avx512 => "AVX-512",
        GemmPath.Avx2 => "AVX2+FMA",
        _ => "portable",
    };
}
