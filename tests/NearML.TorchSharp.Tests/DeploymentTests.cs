using System.Runtime.InteropServices;

namespace NearML.TorchSharp.Tests;

/// <summary>
/// The trimmed deployment (docs/torchsharp.md, "Deployment"): TorchSharp-cpu carries LibTorch for linux-x64, win-x64,
/// win-arm64 and osx-arm64 (a 1 GB bin/ without a runtime identifier). Built or published for one runtime identifier —
/// as this test project is — the output holds that platform's natives only, flattened next to the assemblies.
/// </summary>
[TestClass]
public sealed class DeploymentTests
{
    [TestMethod]
    public void A_Build_For_One_Runtime_Identifier_Carries_Only_That_Platforms_LibTorch()
    {
        var dir = AppContext.BaseDirectory;
        var (torchCpu, torchSharp) = OperatingSystem.IsWindows() ? ("torch_cpu.dll", "LibTorchSharp.dll")
            : OperatingSystem.IsMacOS() ? ("libtorch_cpu.dylib", "libLibTorchSharp.dylib")
            : ("libtorch_cpu.so", "libLibTorchSharp.so");
        Assert.IsTrue(File.Exists(Path.Combine(dir, torchCpu)), $"{torchCpu} is next to the test assembly ({RuntimeInformation.RuntimeIdentifier})");
        Assert.IsTrue(File.Exists(Path.Combine(dir, torchSharp)));
        Assert.IsFalse(Directory.Exists(Path.Combine(dir, "runtimes")), "no runtimes/<rid>/native tree for other platforms");

        var foreign = Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories)
            .Where(f => f.EndsWith(".dylib", StringComparison.Ordinal) || (!OperatingSystem.IsWindows() && Path.GetFileName(f) is "torch_cpu.dll" or "LibTorchSharp.dll"))
            .ToList();
        Assert.AreEqual(0, foreign.Count, "other platforms' natives: " + string.Join(", ", foreign.Take(5)));

        // (a "cpu" or "cuda" folder, if present, is not build output: TorchSharp's loader copies natives there at run
        // time when its first load attempt fails; NearML's preflight check avoids that on a too-old libstdc++)
        var bytes = Directory.EnumerateFiles(dir, "*", SearchOption.TopDirectoryOnly).Sum(f => new FileInfo(f).Length);
        Assert.IsTrue(bytes < 700L << 20, $"the output is {bytes >> 20} MB; one platform's LibTorch is about 490 MB, all of them about 1 GB");
    }
}
