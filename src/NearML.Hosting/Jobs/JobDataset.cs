using System.Collections.Immutable;
using System.Security.Cryptography;
using NearML.Sharding;
using NearML.Training.Data;

namespace NearML.Hosting.Jobs;

/// <summary>
/// A job's dataset as both ends see it: a <see cref="TrainingDataset"/> (any registered provider's) whose training
/// records are cut into content-addressed shards — a NearML.Sharding <see cref="ShardManifest"/> whose Merkle root
/// identifies the data — and its held-out evaluation set. Classification records are put in a seeded order before
/// cutting, so shards are mixed rather than runs of the files' order; text stays in order. The coordinator and every
/// worker that load the same data with the same (shard count, seed) compute the same manifest; a worker reads each
/// assigned shard through a <see cref="ShardReader"/> over the coordinator's manifest, so a shard whose bytes differ is
/// refused with a <see cref="ShardIntegrityException"/> naming it. For Fashion-MNIST each shard's bytes are exactly
/// what <see cref="ShardBuilder.BuildIdx"/> writes for the same record order, so this manifest equals that tool's.
/// </summary>
public sealed class JobDataset
{
    /// <summary>The dataset name recorded in the manifest and sent as <c>DatasetSpec.name</c>.</summary>
    public const string FashionMnistName = "fashion-mnist";

    private readonly int[] _order;

    private JobDataset(TrainingDataset data, int[] order, ShardManifest manifest)
    {
        Data = data;
        _order = order;
        Manifest = manifest;
        ManifestRoot = manifest.MerkleRoot.ToArray();
    }

    /// <summary>Gets the dataset.</summary>
    public TrainingDataset Data { get; }

    /// <summary>Gets the shard manifest of the training records.</summary>
    public ShardManifest Manifest { get; }

    /// <summary>Gets the manifest's 32-byte Merkle root.</summary>
    public ReadOnlyMemory<byte> ManifestRoot { get; }

    /// <summary>Gets the manifest root as lower-case hex (<c>DatasetSpec.manifest_root</c> on the wire holds the raw 32 bytes).</summary>
    public string ManifestRootHex => Manifest.MerkleRootHex;

    /// <summary>Gets the number of shards (≤ the count asked for when the records do not divide evenly).</summary>
    public int ShardCount => Manifest.Shards.Length;

    /// <summary>Gets the training records of a classification dataset.</summary>
    /// <exception cref="InvalidOperationException">The dataset is not a <see cref="ClassificationDataset"/>.</exception>
    public LabeledDataset Train => (Data as ClassificationDataset)?.Train ?? throw new InvalidOperationException($"dataset '{Data.Name}' is not a classification dataset.");

    /// <summary>Gets the held-out test set of a classification dataset.</summary>
    /// <exception cref="InvalidOperationException">The dataset is not a <see cref="ClassificationDataset"/>.</exception>
    public LabeledDataset Test => (Data as ClassificationDataset)?.Test ?? throw new InvalidOperationException($"dataset '{Data.Name}' is not a classification dataset.");

    /// <summary>Loads Fashion-MNIST and cuts its 60 000 training images into shards.</summary>
    /// <param name="directory">The folder with the four IDX files; <see langword="null"/> to look (<see cref="FashionMnistSource.Resolve"/>).</param>
    /// <param name="shardCount">The number of shards wanted (records per shard = ⌈records / shardCount⌉).</param>
    /// <param name="seed">The seed of the record order before cutting.</param>
    /// <returns>The dataset.</returns>
    /// <exception cref="DatasetNotFoundException">The folder or a file is missing (the message says how to install it).</exception>
    /// <exception cref="JobConfigurationException">The shard count is not positive or exceeds the records.</exception>
    public static JobDataset LoadFashionMnist(string? directory, int shardCount, ulong seed)
    {
        var data = FashionMnist.Load(FashionMnistSource.Resolve(directory).Directory);
        return Create(FashionMnistName, data.Train, data.Test, shardCount, seed);
    }

    /// <summary>
    /// Cuts an in-memory dataset into IDX shards. Features must be 8-bit pixels scaled as <c>x / 255</c> (as
    /// <see cref="LabeledDataset.FromIdx"/> produces), since shards are hashed as the IDX bytes they came from.
    /// </summary>
    /// <param name="name">The dataset name recorded in the manifest.</param>
    /// <param name="train">The training records.</param>
    /// <param name="test">The test records.</param>
    /// <param name="shardCount">The number of shards wanted.</param>
    /// <param name="seed">The seed of the record order before cutting.</param>
    /// <returns>The dataset.</returns>
    /// <exception cref="JobConfigurationException">The shard count is invalid or a feature is not an 8-bit pixel value.</exception>
    public static JobDataset Create(string name, LabeledDataset train, LabeledDataset test, int shardCount, ulong seed) =>
        Create(new ClassificationDataset(name, train, test, RecordEncoding.Idx), shardCount, seed);

