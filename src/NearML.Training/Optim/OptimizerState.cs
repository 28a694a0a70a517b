using System.Collections.ObjectModel;
using System.Globalization;
using NearML.Core;

namespace NearML.Training.Optim;

/// <summary>
/// A snapshot of an optimizer: its kind, step count, learning rate and per-parameter buffers (momentum, first and
/// second moments). Buffers have the optimizer's parameter layout. Save it next to the parameters in a checkpoint and
/// import it into a fresh optimizer to continue bit-for-bit.
/// </summary>
public sealed class OptimizerState
{
    private const string KindKey = "nearml.optimizer.kind";
    private const string StepKey = "nearml.optimizer.step";
    private const string RateKey = "nearml.optimizer.lr";
    private const string BuffersKey = "nearml.optimizer.buffers";
    private const string HyperPrefix = "nearml.optimizer.hp.";
    private const char Separator = '/';

    /// <summary>Initializes a new instance.</summary>
    /// <param name="kind">The optimizer kind, e.g. <c>adamw</c>.</param>
    /// <param name="stepCount">The number of steps taken.</param>
    /// <param name="learningRate">The learning rate at export time.</param>
    /// <param name="buffers">The per-parameter buffers by name (names without '/').</param>
    /// <param name="hyperparameters">The optimizer's fixed hyper-parameters (checked on import), or <see langword="null"/>.</param>
    public OptimizerState(string kind, long stepCount, double learningRate, IReadOnlyDictionary<string, ParameterSet> buffers, IReadOnlyDictionary<string, double>? hyperparameters = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(kind);
        ArgumentOutOfRangeException.ThrowIfNegative(stepCount);
        ArgumentNullException.ThrowIfNull(buffers);
        foreach (var name in buffers.Keys)
        {
            if (name.Length == 0 || name.Contains(Separator, StringComparison.Ordinal) || name.Contains(',', StringComparison.Ordinal))
            {
                throw new ArgumentException($"Buffer name '{name}' must be non-empty and contain neither '/' nor ','.", nameof(buffers));
            }
        }

        Kind = kind;
        StepCount = stepCount;
        LearningRate = learningRate;
        Buffers = new ReadOnlyDictionary<string, ParameterSet>(new Dictionary<string, ParameterSet>(buffers, StringComparer.Ordinal));
        Hyperparameters = new ReadOnlyDictionary<string, double>(hyperparameters is null
            ? new Dictionary<string, double>(StringComparer.Ordinal)
            : new Dictionary<string, double>(hyperparameters, StringComparer.Ordinal));
    }

    /// <summary>Gets the optimizer kind (<see cref="Optimizer.Kind"/>).</summary>
    public string Kind { get; }

    /// <summary>Gets the number of steps taken.</summary>
    public long StepCount { get; }

    /// <summary>Gets the learning rate at export time.</summary>
    public double LearningRate { get; }

    /// <summary>Gets the per-parameter buffers by name (e.g. <c>exp_avg</c>, <c>exp_avg_sq</c>, <c>momentum_buffer</c>).</summary>
    public IReadOnlyDictionary<string, ParameterSet> Buffers { get; }

    /// <summary>
    /// Gets the optimizer's fixed hyper-parameters at export time (e.g. <c>beta2</c>, <c>weight_decay</c>). Import refuses a
    /// state whose hyper-parameters differ from the importing optimizer's, since the continuation would not match.
    /// </summary>
    public IReadOnlyDictionary<string, double> Hyperparameters { get; }

    /// <summary>Writes the state as one safetensors file (atomically): tensors named <c>buffer/parameter</c>, scalars in metadata.</summary>
    /// <param name="path">The destination file.</param>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var names = Buffers.Keys.OrderBy(k => k, StringComparer.Ordinal).ToArray();
        var tensors = new List<(string Name, int[] Shape)>();
        foreach (var b in names)
        {
            foreach (var e in Buffers[b].Layout.Entries)
            {
                tensors.Add((b + Separator + e.Name, [.. e.Shape]));
            }
        }

