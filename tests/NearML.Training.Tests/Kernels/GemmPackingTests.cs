using NearML.Training.Kernels;
using NearML.Training.Kernels.Internal;

namespace NearML.Training.Tests.Kernels;

/// <summary>
/// The packing paths of the GEMM (issue 17, session 7): Aᵀ packed walking A's stored rows, the staggered walk over the
/// shared B panels when several tasks pack them, and the C prefetch of the micro-kernels. A transposed operand packs to the
/// same values as its explicit transpose, so the products must agree bit for bit; and since every C tile sums its depth
/// in the same order whatever thread packed what, the bits must not depend on the thread count either.
/// </summary>
[TestClass]
public sealed class GemmPackingTests
{
    private static readonly KernelIsa[] AllIsas = [KernelIsa.Avx512, KernelIsa.Avx2, KernelIsa.Portable];

    /// <summary>
    /// Shapes around the packing edges: M a multiple of both micro-kernel heights (8, 6) or not, a partial last panel
    /// only, several depth blocks (K &gt; 256, not a multiple), strides that are multiples of 1 KiB (the cache-set
    /// aliasing case of the Aᵀ packing) and the weight-gradient and dX shapes of the suite, shrunk.
    /// </summary>
    private static readonly (int M, int K, int N, int Pad)[] Shapes =
    [
        (48, 300, 40, 0), (53, 129, 33, 0), (5, 40, 7, 0), (7, 513, 97, 0), (256, 64, 64, 0),
        (96, 257, 256, 0), (200, 128, 72, 3), (512, 96, 128, 0), (130, 260, 131, 5), (24, 1030, 48, 0),
    ];

    [TestMethod]
    [DataRow(KernelIsa.Avx512)]
    [DataRow(KernelIsa.Avx2)]
    [DataRow(KernelIsa.Portable)]
    public void TransposedA_GivesTheSameBitsAsItsExplicitTranspose_AtEveryThreadCount(KernelIsa isa)
    {
        var path = KernelTestSupport.Require(isa);
        var rng = new Random(7100 + (int)isa);
        foreach (var (m, k, n, pad) in Shapes)
        {
            foreach (var alpha in new[] { 1f, -0.75f })
            {
                var lda = m + pad;
                var at = KernelTestSupport.RandomFloats(k * lda, rng); // stored k×m: op(A) = Aᵀ
                var a = new float[m * k]; // the same op(A) stored m×k
                for (var p = 0; p < k; p++)
                {
                    for (var i = 0; i < m; i++)
                    {
                        a[(i * k) + p] = at[(p * lda) + i];
                    }
                }

                var b = KernelTestSupport.RandomFloats(k * n, rng);
                var expected = new float[m * n];
                Gemm.Sgemm(path, 1, false, false, m, n, k, alpha, a, k, b, n, 0f, expected, n, parallelThreshold: 0);
                CheckAgainstDouble(expected, a, b, m, n, k, alpha, $"{isa} {m}x{k}x{n}");
                foreach (var threads in new[] { 1, 2, 3, 4 })
                {
                    var c = new float[m * n];
                    Gemm.Sgemm(path, threads, true, false, m, n, k, alpha, at, lda, b, n, 0f, c, n, parallelThreshold: 0);
                    CollectionAssert.AreEqual(expected, c, $"{isa} Aᵀ {m}x{k}x{n} pad {pad} alpha {alpha} threads {threads}");
                }
            }
        }
    }

    [TestMethod]
    [DataRow(KernelIsa.Avx512)]
    [DataRow(KernelIsa.Avx2)]
    [DataRow(KernelIsa.Portable)]
    public void TransposedB_GivesTheSameBitsAsItsExplicitTranspose_AtEveryThreadCount(KernelIsa isa)
    {
        var path = KernelTestSupport.Require(isa);
        var rng = new Random(7200 + (int)isa);
        foreach (var (m, k, n, pad) in Shapes)
        {
            var ldb = k + pad;
            var bt = KernelTestSupport.RandomFloats(n * ldb, rng); // stored n×k: op(B) = Bᵀ
            var b = new float[k * n];
            for (var j = 0; j < n; j++)
            {
                for (var p = 0; p < k; p++)
                {
                    b[(p * n) + j] = bt[(j * ldb) + p];
                }
            }

            var a = KernelTestSupport.RandomFloats(m * k, rng);
            var expected = new float[m * n];
            Gemm.Sgemm(path, 1, false, false, m, n, k, 1f, a, k, b, n, 0f, expected, n, parallelThreshold: 0);
            CheckAgainstDouble(expected, a, b, m, n, k, 1f, $"{isa} {m}x{k}x{n}");
            foreach (var threads in new[] { 1, 2, 3, 4 })
            {
                var c = new float[m * n];
                Gemm.Sgemm(path, threads, false, true, m, n, k, 1f, a, k, bt, ldb, 0f, c, n, parallelThreshold: 0);
                CollectionAssert.AreEqual(expected, c, $"{isa} Bᵀ {m}x{k}x{n} pad {pad} threads {threads}");
            }
        }
    }

