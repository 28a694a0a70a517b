using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using TorchSharp;

namespace NearML.TorchSharp;

/// <summary>
/// Process-wide LibTorch concerns: loading the native library with one clear error when it cannot be loaded, the
/// compute thread count, and OpenMP's wait policy.
/// </summary>
/// <remarks>
/// <para>
/// <b>Linux versions.</b> TorchSharp 0.107 (LibTorch 2.10) is built against GCC 13's libstdc++ and needs the symbol
/// version <c>GLIBCXX_3.4.32</c>. Debian 13 (trixie), Ubuntu 24.04, Fedora 39+ and RHEL 10 have it; Debian 12
/// (bookworm) and Ubuntu 22.04 do not. Where it is missing, <see cref="EnsureLoaded"/> throws
/// <see cref="TorchSharpNativeLoadException"/> naming the missing version and the distributions that work, instead of
/// TorchSharp's raw <see cref="DllNotFoundException"/> or <see cref="TypeInitializationException"/>.
/// </para>
/// <para>
/// <b>Threads and OpenMP.</b> LibTorch's CPU kernels run on an OpenMP pool whose idle threads spin (busy-wait) for a
/// while after each parallel region (libgomp's default <c>OMP_WAIT_POLICY</c>). A worker that shares cores with its
/// host's other services then steals their CPU and itself collapses under contention. Set the thread count explicitly
/// (<see cref="SetThreads"/>; the model factory does it from <c>ModelBuildContext.Threads</c>) and, on shared machines,
/// set <c>OMP_WAIT_POLICY=PASSIVE</c> in the process environment before start, or call
/// <see cref="TrySetOpenMPWaitPolicy"/> before anything touches TorchSharp: libgomp reads the variable once, when
/// LibTorch is loaded.
/// </para>
/// </remarks>
public static partial class TorchSharpRuntime
{
    /// <summary>The libstdc++ symbol version TorchSharp 0.107's native library needs.</summary>
    public const string RequiredLibStdCxxVersion = "GLIBCXX_3.4.32";

    /// <summary>The Linux distributions whose libstdc++ provides <see cref="RequiredLibStdCxxVersion"/> (and those that do not).</summary>
    public const string SupportedLinuxText =
        "Debian 13 (trixie) or later, Ubuntu 24.04 or later, Fedora 39 or later, RHEL/AlmaLinux/Rocky 10; " +
        "Debian 12 (bookworm) and Ubuntu 22.04 lack it (GCC 13's libstdc++ is needed)";

    private static readonly Lock Gate = new();
    private static bool _loaded;
    private static TorchSharpNativeLoadException? _failure;

    /// <summary>Gets a value indicating whether LibTorch has been loaded successfully in this process.</summary>
    public static bool IsLoaded
    {
        get
        {
            lock (Gate)
            {
                return _loaded;
            }
        }
    }

