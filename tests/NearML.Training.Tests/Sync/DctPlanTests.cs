using NearML.Training.Sync.Internal;

namespace NearML.Training.Tests.Sync;

[TestClass]
public sealed class DctPlanTests
{
    private static float[] Random(int n, int seed)
    {
        var rng = new Random(seed);
        return [.. Enumerable.Range(0, n).Select(_ => (float)((rng.NextDouble() * 2) - 1))];
    }

    /// <summary>Direct double-precision chunked DCT-II from the definition, in the plan's coefficient layout.</summary>
    private static double[] Direct(float[] x, DctPlan plan)
    {
        int n1 = plan.N1, n2 = plan.N2;
        var b1 = DctPlan.Basis(n1);
        var b2 = DctPlan.Basis(n2);
        var c = new double[x.Length];
        for (var cy = 0; cy < plan.ChunkRows; cy++)
        {
            for (var cx = 0; cx < plan.ChunkCols; cx++)
            {
                var outBase = ((cy * plan.ChunkCols) + cx) * n1 * n2;
                for (var b = 0; b < n1; b++)
                {
                    for (var d = 0; d < n2; d++)
                    {
                        double s = 0;
                        for (var j = 0; j < n1; j++)
                        {
                            for (var l = 0; l < n2; l++)
                            {
                                s += x[(((cy * n1) + j) * plan.Cols) + (cx * n2) + l] * b1[(j * n1) + b] * b2[(l * n2) + d];
                            }
                        }

                        c[outBase + (b * n2) + d] = s;
                    }
                }
            }
        }

        return c;
    }

    [TestMethod]
    [DataRow(new[] { 1000 }, 64)]
    [DataRow(new[] { 128, 96 }, 64)]
    [DataRow(new[] { 67, 40 }, 64)]   // prime rows: chunks of 1 × 40
    [DataRow(new[] { 12, 5, 6 }, 8)]  // rank 3 flattened to [12, 30]
    [DataRow(new[] { 7 }, 64)]
    public void EncodeMatchesTheDefinition_AndDecodeInvertsIt(int[] shape, int target)
    {
        var plan = new DctPlan(shape, target);
        var n = shape.Aggregate(1, (a, b) => a * b);
        var x = Random(n, n);
        var coefficients = new float[n];
        plan.Encode(x, coefficients);
        var expected = Direct(x, plan);
        for (var i = 0; i < n; i++)
        {
            Assert.AreEqual(expected[i], coefficients[i], 2e-5, $"coefficient {i}");
        }

        var back = new float[n];
        plan.Decode(coefficients, back);
        for (var i = 0; i < n; i++)
        {
            Assert.AreEqual(x[i], back[i], 2e-5, $"round trip {i}");
        }
    }

    [TestMethod]
    public void DecodeOfOneCoefficient_IsThatBasisProduct()
    {
        var plan = new DctPlan([128, 96], 64);
        var c = new float[128 * 96];
        var chunk = 3; // chunk row 1, chunk column 1 (2 chunk columns of 48)
        const int b = 5, d = 7;
        c[(chunk * 64 * 48) + (b * 48) + d] = 2f;
        var x = new float[c.Length];
        plan.Decode(c, x);
        var b1 = DctPlan.Basis(64);
        var b2 = DctPlan.Basis(48);
        for (var r = 0; r < 128; r++)
        {
            for (var col = 0; col < 96; col++)
            {
                var inChunk = r >= 64 && col >= 48;
                var expected = inChunk ? 2 * b1[((r - 64) * 64) + b] * b2[((col - 48) * 48) + d] : 0;
                Assert.AreEqual(expected, x[(r * 96) + col], 1e-6, $"({r}, {col})");
            }
        }
    }
}
