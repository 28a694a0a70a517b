using NearML.Core;
using NearML.Training.Data;
using NearML.Training.Modules;
using NearML.Training.Optim;
using NearML.Training.Tensors;

namespace NearML.Training.Tests.Engine;

[TestClass]
public sealed class BadInputTests
{
    [TestMethod]
    public void Linear_shape_mismatch_names_both_shapes()
    {
        var tape = new Tape();
        var x = Tensor.Create(false, 4, 6);
        var w = Tensor.Create(true, 3, 5);
        var ex = Assert.ThrowsExactly<ShapeMismatchException>(() => tape.Linear(x, w, null));
        StringAssert.Contains(ex.Message, "[4, 6]");
        StringAssert.Contains(ex.Message, "[3, 5]");
        Assert.IsInstanceOfType<NearMLException>(ex);
    }

    [TestMethod]
    public void Other_shape_mismatches_are_typed()
    {
        var tape = new Tape();
        var a = Tensor.Create(true, 2, 3);
        var b = Tensor.Create(true, 3, 2);
        StringAssert.Contains(Assert.ThrowsExactly<ShapeMismatchException>(() => tape.Add(a, b)).Message, "[3, 2]");
        StringAssert.Contains(Assert.ThrowsExactly<ShapeMismatchException>(() => tape.Mul(a, b)).Message, "[2, 3]");
        Assert.ThrowsExactly<ShapeMismatchException>(() => tape.MatMul(a, a));
        Assert.ThrowsExactly<ShapeMismatchException>(() => tape.Reshape(a, 4, 2));
        Assert.ThrowsExactly<ShapeMismatchException>(() => tape.Conv2d(Tensor.Create(false, 1, 2, 5, 5), Tensor.Create(true, 3, 1, 3, 3), null));
        Assert.ThrowsExactly<ShapeMismatchException>(() => tape.CausalSelfAttention(Tensor.Create(true, 1, 4, 10), 2));
        Assert.ThrowsExactly<ShapeMismatchException>(() => tape.LayerNorm(a, Tensor.Create(true, 2), Tensor.Create(true, 2)));
        Assert.ThrowsExactly<ShapeMismatchException>(() => tape.CrossEntropy(a, [0]));
    }

    [TestMethod]
    public void Out_of_range_targets_and_ids_are_rejected()
    {
        var tape = new Tape();
        var logits = Tensor.Create(true, 2, 3);
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => tape.CrossEntropy(logits, [0, 3]));
        StringAssert.Contains(ex.Message, "target #1 is 3");
        var w = Tensor.Create(true, 4, 2);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => tape.Embedding(w, [0, -1], 0, 2)).Message, "id #1 is -1");
    }

    [TestMethod]
    public void NaN_in_input_batch_is_a_typed_exception_with_index()
    {
        var tape = new Tape();
        var data = new float[10];
        data[7] = float.PositiveInfinity;
        var ex = Assert.ThrowsExactly<NonFiniteValueException>(() => tape.Input(data, 0, 2, 5));
        Assert.AreEqual(7, ex.Index);
        data[7] = 0;
        data[3] = float.NaN;
        Assert.AreEqual(3, Assert.ThrowsExactly<NonFiniteValueException>(() => tape.Input(data, 0, 10)).Index);
    }

    [TestMethod]
    public void NaN_loss_is_a_typed_exception()
    {
        var tape = new Tape();
        var logits = Tensor.FromArray([1f, float.NaN, 0f], true, 1, 3);
        var ex = Assert.ThrowsExactly<NonFiniteValueException>(() => tape.CrossEntropy(logits, [0]));
        StringAssert.Contains(ex.Message, "loss");
        var x = Tensor.FromArray([float.PositiveInfinity, 1f], true, 2);
        var s = tape.Sum(x);
        Assert.ThrowsExactly<NonFiniteValueException>(() => tape.Backward(s));
    }

    [TestMethod]
    public void Trainer_refuses_non_finite_gradients_and_leaves_parameters_unchanged()
    {
        var model = new Mlp(4, 3, 2, seed: 1);
        model.Parameters.GetSpan("1.weight")[0] = 1e38f;
        model.Parameters.GetSpan("1.weight")[1] = 1e38f;
        var before = model.Parameters.Clone();
        var trainer = new LocalTrainer(model, new AdamW(model.Parameters.Layout));
        var batch = new Batch(2, 4, 0, 1) { Count = 2 };
        batch.Features.AsSpan().Fill(1e3f);
        Assert.ThrowsExactly<NonFiniteValueException>(() => trainer.TrainStep(batch));
        CollectionAssert.AreEqual(before.Buffer, model.Parameters.Buffer);
    }

    [TestMethod]
    public void Loading_a_state_dict_with_wrong_shape_or_unknown_names_fails_clearly()
    {
        var model = new Mlp(4, 3, 2);
        var wrong = ParameterSet.Create(("1.weight", [3, 5]), ("1.bias", [3]), ("3.weight", [3, 3]), ("3.bias", [3]), ("5.weight", [2, 3]), ("5.bias", [2]));
        StringAssert.Contains(Assert.ThrowsExactly<LayoutMismatchException>(() => model.LoadParameters(wrong)).Message, "'1.weight' is [3, 5]");
        var extra = ParameterSet.Create(("1.weight", [3, 4]), ("1.bias", [3]), ("3.weight", [3, 3]), ("3.bias", [3]), ("5.weight", [2, 3]), ("5.bias", [2]), ("9.weight", [1]));
        StringAssert.Contains(Assert.ThrowsExactly<LayoutMismatchException>(() => model.LoadParameters(extra)).Message, "'9.weight'");
    }
}
