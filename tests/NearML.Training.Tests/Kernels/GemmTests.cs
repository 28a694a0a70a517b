using NearML.Training.Kernels;
using NearML.Training.Kernels.Internal;

namespace NearML.Training.Tests.Kernels;

[TestClass]
public sealed class GemmTests
{
    private static readonly int[] OddSizes = [1, 3, 17, 65, 129];

    [TestMethod]
    [DataRow("Avx512")]
    [DataRow("Avx2")]
    [DataRow("Portable")]
    public void OddShapes_AllTransposeCombinations_MatchDoubleReference(string pathName)
    {
        var path = RequirePath(pathName);
        var rng = new Random(1);
        foreach (var m in OddSizes)
        {
            foreach (var n in OddSizes)
            {
                foreach (var k in OddSizes)
                {
                    var ta = rng.Next(2) == 1;
                    var tb = rng.Next(2) == 1;
                    CheckProduct(path, [1], ta, tb, m, n, k, alpha: 1f, beta: 0f, rng, pad: 0);
                }
            }
        }

        foreach (var (ta, tb) in TransCombos())
        {
            CheckProduct(path, [1], ta, tb, 65, 129, 17, alpha: 1f, beta: 0f, rng, pad: 0);
            CheckProduct(path, [1], ta, tb, 129, 17, 65, alpha: 1f, beta: 0f, rng, pad: 0);
            CheckProduct(path, [1], ta, tb, 3, 65, 129, alpha: 1f, beta: 0f, rng, pad: 0);
        }
    }

    [TestMethod]
    [DataRow("Avx512")]
    [DataRow("Avx2")]
    [DataRow("Portable")]
    public void StridedOperands_AlphaBeta_MatchDoubleReference(string pathName)
    {
        var path = RequirePath(pathName);
        var rng = new Random(2);
        foreach (var (ta, tb) in TransCombos())
        {
            CheckProduct(path, [1], ta, tb, 17, 33, 65, alpha: 0.5f, beta: 0f, rng, pad: 7);
            CheckProduct(path, [1], ta, tb, 17, 33, 65, alpha: -1.25f, beta: 1f, rng, pad: 3);
            CheckProduct(path, [1], ta, tb, 40, 50, 9, alpha: 2f, beta: -0.75f, rng, pad: 1);
            CheckProduct(path, [1], ta, tb, 1, 1, 1, alpha: 3f, beta: 0.5f, rng, pad: 5);
        }
    }

    [TestMethod]
    [DataRow("Avx512")]
    [DataRow("Avx2")]
    [DataRow("Portable")]
    public void LargerThanOneBlock_SingleAndMultiThreaded_MatchDoubleReference(string pathName)
    {
        var path = RequirePath(pathName);
        var rng = new Random(3);
        int[] threads = [1, 2, 3];
        foreach (var (ta, tb) in TransCombos())
        {
            // several KC depth blocks, several MC row blocks, and (second shape) two NC column blocks
            CheckProduct(path, threads, ta, tb, 201, 40, 600, alpha: 1f, beta: 0f, rng, pad: 2);
            CheckProduct(path, threads, ta, tb, 9, 2100, 40, alpha: 0.5f, beta: 1f, rng, pad: 0);
            CheckProduct(path, threads, ta, tb, 130, 97, 259, alpha: 1f, beta: 0.25f, rng, pad: 1);
        }
    }

    [TestMethod]
    public void WideProducts_RunAsColumnSlabs_MatchDoubleReference()
    {
        var saved = GemmDriver.MaxPackedB;
        try
        {
            GemmDriver.MaxPackedB = 40L * 64; // k = 40: one or two panels per slab
            var rng = new Random(4);
            foreach (var path in SupportedPaths())
            {
                foreach (var (ta, tb) in TransCombos())
                {
                    CheckProduct(path, [1, 2], ta, tb, 37, 300, 40, alpha: 1f, beta: 0.5f, rng, pad: 3);
                }
            }
        }
        finally
        {
            GemmDriver.MaxPackedB = saved;
        }
    }

