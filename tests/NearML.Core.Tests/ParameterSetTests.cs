using NearML.Core;

namespace NearML.Core.Tests;

[TestClass]
public sealed class ParameterSetTests
{
    private static ParameterSet Make(int seed)
    {
        var set = ParameterSet.Create(("w", [3, 4]), ("b", [4]), ("s", []));
        var rng = new Random(seed);
        for (var i = 0; i < set.Length; i++)
        {
            set.Data[i] = (float)(rng.NextDouble() * 2 - 1);
        }

        return set;
    }

    [TestMethod]
    public void Layout_assigns_contiguous_offsets_in_order()
    {
        var set = Make(1);
        Assert.AreEqual(17, set.Length);
        Assert.AreEqual(0, set.Layout["w"].Offset);
        Assert.AreEqual(12, set.Layout["b"].Offset);
        Assert.AreEqual(16, set.Layout["s"].Offset);
        Assert.AreEqual(1, set.Layout["s"].Length);
        Assert.AreEqual("[3, 4]", set.Layout["w"].ShapeText);
    }

    [TestMethod]
    public void Views_alias_the_buffer()
    {
        var set = Make(1);
        set.GetSpan("b")[2] = 42f;
        Assert.AreEqual(42f, set.Data[14]);
        Assert.AreEqual(42f, set.GetMemory("b").Span[2]);
        Assert.AreEqual(42f, set.GetSpan(1)[2]);
    }

    [TestMethod]
    public void Layout_rejects_duplicates_and_bad_dimensions()
    {
        var dup = Assert.ThrowsExactly<ArgumentException>(() => new ParameterLayout([("a", [1]), ("a", [2])]));
        StringAssert.Contains(dup.Message, "'a'");
        var neg = Assert.ThrowsExactly<ArgumentException>(() => new ParameterLayout([("a", [2, 0])]));
        StringAssert.Contains(neg.Message, "[2, 0]");
        Assert.ThrowsExactly<ArgumentException>(() => new ParameterLayout([("", [1])]));
        Assert.ThrowsExactly<KeyNotFoundException>(() => Make(1).GetSpan("missing"));
    }

    [TestMethod]
    public void Arithmetic_matches_a_naive_loop()
    {
        var a = Make(1);
        var b = Make(2);
        var expectedDot = 0.0;
        var expectedNorm = 0.0;
        for (var i = 0; i < a.Length; i++)
        {
            expectedDot += (double)a.Data[i] * b.Data[i];
            expectedNorm += (double)a.Data[i] * a.Data[i];
        }

        Assert.AreEqual(expectedDot, a.Dot(b), 1e-6);
        Assert.AreEqual(Math.Sqrt(expectedNorm), a.Norm(), 1e-6);

        var c = a.Clone();
        c.Axpy(0.5f, b);
        for (var i = 0; i < a.Length; i++)
        {
            Assert.AreEqual(a.Data[i] + (0.5f * b.Data[i]), c.Data[i], 1e-6f);
        }

        var d = a.CreateZeros();
        d.SetDifference(a, b);
        d.Add(b);
        d.Scale(2f);
        d.Subtract(a);
        for (var i = 0; i < a.Length; i++)
        {
            Assert.AreEqual(a.Data[i], d.Data[i], 1e-6f);
        }
    }

    [TestMethod]
    public void Mismatched_layouts_are_a_clear_error()
    {
        var a = Make(1);
        var other = ParameterSet.Create(("w", [4, 3]), ("b", [4]), ("s", []));
        var ex = Assert.ThrowsExactly<LayoutMismatchException>(() => a.Axpy(1f, other));
        StringAssert.Contains(ex.Message, "'w' [3, 4] vs 'w' [4, 3]");
        var shorter = ParameterSet.Create(("w", [3, 4]));
        StringAssert.Contains(Assert.ThrowsExactly<LayoutMismatchException>(() => a.CopyFrom(shorter)).Message, "3 vs 1");
        Assert.IsInstanceOfType<NearMLException>(ex);
    }

    [TestMethod]
    public void Equal_layouts_built_separately_are_compatible()
    {
        var a = Make(1);
        var b = new ParameterSet(new ParameterLayout([("w", [3, 4]), ("b", [4]), ("s", [])]));
        b.CopyFrom(a);
        Assert.AreEqual(a.Layout, b.Layout);
        Assert.AreEqual(a.Layout.GetHashCode(), b.Layout.GetHashCode());
        CollectionAssert.AreEqual(a.ComputeHash(), b.ComputeHash());
    }

    [TestMethod]
    public void FindNonFinite_names_tensor_and_index()
    {
        var a = Make(1);
        Assert.IsTrue(a.IsFinite);
        a.GetSpan("b")[3] = float.NaN;
        Assert.AreEqual(("b", 3), a.FindNonFinite());
        a.GetSpan("b")[3] = float.NegativeInfinity;
        Assert.IsFalse(a.IsFinite);
    }

    [TestMethod]
    public void Hash_changes_with_values_and_names()
    {
        var a = Make(1);
        var h1 = a.ComputeHash();
        Assert.AreEqual(32, h1.Length);
        var b = a.Clone();
        b.Data[5] = BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(b.Data[5]) ^ 1);
        CollectionAssert.AreNotEqual(h1, b.ComputeHash());
        var renamed = new ParameterSet(new ParameterLayout([("W", [3, 4]), ("b", [4]), ("s", [])]), (float[])a.Buffer.Clone());
        CollectionAssert.AreNotEqual(h1, renamed.ComputeHash());
    }

    [TestMethod]
    public void Constructor_over_buffer_checks_length()
    {
        var layout = new ParameterLayout([("a", [2, 2])]);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => new ParameterSet(layout, new float[3]));
        Assert.AreEqual("data", ex.ParamName);
    }
}