        var all = new ParameterSet(new ParameterLayout(tensors));
        var offset = 0;
        foreach (var b in names)
        {
            var src = Buffers[b].Data;
            src.CopyTo(all.Data[offset..]);
            offset += src.Length;
        }

        var metadata = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [KindKey] = Kind,
            [StepKey] = StepCount.ToString(CultureInfo.InvariantCulture),
            [RateKey] = LearningRate.ToString("R", CultureInfo.InvariantCulture),
            [BuffersKey] = string.Join(',', names),
        };
        foreach (var (k, v) in Hyperparameters)
        {
            metadata[HyperPrefix + k] = v.ToString("R", CultureInfo.InvariantCulture);
        }

        SafeTensors.WriteFile(path, all, metadata);
    }

    /// <summary>Reads a state written by <see cref="Save"/>.</summary>
    /// <param name="path">The file.</param>
    /// <returns>The state.</returns>
    /// <exception cref="InvalidDataFormatException">The file is not a valid optimizer-state file.</exception>
    public static OptimizerState Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var content = SafeTensors.ReadFile(path);
        string Meta(string key) => content.Metadata.TryGetValue(key, out var v)
            ? v
            : throw new InvalidDataFormatException(path, -1, $"Optimizer state metadata lacks '{key}'.");

        var kind = Meta(KindKey);
        if (!long.TryParse(Meta(StepKey), NumberStyles.None, CultureInfo.InvariantCulture, out var step))
        {
            throw new InvalidDataFormatException(path, -1, $"Optimizer state metadata '{StepKey}' is not a non-negative integer.");
        }

        if (!double.TryParse(Meta(RateKey), NumberStyles.Float, CultureInfo.InvariantCulture, out var lr))
        {
            throw new InvalidDataFormatException(path, -1, $"Optimizer state metadata '{RateKey}' is not a number.");
        }

        var bufferNames = Meta(BuffersKey).Length == 0 ? [] : Meta(BuffersKey).Split(',');
        if (bufferNames.Distinct(StringComparer.Ordinal).Count() != bufferNames.Length || bufferNames.Any(b => b.Length == 0))
        {
            throw new InvalidDataFormatException(path, -1, $"Optimizer state metadata '{BuffersKey}' ('{Meta(BuffersKey)}') has an empty or repeated buffer name.");
        }
        var perBuffer = bufferNames.ToDictionary(b => b, _ => new List<(string, int[], TensorEntry)>(), StringComparer.Ordinal);
        foreach (var e in content.Parameters.Layout.Entries)
        {
            var cut = e.Name.IndexOf(Separator, StringComparison.Ordinal);
            if (cut <= 0 || !perBuffer.TryGetValue(e.Name[..cut], out var list))
            {
                throw new InvalidDataFormatException(path, -1, $"Tensor '{e.Name}' does not belong to a declared buffer ({Meta(BuffersKey)}).");
            }

            list.Add((e.Name[(cut + 1)..], [.. e.Shape], e));
        }

        var buffers = new Dictionary<string, ParameterSet>(StringComparer.Ordinal);
        foreach (var (b, list) in perBuffer)
        {
            if (list.Count == 0)
            {
                throw new InvalidDataFormatException(path, -1, $"Buffer '{b}' has no tensors.");
            }

            var set = new ParameterSet(new ParameterLayout(list.Select(t => (t.Item1, t.Item2))));
            for (var i = 0; i < list.Count; i++)
            {
                var e = list[i].Item3;
                content.Parameters.Data.Slice((int)e.Offset, e.Length).CopyTo(set.GetSpan(i));
            }

            buffers[b] = set;
        }

        var hyper = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var (k, v) in content.Metadata)
        {
            if (k.StartsWith(HyperPrefix, StringComparison.Ordinal))
            {
                hyper[k[HyperPrefix.Length..]] = double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var d)
                    ? d
                    : throw new InvalidDataFormatException(path, -1, $"Optimizer state metadata '{k}' is not a number.");
            }
        }

        return new OptimizerState(kind, step, lr, buffers, hyper);
    }
}
