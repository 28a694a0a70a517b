using System.Text.Json;
using NearML.Core;
using NearML.Training.Data;
using NearML.Training.Engines;
using NearML.Training.Modules;

namespace NearML.Hosting.Jobs;

/// <summary>A model registered under a key (<c>AddModel("charlm", ctx =&gt; …)</c>): how to build it from a job's (configuration, seed).</summary>
public sealed class ModelRegistration
{
    /// <summary>Creates a registration.</summary>
    /// <param name="key">The key jobs name (case-insensitive), e.g. <c>charlm</c>.</param>
    /// <param name="factory">Builds the model; equal contexts must give equal layouts on every machine.</param>
    /// <param name="defaultConfigJson">The configuration used when a job gives none.</param>
    public ModelRegistration(string key, Func<IServiceProvider, ModelBuildContext, ITrainableModel> factory, string defaultConfigJson = "{}")
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(key);
        ArgumentNullException.ThrowIfNull(factory);
        ArgumentNullException.ThrowIfNull(defaultConfigJson);
        Key = key.Trim().ToLowerInvariant();
        Factory = factory;
        DefaultConfigJson = defaultConfigJson;
    }

    /// <summary>Gets the key (lower case).</summary>
    public string Key { get; }

    /// <summary>Gets the factory.</summary>
    public Func<IServiceProvider, ModelBuildContext, ITrainableModel> Factory { get; }

    /// <summary>Gets the configuration used when a job gives none.</summary>
    public string DefaultConfigJson { get; }
}

/// <summary>A dataset registered under a key (<c>AddDataset("shakespeare", ctx =&gt; …)</c>).</summary>
public sealed class DatasetRegistration
{
    /// <summary>Creates a registration.</summary>
    /// <param name="key">The key jobs name (case-insensitive), e.g. <c>fashion-mnist</c>.</param>
    /// <param name="provider">Loads the dataset; equal contexts must give equal records on every machine.</param>
    public DatasetRegistration(string key, Func<IServiceProvider, DatasetLoadContext, TrainingDataset> provider)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(key);
        ArgumentNullException.ThrowIfNull(provider);
        Key = key.Trim().ToLowerInvariant();
        Provider = provider;
    }

    /// <summary>Gets the key (lower case).</summary>
    public string Key { get; }

    /// <summary>Gets the provider.</summary>
    public Func<IServiceProvider, DatasetLoadContext, TrainingDataset> Provider { get; }
}

/// <summary>
/// The models and datasets a host can build, by key: the built-ins (<c>mlp</c>, <c>cnn</c>, <c>gpt</c>;
/// <c>fashion-mnist</c>, <c>text</c>, <c>npz</c>) registered through the same door as an application's own
/// (<c>AddModel</c> / <c>AddDataset</c>; a later registration of a key replaces an earlier one). Resolved from DI by
/// the worker and the coordinator.
/// </summary>
public sealed class JobRegistry
{
    private readonly Dictionary<string, ModelRegistration> _models = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DatasetRegistration> _datasets = new(StringComparer.Ordinal);
    private readonly IServiceProvider _services;

    /// <summary>Creates the registry from the built-ins followed by <paramref name="models"/> and <paramref name="datasets"/>.</summary>
    /// <param name="models">Model registrations (later ones win).</param>
    /// <param name="datasets">Dataset registrations (later ones win).</param>
    /// <param name="services">Passed to the factories.</param>
    public JobRegistry(IEnumerable<ModelRegistration> models, IEnumerable<DatasetRegistration> datasets, IServiceProvider? services = null)
    {
        ArgumentNullException.ThrowIfNull(models);
        ArgumentNullException.ThrowIfNull(datasets);
        _services = services ?? EmptyServices.Instance;
        foreach (var m in BuiltInJobs.Models.Concat(models))
        {
            _models[m.Key] = m;
        }

        foreach (var d in BuiltInJobs.Datasets.Concat(datasets))
        {
            _datasets[d.Key] = d;
        }
    }

    /// <summary>Gets a registry with the built-ins only.</summary>
    public static JobRegistry BuiltIn { get; } = new([], []);

    /// <summary>Gets the registered model keys, sorted.</summary>
    public IReadOnlyList<string> ModelKeys => [.. _models.Keys.Order(StringComparer.Ordinal)];

    /// <summary>Gets the registered dataset keys, sorted.</summary>
    public IReadOnlyList<string> DatasetKeys => [.. _datasets.Keys.Order(StringComparer.Ordinal)];

    /// <summary>Returns whether a model key is registered.</summary>
    /// <param name="key">The key (case-insensitive).</param>
    /// <returns><see langword="true"/> if registered.</returns>
    public bool HasModel(string? key) => key is not null && _models.ContainsKey(Normalize(key));

    /// <summary>Returns whether a dataset key is registered.</summary>
    /// <param name="key">The key (case-insensitive).</param>
    /// <returns><see langword="true"/> if registered.</returns>
    public bool HasDataset(string? key) => key is not null && _datasets.ContainsKey(Normalize(key));

