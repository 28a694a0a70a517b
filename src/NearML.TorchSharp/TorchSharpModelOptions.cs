using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace NearML.TorchSharp;

/// <summary>Options of a <see cref="TorchSharpTrainableModel"/>.</summary>
public sealed class TorchSharpModelOptions
{
    /// <summary>Gets or sets the device: <c>cpu</c>, <c>cuda</c> (GPU 0) or <c>cuda:N</c>.</summary>
    /// <value>The default value is <c>cpu</c>.</value>
    public string Device { get; set; } = "cpu";

    /// <summary>Gets or sets the loss: (module output, targets as int64 [samples × targets per sample]) → scalar mean loss.</summary>
    /// <value>The default value is <see langword="null"/>: cross-entropy of the output viewed as [rows, classes] (the
    /// managed engine's loss), so a language model's [N, T, vocab] output works unchanged.</value>
    public Func<Tensor, Tensor, Tensor>? Loss { get; set; }

    /// <summary>Gets or sets the per-sample input shape for feature batches (e.g. <c>[1, 28, 28]</c> for a CNN); its
    /// product must equal the batch's features per sample.</summary>
    /// <value>The default value is <see langword="null"/>: <c>[features per sample]</c>. Token batches are always int64 [N, T].</value>
    public IReadOnlyList<long>? SampleShape { get; set; }

    /// <summary>Gets or sets LibTorch's intra-op thread count, set when the model is created (process-wide).</summary>
    /// <value>The default value is <see langword="null"/>: leave LibTorch's setting (one thread per core).</value>
    public int? Threads { get; set; }

    /// <summary>Gets or sets a value indicating whether every step checks the gradients for NaN/Inf (the loss is always
    /// checked). On CPU this is one vectorised pass over the gradients without allocation.</summary>
    /// <value>The default value is <see langword="true"/>.</value>
    public bool CheckGradients { get; set; } = true;
}

/// <summary>The devices NearML trains TorchSharp modules on.</summary>
public static class TorchDevices
{
    /// <summary>Parses <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c> and checks that the device exists in this process.</summary>
    /// <param name="device">The device text.</param>
    /// <returns>The TorchSharp device.</returns>
    /// <exception cref="ArgumentException">The text is not one of the forms above.</exception>
    /// <exception cref="TorchDeviceUnavailableException">CUDA (or that GPU) is not available here.</exception>
    /// <exception cref="TorchSharpNativeLoadException">LibTorch cannot be loaded.</exception>
    public static Device Resolve(string device)
    {
        var (type, index) = Parse(device);
        TorchSharpRuntime.EnsureLoaded();
        if (type == DeviceType.CUDA)
        {
            if (!cuda.is_available())
            {
                throw new TorchDeviceUnavailableException(device,
                    "this process's LibTorch has no usable CUDA (the application must reference TorchSharp-cuda-linux or TorchSharp-cuda-windows, " +
                    "not TorchSharp-cpu, and the machine needs an NVIDIA GPU with a driver for CUDA 12.8).");
            }

            var count = cuda.device_count();
            if (index >= count)
            {
                throw new TorchDeviceUnavailableException(device, string.Create(CultureInfo.InvariantCulture, $"this machine has {count} CUDA device(s) (0..{count - 1})."));
            }

            return torch.device(DeviceType.CUDA, index);
        }

        return torch.CPU;
    }

    /// <summary>Parses a device text without touching LibTorch.</summary>
    /// <param name="device">The device text.</param>
    /// <returns>The device type and index (0 for <c>cpu</c> and <c>cuda</c>).</returns>
    /// <exception cref="ArgumentException">The text is not <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>.</exception>
    public static (DeviceType Type, int Index) Parse(string device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (string.Equals(device, "cpu", StringComparison.Ordinal))
        {
            return (DeviceType.CPU, 0);
        }

        if (string.Equals(device, "cuda", StringComparison.Ordinal))
        {
            return (DeviceType.CUDA, 0);
        }

        if (device.StartsWith("cuda:", StringComparison.Ordinal)
            && int.TryParse(device.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out var index)
            && device.Length > 5 && device.Length <= 8)
        {
            return (DeviceType.CUDA, index);
        }

        throw new ArgumentException($"Device '{device}' is not one of cpu, cuda, cuda:N.", nameof(device));
    }
}
