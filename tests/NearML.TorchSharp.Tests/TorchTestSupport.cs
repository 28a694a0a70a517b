using NearML.Core;
using NearML.Training.Data;
using NearML.Training.Modules;
using NearML.Training.Tensors;
using NearML.TorchSharp;
using TorchSharp;
using static TorchSharp.torch;
using TorchTensor = TorchSharp.torch.Tensor;

namespace NearML.TorchSharp.Tests;

/// <summary>
/// Where LibTorch can run. On this project's CI hosts (Debian 12) it cannot (libstdc++ lacks GLIBCXX_3.4.32): there the
/// tests that need it report Inconclusive with the reason, and .ci/run runs this assembly again inside a Debian 13
/// root (.ci/in-trixie, which sets NEARML_IN_TRIXIE_ROOT=1) where a load failure is a test failure.
/// </summary>
internal static class TorchEnv
{
    public static bool InRoot => Environment.GetEnvironmentVariable("NEARML_IN_TRIXIE_ROOT") == "1";

    public static void Require()
    {
        try
        {
            TorchSharpRuntime.EnsureLoaded();
        }
        catch (TorchSharpNativeLoadException e) when (!InRoot)
        {
            Assert.Inconclusive($"LibTorch cannot be loaded on this machine (missing {e.MissingSymbolVersion ?? "native library"}); .ci/run runs this test inside a Debian 13 root (.ci/in-trixie). {e.Message}");
        }
    }
}

/// <summary>TorchSharp twins of the managed models, with the same parameter names.</summary>
internal static class TorchModels
{
    /// <summary>Flatten → Linear → ReLU → Linear → ReLU → Linear: names 1.*, 3.*, 5.* like <see cref="Mlp"/>.</summary>
    public static nn.Module<TorchTensor, TorchTensor> Mlp(int inputs = 784, int hidden = 256, int classes = 10) =>
        nn.Sequential(nn.Flatten(), nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, classes));
}

/// <summary>The managed engine through the contract, with its gradients computed but not applied.</summary>
internal sealed class ManagedRunner : IDisposable
{
    private readonly NearML.Training.Engines.ManagedTrainableModel _trainable;

    public ManagedRunner(Model model) => _trainable = new(model, new NearML.Training.Engines.InnerOptimizerSettings());

    public float ComputeGradients(Batch batch) => _trainable.ComputeGradients(batch);

    public void Dispose() => _trainable.Dispose();
}

internal static class Batches
{
    public static Batch Random(int count, int features, int classes, int seed, int? capacity = null)
    {
        var rng = new Random(seed);
        var b = new Batch(capacity ?? count, features, 0, 1) { Count = count };
        for (var i = 0; i < count * features; i++)
        {
            b.Features[i] = (float)rng.NextDouble();
        }

        for (var i = 0; i < count; i++)
        {
            b.Targets[i] = rng.Next(classes);
        }

        return b;
    }

    public static ParameterSet RandomSet(ParameterLayout layout, int seed, float scale = 0.05f)
    {
        var rng = new Random(seed);
        var s = new ParameterSet(layout);
        var d = s.Data;
        for (var i = 0; i < d.Length; i++)
        {
            d[i] = (float)((rng.NextDouble() * 2 - 1) * scale);
        }

        return s;
    }

    /// <summary>max |a − b| / (atol + rtol·|b|) over all elements: ≤ 1 means within tolerance.</summary>
    public static double WorstRatio(ReadOnlySpan<float> a, ReadOnlySpan<float> b, double rtol, double atol)
    {
        Assert.AreEqual(b.Length, a.Length);
        double worst = 0;
        for (var i = 0; i < a.Length; i++)
        {
            worst = Math.Max(worst, Math.Abs((double)a[i] - b[i]) / (atol + rtol * Math.Abs((double)b[i])));
        }

        return worst;
    }
}
