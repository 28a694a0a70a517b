using System.Buffers.Binary;
using System.Text.Json;
using NearML.Core;

namespace NearML.Training.Data;

/// <summary>What a dataset provider gets to load the same dataset on the coordinator and on every worker.</summary>
/// <param name="ConfigJson">The dataset's configuration JSON as the job gives it (<c>{}</c> for none).</param>
/// <param name="Seed">The job's seed.</param>
/// <param name="DataDirectory">The host's local data folder (a machine-local setting, never sent by the job), or
/// <see langword="null"/> for the provider's default.</param>
public sealed record DatasetLoadContext(string ConfigJson, ulong Seed, string? DataDirectory = null);

/// <summary>Loads a <see cref="TrainingDataset"/> for a job (registered under a key, e.g. <c>fashion-mnist</c>).</summary>
public interface IDatasetProvider
{
    /// <summary>Loads the dataset.</summary>
    /// <param name="context">The job's dataset configuration.</param>
    /// <returns>The dataset.</returns>
    /// <exception cref="DatasetNotFoundException">The data is not on this machine.</exception>
    /// <exception cref="InvalidDataFormatException">The data is malformed or of an unsupported type.</exception>
    TrainingDataset Load(DatasetLoadContext context);
}

/// <summary>How a dataset's shards are encoded (what a <see cref="TrainingDataset.EncodeRecords"/> shard holds).</summary>
public enum RecordEncoding
{
    /// <summary>An IDX array of 8-bit records followed by an IDX array of their labels (the MNIST family); unit: records.</summary>
    Idx,

    /// <summary>UTF-8 text; unit: bytes.</summary>
    Text,

    /// <summary>A <c>.npy</c> array of the records' features followed by a <c>.npy</c> int64 array of their labels; unit: records.</summary>
    Npy,
}

/// <summary>
/// A dataset as a job trains on it: a list of training records that hosts cut into content-addressed shards (each
/// shard's bytes are <see cref="EncodeRecords"/> of its records, hashed into a NearML.Sharding manifest so every
/// worker can prove it trains on the coordinator's data), batch sources over any subset of records, and a held-out
/// evaluation source. Implement it (or use <see cref="ClassificationDataset"/> / <see cref="TextTokenDataset"/>) to
/// bring your own data.
/// </summary>
public abstract class TrainingDataset
{
    /// <summary>Gets the dataset's name (recorded in the shard manifest).</summary>
    public abstract string Name { get; }

    /// <summary>Gets the number of training records.</summary>
    public abstract int RecordCount { get; }

    /// <summary>Gets how shards are encoded.</summary>
    public abstract RecordEncoding Encoding { get; }

    /// <summary>Gets the dimensions of one record (empty for text).</summary>
    public abstract IReadOnlyList<int> RecordShape { get; }

    /// <summary>Gets a value indicating whether records are put in a seeded order before cutting shards (classification:
    /// yes, so shards are mixed; text: no, so shards are contiguous passages).</summary>
    public virtual bool ShuffleBeforeSharding => true;

    /// <summary>Encodes some records as one shard's bytes (deterministic: equal records give equal bytes on every machine).</summary>
    /// <param name="records">Record indices in shard order.</param>
    /// <returns>The shard's bytes.</returns>
    public abstract byte[] EncodeRecords(ReadOnlySpan<int> records);

    /// <summary>Gets the shard's size in the manifest's unit: records, or bytes for <see cref="RecordEncoding.Text"/>.</summary>
    /// <param name="records">The shard's records.</param>
    /// <param name="encoded">The shard's bytes.</param>
    /// <returns>The count.</returns>
    public virtual long UnitCount(ReadOnlySpan<int> records, ReadOnlySpan<byte> encoded) => Encoding == RecordEncoding.Text ? encoded.Length : records.Length;

