using NearML.Training.Modules;
using NearML.Training.Tensors;

namespace NearML.Training.Tests.Engine;

[TestClass]
public sealed class TensorAndModuleTests
{
    [TestMethod]
    public void Tensor_factories_validate_shapes()
    {
        Assert.ThrowsExactly<ShapeMismatchException>(() => Tensor.FromArray(new float[5], false, 2, 3));
        Assert.ThrowsExactly<ArgumentException>(() => Tensor.Create(false, 2, 0));
        Assert.ThrowsExactly<ArgumentException>(() => Tensor.Create(false, 1, 1, 1, 1, 1));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Tensor.View(new float[10], 8, null, 3));
        var t = Tensor.View(new float[10], 2, new float[10], 2, 4);
        Assert.AreEqual("[2, 4]", t.ShapeText);
        Assert.AreEqual(4, t.Dim(-1));
        Assert.IsTrue(t.RequiresGrad);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => t.Dim(2));
        Assert.ThrowsExactly<InvalidOperationException>(() => _ = Tensor.Create(false, 2).Grad.Length);
    }

    [TestMethod]
    public void Pooled_results_are_reused_after_reset_without_new_buffers()
    {
        var tape = new Tape();
        var x = Tensor.Create(true, 4, 8);
        tape.Reset();
        var y1 = tape.Relu(x);
        tape.Reset();
        var y2 = tape.Relu(x);
        Assert.AreSame(y1, y2, "the k-th result of a step reuses the k-th buffer of the previous step");
        tape.Reset();
        var y3 = tape.Relu(tape.Reshape(x, 32));
        Assert.AreSame(y1, y3);
        Assert.AreEqual("[32]", y3.ShapeText);
    }

    [TestMethod]
    public void No_grad_mode_records_nothing()
    {
        var tape = new Tape { GradEnabled = false };
        var x = Tensor.Create(true, 2, 3);
        var y = tape.Tanh(tape.Relu(x));
        Assert.AreEqual(0, tape.RecordedCount);
        Assert.IsFalse(y.RequiresGrad);
        Assert.ThrowsExactly<InvalidOperationException>(() => tape.Backward(y, new float[6]));
    }

    [TestMethod]
    public void Reused_intermediate_accumulates_gradient_from_both_uses()
    {
        // y = relu(x); z = y + y·y → dz/dx = (1 + 2y)·[x > 0]
        var tape = new Tape();
        var x = Tensor.FromArray([1f, -2f, 3f], true, 3);
        var y = tape.Relu(x);
        var z = tape.Add(y, tape.Mul(y, y));
        tape.Backward(z, [1f, 1f, 1f]);
        CollectionAssert.AreEqual(new[] { 3f, 0f, 7f }, x.Grad.ToArray());
    }

    [TestMethod]
    public void Standalone_layers_own_their_parameters()
    {
        var lin = new Linear(3, 2, seed: 1);
        CollectionAssert.AreEqual(new[] { "weight", "bias" }, lin.Parameters.Layout.Entries.Select(e => e.Name).ToArray());
        var conv = new Conv2d(2, 4, 3, padding: 1);
        CollectionAssert.AreEqual(new[] { 4, 2, 3, 3 }, conv.Parameters.Layout["weight"].Shape.ToArray());
        var ln = new LayerNorm(5);
        Assert.IsTrue(ln.Parameters.GetSpan("weight").ToArray().All(v => v == 1f));
        var emb = new Embedding(10, 4, seed: 3);
        var tape = new Tape();
        var e = emb.Forward(tape, [9, 0], 0, 2);
        CollectionAssert.AreEqual(emb.Parameters.GetSpan("weight").Slice(36, 4).ToArray(), e.Data[..4].ToArray());
        var y = conv.Forward(tape, Tensor.Create(false, 1, 2, 5, 5), Activation.Relu);
        Assert.AreEqual("[1, 4, 5, 5]", y.ShapeText);
        Assert.AreEqual("[2, 5]", ln.Forward(tape, Tensor.Create(false, 2, 5)).ShapeText);
        Assert.AreEqual("[2, 2]", lin.Forward(tape, Tensor.Create(false, 2, 3)).ShapeText);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new Gpt(new GptConfig(10, 8, 30, 1, 4)));
    }

    [TestMethod]
    public void Gpt_rejects_sequences_longer_than_its_context()
    {
        var gpt = new Gpt(new GptConfig(5, 4, 8, 1, 2));
        var tape = new Tape();
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => gpt.Forward(tape, new int[10], 0, 2, 5));
        Assert.AreEqual("[2, 4, 5]", gpt.Forward(tape, new int[8], 0, 2, 4).ShapeText);
    }
}
