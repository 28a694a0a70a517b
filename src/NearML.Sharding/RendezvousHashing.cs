using System.Buffers.Binary;
using System.Collections.Immutable;
using System.Security.Cryptography;
using System.Text;

namespace NearML.Sharding;

/// <summary>A worker and its relative capacity (e.g. samples per second); shards are assigned in proportion to it.</summary>
/// <param name="WorkerId">The worker's stable id.</param>
/// <param name="Capacity">Its relative capacity (&gt; 0, finite).</param>
public sealed record WorkerCapacity(string WorkerId, double Capacity);

/// <summary>Which worker owns each shard.</summary>
public sealed class ShardAssignment
{
    private readonly Dictionary<string, ImmutableArray<int>> _byWorker;

    internal ShardAssignment(ImmutableArray<string> owners, IEnumerable<string> workers)
    {
        Owners = owners;
        _byWorker = workers.ToDictionary(w => w, _ => ImmutableArray<int>.Empty, StringComparer.Ordinal);
        foreach (var g in owners.Select((w, i) => (w, i)).GroupBy(x => x.w, StringComparer.Ordinal))
        {
            _byWorker[g.Key] = [.. g.Select(x => x.i)];
        }
    }

    /// <summary>Gets the owner of each shard, indexed by shard.</summary>
    public ImmutableArray<string> Owners { get; }

    /// <summary>Gets the worker ids (in ordinal order).</summary>
    public IEnumerable<string> Workers => _byWorker.Keys.Order(StringComparer.Ordinal);

    /// <summary>Gets the shards a worker owns, ascending.</summary>
    /// <param name="workerId">The worker.</param>
    /// <returns>Its shards (empty for an unknown worker).</returns>
    public ImmutableArray<int> ShardsOf(string workerId)
    {
        ArgumentNullException.ThrowIfNull(workerId);
        return _byWorker.TryGetValue(workerId, out var s) ? s : [];
    }

    /// <summary>Counts the shards whose owner differs in <paramref name="other"/>.</summary>
    /// <param name="other">Another assignment of the same shards.</param>
    /// <returns>The number of moved shards.</returns>
    public int CountMoved(ShardAssignment other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (other.Owners.Length != Owners.Length)
        {
            throw new ArgumentException($"The assignments cover {Owners.Length} and {other.Owners.Length} shards.", nameof(other));
        }

        var moved = 0;
        for (var i = 0; i < Owners.Length; i++)
        {
            if (!string.Equals(Owners[i], other.Owners[i], StringComparison.Ordinal))
            {
                moved++;
            }
        }

        return moved;
    }
}

/// <summary>
/// Capacity-weighted rendezvous (highest-random-weight) hashing. Keys: <c>kₛ = SHA-256("nearml.hrw.v1\0" ‖ root ‖ 0x00 ‖ u32le(s))</c>
/// per shard and <c>k_w = SHA-256("nearml.hrw.v1\0" ‖ root ‖ 0x01 ‖ utf8(id))</c> per worker (first 8 bytes, little-endian);
/// pair hash <c>h = mix(mix(kₛ ⊕ k_w) + k_w)</c> with the SplitMix64 finaliser <c>mix</c> (a bijection), so an
/// assignment costs one SHA-256 per shard and per worker plus cheap mixing per pair.
/// <c>u = (⌊h / 2¹¹⌋ + ½) / 2⁵³ ∈ (0, 1)</c> and <c>score = −c / ln u</c> for capacity <c>c</c>; a shard goes to the
/// highest score (ties: the ordinally smaller id). <c>−ln u / c</c> is exponential with rate <c>c</c>, so worker
/// <c>w</c> wins a shard with probability <c>c_w / Σc</c>; adding or removing a worker moves only the shards it wins
/// or held (≈ 1/n of them). The result depends only on (manifest root, worker ids, capacities).
/// </summary>
public static class RendezvousHashing
{
    private static readonly byte[] Domain = "nearml.hrw.v1\0"u8.ToArray();