    /// <summary>Creates a training batch source over some records (a worker's shards).</summary>
    /// <param name="records">The record indices.</param>
    /// <param name="batchSize">Samples per batch.</param>
    /// <param name="seed">The shuffle seed.</param>
    /// <returns>The source.</returns>
    public abstract IBatchSource CreateTrainingSource(IReadOnlyList<int> records, int batchSize, ulong seed);

    /// <summary>Creates the held-out evaluation source (fixed order or fixed windows, so repeated evaluations compare).</summary>
    /// <param name="batchSize">Samples per batch.</param>
    /// <param name="maxSamples">At most this many samples (0: all).</param>
    /// <returns>The source.</returns>
    public abstract IBatchSource CreateEvaluationSource(int batchSize, int maxSamples);

    /// <summary>Parses a dataset configuration JSON object (empty or whitespace: <c>{}</c>).</summary>
    /// <param name="json">The JSON.</param>
    /// <param name="dataset">The dataset's key, for messages.</param>
    /// <returns>The properties (case-insensitive).</returns>
    /// <exception cref="ArgumentException">The JSON is malformed or not an object.</exception>
    public static Dictionary<string, JsonElement> ParseConfig(string? json, string dataset)
    {
        var values = new Dictionary<string, JsonElement>(StringComparer.OrdinalIgnoreCase);
        if (string.IsNullOrWhiteSpace(json))
        {
            return values;
        }

        try
        {
            using var doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new ArgumentException($"dataset '{dataset}' configuration must be a JSON object, got {doc.RootElement.ValueKind}: {json}", nameof(json));
            }

            foreach (var p in doc.RootElement.EnumerateObject())
            {
                values[p.Name] = p.Value.Clone();
            }

            return values;
        }
        catch (JsonException ex)
        {
            throw new ArgumentException($"dataset '{dataset}' configuration is not valid JSON: {ex.Message}", nameof(json), ex);
        }
    }
}

/// <summary>A labelled dataset (Fashion-MNIST, NumPy arrays, your own) as a <see cref="TrainingDataset"/>.</summary>
public sealed class ClassificationDataset : TrainingDataset
{
    private readonly RecordEncoding _encoding;
    private readonly int[] _shape;

    /// <summary>Creates the dataset.</summary>
    /// <param name="name">The name.</param>
    /// <param name="train">The training records.</param>
    /// <param name="test">The held-out records.</param>
    /// <param name="encoding"><see cref="RecordEncoding.Idx"/> (features must be 8-bit pixels / 255) or <see cref="RecordEncoding.Npy"/>.</param>
    public ClassificationDataset(string name, LabeledDataset train, LabeledDataset test, RecordEncoding encoding = RecordEncoding.Npy)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(test);
        if (encoding == RecordEncoding.Text)
        {
            throw new ArgumentOutOfRangeException(nameof(encoding), encoding, "A classification dataset is encoded as IDX or NPY records.");
        }

        if (train.FeaturesPerSample != test.FeaturesPerSample)
        {
            throw new ArgumentException($"train has {train.FeaturesPerSample} features per sample but test has {test.FeaturesPerSample}.", nameof(test));
        }

