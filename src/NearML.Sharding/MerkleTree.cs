using System.Security.Cryptography;

namespace NearML.Sharding;

/// <summary>
/// A Merkle tree over SHA-256 exactly as RFC 6962 §2.1 (Certificate Transparency) defines it, with domain separation
/// between leaves and interior nodes: <c>leaf = SHA-256(0x00 ‖ data)</c>, <c>node = SHA-256(0x01 ‖ left ‖ right)</c>;
/// a list of <c>n &gt; 1</c> leaves splits at the largest power of two <c>k &lt; n</c> (no leaf duplication, so
/// lists of different lengths never share a root). The root of an empty list is <c>SHA-256("")</c>.
/// </summary>
public static class MerkleTree
{
    /// <summary>The size of every hash (bytes).</summary>
    public const int HashSize = 32;

    /// <summary>Hashes one leaf: <c>SHA-256(0x00 ‖ data)</c>.</summary>
    /// <param name="data">The leaf data.</param>
    /// <returns>The 32-byte leaf hash.</returns>
    public static byte[] HashLeaf(ReadOnlySpan<byte> data)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        h.AppendData([0x00]);
        h.AppendData(data);
        return h.GetHashAndReset();
    }

    /// <summary>Hashes an interior node: <c>SHA-256(0x01 ‖ left ‖ right)</c>.</summary>
    /// <param name="left">The left child hash.</param>
    /// <param name="right">The right child hash.</param>
    /// <returns>The 32-byte node hash.</returns>
    public static byte[] HashNode(ReadOnlySpan<byte> left, ReadOnlySpan<byte> right)
    {
        Span<byte> buffer = stackalloc byte[1 + (2 * HashSize)];
        if (left.Length != HashSize || right.Length != HashSize)
        {
            throw new ArgumentException($"Child hashes must be {HashSize} bytes.");
        }

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

        var hashes = leaves.Select(l => HashLeaf(l)).ToArray();
        return Root(hashes, 0, hashes.Length);
    }

    /// <summary>Computes the audit path (RFC 6962 §2.1.1) proving leaf <paramref name="index"/> is in the tree.</summary>
    /// <param name="leaves">The leaves' data, in order.</param>
    /// <param name="index">The leaf.</param>
    /// <returns>The sibling hashes, from the leaf's level up.</returns>
    public static IReadOnlyList<byte[]> GetProof(IReadOnlyList<byte[]> leaves, int index)
    {
        ArgumentNullException.ThrowIfNull(leaves);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)leaves.Count, nameof(index));
        var hashes = leaves.Select(l => HashLeaf(l)).ToArray();
        var path = new List<byte[]>();
        Path(hashes, 0, hashes.Length, index, path);
        return path;
    }

    /// <summary>Verifies an audit path from <see cref="GetProof"/>.</summary>
    /// <param name="root">The expected root.</param>
    /// <param name="leafData">The leaf's data.</param>
    /// <param name="index">The leaf's index.</param>
    /// <param name="leafCount">The number of leaves in the tree.</param>
    /// <param name="proof">The audit path.</param>
    /// <returns><see langword="true"/> when the path leads from the leaf to <paramref name="root"/>.</returns>
    public static bool VerifyProof(ReadOnlySpan<byte> root, ReadOnlySpan<byte> leafData, int index, int leafCount, IReadOnlyList<byte[]> proof)
    {
        ArgumentNullException.ThrowIfNull(proof);
        if (index < 0 || index >= leafCount)
        {
            return false;
        }

        // RFC 9162 §2.1.3.2 verification algorithm.
        long fn = index;
        long sn = leafCount - 1;
        var r = HashLeaf(leafData);
        foreach (var p in proof)
        {
            if (p is null || p.Length != HashSize || sn == 0)
            {
                return false;
            }

            if ((fn & 1) == 1 || fn == sn)
            {
                r = HashNode(p, r);
                if ((fn & 1) == 0)
                {
                    while ((fn & 1) == 0 && fn != 0)
                    {
                        fn >>= 1;
                        sn >>= 1;
                    }
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

    private static byte[] Root(byte[][] hashes, int start, int count)
    {
        if (count == 1)
        {
            return hashes[start];
        }

        var k = LargestPowerOfTwoBelow(count);
        return HashNode(Root(hashes, start, k), Root(hashes, start + k, count - k));
    }

    private static void Path(byte[][] hashes, int start, int count, int index, List<byte[]> path)
    {
        if (count == 1)
        {
            return;
        }

        var k = LargestPowerOfTwoBelow(count);
        if (index < k)
        {
            Path(hashes, start, k, index, path);
            path.Add(Root(hashes, start + k, count - k));
        }
        else
        {
            Path(hashes, start + k, count - k, index - k, path);
            path.Add(Root(hashes, start, k));
        }
    }

    private static int LargestPowerOfTwoBelow(int n)
    {
        var k = 1;
        while (k << 1 < n)
        {
            k <<= 1;
        }

        return k;
    }
}