    [TestMethod]
    public void ManyPanels_SharedAmongTasks_GiveTheSameBitsAtEveryThreadCount_RunToRun()
    {
        // Every task walks the shared B panels from its own starting point and packs the ones not yet packed; panel
        // counts that do not divide by the thread count exercise the wrap-around of that walk, and few rows give
        // several column tasks per row slice.
        var rng = new Random(7300);
        (int M, int K, int N, bool TransA, bool TransB)[] shapes =
        [
            (40, 300, 1000, false, true), (300, 200, 999, true, false), (16, 520, 480, false, false), (150, 96, 2000, true, true),
        ];
        foreach (var path in AllIsas.Select(KernelTestSupport.ToPath).Where(GemmDriver.IsSupported))
        {
            foreach (var (m, k, n, ta, tb) in shapes)
            {
                var a = KernelTestSupport.RandomFloats(m * k, rng);
                var b = KernelTestSupport.RandomFloats(k * n, rng);
                var reference = new float[m * n];
                Gemm.Sgemm(path, 1, ta, tb, m, n, k, 1f, a, ta ? m : k, b, tb ? k : n, 0f, reference, n, parallelThreshold: 0);
                foreach (var threads in new[] { 2, 3, 5 })
                {
                    for (var run = 0; run < 3; run++)
                    {
                        var c = new float[m * n];
                        Gemm.Sgemm(path, threads, ta, tb, m, n, k, 1f, a, ta ? m : k, b, tb ? k : n, 0f, c, n, parallelThreshold: 0);
                        CollectionAssert.AreEqual(reference, c, $"{path} {m}x{k}x{n} ta={ta} tb={tb} threads {threads} run {run}");
                    }
                }
            }
        }
    }

    [TestMethod]
    public void CTileNextToTheEndOfItsBuffer_IsComputedWithoutTouchingWhatFollows()
    {
        // The micro-kernels prefetch up to the last float of each C row; a C that ends its buffer exactly (no padding,
        // a slice of a larger array) must still come out right, with the elements after the slice untouched.
        var rng = new Random(7400);
        foreach (var path in AllIsas.Select(KernelTestSupport.ToPath).Where(GemmDriver.IsSupported))
        {
            foreach (var (m, n, k) in new[] { (8, 32, 5), (6, 16, 9), (17, 45, 33) })
            {
                var a = KernelTestSupport.RandomFloats(m * k, rng);
                var b = KernelTestSupport.RandomFloats(k * n, rng);
                var store = KernelTestSupport.RandomFloats((m * n) + 7, rng);
                var tail = store[(m * n)..];
                var c = store.AsSpan(0, m * n);
                Gemm.Sgemm(path, 1, false, false, m, n, k, 1f, a, k, b, n, 0f, c, n, parallelThreshold: 0);
                CheckAgainstDouble(c.ToArray(), a, b, m, n, k, 1f, $"{path} {m}x{k}x{n}");
                CollectionAssert.AreEqual(tail, store[(m * n)..], $"{path} {m}x{k}x{n}: elements after C were written");
            }
        }
    }

    private static void CheckAgainstDouble(float[] c, float[] a, float[] b, int m, int n, int k, float alpha, string what)
    {
        for (var i = 0; i < m; i++)
        {
            for (var j = 0; j < n; j++)
            {
                double sum = 0, abs = 0;
                for (var p = 0; p < k; p++)
                {
                    var term = (double)a[(i * k) + p] * b[(p * n) + j];
                    sum += term;
                    abs += Math.Abs(term);
                }

                var expected = alpha * sum;
                var tol = (4e-7 * (k + 4) * Math.Abs(alpha) * abs) + 1e-30;
                if (!(Math.Abs(c[(i * n) + j] - expected) <= tol))
                {
                    Assert.Fail($"{what}: C[{i},{j}] = {c[(i * n) + j]}, expected {expected} (tol {tol})");
                }
            }
        }
    }
}