        Name = name;
        Train = train;
        Test = test;
        _encoding = encoding;
        var s = train.SampleShape;
        _shape = s.Length == 3 && s[0] == 1 ? s.AsSpan()[1..].ToArray() : s.ToArray();
    }

    /// <inheritdoc/>
    public override string Name { get; }

    /// <summary>Gets the training records.</summary>
    public LabeledDataset Train { get; }

    /// <summary>Gets the held-out records.</summary>
    public LabeledDataset Test { get; }

    /// <inheritdoc/>
    public override int RecordCount => Train.Count;

    /// <inheritdoc/>
    public override RecordEncoding Encoding => _encoding;

    /// <inheritdoc/>
    public override IReadOnlyList<int> RecordShape => _shape;

    /// <summary>
    /// Loads a dataset from a NumPy <c>.npz</c> archive with training and test features and integer labels. Features may
    /// be float32 (used as is), uint8 (scaled as <c>x / 255</c>) or int64/int32 (converted); labels uint8/int32/int64 in
    /// [0, classes).
    /// </summary>
    /// <param name="name">The dataset name.</param>
    /// <param name="path">The archive.</param>
    /// <param name="classes">The number of classes; 0 for max(label) + 1.</param>
    /// <param name="trainFeatures">The training features' array name.</param>
    /// <param name="trainLabels">The training labels' array name.</param>
    /// <param name="testFeatures">The test features' array name.</param>
    /// <param name="testLabels">The test labels' array name.</param>
    /// <returns>The dataset.</returns>
    /// <exception cref="DatasetNotFoundException">The archive does not exist.</exception>
    /// <exception cref="InvalidDataFormatException">An array is missing, of an unsupported type, or the shapes or labels do not fit.</exception>
    public static ClassificationDataset FromNpz(
        string name, string path, int classes = 0, string trainFeatures = "x_train", string trainLabels = "y_train", string testFeatures = "x_test", string testLabels = "y_test")
    {
        var arrays = NpyReader.ReadArchive(path);
        NpyArray Get(string key) => arrays.TryGetValue(key, out var a)
            ? a
            : throw new InvalidDataFormatException(path, -1, $"has no array '{key}' (it has: {string.Join(", ", arrays.Keys.Order(StringComparer.Ordinal))}).");
        var (xtr, ytr, xte, yte) = (Get(trainFeatures), Get(trainLabels), Get(testFeatures), Get(testLabels));
        var labelsTrain = Labels(ytr, xtr);
        var labelsTest = Labels(yte, xte);
        if (classes <= 0)
        {
            classes = Math.Max(labelsTrain.DefaultIfEmpty(0).Max(), labelsTest.DefaultIfEmpty(0).Max()) + 1;
        }

        return new ClassificationDataset(name, Build(xtr, labelsTrain, classes), Build(xte, labelsTest, classes), RecordEncoding.Npy);

        static int[] Labels(NpyArray y, NpyArray x)
        {
            if (y.Shape.Length != 1)
            {
                throw new InvalidDataFormatException(y.Source, -1, $"labels must have one dimension but have [{string.Join(", ", y.Shape)}].");
            }

            if (x.Shape.Length < 1 || x.Shape[0] != y.Shape[0])
            {
                throw new InvalidDataFormatException(x.Source, -1, $"features [{string.Join(", ", x.Shape)}] do not match {y.Shape[0]} labels in {y.Source}.");
            }

            return y.ToInt32();
        }

        static LabeledDataset Build(NpyArray x, int[] labels, int classes)
        {
            for (var i = 0; i < labels.Length; i++)
            {
                if ((uint)labels[i] >= (uint)classes)
                {
                    throw new InvalidDataFormatException(x.Source, -1, $"label #{i} is {labels[i]}, outside [0, {classes}).");
                }
            }

            var f = x.ToSingle();
            if (x.DataType == NpyDataType.UInt8)
            {
                for (var i = 0; i < f.Length; i++)
                {
                    f[i] /= 255f;
                }
            }

            int[] shape = x.Shape.Length == 1 ? [1] : x.Shape.AsSpan()[1..].ToArray();
            return new LabeledDataset(f, labels, shape, classes);
        }
    }

    /// <inheritdoc/>
    public override byte[] EncodeRecords(ReadOnlySpan<int> records) => _encoding == RecordEncoding.Idx ? EncodeIdx(records) : EncodeNpy(records);

    /// <inheritdoc/>
    public override IBatchSource CreateTrainingSource(IReadOnlyList<int> records, int batchSize, ulong seed) =>
        new ClassificationBatchSource(Train, records, batchSize, seed);

    /// <inheritdoc/>
    public override IBatchSource CreateEvaluationSource(int batchSize, int maxSamples)
    {
        IReadOnlyList<int>? subset = maxSamples > 0 && maxSamples < Test.Count ? Enumerable.Range(0, maxSamples).ToArray() : null;
        return new ClassificationBatchSource(Test, subset, batchSize, 0, shuffle: false);
    }

    private byte[] EncodeNpy(ReadOnlySpan<int> records)
    {
        var per = Train.FeaturesPerSample;
        var features = new byte[records.Length * per * 4];
        var labels = new byte[records.Length * 8];
        for (var r = 0; r < records.Length; r++)
        {
            var src = Train.GetFeatures(records[r]);
            for (var j = 0; j < per; j++)
            {
                BinaryPrimitives.WriteSingleLittleEndian(features.AsSpan(((r * per) + j) * 4), src[j]);
            }

            BinaryPrimitives.WriteInt64LittleEndian(labels.AsSpan(r * 8), Train.Labels[records[r]]);
        }

        using var ms = new MemoryStream();
        int[] shape = [records.Length, .. _shape];
        NpyReader.Write(ms, NpyDataType.Float32, shape, features);
        NpyReader.Write(ms, NpyDataType.Int64, [records.Length], labels);
        return ms.ToArray();
    }

    private byte[] EncodeIdx(ReadOnlySpan<int> records)
    {
        var per = Train.FeaturesPerSample;
        var shape = _shape;
        var headerImages = 4 + (4 * (shape.Length + 1));
        const int headerLabels = 8;
        var bytes = new byte[headerImages + (records.Length * per) + headerLabels + records.Length];
        var span = bytes.AsSpan();
        span[2] = 0x08;
        span[3] = (byte)(shape.Length + 1);
        BinaryPrimitives.WriteInt32BigEndian(span[4..], records.Length);
        for (var i = 0; i < shape.Length; i++)
        {
            BinaryPrimitives.WriteInt32BigEndian(span[(8 + (4 * i))..], shape[i]);
        }

        var pixels = span.Slice(headerImages, records.Length * per);
        for (var r = 0; r < records.Length; r++)
        {
            var src = Train.GetFeatures(records[r]);
            var dst = pixels.Slice(r * per, per);
            for (var j = 0; j < per; j++)
            {
                var v = MathF.Round(src[j] * 255f);
                if (v < 0f || v > 255f || src[j] != (byte)v / 255f)
                {
                    throw new ArgumentException($"record {records[r]} feature {j} is {src[j]}, not an 8-bit pixel value / 255; use RecordEncoding.Npy for other features.", nameof(records));
                }

                dst[j] = (byte)v;
            }
        }

        var labels = span[(headerImages + pixels.Length)..];
        labels[2] = 0x08;
        labels[3] = 1;
        BinaryPrimitives.WriteInt32BigEndian(labels[4..], records.Length);
        for (var r = 0; r < records.Length; r++)
        {
            labels[8 + r] = checked((byte)Train.Labels[records[r]]);
        }

        return bytes;
    }
}

