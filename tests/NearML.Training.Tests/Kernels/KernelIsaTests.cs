using NearML.Training.Kernels;
using NearML.Training.Kernels.Internal;

namespace NearML.Training.Tests.Kernels;

/// <summary>
/// Instruction-set selection (<see cref="KernelThreads.Isa"/>, <c>NEARML_ISA</c>) and, for every family this CPU can
/// run, property-based accuracy against a double-precision reference and bit-reproducibility run to run.
/// </summary>
[TestClass]
public sealed class KernelIsaTests
{
    private static readonly KernelIsa[] AllIsas = [KernelIsa.Avx512, KernelIsa.Avx2, KernelIsa.Portable];

    [TestMethod]
    public void Select_AcceptsKnownSupportedNames_RefusesUnknownOnesWithTheReason()
    {
        Assert.AreEqual((GemmDriver.BestPath, (string?)null), GemmDriver.Select(null));
        Assert.AreEqual((GemmDriver.BestPath, (string?)null), GemmDriver.Select(""));
        Assert.AreEqual((GemmDriver.BestPath, (string?)null), GemmDriver.Select(" Auto "));
        Assert.AreEqual((GemmPath.Portable, (string?)null), GemmDriver.Select("portable"));
        Assert.AreEqual((GemmPath.Portable, (string?)null), GemmDriver.Select("VECTOR128"));
        foreach (var (name, path) in new[] { ("avx2", GemmPath.Avx2), ("AVX2+FMA", GemmPath.Avx2), ("avx512", GemmPath.Avx512), ("AVX-512", GemmPath.Avx512) })
        {
            var (selected, error) = GemmDriver.Select(name);
            if (GemmDriver.IsSupported(path))
            {
                Assert.AreEqual(path, selected, name);
                Assert.IsNull(error, name);
            }
            else
            {
                Assert.AreEqual(GemmDriver.BestPath, selected, name);
                StringAssert.Contains(error, "lacks", name);
            }
        }

        foreach (var bad in new[] { "avx9", "neon", "sse", "avx 2", "1" })
        {
            var (selected, error) = GemmDriver.Select(bad);
            Assert.AreEqual(GemmDriver.BestPath, selected, bad);
            Assert.IsNotNull(error, bad);
            StringAssert.Contains(error, "NEARML_ISA", bad);
            StringAssert.Contains(error, bad, bad);
        }
    }

    [TestMethod]
    public void RefusedEnvironmentValue_MakesGemmAndIsaThrow_UntilIsaIsSet()
    {
        var saved = KernelThreads.Isa;
        try
        {
            Assert.IsFalse(GemmDriver.ApplySelection("avx9"));
            var c = new float[1];
            var error = Assert.ThrowsExactly<InvalidOperationException>(() => Gemm.Sgemm(false, false, 1, 1, 1, 1f, [2f], 1, [3f], 1, 0f, c, 1));
            StringAssert.Contains(error.Message, "NEARML_ISA='avx9'");
            Assert.ThrowsExactly<InvalidOperationException>(() => _ = KernelThreads.Isa);
            StringAssert.StartsWith(KernelThreads.InstructionSet, "refused: NEARML_ISA='avx9'");
            Assert.AreEqual(0f, c[0], "a refused call wrote C");

            KernelThreads.Isa = KernelIsa.Portable;
            Gemm.Sgemm(false, false, 1, 1, 1, 1f, [2f], 1, [3f], 1, 0f, c, 1);
            Assert.AreEqual(6f, c[0]);
        }
        finally
        {
            KernelThreads.Isa = saved;
        }
    }

