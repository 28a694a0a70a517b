namespace NearML.Sharding;

/// <summary>Where shard bytes live. Implementations only fetch bytes; <see cref="ShardReader"/> verifies them.</summary>
public interface IShardStore
{
    /// <summary>Describes where a shard is read from (for error messages), e.g. its file path.</summary>
    /// <param name="shard">The shard.</param>
    /// <returns>The description.</returns>
    string Describe(ShardDescriptor shard);

    /// <summary>Reads a shard's bytes (not yet verified).</summary>
    /// <param name="shard">The shard.</param>
    /// <returns>The bytes.</returns>
    byte[] Read(ShardDescriptor shard);

    /// <summary>Reads a shard's bytes asynchronously (not yet verified).</summary>
    /// <param name="shard">The shard.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <returns>The bytes.</returns>
    ValueTask<byte[]> ReadAsync(ShardDescriptor shard, CancellationToken cancellationToken = default);
}

/// <summary>Shards stored as one file each, <c>shard-000000.bin</c>, …, next to <c>manifest.json</c>.</summary>
public sealed class DirectoryShardStore : IShardStore
{
    /// <summary>The manifest's file name inside a shard directory.</summary>
    public const string ManifestFileName = "manifest.json";

    /// <summary>Initializes a new instance.</summary>
    /// <param name="directory">The folder holding the shard files.</param>
    public DirectoryShardStore(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Directory = directory;
    }

    /// <summary>Gets the folder.</summary>
    public string Directory { get; }

    /// <summary>Gets the file name of a shard.</summary>
    /// <param name="index">The shard index.</param>
    /// <returns>E.g. <c>shard-000042.bin</c>.</returns>
    public static string FileName(int index) => $"shard-{index:D6}.bin";

    /// <summary>Gets the full path of a shard's file.</summary>
    /// <param name="index">The shard index.</param>
    /// <returns>The path.</returns>
    public string PathOf(int index) => Path.Combine(Directory, FileName(index));

    /// <inheritdoc/>
    public string Describe(ShardDescriptor shard)
    {
        ArgumentNullException.ThrowIfNull(shard);
        return PathOf(shard.Index);
    }

    /// <inheritdoc/>
    public byte[] Read(ShardDescriptor shard)
    {
        ArgumentNullException.ThrowIfNull(shard);
        return File.ReadAllBytes(PathOf(shard.Index));
    }

    /// <inheritdoc/>
    public async ValueTask<byte[]> ReadAsync(ShardDescriptor shard, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(shard);
        return await File.ReadAllBytesAsync(PathOf(shard.Index), cancellationToken).ConfigureAwait(false);
    }
}

/// <summary>Shards that are byte ranges of one file (text corpora: no copy is made).</summary>
public sealed class FileRangeShardStore : IShardStore
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="path">The corpus file.</param>
    public FileRangeShardStore(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        FilePath = path;
    }

    /// <summary>Gets the corpus file.</summary>
    public string FilePath { get; }

    /// <inheritdoc/>
    public string Describe(ShardDescriptor shard)
    {
        ArgumentNullException.ThrowIfNull(shard);
        return $"{FilePath} bytes [{shard.Start}, {shard.Start + shard.Count})";
    }

    /// <inheritdoc/>
    public async ValueTask<byte[]> ReadAsync(ShardDescriptor shard, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(shard);
        using var handle = File.OpenHandle(FilePath, options: FileOptions.Asynchronous);
        var buffer = new byte[shard.Count];
        var total = 0;
        while (total < buffer.Length)
        {
            var n = await RandomAccess.ReadAsync(handle, buffer.AsMemory(total), shard.Start + total, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                return buffer[..total];
            }

            total += n;
        }

        return buffer;
    }

    /// <inheritdoc/>
    public byte[] Read(ShardDescriptor shard)
    {
        ArgumentNullException.ThrowIfNull(shard);
        using var handle = File.OpenHandle(FilePath);
        var buffer = new byte[shard.Count];
        var total = 0;
        while (total < buffer.Length)
        {
            var n = RandomAccess.Read(handle, buffer.AsSpan(total), shard.Start + total);
            if (n == 0)
            {
                return buffer[..total];
            }

            total += n;
        }

        return buffer;
    }
}
