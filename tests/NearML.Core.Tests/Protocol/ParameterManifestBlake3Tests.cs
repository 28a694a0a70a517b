using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using NearML.Core.Protocol;

namespace NearML.Core.Tests.Protocol;

/// <summary>
/// Protocol 3.0's chunk hash is BLAKE3: every chunk hash of a <see cref="ParameterManifest"/> equals what Debian's
/// <c>b3sum</c> (the BLAKE3 team's Rust implementation) prints for the same bytes, and the root recomputed from those
/// outside hashes by the formula in docs/protocol.md equals the manifest's root.
/// </summary>
[TestClass]
public sealed class ParameterManifestBlake3Tests
{
    [TestMethod]
    [DataRow(3_000, 4096)]          // 12,000 bytes: chunks of 4 KiB (four BLAKE3 1 KiB chunks each) and a short last chunk
    [DataRow(600_000, 1 << 20)]     // 2.4 MB: the default 1 MiB chunks (a deep BLAKE3 tree) and a short last chunk
    [DataRow(1, 4096)]              // one float: a 4-byte chunk
    public void Chunk_hashes_equal_b3sum_and_the_root_follows_the_documented_formula(int floats, int chunkSize)
    {
        var b3sum = FindB3sum() ?? throw new AssertInconclusiveException("b3sum is not installed (apt-get install b3sum; .ci/run installs it)");
        var set = ParameterSet.Create(("w", [floats]));
        var rng = new Random(floats);
        for (var i = 0; i < set.Length; i++)
        {
            set.Data[i] = (float)((rng.NextDouble() * 2) - 1);
        }

        var manifest = ParameterManifest.Compute(set, chunkSize);
        var bytes = MemoryMarshal.AsBytes(set.Buffer.AsSpan()).ToArray();
        var directory = Directory.CreateTempSubdirectory("nearml-b3sum-");
        try
        {
            var files = new List<string>();
            for (var i = 0; i < manifest.ChunkCount; i++)
            {
                var start = i * chunkSize;
                var file = Path.Combine(directory.FullName, $"chunk{i}");
                File.WriteAllBytes(file, bytes.AsSpan(start, Math.Min(chunkSize, bytes.Length - start)).ToArray());
                files.Add(file);
            }

            var outside = RunB3sum(b3sum, files);
            Assert.HasCount(manifest.ChunkCount, outside);
            for (var i = 0; i < manifest.ChunkCount; i++)
            {
                Assert.AreEqual(outside[i], Convert.ToHexStringLower(manifest.GetChunkHash(i)), $"chunk {i}");
            }

            // root = SHA-256("NearML.ParameterManifest.v2\0" || total_bytes u64 LE || chunk_size u32 LE || h_0 || ... || h_{n-1})
            var preimage = new List<byte>("NearML.ParameterManifest.v2\0"u8.ToArray());
            var sizes = new byte[12];
            BinaryPrimitives.WriteUInt64LittleEndian(sizes, (ulong)bytes.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(sizes.AsSpan(8), (uint)chunkSize);
            preimage.AddRange(sizes);
            foreach (var hex in outside)
            {
                preimage.AddRange(Convert.FromHexString(hex));
            }

            CollectionAssert.AreEqual(SHA256.HashData([.. preimage]), manifest.GetRoot());
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [TestMethod]
    public void HashChunk_refuses_a_short_output_and_matches_the_manifest()
    {
        var data = new byte[5000];
        new Random(3).NextBytes(data);
        var hash = new byte[32];
        ParameterManifest.HashChunk(data, hash);
        CollectionAssert.AreEqual(global::Blake3.Hasher.Hash(data).AsSpan().ToArray(), hash);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ParameterManifest.HashChunk(data, new byte[31]));
    }

    private static string? FindB3sum() =>
        new[] { "/usr/bin/b3sum", "/usr/local/bin/b3sum" }.FirstOrDefault(File.Exists);

    private static List<string> RunB3sum(string b3sum, List<string> files)
    {
        var start = new ProcessStartInfo(b3sum) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add("--no-names");
        foreach (var f in files)
        {
            start.ArgumentList.Add(f);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEnd();
        var error = process.StandardError.ReadToEnd();
        Assert.IsTrue(process.WaitForExit(TimeSpan.FromSeconds(30)), "b3sum finishes");
        Assert.AreEqual(0, process.ExitCode, error);
        return [.. output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim())];
    }
}
