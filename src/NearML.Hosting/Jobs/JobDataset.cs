using System.Buffers.Binary;
using System.Collections.Immutable;
using System.Security.Cryptography;
using NearML.Sharding;
using NearML.Training.Data;

namespace NearML.Hosting.Jobs;

/// <summary>
/// A job's dataset as both ends see it: the training records cut into content-addressed shards (a NearML.Sharding
/// <see cref="ShardManifest"/> whose Merkle root identifies the data) and the held-out test set the coordinator
/// evaluates on. The records are put in a seeded order before cutting, so shards are mixed rather than runs of the
/// files' order; the coordinator and every worker that load the same files with the same (shard count, seed) compute
/// the same manifest root, and a worker refuses an assignment whose root differs from its own. Each shard's bytes are
/// exactly what <see cref="ShardBuilder.BuildIdx"/> writes for the same record order (an IDX array of the images
/// followed by an IDX array of the labels), so this manifest equals the one that tool builds on disk.
/// </summary>
public sealed class JobDataset
{
    /// <summary>The dataset name recorded in the manifest and sent as <c>extra["dataset"]</c>.</summary>
    public const string FashionMnistName = "fashion-mnist";

    private readonly LabeledDataset _train;
    private readonly int[] _order;

    private JobDataset(LabeledDataset train, LabeledDataset test, int[] order, ShardManifest manifest)
    {
        _train = train;
        _order = order;
        Test = test;
        Manifest = manifest;
        ManifestRoot = manifest.MerkleRoot.ToArray();
    }

    /// <summary>Gets the shard manifest of the training records.</summary>
    public ShardManifest Manifest { get; }

    /// <summary>Gets the manifest's 32-byte Merkle root.</summary>
    public ReadOnlyMemory<byte> ManifestRoot { get; }

    /// <summary>Gets the manifest root as lower-case hex (as sent in <c>extra["manifest_root"]</c>).</summary>
    public string ManifestRootHex => Manifest.MerkleRootHex;

    /// <summary>Gets the number of shards (≤ the count asked for when the records do not divide evenly).</summary>
    public int ShardCount => Manifest.Shards.Length;

    /// <summary>Gets the training records.</summary>
    public LabeledDataset Train => _train;

    /// <summary>Gets the held-out test set (the coordinator's evaluation set).</summary>
    public LabeledDataset Test { get; }

    /// <summary>Loads Fashion-MNIST and cuts its 60 000 training images into shards.</summary>
    /// <param name="directory">The folder with the four IDX files; <see langword="null"/> for <see cref="FashionMnist.ResolveDefaultDirectory"/>.</param>
    /// <param name="shardCount">The number of shards wanted (records per shard = ⌈records / shardCount⌉).</param>
    /// <param name="seed">The seed of the record order before cutting.</param>
    /// <returns>The dataset.</returns>
    /// <exception cref="DatasetNotFoundException">The folder or a file is missing (the message says how to install it).</exception>
    /// <exception cref="JobConfigurationException">The shard count is not positive or exceeds the records.</exception>
    public static JobDataset LoadFashionMnist(string? directory, int shardCount, ulong seed)
    {
        var data = FashionMnist.Load(directory);
        return Create(FashionMnistName, data.Train, data.Test, shardCount, seed);
    }

    /// <summary>
    /// Cuts an in-memory dataset into shards. Features must be 8-bit pixels scaled as <c>x / 255</c> (as
    /// <see cref="LabeledDataset.FromIdx"/> produces), since shards are hashed as the IDX bytes they came from.
    /// </summary>
    /// <param name="name">The dataset name recorded in the manifest.</param>
    /// <param name="train">The training records.</param>
    /// <param name="test">The test records.</param>
    /// <param name="shardCount">The number of shards wanted.</param>
    /// <param name="seed">The seed of the record order before cutting.</param>
    /// <returns>The dataset.</returns>
    /// <exception cref="JobConfigurationException">The shard count is invalid or a feature is not an 8-bit pixel value.</exception>
    public static JobDataset Create(string name, LabeledDataset train, LabeledDataset test, int shardCount, ulong seed)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(test);
        if (shardCount <= 0 || shardCount > train.Count)
        {
            throw new JobConfigurationException($"shard count {shardCount} must be between 1 and the {train.Count} training records.");
        }