    /// <summary>Assigns every shard of a manifest to a worker.</summary>
    /// <param name="manifest">The manifest (its Merkle root seeds the hashes).</param>
    /// <param name="workers">The workers (ids unique and non-empty, capacities positive and finite).</param>
    /// <returns>The assignment.</returns>
    public static ShardAssignment Assign(ShardManifest manifest, IReadOnlyList<WorkerCapacity> workers)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        return Assign(manifest.MerkleRoot.AsSpan(), manifest.Shards.Length, workers);
    }

    /// <summary>Assigns shards <c>0 … shardCount − 1</c> to workers.</summary>
    /// <param name="root">The dataset identity (normally the manifest's Merkle root).</param>
    /// <param name="shardCount">The number of shards.</param>
    /// <param name="workers">The workers.</param>
    /// <returns>The assignment.</returns>
    public static ShardAssignment Assign(ReadOnlySpan<byte> root, int shardCount, IReadOnlyList<WorkerCapacity> workers)
    {
        ArgumentNullException.ThrowIfNull(workers);
        ArgumentOutOfRangeException.ThrowIfNegative(shardCount);
        if (workers.Count == 0)
        {
            throw new ArgumentException("At least one worker is needed.", nameof(workers));
        }

        var ids = new HashSet<string>(StringComparer.Ordinal);
        foreach (var w in workers)
        {
            ArgumentNullException.ThrowIfNull(w, nameof(workers));
            ArgumentException.ThrowIfNullOrEmpty(w.WorkerId, nameof(workers));
            if (!double.IsFinite(w.Capacity) || w.Capacity <= 0)
            {
                throw new ArgumentOutOfRangeException(nameof(workers), w.Capacity, $"Worker '{w.WorkerId}' has capacity {w.Capacity}; it must be positive and finite.");
            }

            if (!ids.Add(w.WorkerId))
            {
                throw new ArgumentException($"Worker id '{w.WorkerId}' appears twice.", nameof(workers));
            }
        }

        var keys = new ulong[workers.Count];
        for (var i = 0; i < keys.Length; i++)
        {
            keys[i] = WorkerKey(root, workers[i].WorkerId);
        }

        var owners = new string[shardCount];
        for (var s = 0; s < shardCount; s++)
        {
            var shardKey = ShardKey(root, s);
            string? best = null;
            var bestScore = double.NegativeInfinity;
            for (var i = 0; i < keys.Length; i++)
            {
                var w = workers[i];
                var score = Score(shardKey, keys[i], w.Capacity);
                if (score > bestScore || (score == bestScore && string.CompareOrdinal(w.WorkerId, best) < 0))
                {
                    best = w.WorkerId;
                    bestScore = score;
                }
            }

            owners[s] = best!;
        }

        return new ShardAssignment([.. owners], ids);
    }

    /// <summary>Computes the weighted rendezvous score of a (shard, worker) pair.</summary>
    /// <param name="root">The dataset identity.</param>
    /// <param name="shardIndex">The shard.</param>
    /// <param name="workerId">The worker id.</param>
    /// <param name="capacity">The worker's capacity.</param>
    /// <returns><c>−capacity / ln u</c>.</returns>
    public static double Score(ReadOnlySpan<byte> root, int shardIndex, string workerId, double capacity)
    {
        ArgumentNullException.ThrowIfNull(workerId);
        return Score(ShardKey(root, shardIndex), WorkerKey(root, workerId), capacity);
    }

    private static double Score(ulong shardKey, ulong workerKey, double capacity)
    {
        var h = Mix(Mix(shardKey ^ workerKey) + workerKey);
        var u = ((h >> 11) + 0.5) / (1UL << 53);
        return -capacity / Math.Log(u);
    }

    private static ulong ShardKey(ReadOnlySpan<byte> root, int shardIndex)
    {
        Span<byte> index = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(index, shardIndex);
        return Key(root, 0x00, index);
    }

    private static ulong WorkerKey(ReadOnlySpan<byte> root, string workerId) => Key(root, 0x01, Encoding.UTF8.GetBytes(workerId));

    private static ulong Key(ReadOnlySpan<byte> root, byte tag, ReadOnlySpan<byte> data)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        h.AppendData(Domain);
        h.AppendData(root);
        h.AppendData([tag]);
        h.AppendData(data);
        Span<byte> hash = stackalloc byte[32];
        h.GetHashAndReset(hash);
        return BinaryPrimitives.ReadUInt64LittleEndian(hash);
    }

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