    [TestMethod]
    public void BetaZero_IgnoresNaNAndInfinityInC()
    {
        foreach (var path in SupportedPaths())
        {
            var a = Enumerable.Range(0, 6).Select(i => (float)i).ToArray(); // 2×3
            var b = Enumerable.Range(0, 12).Select(i => (float)(i - 4)).ToArray(); // 3×4
            var c = Enumerable.Repeat(float.NaN, 8).ToArray();
            c[3] = float.PositiveInfinity;
            Gemm.Sgemm(path, 1, false, false, 2, 4, 3, 1f, a, 3, b, 4, 0f, c, 4);
            CollectionAssert.AreEqual(Reference(false, false, 2, 4, 3, 1f, a, 3, b, 4, 0f, new float[8], 4), c, path.ToString());
        }
    }

    [TestMethod]
    public void BetaOne_AccumulatesIntoC()
    {
        var a = new float[] { 1, 2, 3, 4 };
        var b = new float[] { 1, 0, 0, 1 };
        var c = new float[] { 10, 20, 30, 40 };
        Gemm.Sgemm(false, false, 2, 2, 2, 1f, a, 2, b, 2, 1f, c, 2);
        CollectionAssert.AreEqual(new float[] { 11, 22, 33, 44 }, c);
    }

    [TestMethod]
    public void AlphaZeroOrKZero_OnlyScalesC()
    {
        var a = new float[] { float.NaN, 1, 1, 1 };
        var b = new float[] { 1, 1, 1, 1 };
        var c = new float[] { 1, 2, 3, 4 };
        Gemm.Sgemm(false, false, 2, 2, 2, 0f, a, 2, b, 2, 2f, c, 2);
        CollectionAssert.AreEqual(new float[] { 2, 4, 6, 8 }, c);

        Gemm.Sgemm(false, false, 2, 2, 0, 1f, [], 1, [], 2, 0.5f, c, 2);
        CollectionAssert.AreEqual(new float[] { 1, 2, 3, 4 }, c);

        c[0] = float.NaN;
        Gemm.Sgemm(false, false, 2, 2, 0, 1f, [], 1, [], 2, 0f, c, 2);
        CollectionAssert.AreEqual(new float[] { 0, 0, 0, 0 }, c);
    }

    [TestMethod]
    public void NaNInOperands_Propagates()
    {
        var a = new float[] { 0, 0, 0, 0 };
        var b = new float[] { float.NaN, 1, 1, 1 };
        var c = new float[4];
        Gemm.Sgemm(false, false, 2, 2, 2, 1f, a, 2, b, 2, 0f, c, 2);
        Assert.IsTrue(float.IsNaN(c[0]) && float.IsNaN(c[2]), "0·NaN must be NaN, as in BLAS");
        Assert.AreEqual(0f, c[1]);
    }

    [TestMethod]
    public void EmptyDimensions_DoNothing()
    {
        var c = new float[] { 5 };
        Gemm.Sgemm(false, false, 0, 1, 1, 1f, [], 1, [1f], 1, 0f, c, 1);
        Gemm.Sgemm(false, false, 1, 0, 1, 1f, [1f], 1, [], 1, 0f, c, 1);
        Assert.AreEqual(5f, c[0]);
    }

