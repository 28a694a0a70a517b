using System.Collections.Immutable;
using System.Security.Cryptography;
using System.Text;
using NearML.Core;
using NearML.Sharding;

namespace NearML.Sharding.Tests;

/// <summary>The <c>npy</c> shard kind: serialised, parsed and verified like the others.</summary>
[TestClass]
public sealed class NpyShardManifestTests
{
    private static ShardManifest Make(params byte[][] shards)
    {
        var d = ImmutableArray.CreateBuilder<ShardDescriptor>();
        for (var i = 0; i < shards.Length; i++)
        {
            d.Add(new ShardDescriptor(i, i * 10, 10, shards[i].Length, [.. SHA256.HashData(shards[i])]));
        }

        return new ShardManifest("blobs", ShardKind.NpyRecords, 10, shards.Length * 10, [6], true, "natural", d.ToImmutable());
    }

    [TestMethod]
    public void Npy_manifest_round_trips_through_json_with_unit_records()
    {
        var m = Make([1, 2, 3], [4, 5]);
        var json = m.ToJson();
        StringAssert.Contains(Encoding.UTF8.GetString(json), "\"kind\": \"npy\"");
        StringAssert.Contains(Encoding.UTF8.GetString(json), "\"unit\": \"records\"");
        var parsed = ShardManifest.Parse(json, "json");
        Assert.AreEqual(ShardKind.NpyRecords, parsed.Kind);
        Assert.AreEqual(m.MerkleRootHex, parsed.MerkleRootHex);
        CollectionAssert.AreEqual(new[] { 6 }, parsed.RecordShape.ToArray());
    }

    [TestMethod]
    public void A_npy_shard_with_other_bytes_is_refused_naming_it()
    {
        var m = Make([1, 2, 3], [4, 5]);
        var reader = new ShardReader(m, new MemoryStore([[1, 2, 3], [4, 6]]));
        CollectionAssert.AreEqual(new byte[] { 1, 2, 3 }, reader.ReadVerified(0));
        var ex = Assert.ThrowsExactly<ShardIntegrityException>(() => reader.ReadVerified(1));
        Assert.AreEqual(1, ex.ShardIndex);
        StringAssert.Contains(ex.Message, "Shard 1");
    }

    [TestMethod]
    public void A_npy_manifest_without_a_record_shape_is_refused()
    {
        var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => new ShardManifest(
            "blobs", ShardKind.NpyRecords, 10, 10, [0], true, "natural", [new ShardDescriptor(0, 0, 10, 1, [.. SHA256.HashData([1])])]));
        StringAssert.Contains(ex.Message, "npy");
    }

    private sealed class MemoryStore(byte[][] shards) : IShardStore
    {
        public string Describe(ShardDescriptor shard) => $"memory #{shard.Index}";

        public byte[] Read(ShardDescriptor shard) => shards[shard.Index];

        public ValueTask<byte[]> ReadAsync(ShardDescriptor shard, CancellationToken cancellationToken = default) => ValueTask.FromResult(Read(shard));
    }
}