    [TestMethod]
    public void Isa_SetToEachFamily_IsReportedAndUsed_OrRefusedWhenTheCpuLacksIt()
    {
        var saved = KernelThreads.Isa;
        var rng = new Random(11);
        var a = KernelTestSupport.RandomFloats(37 * 45, rng);
        var b = KernelTestSupport.RandomFloats(45 * 29, rng);
        try
        {
            foreach (var isa in AllIsas)
            {
                var path = KernelTestSupport.ToPath(isa);
                if (!GemmDriver.IsSupported(path))
                {
                    Assert.ThrowsExactly<PlatformNotSupportedException>(() => KernelThreads.Isa = isa);
                    continue;
                }

                KernelThreads.Isa = isa;
                Assert.AreEqual(isa, KernelThreads.Isa);
                StringAssert.StartsWith(KernelThreads.InstructionSet, GemmDriver.Name(path));
                Assert.AreEqual(isa == KernelThreads.BestIsa, !KernelThreads.InstructionSet.Contains("forced", StringComparison.Ordinal), KernelThreads.InstructionSet);

                // The public entry point runs the selected family: bit-identical to that family called explicitly.
                var viaSelection = new float[37 * 29];
                var explicitPath = new float[37 * 29];
                Gemm.Sgemm(false, true, 37, 29, 45, 1f, a, 45, b, 45, 0f, viaSelection, 29);
                Gemm.Sgemm(path, KernelThreads.Count, false, true, 37, 29, 45, 1f, a, 45, b, 45, 0f, explicitPath, 29);
                CollectionAssert.AreEqual(explicitPath, viaSelection, isa.ToString());
            }

            Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => KernelThreads.Isa = (KernelIsa)99);
        }
        finally
        {
            KernelThreads.Isa = saved;
        }

