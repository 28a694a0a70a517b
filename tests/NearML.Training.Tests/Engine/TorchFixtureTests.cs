using NearML.Training.Modules;
using NearML.Training.Tensors;

namespace NearML.Training.Tests.Engine;

/// <summary>Outputs and gradients against PyTorch 1.13 (fixtures from torch/gen_engine.py), rtol 1e-4.</summary>
[TestClass]
public sealed class TorchFixtureTests
{
    private static EngineFixture F => EngineFixture.Instance;

    [TestMethod]
    [DataRow("linear_none")]
    [DataRow("linear_relu")]
    [DataRow("linear_gelu")]
    [DataRow("linear_gelu_tanh")]
    [DataRow("linear_nobias")]
    [DataRow("matmul_2d")]
    [DataRow("matmul_2d_tb")]
    [DataRow("bmm_00")]
    [DataRow("bmm_01")]
    [DataRow("bmm_10")]
    [DataRow("bmm_11")]
    [DataRow("add_same")]
    [DataRow("add_bias")]
    [DataRow("add_suffix")]
    [DataRow("mul")]
    [DataRow("scale")]
    [DataRow("relu")]
    [DataRow("gelu")]
    [DataRow("gelu_tanh")]
    [DataRow("tanh")]
    [DataRow("softmax")]
    [DataRow("log_softmax")]
    [DataRow("sum")]
    [DataRow("mean")]
    [DataRow("transpose")]
    [DataRow("transpose_last")]
    [DataRow("cross_entropy")]
    [DataRow("embedding")]
    [DataRow("layer_norm")]
    [DataRow("conv2d")]
    [DataRow("conv2d_s2p1_relu")]
    [DataRow("conv2d_p2")]
    [DataRow("max_pool2d")]
    [DataRow("max_pool2d_k3s2")]
    [DataRow("attention")]
    public void Op_matches_pytorch(string name)
    {
        var inputs = new Dictionary<string, Tensor>();
        foreach (var key in F.Keys(name))
        {
            if (!key.Contains('.', StringComparison.Ordinal) && key is not ("out" or "gout" or "targets" or "ids"))
            {
                inputs[key] = F.Leaf(name, key);
            }
        }

        var tape = new Tape();
        var output = Run(tape, name, inputs);
        Check.Close(F.Get(name, "out"), output.Data, name + " output");
        tape.Backward(output, F.Get(name, "gout"));
        foreach (var (key, t) in inputs)
        {
            Check.Close(F.Get(name, "grad." + key), t.Grad, $"{name} grad of {key}");
        }
    }

    private static Tensor Run(Tape tape, string name, Dictionary<string, Tensor> x)
    {
        Activation Act() => F.Attr(name, "activation").GetString() switch
        {
            "relu" => Activation.Relu,
            "gelu" => Activation.Gelu,
            "gelu_tanh" => Activation.GeluTanh,
            _ => Activation.None,
        };

        switch (F.Op(name))
        {
            case "linear":
                return tape.Linear(x["x"], x["w"], x.GetValueOrDefault("b"), Act());
            case "matmul":
                return tape.MatMul(x["a"], x["b"], F.Attr(name, "transA").GetBoolean(), F.Attr(name, "transB").GetBoolean());
            case "add":
                return tape.Add(x["a"], x["b"]);
            case "mul":
                return tape.Mul(x["a"], x["b"]);
            case "scale":
                return tape.Scale(x["x"], F.Attr(name, "scale").GetSingle());
            case "relu":
                return tape.Relu(x["x"]);
            case "gelu":
                return tape.Gelu(x["x"]);
            case "gelu_tanh":
                return tape.Gelu(x["x"], tanhApproximation: true);
            case "tanh":
                return tape.Tanh(x["x"]);
            case "softmax":
                return tape.Softmax(x["x"]);
            case "log_softmax":
                return tape.LogSoftmax(x["x"]);
            case "sum":
                return tape.Sum(x["x"]);
            case "mean":
                return tape.Mean(x["x"]);
            case "transpose":
                return tape.Transpose(x["x"], F.Attr(name, "dim0").GetInt32(), F.Attr(name, "dim1").GetInt32());
            case "cross_entropy":
                return tape.CrossEntropy(x["x"], F.Ints(name, "targets"));
            case "embedding":
                return tape.Embedding(x["w"], F.Ints(name, "ids"), 0, F.Shape(name, "ids"));
            case "layer_norm":
                return tape.LayerNorm(x["x"], x["w"], x["b"]);
            case "conv2d":
                return tape.Conv2d(x["x"], x["w"], x["b"], F.Attr(name, "stride").GetInt32(), F.Attr(name, "padding").GetInt32(), Act());
            case "max_pool2d":
                return tape.MaxPool2d(x["x"], F.Attr(name, "kernel").GetInt32(), F.Attr(name, "stride").GetInt32());
            case "attention":
                return tape.CausalSelfAttention(x["qkv"], F.Attr(name, "heads").GetInt32());
            default:
                Assert.Fail("unknown op " + F.Op(name));
                throw new InvalidOperationException();
        }
    }

    [TestMethod]
    public void Mlp_matches_pytorch()
    {
        var model = new Mlp(20, 16, 5, seed: 1);
        model.LoadParameters(F.Params("mlp"));
        var tape = new Tape();
        var logits = model.Forward(tape, F.Leaf("mlp", "x", requiresGrad: false));
        CheckModel("mlp", model, tape, logits, F.Ints("mlp", "targets"));
    }

    [TestMethod]
    public void SmallCnn_matches_pytorch()
    {
        var model = new SmallCnn(seed: 1);
        model.LoadParameters(F.Params("cnn"));
        var tape = new Tape();
        var logits = model.Forward(tape, F.Leaf("cnn", "x", requiresGrad: false));
        CheckModel("cnn", model, tape, logits, F.Ints("cnn", "targets"));
    }

    [TestMethod]
    public void Gpt_forward_and_backward_match_pytorch()
    {
        var model = new Gpt(new GptConfig(11, 16, 32, 2, 2), seed: 1);
        model.LoadParameters(F.Params("gpt"));
        var tape = new Tape();
        var logits = model.Forward(tape, F.Ints("gpt", "tokens"), 0, 2, 16);
        CheckModel("gpt", model, tape, tape.Reshape(logits, 32, 11), F.Ints("gpt", "targets"));
    }

    private static void CheckModel(string name, Model model, Tape tape, Tensor logits, int[] targets)
    {
        Check.Close(F.Get(name, "logits"), logits.Data, name + " logits");
        var loss = tape.CrossEntropy(logits, targets);
        Check.Close(F.Get(name, "loss"), loss.Data, name + " loss");
        model.ZeroGrad();
        tape.Backward(loss);
        foreach (var e in model.Gradients.Layout.Entries)
        {
            Check.Close(F.Get(name, "grad." + e.Name), model.Gradients.GetSpan(e.Name), $"{name} grad of {e.Name}");
        }
    }
}
