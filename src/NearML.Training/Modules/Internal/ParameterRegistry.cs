using NearML.Core;
using NearML.Training.Tensors;

namespace NearML.Training.Modules.Internal;

/// <summary>How a parameter is initialised.</summary>
internal enum InitKind
{
    Uniform,
    Normal,
    Zeros,
    Ones,
}

/// <summary>
/// Collects a model's parameters while its modules are constructed, then allocates one parameter set and one
/// gradient set with the same layout and points every parameter tensor at its segments.
/// </summary>
internal sealed class ParameterRegistry
{
    private readonly List<Entry> _entries = [];

    public ParameterSet? Parameters { get; private set; }

    public ParameterSet? Gradients { get; private set; }

    public Tensor Add(string name, int[] shape, InitKind init, float scale)
    {
        if (Parameters is not null)
        {
            throw new InvalidOperationException("Parameters cannot be added after the model is built.");
        }

        var t = new Tensor(Array.Empty<float>(), 0, null, 0, shape, requiresGrad: true, leaf: true);
        _entries.Add(new Entry(name, shape, t, init, scale));
        return t;
    }

    public void Complete(int seed)
    {
        if (Parameters is not null)
        {
            throw new InvalidOperationException("The model's parameters are already initialised.");
        }

        if (_entries.Count == 0)
        {
            throw new InvalidOperationException("The model declares no trainable parameters: a model needs at least one parameter (AddParameter or a layer) before InitializeParameters.");
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var e in _entries)
        {
            if (!names.Add(e.Name))
            {
                throw new InvalidOperationException($"The model declares the parameter '{e.Name}' twice.");
            }
        }

        var tuples = new (string Name, int[] Shape)[_entries.Count];
        for (var i = 0; i < tuples.Length; i++)
        {
            tuples[i] = (_entries[i].Name, _entries[i].Shape);
        }

        var layout = new ParameterLayout(tuples);
        Parameters = new ParameterSet(layout);
        Gradients = new ParameterSet(layout);
        var rng = new Random(seed);
        for (var i = 0; i < _entries.Count; i++)
        {
            var e = _entries[i];
            var off = (int)layout.Entries[i].Offset;
            e.Tensor.Bind(Parameters.Buffer, Gradients.Buffer, off);
            var span = e.Tensor.Data;
            switch (e.Init)
            {
                case InitKind.Uniform:
                    for (var j = 0; j < span.Length; j++)
                    {
                        span[j] = (float)(((rng.NextDouble() * 2.0) - 1.0) * e.Scale);
                    }

                    break;
                case InitKind.Normal:
                    for (var j = 0; j < span.Length; j += 2)
                    {
                        // Box–Muller
                        var u1 = 1.0 - rng.NextDouble();
                        var u2 = rng.NextDouble();
                        var r = Math.Sqrt(-2.0 * Math.Log(u1)) * e.Scale;
                        span[j] = (float)(r * Math.Cos(2 * Math.PI * u2));
                        if (j + 1 < span.Length)
                        {
                            span[j + 1] = (float)(r * Math.Sin(2 * Math.PI * u2));
                        }
                    }

                    break;
                case InitKind.Ones:
                    span.Fill(1f);
                    break;
                default:
                    span.Clear();
                    break;
            }
        }
    }

    private sealed record Entry(string Name, int[] Shape, Tensor Tensor, InitKind Init, float Scale);
}
