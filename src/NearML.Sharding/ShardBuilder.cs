using System.Collections.Immutable;
using System.Security.Cryptography;
using NearML.Core;
using NearML.Sharding.Internal;

namespace NearML.Sharding;

/// <summary>Cuts datasets into shards and builds their <see cref="ShardManifest"/>.</summary>
public static class ShardBuilder
{
    /// <summary>
    /// Cuts an IDX dataset (images, optional labels; gzip or raw) into shards of <paramref name="recordsPerShard"/>
    /// records (the last may be shorter), writes each as <c>shard-NNNNNN.bin</c> (an IDX file of its records followed,
    /// when labelled, by an IDX file of their labels) plus <c>manifest.json</c> into <paramref name="outputDirectory"/>.
    /// </summary>
    /// <param name="name">The dataset name for the manifest.</param>
    /// <param name="imagesPath">The records' IDX file.</param>
    /// <param name="labelsPath">The labels' IDX file, or <see langword="null"/>.</param>
    /// <param name="recordsPerShard">Records per shard.</param>
    /// <param name="outputDirectory">The folder to write to (created if needed).</param>
    /// <param name="recordOrder">A permutation of the record indices to cut in that order (e.g. <see cref="LabelSkew.OrderByLabel"/>), or <see langword="null"/> for the natural order.</param>
    /// <param name="ordering">The name of the order recorded in the manifest.</param>
    /// <returns>The manifest (also saved as <c>manifest.json</c>).</returns>
    public static ShardManifest BuildIdx(string name, string imagesPath, string? labelsPath, int recordsPerShard, string outputDirectory, IReadOnlyList<int>? recordOrder = null, string? ordering = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentException.ThrowIfNullOrEmpty(imagesPath);
        ArgumentException.ThrowIfNullOrEmpty(outputDirectory);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(recordsPerShard);
        var images = IdxCodec.ReadFile(imagesPath);
        var (dims, pixels, _) = IdxCodec.Parse(images, imagesPath);
        var count = dims[0];
        var per = pixels.Length / count;
        ReadOnlyMemory<byte> labels = default;
        if (labelsPath is not null)
        {
            var (ldims, lpayload, _) = IdxCodec.Parse(IdxCodec.ReadFile(labelsPath), labelsPath);
            if (ldims.Length != 1 || ldims[0] != count)
            {
                throw new InvalidDataFormatException(labelsPath, 4, $"labels [{string.Join(", ", ldims)}] do not match {count} records in {imagesPath}.");
            }

            labels = lpayload;
        }

        var order = CheckOrder(recordOrder, count);
        Directory.CreateDirectory(outputDirectory);
        var store = new DirectoryShardStore(outputDirectory);
        var shards = ImmutableArray.CreateBuilder<ShardDescriptor>();
        var recordShape = dims[1..];
        var shardDims = (int[])dims.Clone();
        var recordBuffer = new byte[(long)Math.Min(recordsPerShard, count) * per];
        var labelBuffer = new byte[Math.Min(recordsPerShard, count)];
        for (int start = 0, index = 0; start < count; start += recordsPerShard, index++)
        {
            var n = Math.Min(recordsPerShard, count - start);
            for (var i = 0; i < n; i++)
            {
                var r = order?[start + i] ?? start + i;
                pixels.Span.Slice(r * per, per).CopyTo(recordBuffer.AsSpan(i * per));
                if (labelsPath is not null)
                {
                    labelBuffer[i] = labels.Span[r];
                }
            }

            using var ms = new MemoryStream();
            shardDims[0] = n;
            IdxCodec.Write(ms, shardDims, recordBuffer.AsSpan(0, n * per));
            if (labelsPath is not null)
            {
                IdxCodec.Write(ms, [n], labelBuffer.AsSpan(0, n));
            }

            var bytes = ms.ToArray();
            File.WriteAllBytes(store.PathOf(index), bytes);
            shards.Add(new ShardDescriptor(index, start, n, bytes.Length, [.. SHA256.HashData(bytes)]));
        }

        var manifest = new ShardManifest(name, ShardKind.IdxRecords, recordsPerShard, count, [.. recordShape], labelsPath is not null, ordering ?? (order is null ? "natural" : "custom"), shards.ToImmutable());
        manifest.Save(Path.Combine(outputDirectory, DirectoryShardStore.ManifestFileName));
        return manifest;
    }

    /// <summary>
    /// Cuts a UTF-8 text corpus into byte ranges of about <paramref name="bytesPerShard"/> bytes. Each boundary moves
    /// forward (by at most 3 bytes) to the next code-point start, so every shard decodes on its own. Nothing is copied:
    /// read the shards with a <see cref="FileRangeShardStore"/> over the same file.
    /// </summary>
    /// <param name="name">The dataset name for the manifest.</param>
    /// <param name="corpusPath">The text file.</param>
    /// <param name="bytesPerShard">The nominal shard size in bytes (≥ 4).</param>
    /// <returns>The manifest.</returns>
    public static ShardManifest BuildText(string name, string corpusPath, int bytesPerShard)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentException.ThrowIfNullOrEmpty(corpusPath);
        ArgumentOutOfRangeException.ThrowIfLessThan(bytesPerShard, 4);
        var bytes = File.ReadAllBytes(corpusPath);
        if (bytes.Length == 0)
        {
            throw new InvalidDataFormatException(corpusPath, 0, "the corpus is empty.");
        }

        var shards = ImmutableArray.CreateBuilder<ShardDescriptor>();
        long start = 0;
        var index = 0;
        while (start < bytes.Length)
        {
            var end = Math.Min(start + bytesPerShard, bytes.Length);
            while (end < bytes.Length && (bytes[end] & 0xC0) == 0x80)
            {
                end++; // do not split a UTF-8 sequence
            }

            var n = end - start;
            var hash = SHA256.HashData(bytes.AsSpan((int)start, (int)n));
            shards.Add(new ShardDescriptor(index++, start, n, n, [.. hash]));
            start = end;
        }

        return new ShardManifest(name, ShardKind.TextBytes, bytesPerShard, bytes.Length, [], false, "natural", shards.ToImmutable());
    }

    private static int[]? CheckOrder(IReadOnlyList<int>? order, int count)
    {
        if (order is null)
        {
            return null;
        }

        if (order.Count != count)
        {
            throw new ArgumentException($"The record order has {order.Count} entries but the dataset has {count} records.", nameof(order));
        }

        var seen = new bool[count];
        var result = new int[count];
        for (var i = 0; i < count; i++)
        {
            var r = order[i];
            if ((uint)r >= (uint)count || seen[r])
            {
                throw new ArgumentException($"The record order is not a permutation: entry {i} is {r}.", nameof(order));
            }

            seen[r] = true;
            result[i] = r;
        }

        return result;
    }
}
