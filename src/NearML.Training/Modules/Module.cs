using NearML.Core;
using NearML.Training.Modules.Internal;

namespace NearML.Training.Modules;

/// <summary>
/// A layer or model whose parameters live in one <see cref="ParameterSet"/> and whose gradients live in a second
/// set with the same layout. Parameter tensors are views into those sets, so optimizers, sync strategies and
/// checkpoints use <see cref="Parameters"/> and <see cref="Gradients"/> directly, without copying. Names follow
/// PyTorch's <c>state_dict</c> keys, so state dicts map one to one.
/// </summary>
public abstract class Module
{
    private protected Module(ParameterRegistry registry, string prefix)
    {
        Registry = registry;
        Prefix = prefix;
    }

    /// <summary>Gets the parameters (the whole model's, for a sub-module).</summary>
    public ParameterSet Parameters => Registry.Parameters ?? throw new InvalidOperationException("The model is still being built.");

    /// <summary>Gets the gradients, same layout as <see cref="Parameters"/>; backward passes accumulate into them.</summary>
    public ParameterSet Gradients => Registry.Gradients ?? throw new InvalidOperationException("The model is still being built.");

    internal ParameterRegistry Registry { get; }

    internal string Prefix { get; }

    /// <summary>Sets every gradient to zero.</summary>
    public void ZeroGrad() => Gradients.Clear();

    /// <summary>Copies parameter values by name from <paramref name="source"/> (for example a loaded PyTorch state dict).</summary>
    /// <param name="source">A set holding every parameter of this model with the same shape; other names must be known aliases.</param>
    /// <exception cref="LayoutMismatchException">A parameter is missing, has another shape, or the source has unknown names.</exception>
    public void LoadParameters(ParameterSet source)
    {
        ArgumentNullException.ThrowIfNull(source);
        var own = Parameters;
        foreach (var e in own.Layout.Entries)
        {
            if (!source.Layout.TryGet(e.Name, out var s))
            {
                throw new LayoutMismatchException($"The source has no tensor '{e.Name}' {e.ShapeText}.");
            }

            if (!s.Shape.SequenceEqual(e.Shape))
            {
                throw new LayoutMismatchException($"Tensor '{e.Name}' is {s.ShapeText} in the source but {e.ShapeText} in the model.");
            }
        }

        foreach (var s in source.Layout.Entries)
        {
            if (!own.Layout.TryGet(s.Name, out _) && !IsTiedAlias(s.Name))
            {
                throw new LayoutMismatchException($"The source has a tensor '{s.Name}' {s.ShapeText} that the model does not.");
            }
        }

        foreach (var e in own.Layout.Entries)
        {
            source.GetSpan(e.Name).CopyTo(own.GetSpan(e.Name));
        }
    }

    /// <summary>Saves the parameters as a safetensors file (atomically).</summary>
    /// <param name="path">The file path.</param>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        SafeTensors.WriteFile(path, Parameters);
    }

    /// <summary>Loads parameters from a safetensors file written by <see cref="Save"/> or by PyTorch-side tooling.</summary>
    /// <param name="path">The file path.</param>
    public void Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        LoadParameters(SafeTensors.ReadFile(path).Parameters);
    }

    /// <summary>Whether <paramref name="name"/> is another name for a tied parameter (ignored when loading).</summary>
    /// <param name="name">A tensor name.</param>
    /// <returns><see langword="true"/> for aliases such as a tied LM head.</returns>
    protected virtual bool IsTiedAlias(string name) => false;

    private protected string Name(string local) => Prefix.Length == 0 ? local : Prefix + "." + local;
}
