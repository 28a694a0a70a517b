using NearML.TorchSharp;
using TorchSharp;

namespace NearML.TorchSharp.Tests;

[TestClass]
public sealed class NativeLoadTests
{
    [TestMethod]
    public void EnsureLoaded_Where_LibStdCxx_Lacks_GLIBCXX_3_4_32_Throws_One_Typed_Error_Naming_It_And_The_Distributions_That_Work()
    {
        var libstdcxx = TorchSharpRuntime.FindLibStdCxx();
        Assert.IsNotNull(libstdcxx, "no libstdc++ found");
        if (TorchSharpRuntime.LibStdCxxProvidesRequiredVersion(libstdcxx))
        {
            // Debian 13 root (or a newer host): the same call loads LibTorch.
            TorchSharpRuntime.EnsureLoaded();
            Assert.IsTrue(TorchSharpRuntime.IsLoaded);
            return;
        }

        Assert.IsFalse(TorchEnv.InRoot, "the Debian 13 root's libstdc++ must provide GLIBCXX_3.4.32");
        var e = Assert.ThrowsExactly<TorchSharpNativeLoadException>(TorchSharpRuntime.EnsureLoaded);
        Assert.AreEqual("GLIBCXX_3.4.32", e.MissingSymbolVersion);
        Assert.AreEqual(libstdcxx, e.LibStdCxxPath);
        StringAssert.Contains(e.Message, "GLIBCXX_3.4.32");
        StringAssert.Contains(e.Message, "Debian 13");
        StringAssert.Contains(e.Message, "Ubuntu 24.04");
        StringAssert.Contains(e.Message, "Debian 12");

        // the same typed error every time, never a TypeInitializationException on the second call
        var again = Assert.ThrowsExactly<TorchSharpNativeLoadException>(TorchSharpRuntime.EnsureLoaded);
        Assert.AreSame(e, again);
        Assert.ThrowsExactly<TorchSharpNativeLoadException>(() => TorchDevices.Resolve("cpu"));
    }

    [TestMethod]
    public void Diagnose_Reads_The_Missing_Version_From_The_Loader_Message()
    {
        var dlerror = "/app/libtorch_cpu.so: /lib/x86_64-linux-gnu/libstdc++.so.6: version `GLIBCXX_3.4.32' not found (required by /app/libtorch_cpu.so)";
        var e = TorchSharpRuntime.Diagnose(new TypeInitializationException("TorchSharp.torch", new DllNotFoundException("LibTorchSharp")), null, [dlerror]);
        Assert.AreEqual("GLIBCXX_3.4.32", e.MissingSymbolVersion);
        StringAssert.Contains(e.Message, "Debian 13");
        Assert.IsInstanceOfType<TypeInitializationException>(e.InnerException);
    }

    [TestMethod]
    public void Diagnose_Inspects_The_LibStdCxx_File_When_The_Message_Does_Not_Say()
    {
        var old = Path.GetTempFileName();
        var recent = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(old, "\0GLIBCXX_3.4.30\0GLIBCXX_3.4.31\0"u8.ToArray());
            File.WriteAllBytes(recent, "\0GLIBCXX_3.4.31\0GLIBCXX_3.4.32\0GLIBCXX_3.4.33\0"u8.ToArray());
            Assert.IsFalse(TorchSharpRuntime.LibStdCxxProvidesRequiredVersion(old));
            Assert.IsTrue(TorchSharpRuntime.LibStdCxxProvidesRequiredVersion(recent));

            var cause = new DllNotFoundException("Unable to load shared library 'LibTorchSharp'");
            var e = TorchSharpRuntime.Diagnose(cause, old, []);
            Assert.AreEqual("GLIBCXX_3.4.32", e.MissingSymbolVersion);
            StringAssert.Contains(e.Message, old);

            // another cause (natives not deployed): no libstdc++ blame, the loader's text and what to reference
            var other = TorchSharpRuntime.Diagnose(cause, recent, []);
            Assert.IsNull(other.MissingSymbolVersion);
            StringAssert.Contains(other.Message, "Unable to load shared library");
            StringAssert.Contains(other.Message, "TorchSharp-cpu");
        }
        finally
        {
            File.Delete(old);
            File.Delete(recent);
        }
    }

    [TestMethod]
    public void Device_Text_Is_Parsed_Strictly()
    {
        Assert.AreEqual((DeviceType.CPU, 0), TorchDevices.Parse("cpu"));
        Assert.AreEqual((DeviceType.CUDA, 0), TorchDevices.Parse("cuda"));
        Assert.AreEqual((DeviceType.CUDA, 3), TorchDevices.Parse("cuda:3"));
        foreach (var bad in new[] { "", "CPU", "gpu", "cuda:", "cuda:-1", "cuda:1x", "cuda: 1", "cuda:99999", "mps" })
        {
            Assert.ThrowsExactly<ArgumentException>(() => TorchDevices.Parse(bad), bad);
        }
    }

    [TestMethod]
    public void OpenMP_Wait_Policy_Is_Set_In_The_Native_Environment_Only_Before_LibTorch_Loads()
    {
        Assert.ThrowsExactly<ArgumentException>(() => TorchSharpRuntime.TrySetOpenMPWaitPolicy("LAZY"));
        var before = TorchSharpRuntime.OpenMPWaitPolicy;
        var effective = TorchSharpRuntime.TrySetOpenMPWaitPolicy("PASSIVE");
        var now = TorchSharpRuntime.OpenMPWaitPolicy;
        Assert.AreEqual(before ?? "PASSIVE", now, "an existing setting is never overwritten");
        Assert.AreEqual(!TorchSharpRuntime.IsLoaded && now == "PASSIVE", effective);
    }
}
