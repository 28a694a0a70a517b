using NearML.Training.Kernels;
using NearML.Training.Kernels.Internal;

namespace NearML.Training.Tests.Kernels;

/// <summary>What the kernel tests share: the GEMM path of an instruction set, and random operands.</summary>
internal static class KernelTestSupport
{
    /// <summary>The GEMM path that runs <paramref name="isa"/>.</summary>
    public static GemmPath ToPath(KernelIsa isa) => isa switch
    {
        KernelIsa.Avx512 => GemmPath.Avx512,
        KernelIsa.Avx2 => GemmPath.Avx2,
        _ => GemmPath.Portable,
    };

    /// <summary>The GEMM path of <paramref name="isa"/>; the test is Inconclusive when this CPU cannot run it.</summary>
    public static GemmPath Require(KernelIsa isa) => Require(ToPath(isa));

    /// <summary>Returns <paramref name="path"/>; the test is Inconclusive when this CPU cannot run it.</summary>
    public static GemmPath Require(GemmPath path)
    {
        if (!GemmDriver.IsSupported(path))
        {
            Assert.Inconclusive($"This CPU cannot run the {path} kernels.");
        }

        return path;
    }

    /// <summary><paramref name="length"/> floats uniform in [−1, 1).</summary>
    public static float[] RandomFloats(int length, Random rng)
    {
        var x = new float[length];
        for (var i = 0; i < x.Length; i++)
        {
            x[i] = (float)((rng.NextDouble() * 2) - 1);
        }

        return x;
    }
}
