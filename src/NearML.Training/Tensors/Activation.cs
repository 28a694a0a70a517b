namespace NearML.Training.Tensors;

/// <summary>An element-wise activation fused into a linear or convolution operation.</summary>
public enum Activation
{
    /// <summary>No activation (identity).</summary>
    None,

    /// <summary>max(x, 0).</summary>
    Relu,

    /// <summary>Exact GELU, x·Φ(x), with PyTorch's erf approximation.</summary>
    Gelu,

    /// <summary>GELU, tanh approximation (PyTorch's <c>approximate="tanh"</c>).</summary>
    GeluTanh,
}