    [TestMethod]
    public void BadArguments_ThrowNamingTheArgument()
    {
        var x = new float[16];
        Assert.AreEqual("m", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Gemm.Sgemm(false, false, -1, 2, 2, 1f, x, 2, x, 2, 0f, x, 2)).ParamName);
        Assert.AreEqual("k", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Gemm.Sgemm(false, false, 2, 2, -3, 1f, x, 2, x, 2, 0f, x, 2)).ParamName);
        Assert.AreEqual("lda", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Gemm.Sgemm(false, false, 2, 2, 3, 1f, x, 2, x, 2, 0f, x, 2)).ParamName);
        Assert.AreEqual("lda", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Gemm.Sgemm(true, false, 4, 2, 3, 1f, x, 3, x, 2, 0f, x, 2)).ParamName);
        Assert.AreEqual("ldb", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Gemm.Sgemm(false, true, 2, 2, 3, 1f, x, 3, x, 2, 0f, x, 2)).ParamName);
        Assert.AreEqual("ldc", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Gemm.Sgemm(false, false, 2, 3, 2, 1f, x, 2, x, 3, 0f, x, 2)).ParamName);
        var e = Assert.ThrowsExactly<ArgumentException>(() => Gemm.Sgemm(false, false, 4, 4, 4, 1f, new float[15], 4, x, 4, 0f, x, 4));
        Assert.AreEqual("a", e.ParamName);
        StringAssert.Contains(e.Message, "4×4");
        Assert.AreEqual("b", Assert.ThrowsExactly<ArgumentException>(() => Gemm.Sgemm(false, false, 4, 4, 4, 1f, x, 4, new float[10], 4, 0f, x, 4)).ParamName);
        Assert.AreEqual("c", Assert.ThrowsExactly<ArgumentException>(() => Gemm.Sgemm(false, false, 4, 4, 4, 1f, x, 4, x, 4, 0f, new float[12], 4)).ParamName);
    }

    [TestMethod]
    public void SteadyState_SingleThreaded_AllocatesNothing()
    {
        var a = new float[200 * 300];
        var b = new float[300 * 100];
        var c = new float[200 * 100];
        a.AsSpan().Fill(0.5f);
        b.AsSpan().Fill(0.25f);
        foreach (var (ta, tb) in TransCombos())
        {
            Gemm.Sgemm(GemmPath.Auto, 1, ta, tb, 200, 100, 300, 1f, a, ta ? 200 : 300, b, tb ? 300 : 100, 0f, c, 100);
        }

        var combos = TransCombos().ToArray();
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 20; i++)
        {
            foreach (var (ta, tb) in combos)
            {
                Gemm.Sgemm(GemmPath.Auto, 1, ta, tb, 200, 100, 300, 1f, a, ta ? 200 : 300, b, tb ? 300 : 100, 0.5f, c, 100);
            }
        }

        Assert.AreEqual(0L, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [TestMethod]
    public void SteadyState_MultiThreaded_AllocatesNothing()
    {
        var a = new float[256 * 256];
        var b = new float[256 * 256];
        var c = new float[256 * 256];
        a.AsSpan().Fill(0.5f);
        b.AsSpan().Fill(0.25f);
        for (var i = 0; i < 3; i++)
        {
            Gemm.Sgemm(GemmPath.Auto, 2, false, false, 256, 256, 256, 1f, a, 256, b, 256, 0f, c, 256, parallelThreshold: 0);
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        var totalBefore = GC.GetTotalAllocatedBytes(precise: true);
        for (var i = 0; i < 20; i++)
        {
            Gemm.Sgemm(GemmPath.Auto, 2, false, false, 256, 256, 256, 1f, a, 256, b, 256, 0f, c, 256, parallelThreshold: 0);
        }

        Assert.AreEqual(0L, GC.GetAllocatedBytesForCurrentThread() - before);

        // Process-wide (workers included); other tests may run concurrently, so only a loose bound is meaningful.
        Assert.IsTrue(GC.GetTotalAllocatedBytes(precise: true) - totalBefore < 1 << 20);
        Assert.AreEqual(0.5f * 0.25f * 256, c[12345]);
    }

    [TestMethod]
    public void ConcurrentCallers_EachGetTheirOwnCorrectResult()
    {
        const int size = 96;
        var results = new bool[6];
        var threads = new Thread[results.Length];
        for (var t = 0; t < threads.Length; t++)
        {
            var id = t;
            threads[t] = new Thread(() =>
            {
                var rng = new Random(100 + id);
                var a = RandomArray(size * size, rng);
                var b = RandomArray(size * size, rng);
                var expected = Reference(false, true, size, size, size, 1f, a, size, b, size, 0f, new float[size * size], size);
                var ok = true;
                for (var r = 0; r < 20 && ok; r++)
                {
                    var c = new float[size * size];
                    Gemm.Sgemm(GemmPath.Auto, 2, false, true, size, size, size, 1f, a, size, b, size, 0f, c, size, parallelThreshold: 0);
                    for (var i = 0; i < c.Length && ok; i++)
                    {
                        ok = Math.Abs(c[i] - expected[i]) <= 1e-3f;
                    }
                }

                results[id] = ok;
            });
            threads[t].Start();
        }

        foreach (var thread in threads)
        {
            thread.Join();
        }

        CollectionAssert.AreEqual(Enumerable.Repeat(true, results.Length).ToArray(), results);
    }

    [TestMethod]
    public void UnsupportedForcedPath_Throws()
    {
        foreach (var path in new[] { GemmPath.Avx512, GemmPath.Avx2 })
        {
            if (!GemmDriver.IsSupported(path))
            {
                Assert.ThrowsExactly<PlatformNotSupportedException>(() => Gemm.Sgemm(path, 1, false, false, 1, 1, 1, 1f, [1f], 1, [1f], 1, 0f, new float[1], 1));
            }
        }

        Assert.IsTrue(GemmDriver.IsSupported(GemmPath.Portable));
    }

    [TestMethod]
    public void KernelThreads_RejectsOutOfRangeSettings()
    {
        Assert.AreEqual("value", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => KernelThreads.Count = 0).ParamName);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => KernelThreads.Count = KernelThreads.MaxCount + 1);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => KernelThreads.ParallelThreshold = -1);
        Assert.IsTrue(KernelThreads.Count >= 1);
        Assert.IsFalse(string.IsNullOrEmpty(KernelThreads.InstructionSet));
    }

    private static IEnumerable<(bool TransA, bool TransB)> TransCombos() => [(false, false), (false, true), (true, false), (true, true)];

    private static IEnumerable<GemmPath> SupportedPaths() =>
        new[] { GemmPath.Avx512, GemmPath.Avx2, GemmPath.Portable }.Where(GemmDriver.IsSupported);

    private static GemmPath RequirePath(string name) => KernelTestSupport.Require(Enum.Parse<GemmPath>(name));

    private static float[] RandomArray(int length, Random rng) => KernelTestSupport.RandomFloats(length, rng);

    /// <summary>Runs one product (operands embedded in larger strided buffers) and compares it to the double reference.</summary>
    private static void CheckProduct(GemmPath path, int[] threadCounts, bool ta, bool tb, int m, int n, int k, float alpha, float beta, Random rng, int pad)
    {
        var (aRows, aCols) = ta ? (k, m) : (m, k);
        var (bRows, bCols) = tb ? (n, k) : (k, n);
        int lda = aCols + pad, ldb = bCols + pad, ldc = n + pad;
        var a = RandomArray((aRows * lda) + 3, rng);
        var b = RandomArray((bRows * ldb) + 3, rng);
        var c0 = RandomArray((m * ldc) + 3, rng);
        var scale = new double[c0.Length];
        var expected = Reference(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, (float[])c0.Clone(), ldc, scale);
        foreach (var threads in threadCounts)
        {
            var c = (float[])c0.Clone();
            Gemm.Sgemm(path, threads, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, parallelThreshold: 0);
            for (var i = 0; i < m; i++)
            {
                for (var j = 0; j < ldc; j++)
                {
                    var idx = (i * ldc) + j;
                    if (j >= n)
                    {
                        Assert.AreEqual(expected[idx], c[idx], $"{path} t={threads} {m}x{n}x{k} ta={ta} tb={tb}: padding C[{i},{j}] was written");
                        continue;
                    }

                    // error bound of a float dot product of length k (generous constant; a wrong element is off by O(1))
                    var tol = (4e-7 * (k + 4) * Math.Abs(alpha) * scale[idx]) + (2e-7 * Math.Abs(expected[idx])) + 1e-30;
                    if (!(Math.Abs(c[idx] - expected[idx]) <= tol))
                    {
                        Assert.Fail($"{path} t={threads} {m}x{n}x{k} ta={ta} tb={tb} alpha={alpha} beta={beta} pad={pad}: C[{i},{j}] = {c[idx]}, expected {expected[idx]} (tol {tol})");
                    }
                }
            }

            Assert.AreEqual(expected[^1], c[^1], "elements after C were written");
        }
    }

    private static double OpA(float[] a, bool ta, int lda, int i, int p) => ta ? a[(p * lda) + i] : a[(i * lda) + p];

    private static double OpB(float[] b, bool tb, int ldb, int p, int j) => tb ? b[(j * ldb) + p] : b[(p * ldb) + j];

    private static float[] Reference(bool ta, bool tb, int m, int n, int k, float alpha, float[] a, int lda, float[] b, int ldb, float beta, float[] c, int ldc, double[]? absSum = null)
    {
        for (var i = 0; i < m; i++)
        {
            for (var j = 0; j < n; j++)
            {
                double sum = 0.0, abs = 0.0;
                for (var p = 0; p < k; p++)
                {
                    var term = OpA(a, ta, lda, i, p) * OpB(b, tb, ldb, p, j);
                    sum += term;
                    abs += Math.Abs(term);
                }

                if (absSum is not null)
                {
                    absSum[(i * ldc) + j] = abs;
                }

                var old = beta == 0f ? 0.0 : beta * (double)c[(i * ldc) + j];
                c[(i * ldc) + j] = (float)((alpha * sum) + old);
            }
        }

        return c;
    }
}