        Assert.AreEqual(GemmDriver.Name(GemmDriver.BestPath), GemmDriver.Name(KernelTestSupport.ToPath(KernelThreads.BestIsa)));
    }

    [TestMethod]
    [DataRow(KernelIsa.Avx512)]
    [DataRow(KernelIsa.Avx2)]
    [DataRow(KernelIsa.Portable)]
    public void RandomShapes_MatchDoubleReference(KernelIsa isa)
    {
        var path = KernelTestSupport.Require(isa);
        var rng = new Random(1000 + (int)isa);
        for (var trial = 0; trial < 60; trial++)
        {
            var shape = RandomShape(rng);
            var threads = 1 + (trial % 2);
            var c = shape.C0.ToArray();
            shape.Run(path, threads, c);
            shape.Check(c, $"{isa} trial {trial} threads {threads}");
        }
    }

    [TestMethod]
    [DataRow(KernelIsa.Avx512)]
    [DataRow(KernelIsa.Avx2)]
    [DataRow(KernelIsa.Portable)]
    public void EveryPath_IsBitReproducibleRunToRun_ForAGivenThreadCount(KernelIsa isa)
    {
        var path = KernelTestSupport.Require(isa);
        var rng = new Random(2000 + (int)isa);
        for (var trial = 0; trial < 12; trial++)
        {
            var shape = RandomShape(rng);
            foreach (var threads in new[] { 1, 2, 3 })
            {
                var first = shape.C0.ToArray();
                shape.Run(path, threads, first);
                for (var run = 0; run < 3; run++)
                {
                    var again = shape.C0.ToArray();
                    shape.Run(path, threads, again);
                    CollectionAssert.AreEqual(first, again, $"{isa} trial {trial} threads {threads} run {run}: {shape}");
                }
            }
        }
    }

    [TestMethod]
    [DataRow(KernelIsa.Avx512)]
    [DataRow(KernelIsa.Avx2)]
    [DataRow(KernelIsa.Portable)]
    public void BReadInPlace_GivesTheSameBitsAsPackedB(KernelIsa isa)
    {
        var path = KernelTestSupport.Require(isa);
        var saved = GemmDriver.DirectBMaxRows;
        var rng = new Random(3000 + (int)isa);
        try
        {
            for (var trial = 0; trial < 20; trial++)
            {
                var shape = RandomShape(rng, transB: false);
                var threads = 1 + (trial % 2);
                GemmDriver.DirectBMaxRows = 0;
                var packed = shape.C0.ToArray();
                shape.Run(path, threads, packed);
                GemmDriver.DirectBMaxRows = int.MaxValue;
                var direct = shape.C0.ToArray();
                shape.Run(path, threads, direct);
                CollectionAssert.AreEqual(packed, direct, $"{isa} trial {trial}: {shape}");
                shape.Check(direct, $"{isa} trial {trial} direct");
            }
        }
        finally
        {
            GemmDriver.DirectBMaxRows = saved;
        }
    }

    [TestMethod]
    public void SuiteShapes_EveryPath_MatchDoubleReference()
    {
        // The skinny and weight-gradient shapes of the benchmark suite, shrunk in their long dimension so the double
        // reference stays fast: small M with K ≫ the depth block, Aᵀ·B with long K, and transposed B.
        var rng = new Random(4);
        (int M, int K, int N, bool TransA, bool TransB)[] shapes =
        [
            (64, 784, 256, false, false), (128, 784, 96, false, true), (100, 128, 72, true, false),
            (40, 1600, 128, false, false), (64, 2049, 40, true, false), (3, 777, 131, false, false),
        ];
        foreach (var path in AllIsas.Select(KernelTestSupport.ToPath).Where(GemmDriver.IsSupported))
        {
            foreach (var (m, k, n, ta, tb) in shapes)
            {
                var shape = Shape.Create(rng, m, n, k, ta, tb, pad: 0, alpha: 1f, beta: 0f);
                foreach (var threads in new[] { 1, 2 })
                {
                    var c = shape.C0.ToArray();
                    shape.Run(path, threads, c);
                    shape.Check(c, $"{path} threads {threads}");
                }
            }
        }
    }


    /// <summary>
    /// A random product: dimensions are odd, skinny (1..12) or long (up to 3 depth blocks, not multiples of it) with
    /// equal chance, transposes, row padding, α and β (0, 1 or other) all random.
    /// </summary>
    private static Shape RandomShape(Random rng, bool? transB = null)
    {
        int Dim(int longMax) => rng.Next(3) switch
        {
            0 => 1 + rng.Next(12),
            1 => (2 * rng.Next(1, 40)) + 1,
            _ => rng.Next(100, longMax),
        };

        var m = Dim(300);
        var n = Dim(300);
        var k = Dim(800);
        float[] betas = [0f, 1f, 0.5f];
        return Shape.Create(rng, m, n, k, rng.Next(2) == 1, transB ?? (rng.Next(2) == 1), pad: rng.Next(3) * 3, alpha: rng.Next(2) == 0 ? 1f : -0.75f, beta: betas[rng.Next(3)]);
    }

    private sealed record Shape(int M, int N, int K, bool TransA, bool TransB, int Pad, float Alpha, float Beta, float[] A, float[] B, float[] C0)
    {
        private int Lda => (TransA ? M : K) + Pad;

        private int Ldb => (TransB ? K : N) + Pad;

        private int Ldc => N + Pad;

        public static Shape Create(Random rng, int m, int n, int k, bool ta, bool tb, int pad, float alpha, float beta)
        {
            var aRows = ta ? k : m;
            var bRows = tb ? n : k;
            var aCols = ta ? m : k;
            var bCols = tb ? k : n;
            return new Shape(m, n, k, ta, tb, pad, alpha, beta, KernelTestSupport.RandomFloats((aRows * (aCols + pad)) + 1, rng), KernelTestSupport.RandomFloats((bRows * (bCols + pad)) + 1, rng), KernelTestSupport.RandomFloats((m * (n + pad)) + 1, rng));
        }

        public void Run(GemmPath path, int threads, float[] c) =>
            Gemm.Sgemm(path, threads, TransA, TransB, M, N, K, Alpha, A, Lda, B, Ldb, Beta, c, Ldc, parallelThreshold: 0);

        public void Check(float[] c, string what)
        {
            for (var i = 0; i < M; i++)
            {
                for (var j = 0; j < Ldc; j++)
                {
                    var idx = (i * Ldc) + j;
                    if (j >= N)
                    {
                        Assert.AreEqual(C0[idx], c[idx], $"{what} {this}: padding C[{i},{j}] was written");
                        continue;
                    }

                    double sum = 0, abs = 0;
                    for (var p = 0; p < K; p++)
                    {
                        var term = (TransA ? (double)A[(p * Lda) + i] : A[(i * Lda) + p]) * (TransB ? (double)B[(j * Ldb) + p] : B[(p * Ldb) + j]);
                        sum += term;
                        abs += Math.Abs(term);
                    }

                    var old = Beta == 0f ? 0.0 : Beta * (double)C0[idx];
                    var expected = (Alpha * sum) + old;

                    // float32 dot-product error bound with a generous constant; a wrong element is off by O(1).
                    var tol = (4e-7 * (K + 4) * Math.Abs(Alpha) * abs) + (2e-7 * Math.Abs(expected)) + 1e-30;
                    if (!(Math.Abs(c[idx] - expected) <= tol))
                    {
                        Assert.Fail($"{what} {this}: C[{i},{j}] = {c[idx]}, expected {expected} (tol {tol})");
                    }
                }
            }

            Assert.AreEqual(C0[^1], c[^1], $"{what}: the element after C was written");
        }

        public override string ToString() => $"{M}x{N}x{K} transA={TransA} transB={TransB} pad={Pad} alpha={Alpha} beta={Beta}";
    }
}
