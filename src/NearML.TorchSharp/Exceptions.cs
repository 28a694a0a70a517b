using NearML.Core;

namespace NearML.TorchSharp;

/// <summary>
/// LibTorch (TorchSharp's native library) could not be loaded. The message names the cause; on Linux the usual one is
/// a libstdc++ older than GCC 13's: TorchSharp 0.107 (LibTorch 2.10) needs the symbol version <c>GLIBCXX_3.4.32</c>, which
/// Debian 12 and Ubuntu 22.04 lack and Debian 13, Ubuntu 24.04, Fedora 39+ and RHEL 10 have.
/// </summary>
public sealed class TorchSharpNativeLoadException : NearMLException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="message">What failed and what to do.</param>
    /// <param name="missingSymbolVersion">The missing symbol version (e.g. <c>GLIBCXX_3.4.32</c>), or <see langword="null"/> if another cause.</param>
    /// <param name="libStdCxxPath">The libstdc++ that the process uses or would use, or <see langword="null"/> if not found.</param>
    /// <param name="innerException">The loader's exception.</param>
    public TorchSharpNativeLoadException(string message, string? missingSymbolVersion, string? libStdCxxPath, Exception? innerException)
        : base(message, innerException)
    {
        MissingSymbolVersion = missingSymbolVersion;
        LibStdCxxPath = libStdCxxPath;
    }

    /// <summary>Gets the missing libstdc++ symbol version (e.g. <c>GLIBCXX_3.4.32</c>), or <see langword="null"/> when the cause is another.</summary>
    public string? MissingSymbolVersion { get; }

    /// <summary>Gets the path of the libstdc++ that was inspected, or <see langword="null"/>.</summary>
    public string? LibStdCxxPath { get; }
}

/// <summary>A TorchSharp module cannot be trained through NearML as it is (a half-precision parameter, no trainable
/// parameters, a non-contiguous parameter, an unsupported device); the message says which and what to do.</summary>
public sealed class UnsupportedTorchModelException : NearMLException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="message">What is unsupported, naming the parameter or device.</param>
    public UnsupportedTorchModelException(string message) : base(message) { }
}

/// <summary>The requested device (e.g. <c>cuda:1</c>) is not available in this process: no CUDA build of LibTorch
/// (the application referenced <c>TorchSharp-cpu</c>), no driver, or fewer GPUs than the index.</summary>
public sealed class TorchDeviceUnavailableException : NearMLException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="device">The device that was asked for.</param>
    /// <param name="reason">Why it is not available.</param>
    public TorchDeviceUnavailableException(string device, string reason)
        : base($"Device '{device}' is not available: {reason}")
    {
        Device = device;
    }

    /// <summary>Gets the device that was asked for.</summary>
    public string Device { get; }
}
