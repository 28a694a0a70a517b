using System.Buffers.Binary;
using NearML.Samples.Plots;

namespace NearML.Cli.Tests;

/// <summary>The samples' PNG charts: written, and valid PNG files of the stated size (the pixels are not compared).</summary>
[TestClass]
public sealed class PlotTests
{
    private static readonly string[] Files = [TrainingCharts.LossAccuracyFile, TrainingCharts.BytesFile, TrainingCharts.ContributionsFile];

    [TestMethod]
    public void TrainingCharts_writes_three_png_files_of_the_stated_size()
    {
        var directory = Path.Combine(Path.GetTempPath(), "nearml-plots-" + Guid.NewGuid().ToString("N"));
        try
        {
            RoundPoint[] rounds = [new(0, 2.1, null), new(1, 1.2, 0.61), new(2, double.NaN, 0.7), new(3, 0.8, 0.74)];
            BytesPoint[] bytes = [new(0, 1e5, 4e7), new(1, 2e5, 8e7), new(2, 3e5, 1.2e8), new(3, 4e5, 1.6e8)];
            WorkerContribution[] contributions = [new("worker-1", 4), new("worker-2", 3)];
            var written = TrainingCharts.Write(directory, "test run", "round", rounds, bytes, "DiLoCo int8", contributions, "receipts");
            CollectionAssert.AreEqual(Files.Select(f => Path.Combine(directory, f)).ToArray(), written.ToArray());
            foreach (var path in written)
            {
                AssertPng(path, TrainingCharts.Width, TrainingCharts.Height);
            }

            // Empty series (a run with no completed round) still give valid charts, not an exception.
            var empty = TrainingCharts.Write(Path.Combine(directory, "empty"), "empty", "round", [], [], "none", [], "receipts");
            foreach (var path in empty)
            {
                AssertPng(path, TrainingCharts.Width, TrainingCharts.Height);
            }
        }
        finally
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
    }

    [TestMethod]
    public void AssertPng_refuses_a_truncated_file_and_a_wrong_size()
    {
        var directory = Path.Combine(Path.GetTempPath(), "nearml-plots-" + Guid.NewGuid().ToString("N"));
        try
        {
            var path = TrainingCharts.Write(directory, "t", "round", [new(0, 1, 0.5)], [new(0, 1, 10)], "x", [new("w", 1)], "r")[0];
            Assert.ThrowsExactly<AssertFailedException>(() => AssertPng(path, TrainingCharts.Width + 1, TrainingCharts.Height));
            var bytes = File.ReadAllBytes(path);
            File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
            Assert.ThrowsExactly<AssertFailedException>(() => AssertPng(path, TrainingCharts.Width, TrainingCharts.Height));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>A real Simulate run writes the charts to <c>--plots DIR</c> and names them in its output.</summary>
    [TestMethod]
    [TestCategory("Process")]
    [Timeout(240_000, CooperativeCancellation = true)]
    public async Task Simulate_writes_its_charts_to_the_plots_folder()
    {
        if (!File.Exists("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz") && !File.Exists("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte"))
        {
            Assert.Inconclusive("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)");
        }

        var directory = Path.Combine(Path.GetTempPath(), "nearml-plots-" + Guid.NewGuid().ToString("N"));
        try
        {
            var r = await CliProcess.SampleAsync("Simulate", "--workers", "2", "--steps", "30", "--h", "10", "--hidden", "16", "--plots", directory);
            Assert.AreEqual(0, r.ExitCode, r.ToString());
            StringAssert.Contains(r.Stdout, "Charts:");
            foreach (var f in Files)
            {
                var path = Path.Combine(directory, f);
                StringAssert.Contains(r.Stdout.Replace("\n", string.Empty, StringComparison.Ordinal), path);
                AssertPng(path, TrainingCharts.Width, TrainingCharts.Height);
            }
        }
        finally
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
    }

    /// <summary>Checks the PNG signature, that the first chunk is IHDR with the given size, and that the file ends with IEND.</summary>
    internal static void AssertPng(string path, int width, int height)
    {
        Assert.IsTrue(File.Exists(path), $"{path} was not written");
        var bytes = File.ReadAllBytes(path);
        Assert.IsGreaterThan(57, bytes.Length, $"{path}: {bytes.Length} bytes is too short for a PNG");
        CollectionAssert.AreEqual(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, bytes[..8], $"{path}: not a PNG signature");
        Assert.AreEqual(13u, BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(8)), $"{path}: IHDR length");
        Assert.AreEqual("IHDR", System.Text.Encoding.ASCII.GetString(bytes, 12, 4), $"{path}: first chunk");
        Assert.AreEqual(width, (int)BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(16)), $"{path}: width");
        Assert.AreEqual(height, (int)BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(20)), $"{path}: height");
        Assert.AreEqual("IEND", System.Text.Encoding.ASCII.GetString(bytes, bytes.Length - 8, 4), $"{path}: does not end with IEND (truncated?)");
    }
}
