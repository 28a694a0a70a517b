using NearML.Training.Modules.Internal;
using NearML.Training.Tensors;

namespace NearML.Training.Modules;

/// <summary>How a layer's parameters are initialised.</summary>
public enum InitScheme
{
    /// <summary>PyTorch's defaults: kaiming_uniform(a=√5) weights, U(±1/√fan_in) biases; embeddings N(0, 1).</summary>
    Torch,

    /// <summary>GPT-2 style: N(0, 0.02) weights and embeddings, zero biases.</summary>
    Gpt,
}

/// <summary>A fully connected layer, y = x·Wᵀ + b (PyTorch's <c>nn.Linear</c>; parameters <c>weight</c> [out, in] and <c>bias</c> [out]).</summary>
public sealed class Linear : Module
{
    /// <summary>Creates a stand-alone layer with its own parameter set.</summary>
    /// <param name="inFeatures">Input features.</param>
    /// <param name="outFeatures">Output features.</param>
    /// <param name="bias">Whether to add a bias.</param>
    /// <param name="seed">The initialisation seed.</param>
    public Linear(int inFeatures, int outFeatures, bool bias = true, int seed = 0)
        : this(new ParameterRegistry(), string.Empty, inFeatures, outFeatures, bias, InitScheme.Torch) => Registry.Complete(seed);

    /// <summary>Creates a layer inside <paramref name="parent"/> (parameters <c>name.weight</c>, <c>name.bias</c> in the parent model's set).</summary>
    /// <param name="parent">The enclosing module, still being built.</param>
    /// <param name="name">The layer's name.</param>
    /// <param name="inFeatures">Input features.</param>
    /// <param name="outFeatures">Output features.</param>
    /// <param name="bias">Whether to add a bias.</param>
    /// <param name="init">The initialisation scheme.</param>
    public Linear(Module parent, string name, int inFeatures, int outFeatures, bool bias = true, InitScheme init = InitScheme.Torch)
        : base(parent, name)
    {
        (Weight, Bias) = Declare(Registry, this, inFeatures, outFeatures, bias, init);
    }

    internal Linear(ParameterRegistry registry, string prefix, int inFeatures, int outFeatures, bool bias, InitScheme init)
        : base(registry, prefix)
    {
        (Weight, Bias) = Declare(registry, this, inFeatures, outFeatures, bias, init);
    }

    private static (Tensor Weight, Tensor? Bias) Declare(ParameterRegistry registry, Linear self, int inFeatures, int outFeatures, bool bias, InitScheme init)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(inFeatures);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(outFeatures);
        var bound = 1f / MathF.Sqrt(inFeatures);
        var weight = init == InitScheme.Gpt
            ? registry.Add(self.Name("weight"), [outFeatures, inFeatures], InitKind.Normal, 0.02f)
            : registry.Add(self.Name("weight"), [outFeatures, inFeatures], InitKind.Uniform, bound);
        Tensor? b = null;
        if (bias)
        {
            b = init == InitScheme.Gpt
                ? registry.Add(self.Name("bias"), [outFeatures], InitKind.Zeros, 0f)
                : registry.Add(self.Name("bias"), [outFeatures], InitKind.Uniform, bound);
        }

        return (weight, b);
    }

    /// <summary>Gets the weight [out, in].</summary>
    public Tensor Weight { get; }

    /// <summary>Gets the bias [out], or <see langword="null"/>.</summary>
    public Tensor? Bias { get; }

    /// <summary>Applies the layer with an optional fused activation.</summary>
    /// <param name="tape">The tape.</param>
    /// <param name="x">Input [..., in].</param>
    /// <param name="activation">The fused activation.</param>
    /// <returns>Output [..., out].</returns>
    public Tensor Forward(Tape tape, Tensor x, Activation activation = Activation.None)
    {
        ArgumentNullException.ThrowIfNull(tape);
        return tape.Linear(x, Weight, Bias, activation);
    }
}

