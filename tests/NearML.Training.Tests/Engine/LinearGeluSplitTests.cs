using NearML.Training.Tensors;

namespace NearML.Training.Tests.Engine;

/// <summary>
/// A Linear with a GELU runs the activation (forward and backward) over both engine threads once it has 2¹⁵ elements or
/// more, split in blocks of 256 elements. Every element must still go through the same code as in one pass, so the
/// fused op must give the same bits as the unfused Linear followed by <see cref="Tape.Gelu"/> (one pass on one thread):
/// forward output and the gradients of the input, the weight and the bias, for both GELU forms, with row lengths that are
/// not a multiple of any vector width, and below the threshold too.
/// </summary>
[TestClass]
public sealed class LinearGeluSplitTests
{
    [TestMethod]
    [DataRow(41, 17, 1003, false)]
    [DataRow(41, 17, 1003, true)]
    [DataRow(256, 128, 512, false)]
    [DataRow(3, 4, 5, false)]
    [DataRow(129, 33, 257, true)]
    public void Fused_Gelu_split_over_threads_gives_the_unfused_bits(int rows, int inputs, int outputs, bool tanh)
    {
        var rng = new Random((rows * 31) + outputs);
        var x = Noise(rng, rows * inputs, 2f);
        var w = Noise(rng, outputs * inputs, 0.5f);
        var b = Noise(rng, outputs, 0.5f);
        var gy = Noise(rng, rows * outputs, 1f);
        var activation = tanh ? Activation.GeluTanh : Activation.Gelu;

        var (yFused, dxFused, dwFused, dbFused) = Run(x, w, b, gy, rows, inputs, outputs, (tape, xt, wt, bt) => tape.Linear(xt, wt, bt, activation));
        var (yRef, dxRef, dwRef, dbRef) = Run(x, w, b, gy, rows, inputs, outputs, (tape, xt, wt, bt) => tape.Gelu(tape.Linear(xt, wt, bt), tanh));

        var what = $"{rows}×{inputs}→{outputs}, {activation}";
        AssertBits(yRef, yFused, "forward, " + what);
        AssertBits(dxRef, dxFused, "dX, " + what);
        AssertBits(dwRef, dwFused, "dW, " + what);
        AssertBits(dbRef, dbFused, "db, " + what);
    }

    private static (float[] Y, float[] Dx, float[] Dw, float[] Db) Run(float[] x, float[] w, float[] b, float[] gy, int rows, int inputs, int outputs, Func<Tape, Tensor, Tensor, Tensor, Tensor> op)
    {
        var xt = Tensor.FromArray((float[])x.Clone(), true, rows, inputs);
        var wt = Tensor.FromArray((float[])w.Clone(), true, outputs, inputs);
        var bt = Tensor.FromArray((float[])b.Clone(), true, outputs);
        var tape = new Tape();
        var y = op(tape, xt, wt, bt);
        var yCopy = y.Data.ToArray();
        tape.Backward(y, gy);
        return (yCopy, xt.Grad.ToArray(), wt.Grad.ToArray(), bt.Grad.ToArray());
    }

    private static float[] Noise(Random rng, int length, float scale)
    {
        var a = new float[length];
        for (var i = 0; i < length; i++)
        {
            a[i] = (float)((rng.NextDouble() * 2) - 1) * scale;
        }

        return a;
    }

    private static void AssertBits(float[] expected, float[] actual, string what)
    {
        Assert.HasCount(expected.Length, actual, what);
        for (var i = 0; i < expected.Length; i++)
        {
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
            {
                Assert.Fail($"{what}: element {i} is {actual[i]:R}, expected {expected[i]:R} (bit for bit)");
            }
        }
    }
}
