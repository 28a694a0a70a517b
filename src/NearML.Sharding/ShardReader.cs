using System.Collections.Immutable;
using System.Security.Cryptography;
using System.Text;
using NearML.Core;
using NearML.Sharding.Internal;

namespace NearML.Sharding;

/// <summary>The records of one IDX shard.</summary>
/// <param name="Index">The shard index.</param>
/// <param name="Count">The number of records.</param>
/// <param name="RecordShape">The dimensions of one record.</param>
/// <param name="Records">The record bytes, row-major [Count × product(RecordShape)].</param>
/// <param name="Labels">The labels, or <see langword="null"/> for an unlabelled dataset.</param>
public sealed record IdxShard(int Index, int Count, ImmutableArray<int> RecordShape, byte[] Records, byte[]? Labels);

/// <summary>
/// Reads shards and verifies each against the manifest (length and SHA-256) before handing it out: a corrupt, truncated
/// or missing shard is a <see cref="ShardIntegrityException"/> naming the shard and where it was read from.
/// </summary>
public sealed class ShardReader
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="manifest">The manifest the shards must match.</param>
    /// <param name="store">Where the shard bytes are.</param>
    public ShardReader(ShardManifest manifest, IShardStore store)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(store);
        Manifest = manifest;
        Store = store;
    }

    /// <summary>Gets the manifest.</summary>
    public ShardManifest Manifest { get; }

    /// <summary>Gets the store.</summary>
    public IShardStore Store { get; }

    /// <summary>Reads a shard's bytes and verifies them.</summary>
    /// <param name="index">The shard index.</param>
    /// <returns>The verified bytes.</returns>
    /// <exception cref="ShardIntegrityException">The shard is missing, or its length or hash differs from the manifest.</exception>
    public byte[] ReadVerified(int index)
    {
        var shard = GetShard(index);
        byte[] bytes;
        try
        {
            bytes = Store.Read(shard);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ShardIntegrityException(index, Store.Describe(shard), $"cannot be read: {ex.Message}", ex);
        }

        Verify(shard, bytes);
        return bytes;
    }

    /// <summary>Reads a shard's bytes asynchronously and verifies them.</summary>
    /// <param name="index">The shard index.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <returns>The verified bytes.</returns>
    /// <exception cref="ShardIntegrityException">The shard is missing, or its length or hash differs from the manifest.</exception>
    public async ValueTask<byte[]> ReadVerifiedAsync(int index, CancellationToken cancellationToken = default)
    {
        var shard = GetShard(index);
        byte[] bytes;
        try
        {
            bytes = await Store.ReadAsync(shard, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ShardIntegrityException(index, Store.Describe(shard), $"cannot be read: {ex.Message}", ex);
        }

        Verify(shard, bytes);
        return bytes;
    }

    /// <summary>Checks bytes against a shard's length and SHA-256 from the manifest.</summary>
    /// <param name="index">The shard index.</param>
    /// <param name="bytes">The bytes (e.g. received from a peer).</param>
    /// <exception cref="ShardIntegrityException">The length or hash differs.</exception>
    public void Verify(int index, ReadOnlySpan<byte> bytes) => Verify(GetShard(index), bytes);

    private ShardDescriptor GetShard(int index)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)Manifest.Shards.Length, nameof(index));
        return Manifest.Shards[index];
    }

    private void Verify(ShardDescriptor shard, ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != shard.ByteLength)
        {
            throw new ShardIntegrityException(shard.Index, Store.Describe(shard), $"has {bytes.Length} bytes but the manifest says {shard.ByteLength}.");
        }

        Span<byte> actual = stackalloc byte[32];
        SHA256.HashData(bytes, actual);
        if (!CryptographicOperations.FixedTimeEquals(actual, shard.Sha256.AsSpan()))
        {
            throw new ShardIntegrityException(shard.Index, Store.Describe(shard), $"SHA-256 is {Convert.ToHexStringLower(actual)} but the manifest says {shard.Sha256Hex}; the shard is corrupt.");
        }
    }

    /// <summary>Reads, verifies and decodes an IDX shard.</summary>
    /// <param name="index">The shard index.</param>
    /// <returns>The records (and labels).</returns>
    /// <exception cref="ShardIntegrityException">The shard does not match the manifest.</exception>
    /// <exception cref="InvalidDataFormatException">The verified bytes do not decode as the manifest describes.</exception>
    public IdxShard ReadIdx(int index)
    {
        if (Manifest.Kind != ShardKind.IdxRecords)
        {
            throw new InvalidOperationException($"The manifest '{Manifest.Name}' holds {Manifest.Kind} shards, not IDX records.");
        }

        var bytes = ReadVerified(index);
        var shard = Manifest.Shards[index];
        var where = Store.Describe(shard);
        var (dims, payload, used) = IdxCodec.Parse(bytes, where, 0, allowTrailing: Manifest.HasLabels);
        if (dims[0] != shard.Count || !dims.AsSpan(1).SequenceEqual(Manifest.RecordShape.AsSpan()))
        {
            throw new InvalidDataFormatException(where, 4, $"shard {index} holds records [{string.Join(", ", dims)}] but the manifest describes [{shard.Count}, {string.Join(", ", Manifest.RecordShape)}].");
        }

        byte[]? labels = null;
        if (Manifest.HasLabels)
        {
            var (ldims, lpayload, _) = IdxCodec.Parse(bytes.AsMemory(used), where, used);
            if (ldims.Length != 1 || ldims[0] != shard.Count)
            {
                throw new InvalidDataFormatException(where, used + 4, $"shard {index} holds labels [{string.Join(", ", ldims)}] but the manifest describes [{shard.Count}].");
            }

            labels = lpayload.ToArray();
        }

        return new IdxShard(index, (int)shard.Count, Manifest.RecordShape, payload.ToArray(), labels);
    }

    /// <summary>Reads, verifies and decodes a text shard.</summary>
    /// <param name="index">The shard index.</param>
    /// <returns>The shard's text.</returns>
    /// <exception cref="ShardIntegrityException">The shard does not match the manifest.</exception>
    /// <exception cref="InvalidDataFormatException">The verified bytes are not valid UTF-8.</exception>
    public string ReadText(int index)
    {
        if (Manifest.Kind != ShardKind.TextBytes)
        {
            throw new InvalidOperationException($"The manifest '{Manifest.Name}' holds {Manifest.Kind} shards, not text.");
        }

        var bytes = ReadVerified(index);
        try
        {
            return new UTF8Encoding(false, true).GetString(bytes);
        }
        catch (DecoderFallbackException ex)
        {
            throw new InvalidDataFormatException(Store.Describe(Manifest.Shards[index]), ex.Index, $"shard {index} is not valid UTF-8.", ex);
        }
    }
}
