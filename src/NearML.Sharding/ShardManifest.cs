using System.Buffers.Binary;
using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using System.Text.Json;
using NearML.Core;

namespace NearML.Sharding;

/// <summary>What a dataset's shards hold.</summary>
public enum ShardKind
{
    /// <summary>Fixed-size runs of IDX records (MNIST family); each shard is a self-describing IDX file of its records,
    /// followed by an IDX file of their labels when the dataset has labels. Unit: records.</summary>
    IdxRecords,

    /// <summary>Byte ranges of one UTF-8 text corpus, boundaries moved forward to code-point starts. Unit: bytes.</summary>
    TextBytes,

    /// <summary>Runs of records as NumPy arrays: each shard is a <c>.npy</c> array of its records' features (first
    /// dimension = records) followed, when the dataset has labels, by a <c>.npy</c> int64 array of their labels. Unit: records.</summary>
    NpyRecords,
}

/// <summary>One shard: its position in the dataset, its size and its content hash.</summary>
/// <param name="Index">The shard's index (0-based, its position in the manifest).</param>
/// <param name="Start">The first record (IDX) or byte offset (text) it covers, in the manifest's record order.</param>
/// <param name="Count">The number of records (IDX) or bytes (text) it covers.</param>
/// <param name="ByteLength">The length of the shard's bytes as stored.</param>
/// <param name="Sha256">The SHA-256 of the shard's bytes (32 bytes).</param>
public sealed record ShardDescriptor(int Index, long Start, long Count, long ByteLength, ImmutableArray<byte> Sha256)
{
    /// <summary>Gets the hash as lower-case hex.</summary>
    public string Sha256Hex => Convert.ToHexStringLower(Sha256.AsSpan());

    /// <summary>
    /// Gets the Merkle leaf data of this shard: <c>u32 index ‖ u64 start ‖ u64 count ‖ u64 byteLength ‖ sha256</c>
    /// (little-endian, 60 bytes), so the root commits to each shard's position and size as well as its content.
    /// </summary>
    /// <returns>The leaf data.</returns>
    public byte[] ToLeafData()
    {
        var b = new byte[4 + 8 + 8 + 8 + 32];
        BinaryPrimitives.WriteInt32LittleEndian(b, Index);
        BinaryPrimitives.WriteInt64LittleEndian(b.AsSpan(4), Start);
        BinaryPrimitives.WriteInt64LittleEndian(b.AsSpan(12), Count);
        BinaryPrimitives.WriteInt64LittleEndian(b.AsSpan(20), ByteLength);
        Sha256.AsSpan().CopyTo(b.AsSpan(28));
        return b;
    }
}

/// <summary>
/// A dataset cut into fixed-size shards, each with its SHA-256, and the Merkle root over them
/// (<see cref="MerkleTree"/> with leaves <see cref="ShardDescriptor.ToLeafData"/>). The root identifies the dataset:
/// rendezvous assignment is derived from it. Serialised as JSON (<see cref="ToJson"/>, <see cref="Parse"/>), validated
/// strictly on load.
/// </summary>
public sealed class ShardManifest
{
    /// <summary>The format tag written into (and required from) every manifest.</summary>
    public const string FormatTag = "nearml.shards.v1";

