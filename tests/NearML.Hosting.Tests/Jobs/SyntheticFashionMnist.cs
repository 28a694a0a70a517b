using System.Buffers.Binary;

namespace NearML.Hosting.Tests.Jobs;

/// <summary>
/// Writes a small learnable stand-in for Fashion-MNIST (same four IDX file names and formats) into a folder, so the
/// tests do not depend on the Debian package: class c lights a horizontal band at rows 2c+4..2c+6, plus seeded noise.
/// </summary>
internal static class SyntheticFashionMnist
{
    public static string Write(string directory, int trainCount = 1200, int testCount = 300, int seed = 7)
    {
        Directory.CreateDirectory(directory);
        var rng = new Random(seed);
        WriteSplit(directory, "train", trainCount, rng);
        WriteSplit(directory, "t10k", testCount, rng);
        return directory;
    }

    public static string CreateTemp(int trainCount = 1200, int testCount = 300, int seed = 7) =>
        Write(Path.Combine(Path.GetTempPath(), "nearml-synth-" + Guid.NewGuid().ToString("N")), trainCount, testCount, seed);

    private static void WriteSplit(string directory, string prefix, int count, Random rng)
    {
        var pixels = new byte[count * 784];
        var labels = new byte[count];
        for (var i = 0; i < count; i++)
        {
            var c = rng.Next(10);
            labels[i] = (byte)c;
            for (var p = 0; p < 784; p++)
            {
                var row = p / 28;
                var on = row >= (2 * c) + 4 && row <= (2 * c) + 6;
                pixels[(i * 784) + p] = (byte)Math.Clamp((on ? 200 : 20) + rng.Next(-20, 21), 0, 255);
            }
        }

        WriteIdx(Path.Combine(directory, $"{prefix}-images-idx3-ubyte"), [count, 28, 28], pixels);
        WriteIdx(Path.Combine(directory, $"{prefix}-labels-idx1-ubyte"), [count], labels);
    }

    private static void WriteIdx(string path, int[] dims, byte[] data)
    {
        using var fs = File.Create(path);
        Span<byte> header = stackalloc byte[4 + (4 * dims.Length)];
        header[2] = 0x08;
        header[3] = (byte)dims.Length;
        for (var i = 0; i < dims.Length; i++)
        {
            BinaryPrimitives.WriteInt32BigEndian(header[(4 + (4 * i))..], dims[i]);
        }

        fs.Write(header);
        fs.Write(data);
    }
}
