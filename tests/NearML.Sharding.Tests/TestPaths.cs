namespace NearML.Sharding.Tests;

internal static class TestPaths
{
    /// <summary>The shared folder: a sibling named <c>shared</c> of the repository root (found by walking up to NearML.sln).</summary>
    public static string? FindShared()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "NearML.sln")))
            {
                var shared = Path.Combine(dir.Parent?.FullName ?? dir.FullName, "shared");
                return Directory.Exists(shared) ? shared : null;
            }
        }

        return null;
    }

    public static string RequireShared(string relative)
    {
        var shared = FindShared();
        var path = shared is null ? null : Path.Combine(shared, relative);
        if (path is null || !File.Exists(path))
        {
            Assert.Inconclusive($"Shared file '{relative}' is not available (no 'shared' folder next to the repository root).");
        }

        return path!;
    }

    public static string NewDirectory(TestContext context, string prefix)
    {
        var dir = Path.Combine(context.TestRunDirectory ?? Path.GetTempPath(), prefix + "-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    public static void WriteIdx(string path, int[] dims, byte[] data)
    {
        using var fs = File.Create(path);
        Span<byte> header = stackalloc byte[4 + (4 * dims.Length)];
        header[2] = 0x08;
        header[3] = (byte)dims.Length;
        for (var i = 0; i < dims.Length; i++)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header[(4 + (4 * i))..], dims[i]);
        }

        fs.Write(header);
        fs.Write(data);
    }
}