    /// <summary>Cuts any <see cref="TrainingDataset"/> into content-addressed shards.</summary>
    /// <param name="data">The dataset.</param>
    /// <param name="shardCount">The number of shards wanted (records per shard = ⌈records / shardCount⌉).</param>
    /// <param name="seed">The seed of the record order before cutting (ignored for unshuffled datasets).</param>
    /// <returns>The dataset.</returns>
    /// <exception cref="JobConfigurationException">The shard count is invalid or the records cannot be encoded.</exception>
    public static JobDataset Create(TrainingDataset data, int shardCount, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(data);
        var count = data.RecordCount;
        if (shardCount <= 0 || shardCount > count)
        {
            throw new JobConfigurationException($"shard count {shardCount} must be between 1 and the {count} training records of dataset '{data.Name}'.");
        }

        var order = data.ShuffleBeforeSharding ? RecordOrder(count, seed) : Enumerable.Range(0, count).ToArray();
        var perShard = (count + shardCount - 1) / shardCount;
        var shards = ImmutableArray.CreateBuilder<ShardDescriptor>();
        long unit = 0;
        for (int start = 0, index = 0; start < count; start += perShard, index++)
        {
            var n = Math.Min(perShard, count - start);
            byte[] bytes;
            try
            {
                bytes = data.EncodeRecords(order.AsSpan(start, n));
            }
            catch (ArgumentException ex)
            {
                throw new JobConfigurationException($"dataset '{data.Name}' shard {index}: {ex.Message}", ex);
            }

            var units = data.UnitCount(order.AsSpan(start, n), bytes);
            shards.Add(new ShardDescriptor(index, unit, units, bytes.Length, [.. SHA256.HashData(bytes)]));
            unit += units;
        }

        var kind = data.Encoding switch
        {
            RecordEncoding.Idx => ShardKind.IdxRecords,
            RecordEncoding.Npy => ShardKind.NpyRecords,
            _ => ShardKind.TextBytes,
        };
        var shardSize = kind == ShardKind.TextBytes ? Math.Max(1, shards.Max(s => s.Count)) : perShard;
        var shape = kind == ShardKind.TextBytes ? [] : data.RecordShape.ToImmutableArray();
        var ordering = data.ShuffleBeforeSharding ? OrderingName(seed) : "natural";
        var manifest = new ShardManifest(data.Name, kind, shardSize, unit, shape, kind != ShardKind.TextBytes, ordering, shards.ToImmutable());
        return new JobDataset(data, order, manifest);
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
            records.AddRange(RecordSpan(id).ToArray());
        }

        return [.. records];
    }

    /// <summary>
    /// Reads this host's copy of the given shards through a <see cref="ShardReader"/> over <paramref name="manifest"/>
    /// (the coordinator's): each shard's bytes must have the length and SHA-256 the manifest states.
    /// </summary>
    /// <param name="manifest">The authoritative manifest.</param>
    /// <param name="shardIds">The shards to check.</param>
    /// <exception cref="ShardIntegrityException">A shard differs; the exception names it.</exception>
    /// <exception cref="JobConfigurationException">The manifests disagree on the shard count or a shard id is out of range.</exception>
    public void VerifyShards(ShardManifest manifest, IReadOnlyList<int> shardIds)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(shardIds);
        if (manifest.Shards.Length != ShardCount)
        {
            throw new JobConfigurationException(
                $"the job's manifest of '{manifest.Name}' has {manifest.Shards.Length} shards but this host's copy of '{Data.Name}' cuts into {ShardCount}.");
        }

        var reader = new ShardReader(manifest, new LocalStore(this));
        foreach (var id in shardIds)
        {
            if ((uint)id >= (uint)ShardCount)
            {
                throw new JobConfigurationException($"shard id {id} is outside [0, {ShardCount}) of dataset '{Manifest.Name}' (root {ManifestRootHex}).");
            }

            _ = reader.ReadVerified(id);
        }
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

        return Data.CreateTrainingSource(RecordsOf(shardIds), batchSize, seed);
    }

    /// <summary>Creates the held-out evaluation source.</summary>
    /// <param name="batchSize">Samples per batch.</param>
    /// <param name="maxSamples">At most this many samples (0: all).</param>
    /// <returns>The source.</returns>
    public IBatchSource CreateEvaluationSource(int batchSize, int maxSamples) => Data.CreateEvaluationSource(batchSize, maxSamples);

    private ReadOnlySpan<int> RecordSpan(int id)
    {
        if ((uint)id >= (uint)ShardCount)
        {
            throw new JobConfigurationException($"shard id {id} is outside [0, {ShardCount}) of dataset '{Manifest.Name}' (root {ManifestRootHex}).");
        }

        // Shard i holds positions [i·perShard, …) of the order, whatever the manifest's unit.
        var perShard = (Data.RecordCount + ShardCount - 1) / ShardCount;
        var start = id * perShard;
        return _order.AsSpan(start, Math.Min(perShard, Data.RecordCount - start));
    }

    /// <summary>This host's shard bytes, encoded from its own copy of the data.</summary>
    private sealed class LocalStore(JobDataset owner) : IShardStore
    {
        public string Describe(ShardDescriptor shard) => $"local copy of '{owner.Data.Name}' shard {shard.Index}";

        public byte[] Read(ShardDescriptor shard) => owner.Data.EncodeRecords(owner.RecordSpan(shard.Index));

        public ValueTask<byte[]> ReadAsync(ShardDescriptor shard, CancellationToken cancellationToken = default) => ValueTask.FromResult(Read(shard));
    }
}
