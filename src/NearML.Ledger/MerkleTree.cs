using System.Security.Cryptography;

namespace NearML.Ledger;

/// <summary>
/// RFC 6962-style Merkle tree over entry hashes with domain-separated hashing: leaf = SHA-256(0x00 ‖ entry hash),
/// node = SHA-256(0x01 ‖ left ‖ right); a tree of n leaves splits at the largest power of two below n. The root of
/// an empty tree is SHA-256 of nothing.
/// </summary>
public static class MerkleTree
{
    /// <summary>Computes the leaf hash of an entry hash.</summary>
    /// <param name="entryHash">The entry hash.</param>
    /// <returns>The leaf hash.</returns>
    public static byte[] LeafHash(ReadOnlySpan<byte> entryHash)
    {
        Span<byte> buf = stackalloc byte[1 + 64];
        buf[0] = 0x00;
        entryHash.CopyTo(buf[1..]);
        return SHA256.HashData(buf[..(1 + entryHash.Length)]);
    }

    /// <summary>Computes the node hash of two children.</summary>
    /// <param name="left">The left child hash.</param>
    /// <param name="right">The right child hash.</param>
    /// <returns>The node hash.</returns>
    public static byte[] NodeHash(ReadOnlySpan<byte> left, ReadOnlySpan<byte> right)
    {
        Span<byte> buf = stackalloc byte[1 + 32 + 32];
        buf[0] = 0x01;
        left.CopyTo(buf[1..]);
        right.CopyTo(buf[33..]);
        return SHA256.HashData(buf);
    }

    /// <summary>Computes the root over entry hashes.</summary>
    /// <param name="entryHashes">The entry hashes in ledger order.</param>
    /// <returns>The 32-byte root.</returns>
    public static byte[] ComputeRoot(IReadOnlyList<byte[]> entryHashes)
    {
        ArgumentNullException.ThrowIfNull(entryHashes);
        if (entryHashes.Count == 0)
        {
            return SHA256.HashData(ReadOnlySpan<byte>.Empty);
        }

        // Bottom-up, pairing left to right and promoting an odd last node: the same shape as the recursive split.
        var level = new byte[entryHashes.Count][];
        for (int i = 0; i < level.Length; i++)
        {
            level[i] = LeafHash(entryHashes[i]);
        }

        return ReduceLevels(level);
    }

    /// <summary>Builds the inclusion path (audit path) of leaf <paramref name="index"/>, leaf side first.</summary>
    /// <param name="entryHashes">The entry hashes in ledger order.</param>
    /// <param name="index">The leaf index.</param>
    /// <returns>The sibling hashes from the leaf up.</returns>
    public static IReadOnlyList<byte[]> ComputePath(IReadOnlyList<byte[]> entryHashes, int index)
    {
        ArgumentNullException.ThrowIfNull(entryHashes);
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, entryHashes.Count);
        var level = new byte[entryHashes.Count][];
        for (int i = 0; i < level.Length; i++)
        {
            level[i] = LeafHash(entryHashes[i]);
        }

        var path = new List<byte[]>();
        int idx = index;
        while (level.Length > 1)
        {
            int sibling = idx ^ 1;
            if (sibling < level.Length)
            {
                path.Add(level[sibling]);
            }

            level = NextLevel(level);
            idx >>= 1;
        }

        return path;
    }

    /// <summary>Verifies that <paramref name="entryHash"/> is leaf <paramref name="index"/> of a tree of <paramref name="treeSize"/> leaves with root <paramref name="root"/>.</summary>
    /// <param name="root">The expected root.</param>
    /// <param name="entryHash">The entry hash.</param>
    /// <param name="index">The leaf index.</param>
    /// <param name="treeSize">The number of leaves.</param>
    /// <param name="path">The audit path from <see cref="ComputePath"/>.</param>
    /// <returns><see langword="true"/> when the proof holds.</returns>
    public static bool VerifyPath(ReadOnlySpan<byte> root, ReadOnlySpan<byte> entryHash, long index, long treeSize, IReadOnlyList<byte[]> path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (index < 0 || index >= treeSize)
        {
            return false;
        }

        byte[] node = LeafHash(entryHash);
        long idx = index;
        long size = treeSize;
        int used = 0;
        while (size > 1)
        {
            long sibling = idx ^ 1;
            if (sibling < size)
            {
                if (used >= path.Count || path[used].Length != 32)
                {
                    return false;
                }

                node = (idx & 1) == 0 ? NodeHash(node, path[used]) : NodeHash(path[used], node);
                used++;
            }

            idx >>= 1;
            size = (size + 1) >> 1;
        }

        return used == path.Count && node.AsSpan().SequenceEqual(root);
    }

    private static byte[] ReduceLevels(byte[][] level)
    {
        while (level.Length > 1)
        {
            level = NextLevel(level);
        }

        return level[0];
    }

    private static byte[][] NextLevel(byte[][] level)
    {
        var next = new byte[(level.Length + 1) / 2][];
        for (int i = 0; i < next.Length; i++)
        {
            int l = 2 * i;
            next[i] = l + 1 < level.Length ? NodeHash(level[l], level[l + 1]) : level[l];
        }

        return next;
    }
}
