namespace NearML.Training.Kernels;

/// <summary>The instruction-set family the compute kernels (<see cref="Gemm"/>) run on.</summary>
/// <remarks>
/// Chosen once per process from the CPU (the best it supports), lowered with the <c>NEARML_ISA</c> environment
/// variable (<c>avx512</c>, <c>avx2</c>, <c>portable</c> or <c>auto</c>), or set with <see cref="KernelThreads.Isa"/>.
/// Each family gives bit-identical results run after run for a given thread count; families differ from each other
/// only in float32 rounding (different register tiles sum in a different order).
/// </remarks>
public enum KernelIsa
{
    /// <summary>
    /// <see cref="System.Runtime.Intrinsics.Vector128{T}"/>-wide portable code (what an ARM64 CPU runs, and any CPU
    /// without AVX2 + FMA): a 4×8 register tile.
    /// </summary>
    Portable = 0,

    /// <summary>AVX2 + FMA (x64 since Haswell / Zen): a 6×16 register tile of 12 ymm accumulators.</summary>
    Avx2 = 1,

    /// <summary>AVX-512F (Skylake-SP and later, Zen 4 and later): an 8×32 register tile of 16 zmm accumulators.</summary>
    Avx512 = 2,
}