    /// <summary>Gets the configuration a job uses for a model when it gives none.</summary>
    /// <param name="key">The model key.</param>
    /// <returns>The JSON.</returns>
    /// <exception cref="JobConfigurationException">The key is not registered.</exception>
    public string DefaultModelConfig(string key) => GetModel(key).DefaultConfigJson;

    /// <summary>Builds a model. The result has at least one trainable parameter.</summary>
    /// <param name="key">The model key (case-insensitive).</param>
    /// <param name="context">The job's configuration (empty JSON: the registration's default), seed and optimizer.</param>
    /// <returns>The model (the caller disposes it).</returns>
    /// <exception cref="JobConfigurationException">The key is unknown, the factory refused the configuration, or the model has no trainable parameters.</exception>
    public ITrainableModel BuildModel(string key, ModelBuildContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var registration = GetModel(key);
        if (string.IsNullOrWhiteSpace(context.ConfigJson))
        {
            context = context with { ConfigJson = registration.DefaultConfigJson };
        }

        ITrainableModel model;
        try
        {
            model = registration.Factory(_services, context) ?? throw new JobConfigurationException($"model '{registration.Key}': the factory returned null.");
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or JsonException or FormatException or NearMLException and not JobConfigurationException)
        {
            throw new JobConfigurationException($"model '{registration.Key}' cannot be built from {context.ConfigJson}: {ex.Message}", ex);
        }

        if (model.Layout.Count == 0)
        {
            model.Dispose();
            throw new JobConfigurationException($"model '{registration.Key}' has no trainable parameters: there is nothing to train or synchronise.");
        }

        return model;
    }

    /// <summary>Loads a dataset.</summary>
    /// <param name="key">The dataset key (case-insensitive).</param>
    /// <param name="context">The job's dataset configuration and this host's data folder.</param>
    /// <returns>The dataset.</returns>
    /// <exception cref="JobConfigurationException">The key is unknown or the configuration is refused.</exception>
    /// <exception cref="DatasetNotFoundException">The data is not on this machine.</exception>
    /// <exception cref="InvalidDataFormatException">The data is malformed.</exception>
    public TrainingDataset LoadDataset(string key, DatasetLoadContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var registration = _datasets.TryGetValue(Normalize(key), out var r)
            ? r
            : throw new JobConfigurationException($"unknown dataset '{key}' (registered: {string.Join(", ", DatasetKeys)}).");
        try
        {
            return registration.Provider(_services, context) ?? throw new JobConfigurationException($"dataset '{registration.Key}': the provider returned null.");
        }
        catch (Exception ex) when (ex is ArgumentException or JsonException or FormatException)
        {
            throw new JobConfigurationException($"dataset '{registration.Key}' cannot be loaded from {context.ConfigJson}: {ex.Message}", ex);
        }
    }

    /// <summary>
    /// Gets the registration that <see cref="LoadDataset"/> would use for <paramref name="key"/>: the identity under which a
    /// process shares one loaded copy across hosts (the built-ins are one object per process).
    /// </summary>
    internal DatasetRegistration? FindDataset(string key) => _datasets.TryGetValue(Normalize(key), out var r) ? r : null;

    private ModelRegistration GetModel(string key) => _models.TryGetValue(Normalize(key), out var r)
        ? r
        : throw new JobConfigurationException($"unknown model '{key}' (registered: {string.Join(", ", ModelKeys)}).");

    private static string Normalize(string key) => (key ?? string.Empty).Trim().ToLowerInvariant();

    private sealed class EmptyServices : IServiceProvider
    {
        public static readonly EmptyServices Instance = new();

        public object? GetService(Type serviceType) => null;
    }
}

/// <summary>The built-in registrations: ordinary <see cref="ModelRegistration"/>s and <see cref="DatasetRegistration"/>s.</summary>
public static class BuiltInJobs
{
    /// <summary>
    /// Gets the built-in models: <c>mlp</c> (<see cref="Mlp"/>; <c>{"inputs":784,"hidden":256,"classes":10}</c>),
    /// <c>cnn</c> (<see cref="SmallCnn"/>; <c>{}</c>) and <c>gpt</c> (<see cref="Gpt"/>;
    /// <c>{"vocabulary":256,"context":128,"dModel":128,"layers":4,"heads":4}</c>), all in the managed engine. Unknown
    /// configuration keys are refused so that a typo cannot silently train another model.
    /// </summary>
    public static IReadOnlyList<ModelRegistration> Models { get; } =
    [
        new("mlp", static (_, c) => Managed(c, v => new Mlp(Take(v, "model 'mlp'", "inputs", 784), Take(v, "model 'mlp'", "hidden", 256), Take(v, "model 'mlp'", "classes", 10), c.Seed)), """{"inputs":784,"hidden":256,"classes":10}"""),
        new("cnn", static (_, c) => Managed(c, _ => new SmallCnn(c.Seed))),
        new("gpt", static (_, c) => Managed(c, v => new Gpt(
            new GptConfig(Take(v, "model 'gpt'", "vocabulary", 256), Take(v, "model 'gpt'", "context", 128), Take(v, "model 'gpt'", "dModel", 128), Take(v, "model 'gpt'", "layers", 4), Take(v, "model 'gpt'", "heads", 4)),
            c.Seed)), """{"vocabulary":256,"context":128,"dModel":128,"layers":4,"heads":4}"""),
    ];