/// <summary>A 2-D convolution (PyTorch's <c>nn.Conv2d</c>, square kernel, equal stride/padding; <c>weight</c> [O, C, k, k], <c>bias</c> [O]).</summary>
public sealed class Conv2d : Module
{
    /// <summary>Creates a stand-alone layer with its own parameter set.</summary>
    /// <param name="inChannels">Input channels.</param>
    /// <param name="outChannels">Output channels.</param>
    /// <param name="kernelSize">Kernel size.</param>
    /// <param name="stride">Stride.</param>
    /// <param name="padding">Zero padding.</param>
    /// <param name="seed">The initialisation seed.</param>
    public Conv2d(int inChannels, int outChannels, int kernelSize, int stride = 1, int padding = 0, int seed = 0)
        : this(new ParameterRegistry(), string.Empty, inChannels, outChannels, kernelSize, stride, padding) => Registry.Complete(seed);

    /// <summary>Creates a convolution inside <paramref name="parent"/> (parameters <c>name.weight</c>, <c>name.bias</c>).</summary>
    /// <param name="parent">The enclosing module, still being built.</param>
    /// <param name="name">The layer's name.</param>
    /// <param name="inChannels">Input channels.</param>
    /// <param name="outChannels">Output channels.</param>
    /// <param name="kernelSize">Kernel size.</param>
    /// <param name="stride">Stride.</param>
    /// <param name="padding">Zero padding.</param>
    public Conv2d(Module parent, string name, int inChannels, int outChannels, int kernelSize, int stride = 1, int padding = 0)
        : base(parent, name)
    {
        (Weight, Bias, Stride, Padding) = Declare(Registry, this, inChannels, outChannels, kernelSize, stride, padding);
    }

    internal Conv2d(ParameterRegistry registry, string prefix, int inChannels, int outChannels, int kernelSize, int stride, int padding)
        : base(registry, prefix)
    {
        (Weight, Bias, Stride, Padding) = Declare(registry, this, inChannels, outChannels, kernelSize, stride, padding);
    }

    private static (Tensor Weight, Tensor Bias, int Stride, int Padding) Declare(ParameterRegistry registry, Conv2d self, int inChannels, int outChannels, int kernelSize, int stride, int padding)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(inChannels);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(outChannels);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(kernelSize);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(stride);
        ArgumentOutOfRangeException.ThrowIfNegative(padding);
        var bound = 1f / MathF.Sqrt(inChannels * kernelSize * kernelSize);
        var weight = registry.Add(self.Name("weight"), [outChannels, inChannels, kernelSize, kernelSize], InitKind.Uniform, bound);
        var b = registry.Add(self.Name("bias"), [outChannels], InitKind.Uniform, bound);
        return (weight, b, stride, padding);
    }

    /// <summary>Gets the filters [O, C, k, k].</summary>
    public Tensor Weight { get; }

    /// <summary>Gets the bias [O].</summary>
    public Tensor Bias { get; }

    /// <summary>Gets the stride.</summary>
    public int Stride { get; }

    /// <summary>Gets the padding.</summary>
    public int Padding { get; }

    /// <summary>Applies the convolution with an optional fused ReLU.</summary>
    /// <param name="tape">The tape.</param>
    /// <param name="x">Input [N, C, H, W].</param>
    /// <param name="activation"><see cref="Activation.None"/> or <see cref="Activation.Relu"/>.</param>
    /// <returns>Output [N, O, Ho, Wo].</returns>
    public Tensor Forward(Tape tape, Tensor x, Activation activation = Activation.None)
    {
        ArgumentNullException.ThrowIfNull(tape);
        return tape.Conv2d(x, Weight, Bias, Stride, Padding, activation);
    }
}

/// <summary>Layer normalisation over the last dimension (PyTorch's <c>nn.LayerNorm</c>, ε = 1e-5; <c>weight</c> = 1, <c>bias</c> = 0).</summary>
public sealed class LayerNorm : Module
{
    /// <summary>Creates a stand-alone layer with its own parameter set.</summary>
    /// <param name="features">The normalised dimension.</param>
    public LayerNorm(int features)
        : this(new ParameterRegistry(), string.Empty, features) => Registry.Complete(0);

