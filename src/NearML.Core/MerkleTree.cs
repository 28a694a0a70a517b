using System.Security.Cryptography;

namespace NearML.Core;

/// <summary>
/// The one Merkle tree of NearML (data-shard manifests and the contribution ledger both use it): SHA-256 exactly as
/// RFC 6962 §2.1 / RFC 9162 §2.1 define it, with domain separation between leaves and interior nodes —
/// <c>leaf = SHA-256(0x00 ‖ data)</c>, <c>node = SHA-256(0x01 ‖ left ‖ right)</c>; a list of <c>n &gt; 1</c> leaves
/// splits at the largest power of two <c>k &lt; n</c> (no leaf duplication, so lists of different lengths never share a
/// root). The root of an empty list is <c>SHA-256("")</c>.
/// </summary>
/// <remarks>
/// Roots and audit paths are computed bottom-up, pairing left to right and promoting an odd last node, which builds the
/// same tree as the recursive split in O(n) hashes. Audit paths list sibling hashes from the leaf's level up and verify
/// with RFC 9162 §2.1.3.2's algorithm.
/// </remarks>
public static class MerkleTree
{
    /// <summary>The size of every hash (bytes).</summary>
    public const int HashSize = 32;

    /// <summary>Hashes one leaf: <c>SHA-256(0x00 ‖ data)</c>.</summary>
    /// <param name="data">The leaf data.</param>
    /// <returns>The 32-byte leaf hash.</returns>
    public static byte[] HashLeaf(ReadOnlySpan<byte> data)
    {
        if (data.Length <= 256)
        {
            Span<byte> buffer = stackalloc byte[1 + data.Length];
            buffer[0] = 0x00;
            data.CopyTo(buffer[1..]);
            return SHA256.HashData(buffer);
        }

        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        h.AppendData([0x00]);
        h.AppendData(data);
        return h.GetHashAndReset();
    }

    /// <summary>Hashes an interior node: <c>SHA-256(0x01 ‖ left ‖ right)</c>.</summary>
    /// <param name="left">The left child hash.</param>
    /// <param name="right">The right child hash.</param>
    /// <returns>The 32-byte node hash.</returns>
    /// <exception cref="ArgumentException">A child is not <see cref="HashSize"/> bytes.</exception>
    public static byte[] HashNode(ReadOnlySpan<byte> left, ReadOnlySpan<byte> right)
    {
        if (left.Length != HashSize || right.Length != HashSize)
        {
            throw new ArgumentException($"Child hashes must be {HashSize} bytes (got {left.Length} and {right.Length}).");
        }

        Span<byte> buffer = stackalloc byte[1 + (2 * HashSize)];
        buffer[0] = 0x01;
        left.CopyTo(buffer[1..]);
        right.CopyTo(buffer[(1 + HashSize)..]);
        return SHA256.HashData(buffer);
    }

    /// <summary>Computes the root over leaf data.</summary>
    /// <param name="leaves">The leaves' data, in order.</param>
    /// <returns>The 32-byte root.</returns>
    public static byte[] ComputeRoot(IReadOnlyList<byte[]> leaves)
    {
        ArgumentNullException.ThrowIfNull(leaves);
        if (leaves.Count == 0)
        {
            return SHA256.HashData(ReadOnlySpan<byte>.Empty);
        }

        byte[][] level = LeafLevel(leaves);
        while (level.Length > 1)
        {
            level = NextLevel(level);
        }

        return level[0];
    }

    /// <summary>Computes the audit path (RFC 6962 §2.1.1) proving leaf <paramref name="index"/> is in the tree.</summary>
    /// <param name="leaves">The leaves' data, in order.</param>
    /// <param name="index">The leaf.</param>
    /// <returns>The sibling hashes, from the leaf's level up.</returns>
    public static IReadOnlyList<byte[]> GetProof(IReadOnlyList<byte[]> leaves, int index)
    {
        ArgumentNullException.ThrowIfNull(leaves);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)leaves.Count, nameof(index));
        byte[][] level = LeafLevel(leaves);
        var path = new List<byte[]>();
        int i = index;
        while (level.Length > 1)
        {
            int sibling = i ^ 1;
            if (sibling < level.Length)
            {
                path.Add(level[sibling]);
            }

            level = NextLevel(level);
            i >>= 1;
        }

        return path;
    }

    /// <summary>Verifies an audit path from <see cref="GetProof"/> (RFC 9162 §2.1.3.2).</summary>
    /// <param name="root">The expected root.</param>
    /// <param name="leafData">The leaf's data.</param>
    /// <param name="index">The leaf's index.</param>
    /// <param name="leafCount">The number of leaves in the tree.</param>
    /// <param name="proof">The audit path.</param>
    /// <returns><see langword="true"/> when the path leads from the leaf to <paramref name="root"/>; false for any
    /// malformed path (wrong length, wrong hash size, index out of range).</returns>
    public static bool VerifyProof(ReadOnlySpan<byte> root, ReadOnlySpan<byte> leafData, long index, long leafCount, IReadOnlyList<byte[]> proof)
    {
        ArgumentNullException.ThrowIfNull(proof);
        if (index < 0 || index >= leafCount || root.Length != HashSize)
        {
            return false;
        }

        long fn = index;
        long sn = leafCount - 1;
        byte[] r = HashLeaf(leafData);
        foreach (byte[] p in proof)
        {
            if (p is null || p.Length != HashSize || sn == 0)
            {
                return false;
            }

            if ((fn & 1) == 1 || fn == sn)
            {
                r = HashNode(p, r);
                while ((fn & 1) == 0 && fn != 0)
                {
                    fn >>= 1;
                    sn >>= 1;
                }
            }
            else
            {
                r = HashNode(r, p);
            }

            fn >>= 1;
            sn >>= 1;
        }

        return sn == 0 && CryptographicOperations.FixedTimeEquals(r, root);
    }

    private static byte[][] LeafLevel(IReadOnlyList<byte[]> leaves)
    {
        var level = new byte[leaves.Count][];
        for (int i = 0; i < level.Length; i++)
        {
            level[i] = HashLeaf(leaves[i] ?? throw new ArgumentException($"Leaf {i} is null.", nameof(leaves)));
        }

        return level;
    }

    private static byte[][] NextLevel(byte[][] level)
    {
        var next = new byte[(level.Length + 1) / 2][];
        for (int i = 0; i < next.Length; i++)
        {
            int l = 2 * i;
            next[i] = l + 1 < level.Length ? HashNode(level[l], level[l + 1]) : level[l];
        }

        return next;
    }
}