    /// <summary>
    /// Gets the built-in datasets: <c>fashion-mnist</c> (the four IDX files in the host's data folder, or
    /// <c>$FASHION_MNIST_DIR</c>, or Debian's <c>dataset-fashion-mnist</c>, else the subset shipped next to the application:
    /// see <see cref="FashionMnistSource"/>; configuration <c>{}</c>), <c>text</c> (a UTF-8
    /// file, character level: <c>{"file":"input.txt","context":64,"recordTokens":1024}</c>, the file relative to the data
    /// folder) and <c>npz</c> (a NumPy archive with <c>x_train</c>, <c>y_train</c>, <c>x_test</c>, <c>y_test</c>:
    /// <c>{"file":"data.npz","classes":10}</c>).
    /// </summary>
    public static IReadOnlyList<DatasetRegistration> Datasets { get; } =
    [
        new(JobDataset.FashionMnistName, static (_, c) =>
        {
            RequireKeys(c.ConfigJson, JobDataset.FashionMnistName);
            var data = FashionMnist.Load(FashionMnistSource.Resolve(c.DataDirectory).Directory);
            return new ClassificationDataset(JobDataset.FashionMnistName, data.Train, data.Test, RecordEncoding.Idx);
        }),
        new("text", static (_, c) =>
        {
            var v = TrainingDataset.ParseConfig(c.ConfigJson, "text");
            var file = TakeFile(v, "text", c.DataDirectory);
            var context = Take(v, "dataset 'text'", "context", 64);
            var record = Take(v, "dataset 'text'", "recordTokens", 1024);
            if (v.Count > 0)
            {
                throw new ArgumentException($"dataset 'text' configuration has unknown key(s) {string.Join(", ", v.Keys.Order(StringComparer.Ordinal))} (known: file, context, recordTokens).");
            }

            return new TextTokenDataset("text", TextDataset.FromFile(file), context, record);
        }),
        new("npz", static (_, c) =>
        {
            var v = TrainingDataset.ParseConfig(c.ConfigJson, "npz");
            var file = TakeFile(v, "npz", c.DataDirectory);
            var classes = v.Remove("classes", out var cl) && cl.TryGetInt32(out var n) ? n : 0;
            if (v.Count > 0)
            {
                throw new ArgumentException($"dataset 'npz' configuration has unknown key(s) {string.Join(", ", v.Keys.Order(StringComparer.Ordinal))} (known: file, classes).");
            }

            return ClassificationDataset.FromNpz("npz", file, classes);
        }),
    ];

    private static ManagedTrainableModel Managed(ModelBuildContext context, Func<Dictionary<string, JsonElement>, Model> build)
    {
        var values = ParseObject(context.ConfigJson);
        var model = build(values);
        if (values.Count > 0)
        {
            throw new ArgumentException($"configuration has unknown key(s) {string.Join(", ", values.Keys.Order(StringComparer.Ordinal))}.");
        }

        return new ManagedTrainableModel(model, context.Optimizer);
    }

    private static Dictionary<string, JsonElement> ParseObject(string json)
    {
        using var doc = JsonDocument.Parse(json);
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
        {
            throw new ArgumentException($"configuration must be a JSON object, got {doc.RootElement.ValueKind}.");
        }

        var values = new Dictionary<string, JsonElement>(StringComparer.OrdinalIgnoreCase);
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            values[p.Name] = p.Value.Clone();
        }

        return values;
    }

    private static int Take(Dictionary<string, JsonElement> values, string arch, string key, int fallback)
    {
        if (!values.Remove(key, out var v))
        {
            return fallback;
        }

        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out var n) || n <= 0)
        {
            throw new ArgumentException($"{arch} configuration key '{key}' must be a positive integer, got {v.GetRawText()}.");
        }

        return n;
    }

    private static void RequireKeys(string json, string dataset)
    {
        var v = TrainingDataset.ParseConfig(json, dataset);
        if (v.Count > 0)
        {
            throw new ArgumentException($"dataset '{dataset}' takes no configuration, got key(s) {string.Join(", ", v.Keys.Order(StringComparer.Ordinal))}.");
        }
    }

    private static string TakeFile(Dictionary<string, JsonElement> v, string dataset, string? directory)
    {
        if (!v.Remove("file", out var f) || f.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(f.GetString()))
        {
            throw new ArgumentException($"dataset '{dataset}' configuration needs \"file\": a file name relative to the host's data folder.");
        }

        var name = f.GetString()!;
        if (Path.IsPathRooted(name) || name.Split('/', '\\').Contains(".."))
        {
            throw new ArgumentException($"dataset '{dataset}' file '{name}' must be relative to the host's data folder, without '..' (the job names data, each host decides where it lives).");
        }

        return Path.Combine(directory ?? Directory.GetCurrentDirectory(), name);
    }
}