        var order = RecordOrder(train.Count, seed);
        var perShard = (train.Count + shardCount - 1) / shardCount;
        var per = train.FeaturesPerSample;
        var shape = train.SampleShape.Length == 3 && train.SampleShape[0] == 1 ? train.SampleShape.RemoveAt(0) : train.SampleShape;
        var shards = ImmutableArray.CreateBuilder<ShardDescriptor>();
        for (int start = 0, index = 0; start < train.Count; start += perShard, index++)
        {
            var n = Math.Min(perShard, train.Count - start);
            var bytes = EncodeShard(train, order.AsSpan(start, n), shape.AsSpan(), per);
            shards.Add(new ShardDescriptor(index, start, n, bytes.Length, [.. SHA256.HashData(bytes)]));
        }

        var manifest = new ShardManifest(name, ShardKind.IdxRecords, perShard, train.Count, shape, true, OrderingName(seed), shards.ToImmutable());
        return new JobDataset(train, test, order, manifest);
    }

    /// <summary>Gets the record order used before cutting: a seeded permutation of the record indices.</summary>
    /// <param name="count">The number of records.</param>
    /// <param name="seed">The seed.</param>
    /// <returns>The permutation (record at position i of the cut).</returns>
    public static int[] RecordOrder(int count, ulong seed)
    {
        var order = new int[count];
        for (var i = 0; i < count; i++)
        {
            order[i] = i;
        }

        new SeededRandom(seed, 0x5348415244UL).Shuffle(order.AsSpan());
        return order;
    }

    /// <summary>Gets the ordering name recorded in the manifest for a seed.</summary>
    /// <param name="seed">The seed.</param>
    /// <returns>For example <c>seeded-permutation:1</c>.</returns>
    public static string OrderingName(ulong seed) => "seeded-permutation:" + seed.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Assigns shards to workers by capacity-weighted rendezvous hashing over the manifest root (equal capacities).</summary>
    /// <param name="workerIds">The workers present.</param>
    /// <returns>The assignment (few shards move when a worker joins or leaves).</returns>
    public ShardAssignment Assign(IReadOnlyCollection<string> workerIds)
    {
        ArgumentNullException.ThrowIfNull(workerIds);
        return RendezvousHashing.Assign(Manifest, workerIds.Select(w => new WorkerCapacity(w, 1.0)).ToList());
    }

    /// <summary>Gets the training record indices of some shards, in shard order.</summary>
    /// <param name="shardIds">Shard ids in [0, <see cref="ShardCount"/>).</param>
    /// <returns>The record indices.</returns>
    /// <exception cref="JobConfigurationException">A shard id is out of range.</exception>
    public int[] RecordsOf(IReadOnlyList<int> shardIds)
    {
        ArgumentNullException.ThrowIfNull(shardIds);
        var records = new List<int>();
        foreach (var id in shardIds)
        {
            if ((uint)id >= (uint)ShardCount)
            {
                throw new JobConfigurationException($"shard id {id} is outside [0, {ShardCount}) of dataset '{Manifest.Name}' (root {ManifestRootHex}).");
            }

            var s = Manifest.Shards[id];
            records.AddRange(_order.AsSpan((int)s.Start, (int)s.Count));
        }

        return [.. records];
    }

    /// <summary>Creates the training batch source of the given shards (a worker's share of the round).</summary>
    /// <param name="shardIds">The shard ids assigned to the worker.</param>
    /// <param name="batchSize">Samples per batch.</param>
    /// <param name="seed">The shuffle seed (per-epoch order depends on it only).</param>
    /// <returns>The batch source.</returns>
    /// <exception cref="JobConfigurationException">No shard was given or a shard id is out of range.</exception>
    public IBatchSource CreateBatchSource(IReadOnlyList<int> shardIds, int batchSize, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(shardIds);
        if (shardIds.Count == 0)
        {
            throw new JobConfigurationException("no shards were assigned: a batch source needs at least one shard.");
        }

        return new ClassificationBatchSource(_train, RecordsOf(shardIds), batchSize, seed);
    }

    private static byte[] EncodeShard(LabeledDataset train, ReadOnlySpan<int> records, ReadOnlySpan<int> shape, int per)
    {
        var headerImages = 4 + (4 * (shape.Length + 1));
        var headerLabels = 8;
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
        var features = train.Features;
        for (var r = 0; r < records.Length; r++)
        {
            var src = features.AsSpan(records[r] * per, per);
            var dst = pixels.Slice(r * per, per);
            for (var j = 0; j < per; j++)
            {
                var v = MathF.Round(src[j] * 255f);
                if (v < 0f || v > 255f || src[j] != (byte)v / 255f)
                {
                    throw new JobConfigurationException($"record {records[r]} feature {j} is {src[j]}, not an 8-bit pixel value / 255.");
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
            labels[8 + r] = (byte)train.Labels[records[r]];
        }

        return bytes;
    }
}
