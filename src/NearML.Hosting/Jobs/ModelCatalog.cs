using System.Text.Json;
using NearML.Core.Contracts;
using NearML.Training.Modules;

namespace NearML.Hosting.Jobs;

/// <summary>
/// The models a job can train, built identically on the coordinator and on every worker from (architecture,
/// configuration JSON, seed): <c>mlp</c> (<see cref="Mlp"/>; <c>{"inputs":784,"hidden":256,"classes":10}</c>),
/// <c>cnn</c> (<see cref="SmallCnn"/>; <c>{}</c>) and <c>gpt</c> (<see cref="Gpt"/>;
/// <c>{"vocabulary":256,"context":128,"dModel":128,"layers":4,"heads":4}</c>). Unknown configuration keys are refused so
/// that a typo cannot silently train another model.
/// </summary>
public static class ModelCatalog
{
    /// <summary>The architecture names understood by <see cref="Create"/>.</summary>
    public static IReadOnlyList<string> Architectures { get; } = ["mlp", "cnn", "gpt"];

    /// <summary>Builds a model with its deterministic initialisation.</summary>
    /// <param name="architecture"><c>mlp</c>, <c>cnn</c> or <c>gpt</c> (case-insensitive).</param>
    /// <param name="configJson">The architecture's configuration JSON; <see langword="null"/> or empty for <see cref="DefaultConfigJson"/>.</param>
    /// <param name="seed">The initialisation seed: equal seeds give bit-identical parameters.</param>
    /// <returns>The model.</returns>
    /// <exception cref="JobConfigurationException">The architecture is unknown or the configuration is malformed.</exception>
    public static Model Create(string architecture, string? configJson, int seed)
    {
        var arch = Normalize(architecture);
        var json = string.IsNullOrWhiteSpace(configJson) ? DefaultConfigJson(arch) : configJson;
        var values = ParseObject(arch, json);
        Model model;
        try
        {
            model = arch switch
            {
                "mlp" => new Mlp(
                    Take(values, arch, "inputs", 784),
                    Take(values, arch, "hidden", 256),
                    Take(values, arch, "classes", 10),
                    seed),
                "cnn" => new SmallCnn(seed),
                _ => new Gpt(
                    new GptConfig(
                        Take(values, arch, "vocabulary", 256),
                        Take(values, arch, "context", 128),
                        Take(values, arch, "dModel", 128),
                        Take(values, arch, "layers", 4),
                        Take(values, arch, "heads", 4)),
                    seed),
            };
        }
        catch (ArgumentException ex)
        {
            throw new JobConfigurationException($"model '{arch}' cannot be built from {json}: {ex.Message}", ex);
        }

        if (values.Count > 0)
        {
            // Every recognised key was removed by Take; anything left is unknown.
            throw new JobConfigurationException($"model '{arch}' configuration has unknown key(s) {string.Join(", ", values.Keys.Order(StringComparer.Ordinal))}.");
        }

        return model;
    }

    /// <summary>Gets the default configuration JSON of an architecture.</summary>
    /// <param name="architecture"><c>mlp</c>, <c>cnn</c> or <c>gpt</c>.</param>
    /// <returns>The JSON text.</returns>
    /// <exception cref="JobConfigurationException">The architecture is unknown.</exception>
    public static string DefaultConfigJson(string architecture) => Normalize(architecture) switch
    {
        "mlp" => """{"inputs":784,"hidden":256,"classes":10}""",
        "cnn" => "{}",
        _ => """{"vocabulary":256,"context":128,"dModel":128,"layers":4,"heads":4}""",
    };

    /// <summary>Describes a model for a <see cref="JobAssignment"/>: architecture, configuration and parameter layout.</summary>
    /// <param name="architecture">The architecture name.</param>
    /// <param name="configJson">The configuration JSON (as given to <see cref="Create"/>).</param>
    /// <param name="model">The model built from them.</param>
    /// <returns>The wire description.</returns>
    public static ModelConfig Describe(string architecture, string? configJson, Model model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var arch = Normalize(architecture);
        var config = new ModelConfig
        {
            Architecture = arch,
            ConfigJson = string.IsNullOrWhiteSpace(configJson) ? DefaultConfigJson(arch) : configJson,
        };
        foreach (var e in model.Parameters.Layout.Entries)
        {
            var spec = new TensorSpec { Name = e.Name };
            spec.Shape.AddRange(e.Shape);
            config.Tensors.Add(spec);
        }

        return config;
    }

    /// <summary>Builds the model a <see cref="ModelConfig"/> describes and checks that its layout is the announced one.</summary>
    /// <param name="config">The wire description.</param>
    /// <param name="seed">The initialisation seed (the values are replaced by the downloaded parameters anyway).</param>
    /// <returns>The model.</returns>
    /// <exception cref="JobConfigurationException">The architecture or configuration is invalid, or the layouts differ.</exception>
    public static Model CreateFrom(ModelConfig config, int seed)
    {
        ArgumentNullException.ThrowIfNull(config);
        var model = Create(config.Architecture, config.ConfigJson, seed);
        var entries = model.Parameters.Layout.Entries;
        if (config.Tensors.Count != entries.Length)
        {
            throw new JobConfigurationException($"model '{config.Architecture}' has {entries.Length} tensors here but the job announces {config.Tensors.Count}.");
        }

        for (var i = 0; i < entries.Length; i++)
        {
            var spec = config.Tensors[i];
            if (spec.Name != entries[i].Name || !spec.Shape.SequenceEqual(entries[i].Shape))
            {
                throw new JobConfigurationException(
                    $"tensor #{i} is '{entries[i].Name}' {entries[i].ShapeText} here but '{spec.Name}' [{string.Join(", ", spec.Shape)}] in the job.");
            }
        }

        return model;
    }

    private static string Normalize(string architecture)
    {
        var a = (architecture ?? string.Empty).Trim().ToLowerInvariant();
        return a switch
        {
            "mlp" or "cnn" or "gpt" => a,
            "cnn-fashion" or "smallcnn" => "cnn",
            _ => throw new JobConfigurationException($"unknown model architecture '{architecture}' (known: {string.Join(", ", Architectures)})."),
        };
    }

    private static Dictionary<string, JsonElement> ParseObject(string arch, string json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new JobConfigurationException($"model '{arch}' configuration must be a JSON object, got {doc.RootElement.ValueKind}: {json}");
            }

            var values = new Dictionary<string, JsonElement>(StringComparer.OrdinalIgnoreCase);
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                values[p.Name] = p.Value.Clone();
            }

            return values;
        }
        catch (JsonException ex)
        {
            throw new JobConfigurationException($"model '{arch}' configuration is not valid JSON: {ex.Message}", ex);
        }
    }

    private static int Take(Dictionary<string, JsonElement> values, string arch, string key, int fallback)
    {
        if (!values.Remove(key, out var v))
        {
            return fallback;
        }

        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out var n) || n <= 0)
        {
            throw new JobConfigurationException(
                $"model '{arch}' configuration key '{key}' must be a positive integer, got {v.GetRawText()}.");
        }

        return n;
    }
}