/// <summary>
/// A character-level text corpus (<see cref="TextDataset"/>) as a <see cref="TrainingDataset"/>: the training tokens are
/// cut into records of <see cref="RecordTokens"/> consecutive characters, shards are contiguous passages (UTF-8 bytes),
/// and a worker trains on random windows of <see cref="ContextLength"/> within its passages; evaluation uses fixed
/// windows of the validation split.
/// </summary>
public sealed class TextTokenDataset : TrainingDataset
{
    private readonly System.Text.UTF8Encoding _utf8 = new(false, true);

    /// <summary>Creates the dataset.</summary>
    /// <param name="name">The name.</param>
    /// <param name="text">The corpus.</param>
    /// <param name="contextLength">Tokens per training window.</param>
    /// <param name="recordTokens">Characters per record (≥ <paramref name="contextLength"/> + 1).</param>
    public TextTokenDataset(string name, TextDataset text, int contextLength, int recordTokens = 1024)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(text);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(contextLength);
        ArgumentOutOfRangeException.ThrowIfLessThan(recordTokens, contextLength + 1);
        if (text.TrainLength < recordTokens || text.Validation.Length <= contextLength)
        {
            throw new ArgumentException($"the corpus ({text.TrainLength} training, {text.Validation.Length} validation characters) is too short for records of {recordTokens} and windows of {contextLength}.", nameof(text));
        }