    /// <summary>Creates a layer inside <paramref name="parent"/> (parameters <c>name.weight</c> = 1, <c>name.bias</c> = 0).</summary>
    /// <param name="parent">The enclosing module, still being built.</param>
    /// <param name="name">The layer's name.</param>
    /// <param name="features">The normalised dimension.</param>
    public LayerNorm(Module parent, string name, int features)
        : base(parent, name)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(features);
        Weight = Registry.Add(Name("weight"), [features], InitKind.Ones, 0f);
        Bias = Registry.Add(Name("bias"), [features], InitKind.Zeros, 0f);
    }

    internal LayerNorm(ParameterRegistry registry, string prefix, int features)
        : base(registry, prefix)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(features);
        Weight = registry.Add(Name("weight"), [features], InitKind.Ones, 0f);
        Bias = registry.Add(Name("bias"), [features], InitKind.Zeros, 0f);
    }

    /// <summary>Gets γ.</summary>
    public Tensor Weight { get; }

    /// <summary>Gets β.</summary>
    public Tensor Bias { get; }

    /// <summary>Gets ε.</summary>
    public float Epsilon { get; } = 1e-5f;

    /// <summary>Normalises <paramref name="x"/>.</summary>
    /// <param name="tape">The tape.</param>
    /// <param name="x">Input [..., features].</param>
    /// <returns>The normalised tensor.</returns>
    public Tensor Forward(Tape tape, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(tape);
        return tape.LayerNorm(x, Weight, Bias, Epsilon);
    }
}

/// <summary>An embedding table (PyTorch's <c>nn.Embedding</c>; <c>weight</c> [vocabulary, dim]).</summary>
public sealed class Embedding : Module
{
    /// <summary>Creates a stand-alone table with its own parameter set, initialised N(0, 1) like PyTorch.</summary>
    /// <param name="count">The number of rows.</param>
    /// <param name="dim">The embedding size.</param>
    /// <param name="seed">The initialisation seed.</param>
    public Embedding(int count, int dim, int seed = 0)
        : this(new ParameterRegistry(), string.Empty, count, dim, InitScheme.Torch) => Registry.Complete(seed);

    /// <summary>Creates a table inside <paramref name="parent"/> (parameter <c>name.weight</c>).</summary>
    /// <param name="parent">The enclosing module, still being built.</param>
    /// <param name="name">The table's name.</param>
    /// <param name="count">The number of rows.</param>
    /// <param name="dim">The embedding size.</param>
    /// <param name="init"><see cref="InitScheme.Torch"/>: N(0, 1); <see cref="InitScheme.Gpt"/>: N(0, 0.02).</param>
    public Embedding(Module parent, string name, int count, int dim, InitScheme init = InitScheme.Torch)
        : base(parent, name)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dim);
        Weight = Registry.Add(Name("weight"), [count, dim], InitKind.Normal, init == InitScheme.Gpt ? 0.02f : 1f);
    }

    internal Embedding(ParameterRegistry registry, string prefix, int count, int dim, InitScheme init)
        : base(registry, prefix)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dim);
        Weight = registry.Add(Name("weight"), [count, dim], InitKind.Normal, init == InitScheme.Gpt ? 0.02f : 1f);
    }

    /// <summary>Gets the table [count, dim].</summary>
    public Tensor Weight { get; }

    /// <summary>Looks up <paramref name="ids"/>.</summary>
    /// <param name="tape">The tape.</param>
    /// <param name="ids">The id buffer.</param>
    /// <param name="offset">The first id.</param>
    /// <param name="idShape">The ids' shape.</param>
    /// <returns>[..idShape, dim].</returns>
    public Tensor Forward(Tape tape, int[] ids, int offset, params ReadOnlySpan<int> idShape)
    {
        ArgumentNullException.ThrowIfNull(tape);
        return tape.Embedding(Weight, ids, offset, idShape);
    }
}
