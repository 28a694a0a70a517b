using System.Security.Cryptography;
using NearML.Core;

namespace NearML.Core.Tests;

[TestClass]
public sealed class MerkleTreeTests
{
    // RFC 6962 / Certificate Transparency reference leaves and tree heads for sizes 0..8.
    private static readonly byte[][] Leaves =
        new[] { "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f" }
        .Select(Convert.FromHexString).ToArray();

    private static readonly string[] Roots =
    [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    [TestMethod]
    public void Roots_match_the_RFC_6962_reference_vectors()
    {
        for (var n = 0; n <= 8; n++)
        {
            Assert.AreEqual(Roots[n], Convert.ToHexStringLower(MerkleTree.ComputeRoot(Leaves[..n])), $"size {n}");
        }
    }

    [TestMethod]
    public void Proofs_match_the_reference_audit_paths()
    {
        CollectionAssert.AreEqual(
            new[] { "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7", "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4" },
            MerkleTree.GetProof(Leaves, 0).Select(Convert.ToHexStringLower).ToArray());
        CollectionAssert.AreEqual(
            new[] { "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b", "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0", "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7" },
            MerkleTree.GetProof(Leaves, 5).Select(Convert.ToHexStringLower).ToArray());
    }

    [TestMethod]
    public void Every_proof_verifies_and_tampering_fails()
    {
        for (var n = 1; n <= 21; n++)
        {
            var leaves = Enumerable.Range(0, n).Select(i => new[] { (byte)i, (byte)(i * 7) }).ToArray();
            var root = MerkleTree.ComputeRoot(leaves);
            for (var i = 0; i < n; i++)
            {
                var proof = MerkleTree.GetProof(leaves, i);
                Assert.IsTrue(MerkleTree.VerifyProof(root, leaves[i], i, n, proof), $"n={n} i={i}");
                Assert.IsFalse(MerkleTree.VerifyProof(root, [0xFF, 0xFF], i, n, proof), $"wrong leaf n={n} i={i}");
                if (n > 1)
                {
                    Assert.IsFalse(MerkleTree.VerifyProof(root, leaves[i], (i + 1) % n, n, proof), $"wrong index n={n} i={i}");
                    var bad = proof.Select(p => (byte[])p.Clone()).ToArray();
                    bad[^1][0] ^= 1;
                    Assert.IsFalse(MerkleTree.VerifyProof(root, leaves[i], i, n, bad), $"tampered path n={n} i={i}");
                }
            }
        }
    }

    [TestMethod]
    public void Leaf_and_node_hashes_are_domain_separated()
    {
        var a = MerkleTree.HashLeaf([1]);
        var b = MerkleTree.HashLeaf([2]);
        var node = MerkleTree.HashNode(a, b);
        CollectionAssert.AreNotEqual(node, MerkleTree.HashLeaf([.. a, .. b]), "a leaf holding two hashes is not their node");
        CollectionAssert.AreNotEqual(node, MerkleTree.HashLeaf([0x01, .. a, .. b]));
    }
    [TestMethod]
    public void The_bottom_up_tree_is_the_recursive_RFC_6962_tree_for_every_size_up_to_130()
    {
        for (var n = 0; n <= 130; n++)
        {
            var leaves = Enumerable.Range(0, n).Select(i => SHA256.HashData(BitConverter.GetBytes(i))).ToArray();
            byte[] root = MerkleTree.ComputeRoot(leaves);
            CollectionAssert.AreEqual(ReferenceRoot(leaves), root, $"size {n}");
            for (var i = 0; i < n; i += 1 + (n / 9))
            {
                var proof = MerkleTree.GetProof(leaves, i);
                CollectionAssert.AreEqual(ReferencePath(leaves, i), proof.ToArray(), $"path n={n} i={i}");
                // A path can fit a neighbouring size too (leaf 0 of 3 and of 4 leaves share it): the leaf count must come from
                // an authenticated source (the manifest, the ledger head). A tree twice the size never fits.
                Assert.IsFalse(MerkleTree.VerifyProof(root, leaves[i], i, 2 * n, proof), $"wrong count n={n} i={i}");
                Assert.IsFalse(MerkleTree.VerifyProof(root, leaves[i], i, n, [.. proof, root]), $"extended path n={n} i={i}");
                if (proof.Count > 0)
                {
                    Assert.IsFalse(MerkleTree.VerifyProof(root, leaves[i], i, n, proof.Take(proof.Count - 1).ToArray()), $"truncated path n={n} i={i}");
                }
            }
        }
    }

    // RFC 6962 §2.1, written directly from the definition: MTH(D[0:n]) splits at the largest power of two k < n.
    private static byte[] ReferenceRoot(byte[][] d) => d.Length switch
    {
        0 => SHA256.HashData([]),
        1 => SHA256.HashData([0x00, .. d[0]]),
        _ => SHA256.HashData([0x01, .. ReferenceRoot(d[..Split(d.Length)]), .. ReferenceRoot(d[Split(d.Length)..])]),
    };

    // RFC 6962 §2.1.1: PATH(m, D[n]).
    private static byte[][] ReferencePath(byte[][] d, int m)
    {
        if (d.Length <= 1)
        {
            return [];
        }

        int k = Split(d.Length);
        return m < k ? [.. ReferencePath(d[..k], m), ReferenceRoot(d[k..])] : [.. ReferencePath(d[k..], m - k), ReferenceRoot(d[..k])];
    }

    private static int Split(int n)
    {
        int k = 1;
        while (k * 2 < n)
        {
            k *= 2;
        }

        return k;
    }
}