        Name = name;
        Text = text;
        ContextLength = contextLength;
        RecordTokens = recordTokens;
    }

    /// <inheritdoc/>
    public override string Name { get; }

    /// <summary>Gets the corpus.</summary>
    public TextDataset Text { get; }

    /// <summary>Gets the window length.</summary>
    public int ContextLength { get; }

    /// <summary>Gets the characters per record.</summary>
    public int RecordTokens { get; }

    /// <inheritdoc/>
    public override int RecordCount => Text.TrainLength / RecordTokens;

    /// <inheritdoc/>
    public override RecordEncoding Encoding => RecordEncoding.Text;

    /// <inheritdoc/>
    public override IReadOnlyList<int> RecordShape => [];

    /// <inheritdoc/>
    public override bool ShuffleBeforeSharding => false;

    /// <summary>Loads a UTF-8 file. Configuration keys: <c>context</c> (window, default 64), <c>recordTokens</c> (default 1024).</summary>
    /// <param name="name">The name.</param>
    /// <param name="path">The file.</param>
    /// <param name="configJson">The job's dataset configuration.</param>
    /// <returns>The dataset.</returns>
    public static TextTokenDataset FromFile(string name, string path, string? configJson)
    {
        var config = ParseConfig(configJson, name);
        var context = TakeInt(config, "context", 64, name);
        var record = TakeInt(config, "recordTokens", 1024, name);
        if (config.Count > 0)
        {
            throw new ArgumentException($"dataset '{name}' configuration has unknown key(s) {string.Join(", ", config.Keys.Order(StringComparer.Ordinal))} (known: context, recordTokens).", nameof(configJson));
        }

        return new TextTokenDataset(name, TextDataset.FromFile(path), context, record);
    }

    /// <inheritdoc/>
    public override byte[] EncodeRecords(ReadOnlySpan<int> records)
    {
        var sb = new System.Text.StringBuilder(records.Length * RecordTokens);
        foreach (var r in records)
        {
            foreach (var t in Text.Tokens.AsSpan(r * RecordTokens, RecordTokens))
            {
                sb.Append(Text.Vocabulary[t].ToString());
            }
        }

        return _utf8.GetBytes(sb.ToString());
    }

    /// <inheritdoc/>
    public override IBatchSource CreateTrainingSource(IReadOnlyList<int> records, int batchSize, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(records);
        var tokens = new int[records.Count * RecordTokens];
        for (var i = 0; i < records.Count; i++)
        {
            Text.Tokens.AsSpan(records[i] * RecordTokens, RecordTokens).CopyTo(tokens.AsSpan(i * RecordTokens));
        }

        var batches = Math.Max(1, tokens.Length / (batchSize * ContextLength));
        return new TextWindowBatchSource(tokens, batchSize, ContextLength, batches, seed);
    }

    /// <inheritdoc/>
    public override IBatchSource CreateEvaluationSource(int batchSize, int maxSamples)
    {
        var windows = maxSamples > 0 ? maxSamples : Math.Max(batchSize, Text.Validation.Length / ContextLength);
        var batches = Math.Max(1, windows / batchSize);
        return TextWindowBatchSource.ForValidation(Text.Validation, batchSize, ContextLength, batches, 0);
    }

    internal static int TakeInt(Dictionary<string, JsonElement> values, string key, int fallback, string dataset)
    {
        if (!values.Remove(key, out var v))
        {
            return fallback;
        }

        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out var n) || n <= 0)
        {
            throw new ArgumentException($"dataset '{dataset}' configuration key '{key}' must be a positive integer, got {v.GetRawText()}.", nameof(values));
        }

        return n;
    }
}