    /// <summary>Initializes and validates a manifest; the Merkle root is computed from the shards.</summary>
    /// <param name="name">A human-readable dataset name.</param>
    /// <param name="kind">What the shards hold.</param>
    /// <param name="shardSize">The nominal records (IDX) or bytes (text) per shard.</param>
    /// <param name="total">The total records (IDX) or bytes (text).</param>
    /// <param name="recordShape">IDX: the dimensions of one record (e.g. [28, 28]); text: empty.</param>
    /// <param name="hasLabels">IDX: whether each shard carries a label array.</param>
    /// <param name="ordering">How records were ordered before cutting (e.g. <c>natural</c>, <c>sorted-by-label</c>).</param>
    /// <param name="shards">The shards in order.</param>
    /// <exception cref="InvalidDataFormatException">The shards do not tile [0, total) or a field is invalid.</exception>
    public ShardManifest(string name, ShardKind kind, long shardSize, long total, ImmutableArray<int> recordShape, bool hasLabels, string ordering, ImmutableArray<ShardDescriptor> shards)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(ordering);
        Name = name;
        Kind = kind;
        ShardSize = shardSize;
        Total = total;
        RecordShape = recordShape.IsDefault ? [] : recordShape;
        HasLabels = hasLabels;
        Ordering = ordering;
        Shards = shards.IsDefault ? [] : shards;
        Validate("manifest");
        MerkleRoot = [.. MerkleTree.ComputeRoot(Shards.Select(s => s.ToLeafData()).ToArray())];
    }

    /// <summary>Gets the dataset name.</summary>
    public string Name { get; }

    /// <summary>Gets what the shards hold.</summary>
    public ShardKind Kind { get; }

    /// <summary>Gets the nominal records or bytes per shard.</summary>
    public long ShardSize { get; }

    /// <summary>Gets the total records or bytes.</summary>
    public long Total { get; }

    /// <summary>Gets the dimensions of one IDX record (empty for text).</summary>
    public ImmutableArray<int> RecordShape { get; }

    /// <summary>Gets a value indicating whether IDX shards carry labels.</summary>
    public bool HasLabels { get; }

    /// <summary>Gets how the records were ordered before cutting.</summary>
    public string Ordering { get; }

    /// <summary>Gets the shards.</summary>
    public ImmutableArray<ShardDescriptor> Shards { get; }

    /// <summary>Gets the Merkle root over the shards (32 bytes).</summary>
    public ImmutableArray<byte> MerkleRoot { get; }

    /// <summary>Gets the root as lower-case hex.</summary>
    public string MerkleRootHex => Convert.ToHexStringLower(MerkleRoot.AsSpan());

    /// <summary>Gets the audit path proving shard <paramref name="index"/> belongs to <see cref="MerkleRoot"/>.</summary>
    /// <param name="index">The shard.</param>
    /// <returns>The sibling hashes (verify with <see cref="MerkleTree.VerifyProof"/>).</returns>
    public IReadOnlyList<byte[]> GetProof(int index) => MerkleTree.GetProof(Shards.Select(s => s.ToLeafData()).ToArray(), index);

    /// <summary>Serialises the manifest as indented JSON.</summary>
    /// <returns>The UTF-8 JSON bytes.</returns>
    public byte[] ToJson()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("format", FormatTag);
            w.WriteString("name", Name);
            w.WriteString("kind", KindText(Kind));
            w.WriteString("unit", Kind == ShardKind.TextBytes ? "bytes" : "records");
            w.WriteNumber("shardSize", ShardSize);
            w.WriteNumber("total", Total);
            w.WriteStartArray("recordShape");
            foreach (var d in RecordShape)
            {
                w.WriteNumberValue(d);
            }

            w.WriteEndArray();
            w.WriteBoolean("hasLabels", HasLabels);
            w.WriteString("ordering", Ordering);
            w.WriteString("merkleRoot", MerkleRootHex);
            w.WriteStartArray("shards");
            foreach (var s in Shards)
            {
                w.WriteStartObject();
                w.WriteNumber("index", s.Index);
                w.WriteNumber("start", s.Start);
                w.WriteNumber("count", s.Count);
                w.WriteNumber("bytes", s.ByteLength);
                w.WriteString("sha256", s.Sha256Hex);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        return ms.ToArray();
    }

    /// <summary>Writes the manifest to a file atomically (temporary file, then rename).</summary>
    /// <param name="path">The destination.</param>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var full = Path.GetFullPath(path);
        var tmp = full + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp";
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                fs.Write(ToJson());
                fs.Flush(flushToDisk: true);
            }

            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp))
            {
                File.Delete(tmp);
            }
        }
    }

    /// <summary>Reads and validates a manifest file.</summary>
    /// <param name="path">The file.</param>
    /// <returns>The manifest.</returns>
    /// <exception cref="InvalidDataFormatException">The JSON is malformed, a field is missing or invalid, or the stated root does not match the shards.</exception>
    public static ShardManifest Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return Parse(File.ReadAllBytes(path), path);
    }

    /// <summary>Parses and validates a manifest.</summary>
    /// <param name="json">The UTF-8 JSON.</param>
    /// <param name="sourceName">The name used in error messages.</param>
    /// <returns>The manifest.</returns>
    /// <exception cref="InvalidDataFormatException">The JSON is malformed, a field is missing or invalid, or the stated root does not match the shards.</exception>
    public static ShardManifest Parse(ReadOnlySpan<byte> json, string sourceName = "manifest")
    {
        ArgumentNullException.ThrowIfNull(sourceName);
        JsonDocument doc;
        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 8 });
            doc = JsonDocument.ParseValue(ref reader);
        }
        catch (JsonException ex)
        {
            throw new InvalidDataFormatException(sourceName, ex.BytePositionInLine ?? -1, "the manifest is not valid JSON.", ex);
        }

        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw Bad(sourceName, "the manifest must be a JSON object.");
            }

            var format = GetString(root, "format", sourceName);
            if (format != FormatTag)
            {
                throw Bad(sourceName, $"field 'format' is '{format}', expected '{FormatTag}'.");
            }

            var kindText = GetString(root, "kind", sourceName);
            var kind = kindText switch
            {
                "idx" => ShardKind.IdxRecords,
                "text" => ShardKind.TextBytes,
                "npy" => ShardKind.NpyRecords,
                _ => throw Bad(sourceName, $"field 'kind' is '{kindText}', expected 'idx', 'text' or 'npy'."),
            };
            var shape = Get(root, "recordShape", JsonValueKind.Array, sourceName).EnumerateArray()
                .Select((d, i) => d.TryGetInt32(out var v) ? v : throw Bad(sourceName, $"field 'recordShape[{i}]' is not an integer."))
                .ToImmutableArray();
            var shardsJson = Get(root, "shards", JsonValueKind.Array, sourceName);
            var shards = ImmutableArray.CreateBuilder<ShardDescriptor>();
            var i = 0;
            foreach (var s in shardsJson.EnumerateArray())
            {
                var field = $"shards[{i}]";
                if (s.ValueKind != JsonValueKind.Object)
                {
                    throw Bad(sourceName, $"field '{field}' is not an object.");
                }

                var hex = GetString(s, "sha256", sourceName, field);
                byte[] hash;
                try
                {
                    hash = hex.Length == 64 ? Convert.FromHexString(hex) : throw new FormatException();
                }
                catch (FormatException)
                {
                    throw Bad(sourceName, $"field '{field}.sha256' is not 64 hex digits.");
                }

                shards.Add(new ShardDescriptor(
                    (int)GetInt64(s, "index", sourceName, field),
                    GetInt64(s, "start", sourceName, field),
                    GetInt64(s, "count", sourceName, field),
                    GetInt64(s, "bytes", sourceName, field),
                    [.. hash]));
                i++;
            }

            ShardManifest manifest;
            try
            {
                manifest = new ShardManifest(
                    GetString(root, "name", sourceName),
                    kind,
                    GetInt64(root, "shardSize", sourceName),
                    GetInt64(root, "total", sourceName),
                    shape,
                    Get(root, "hasLabels", JsonValueKind.Undefined, sourceName).ValueKind == JsonValueKind.True,
                    GetString(root, "ordering", sourceName),
                    shards.ToImmutable());
            }
            catch (InvalidDataFormatException ex)
            {
                throw new InvalidDataFormatException(sourceName, -1, ex.Message["manifest: ".Length..], ex);
            }

            var stated = GetString(root, "merkleRoot", sourceName);
            if (!string.Equals(stated, manifest.MerkleRootHex, StringComparison.Ordinal))
            {
                throw Bad(sourceName, $"field 'merkleRoot' is {stated} but the shards hash to {manifest.MerkleRootHex}.");
            }

            return manifest;
        }
    }

    internal static string KindText(ShardKind kind) => kind switch
    {
        ShardKind.IdxRecords => "idx",
        ShardKind.NpyRecords => "npy",
        _ => "text",
    };

    private void Validate(string source)
    {
        if (!Enum.IsDefined(Kind))
        {
            throw Bad(source, $"field 'kind' has the unknown value {(int)Kind}.");
        }

        if (ShardSize <= 0)
        {
            throw Bad(source, $"field 'shardSize' is {ShardSize}; it must be positive.");
        }

        if (Total <= 0)
        {
            throw Bad(source, $"field 'total' is {Total}; it must be positive.");
        }

        if (Kind != ShardKind.TextBytes ? RecordShape.Any(d => d <= 0) : !RecordShape.IsEmpty || HasLabels)
        {
            throw Bad(source, $"field 'recordShape' [{string.Join(", ", RecordShape)}] / 'hasLabels' {HasLabels} do not fit kind '{KindText(Kind)}'.");
        }

        if (Shards.IsEmpty)
        {
            throw Bad(source, "field 'shards' is empty.");
        }

        long next = 0;
        for (var i = 0; i < Shards.Length; i++)
        {
            var s = Shards[i];
            var f = $"shards[{i}]";
            if (s is null)
            {
                throw Bad(source, $"field '{f}' is null.");
            }

            if (s.Index != i)
            {
                throw Bad(source, $"field '{f}.index' is {s.Index}, expected {i}.");
            }

            if (s.Start != next)
            {
                throw Bad(source, $"field '{f}.start' is {s.Start}, expected {next} (shards must tile the dataset without gaps or overlaps).");
            }

            // Text shard boundaries move forward by at most 3 bytes to the next UTF-8 code-point start.
            var max = Kind == ShardKind.TextBytes ? ShardSize + 3 : ShardSize;
            if (s.Count <= 0 || s.Count > max)
            {
                throw Bad(source, $"field '{f}.count' is {s.Count}; it must be in [1, {max}].");
            }

            if (s.ByteLength <= 0 || (Kind == ShardKind.TextBytes && s.ByteLength != s.Count))
            {
                throw Bad(source, $"field '{f}.bytes' is {s.ByteLength}, which does not fit count {s.Count}.");
            }

            if (s.Sha256.IsDefault || s.Sha256.Length != 32)
            {
                throw Bad(source, $"field '{f}.sha256' must be 32 bytes.");
            }

            next += s.Count;
        }

        if (next != Total)
        {
            throw Bad(source, $"the shards cover {next} {(Kind == ShardKind.TextBytes ? "bytes" : "records")} but field 'total' is {Total}.");
        }
    }

    private static InvalidDataFormatException Bad(string source, string message) => new(source, -1, message);

    private static JsonElement Get(JsonElement e, string name, JsonValueKind kind, string source, string? parent = null)
    {
        if (!e.TryGetProperty(name, out var v) || (kind != JsonValueKind.Undefined && v.ValueKind != kind))
        {
            throw Bad(source, $"field '{(parent is null ? name : parent + "." + name)}' is missing or not a JSON {kind.ToString().ToLowerInvariant()}.");
        }

        if (kind == JsonValueKind.Undefined && v.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
        {
            throw Bad(source, $"field '{(parent is null ? name : parent + "." + name)}' is not a boolean.");
        }

        return v;
    }

    private static string GetString(JsonElement e, string name, string source, string? parent = null) =>
        Get(e, name, JsonValueKind.String, source, parent).GetString()!;

    private static long GetInt64(JsonElement e, string name, string source, string? parent = null) =>
        Get(e, name, JsonValueKind.Number, source, parent).TryGetInt64(out var v)
            ? v
            : throw Bad(source, string.Create(CultureInfo.InvariantCulture, $"field '{(parent is null ? name : parent + "." + name)}' is not a 64-bit integer."));
}
