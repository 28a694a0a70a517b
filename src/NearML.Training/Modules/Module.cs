using NearML.Core;
using NearML.Training.Modules.Internal;
using NearML.Training.Tensors;

namespace NearML.Training.Modules;

/// <summary>
/// A layer or model whose parameters live in one <see cref="ParameterSet"/> and whose gradients live in a second
/// set with the same layout. Parameter tensors are views into those sets, so optimizers, sync strategies and
/// checkpoints use <see cref="Parameters"/> and <see cref="Gradients"/> directly, without copying. Names follow
/// PyTorch's <c>state_dict</c> keys, so state dicts map one to one.
/// </summary>
/// <remarks>
/// <para>
/// To write a model outside NearML, derive from <see cref="Model"/> (its protected constructor starts a new parameter
/// set), declare layers with their public <c>(Module parent, string name, …)</c> constructors (for example
/// <see cref="Linear(Module, string, int, int, bool, InitScheme)"/>) or raw tensors with
/// <see cref="AddParameter(string, ReadOnlySpan{int}, ParameterInit)"/>, and call <see cref="Model.InitializeParameters"/> once at the
/// end of the constructor. Reusable blocks derive from <see cref="Module"/> through
/// <see cref="Module(Module, string)"/>; their parameters are named <c>parent.name.local</c>, like PyTorch's.
/// </para>
/// </remarks>
public abstract class Module
{
    private protected Module(ParameterRegistry registry, string prefix)
    {
        Registry = registry;
        Prefix = prefix;
    }

    /// <summary>Creates a sub-module of <paramref name="parent"/> whose parameters join the parent model's parameter set.</summary>
    /// <param name="parent">The enclosing module (a <see cref="Model"/> or another sub-module) that is still being built.</param>
    /// <param name="name">The sub-module's name (a non-empty <c>state_dict</c> key segment without dots).</param>
    /// <exception cref="InvalidOperationException">The parent model's parameters are already initialised.</exception>
    protected Module(Module parent, string name)
    {
        ArgumentNullException.ThrowIfNull(parent);
        CheckName(name);
        if (parent.Registry.Parameters is not null)
        {
            throw new InvalidOperationException($"Sub-module '{name}' cannot be added: the model's parameters are already initialised.");
        }

        Registry = parent.Registry;
        Prefix = parent.Name(name);
    }

    /// <summary>Gets the parameters (the whole model's, for a sub-module).</summary>
    public ParameterSet Parameters => Registry.Parameters ?? throw new InvalidOperationException("The model is still being built.");

    /// <summary>Gets the gradients, same layout as <see cref="Parameters"/>; backward passes accumulate into them.</summary>
    public ParameterSet Gradients => Registry.Gradients ?? throw new InvalidOperationException("The model is still being built.");

    internal ParameterRegistry Registry { get; }

    internal string Prefix { get; }

    /// <summary>Declares a trainable parameter of this module, named <c>prefix.name</c>; its values are set by the
    /// model's <see cref="Model.InitializeParameters"/> and it is a view into <see cref="Parameters"/> afterwards.</summary>
    /// <param name="name">The local name (a non-empty key segment without dots), e.g. <c>weight</c>.</param>
    /// <param name="shape">The shape (every dimension positive).</param>
    /// <param name="init">How the values are initialised.</param>
    /// <returns>The parameter tensor (usable in forward passes once the model is initialised).</returns>
    /// <exception cref="InvalidOperationException">The model's parameters are already initialised.</exception>
    /// <exception cref="ArgumentException">The name is empty, contains a dot or is already used, or a dimension is not positive.</exception>
    protected Tensor AddParameter(string name, ReadOnlySpan<int> shape, ParameterInit init)
    {
        CheckName(name);
        if (shape.Length == 0)
        {
            throw new ArgumentException("A parameter needs at least one dimension.", nameof(shape));
        }

        foreach (var d in shape)
        {
            if (d <= 0)
            {
                throw new ArgumentException($"Parameter '{Name(name)}' has a non-positive dimension in [{string.Join(", ", shape.ToArray())}].", nameof(shape));
            }
        }

        return Registry.Add(Name(name), shape.ToArray(), init.ToKind(), init.Scale);
    }

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

    private static void CheckName(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (name.Contains('.', StringComparison.Ordinal))
        {
            throw new ArgumentException($"Module and parameter names are single key segments; '{name}' contains a dot.", nameof(name));
        }
    }
}