    /// <summary>Loads LibTorch (once per process) or throws one clear error saying why it cannot be loaded.</summary>
    /// <exception cref="TorchSharpNativeLoadException">The native library cannot be loaded (the same instance on every call).</exception>
    public static void EnsureLoaded()
    {
        lock (Gate)
        {
            if (_loaded)
            {
                return;
            }

            if (_failure is not null)
            {
                throw _failure;
            }

            // Preflight: when the process already has a libstdc++ mapped, the dynamic linker reuses it for LibTorch, so
            // one that lacks the symbol version fails for certain. Saying so here also spares TorchSharp's fallback,
            // which copies ~480 MB of natives into a "cpu" folder next to the application before failing anyway.
            if (FindLoadedLibStdCxx() is { } loaded && !SafeProvidesRequiredVersion(loaded))
            {
                _failure = Diagnose(new DllNotFoundException($"{loaded} (already loaded in this process) does not define {RequiredLibStdCxxVersion}."), loaded, []);
                throw _failure;
            }

            try
            {
                torch.InitializeDeviceType(DeviceType.CPU);
                _loaded = true;
            }
            catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or NotSupportedException or EntryPointNotFoundException or BadImageFormatException or InvalidOperationException)
            {
                _failure = Diagnose(e, FindLibStdCxx(), NativeLoaderMessages());
                throw _failure;
            }
        }
    }

    /// <summary>Sets LibTorch's intra-op thread count (process-wide: every TorchSharp model in the process shares it).</summary>
    /// <param name="threads">The number of threads (≥ 1).</param>
    /// <exception cref="TorchSharpNativeLoadException">LibTorch cannot be loaded.</exception>
    public static void SetThreads(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(threads);
        EnsureLoaded();
        torch.set_num_threads(threads);
    }

    /// <summary>Gets LibTorch's intra-op thread count.</summary>
    /// <returns>The count.</returns>
    public static int GetThreads()
    {
        EnsureLoaded();
        return torch.get_num_threads();
    }

    /// <summary>
    /// Sets <c>OMP_WAIT_POLICY</c> in the native process environment (unless it is already set there), so that
    /// LibTorch's OpenMP threads sleep instead of spinning when idle. It only takes effect if LibTorch has not been
    /// loaded yet: call it first thing in <c>Main</c> (or set the variable in the service's environment).
    /// </summary>
    /// <param name="policy"><c>PASSIVE</c> (sleep when idle: for workers sharing cores) or <c>ACTIVE</c>.</param>
    /// <returns><see langword="true"/> if the policy now in the environment is <paramref name="policy"/> and LibTorch is
    /// not loaded yet (so it will take effect); <see langword="false"/> otherwise (already loaded, another value already
    /// set, or not Linux).</returns>
    public static bool TrySetOpenMPWaitPolicy(string policy = "PASSIVE")
    {
        ArgumentException.ThrowIfNullOrEmpty(policy);
        if (!string.Equals(policy, "PASSIVE", StringComparison.Ordinal) && !string.Equals(policy, "ACTIVE", StringComparison.Ordinal))
        {
            throw new ArgumentException($"OMP_WAIT_POLICY must be PASSIVE or ACTIVE, not '{policy}'.", nameof(policy));
        }

        if (!OperatingSystem.IsLinux())
        {
            return false;
        }

        lock (Gate)
        {
            _ = NativeEnvironment.setenv("OMP_WAIT_POLICY", policy, 0);
            return !_loaded && string.Equals(OpenMPWaitPolicy, policy, StringComparison.Ordinal);
        }
    }

    /// <summary>Gets <c>OMP_WAIT_POLICY</c> as the native process environment has it (what libgomp reads), or <see langword="null"/>.</summary>
    public static string? OpenMPWaitPolicy =>
        OperatingSystem.IsLinux() ? Marshal.PtrToStringUTF8(NativeEnvironment.getenv("OMP_WAIT_POLICY")) : Environment.GetEnvironmentVariable("OMP_WAIT_POLICY");

    /// <summary>Inspects a libstdc++ file for <see cref="RequiredLibStdCxxVersion"/>.</summary>
    /// <param name="path">The library's path.</param>
    /// <returns><see langword="true"/> if the file declares the symbol version.</returns>
    public static bool LibStdCxxProvidesRequiredVersion(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var needle = Encoding.ASCII.GetBytes(RequiredLibStdCxxVersion + "\0");
        var bytes = File.ReadAllBytes(path);
        return bytes.AsSpan().IndexOf(needle) >= 0;
    }

    /// <summary>Finds the libstdc++ the process uses (from <c>/proc/self/maps</c>) or the system's default one.</summary>
    /// <returns>The path, or <see langword="null"/> if none is found (or not Linux).</returns>
    public static string? FindLibStdCxx()
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        if (FindLoadedLibStdCxx() is { } loaded)
        {
            return loaded;
        }

        string[] candidates =
        [
            "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib/aarch64-linux-gnu/libstdc++.so.6",
            "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
        ];
        return candidates.FirstOrDefault(File.Exists);
    }

    private static bool SafeProvidesRequiredVersion(string path)
    {
        try
        {
            return LibStdCxxProvidesRequiredVersion(path);
        }
        catch (IOException)
        {
            return true; // cannot tell: let the loader decide
        }
        catch (UnauthorizedAccessException)
        {
            return true;
        }
    }

    private static string? FindLoadedLibStdCxx()
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        try
        {
            foreach (var line in File.ReadLines("/proc/self/maps"))
            {
                var at = line.IndexOf('/', StringComparison.Ordinal);
                if (at >= 0 && line.Contains("/libstdc++.so", StringComparison.Ordinal))
                {
                    return line[at..].Trim();
                }
            }
        }
        catch (IOException)
        {
            // fall through to the well-known paths
        }
        catch (UnauthorizedAccessException)
        {
            // fall through to the well-known paths
        }

        return null;
    }

    /// <summary>Builds the typed error for a failed load (separated so that it is testable on any machine).</summary>
    /// <param name="cause">The loader's exception.</param>
    /// <param name="libStdCxxPath">The libstdc++ inspected, or <see langword="null"/>.</param>
    /// <param name="loaderMessages">Messages from loading the native libraries directly (dlerror texts), possibly empty.</param>
    /// <returns>The exception to throw.</returns>
    internal static TorchSharpNativeLoadException Diagnose(Exception cause, string? libStdCxxPath, IReadOnlyList<string> loaderMessages)
    {
        var all = new StringBuilder();
        for (var e = cause; e is not null; e = e.InnerException)
        {
            all.Append(e.Message).Append(' ');
        }

        foreach (var m in loaderMessages)
        {
            all.Append(m).Append(' ');
        }

        var text = all.ToString();
        var missing = FindMissingGlibcxx(text);
        var lacksRequired = false;
        if (libStdCxxPath is not null && File.Exists(libStdCxxPath))
        {
            try
            {
                lacksRequired = !LibStdCxxProvidesRequiredVersion(libStdCxxPath);
            }
            catch (IOException)
            {
                lacksRequired = false;
            }
        }

        if (missing is null && lacksRequired)
        {
            missing = RequiredLibStdCxxVersion;
        }

        string message;
        if (missing is not null)
        {
            message = string.Create(CultureInfo.InvariantCulture,
                $"TorchSharp's native library (LibTorch 2.10) cannot be loaded: it needs the libstdc++ symbol version {missing} " +
                $"(GCC 13 or later), which {libStdCxxPath ?? "this system's libstdc++"} does not provide. Linux versions that work: " +
                $"{SupportedLinuxText}. Run the worker on one of them (or inside a root or container of one; see docs/torchsharp.md).");
        }
        else
        {
            var first = loaderMessages.Count > 0 ? loaderMessages[0] : cause.GetBaseException().Message;
            message = string.Create(CultureInfo.InvariantCulture,
                $"TorchSharp's native library (LibTorch 2.10) cannot be loaded: {first} Check that the application references " +
                $"TorchSharp-cpu or a TorchSharp-cuda-* package for this platform (runtime identifier) and that the natives were " +
                $"deployed next to the application. Linux versions that work: {SupportedLinuxText}.");
        }

        return new TorchSharpNativeLoadException(message, missing, libStdCxxPath, cause);
    }

    private static string? FindMissingGlibcxx(string text)
    {
        // dlerror: "version `GLIBCXX_3.4.32' not found (required by ...)"
        var at = text.IndexOf("GLIBCXX_", StringComparison.Ordinal);
        while (at >= 0)
        {
            var end = at + "GLIBCXX_".Length;
            while (end < text.Length && (char.IsAsciiDigit(text[end]) || text[end] == '.'))
            {
                end++;
            }

            var rest = text.AsSpan(end);
            if (rest.StartsWith("' not found", StringComparison.Ordinal) || rest.StartsWith("\u2019 not found", StringComparison.Ordinal))
            {
                return text[at..end].TrimEnd('.');
            }

            at = text.IndexOf("GLIBCXX_", end, StringComparison.Ordinal);
        }

        return null;
    }

    private static List<string> NativeLoaderMessages()
    {
        var messages = new List<string>();
        string[] names = OperatingSystem.IsWindows() ? ["LibTorchSharp.dll", "torch_cpu.dll"]
            : OperatingSystem.IsMacOS() ? ["libLibTorchSharp.dylib", "libtorch_cpu.dylib"]
            : ["libLibTorchSharp.so", "libtorch_cpu.so"];
        var rid = RuntimeInformation.RuntimeIdentifier;
        foreach (var name in names)
        {
            string[] places = [Path.Combine(AppContext.BaseDirectory, name), Path.Combine(AppContext.BaseDirectory, "runtimes", rid, "native", name)];
            var path = places.FirstOrDefault(File.Exists);
            if (path is null)
            {
                continue;
            }

            try
            {
                NativeLibrary.Free(NativeLibrary.Load(path));
            }
            catch (DllNotFoundException e)
            {
                messages.Add(e.Message);
            }
            catch (BadImageFormatException e)
            {
                messages.Add(e.Message);
            }
        }

        return messages;
    }

    private static partial class NativeEnvironment
    {
        [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int setenv(string name, string value, int overwrite);

        [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
        internal static partial IntPtr getenv(string name);
    }
}
