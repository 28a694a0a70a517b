using NearML.Core;
using NearML.Core.Collectives;
using NearML.Training.Optim;
using NearML.Training.Sync;

namespace NearML.Training.Tests.Sync;

/// <summary>Plain SGD (p ← p − lr·g), written here so the strategy tests do not depend on the Optim package.</summary>
internal sealed class PlainSgd(ParameterLayout layout, double lr) : Optimizer(layout, lr)
{
    public override string Kind => "plain-sgd";

    public override OptimizerState ExportState() => new(Kind, StepCount, LearningRate, new Dictionary<string, ParameterSet>());

    public override void ImportState(OptimizerState state) => StepCount = state.StepCount;

    public override void Step(ParameterSet parameters, ParameterSet gradients)
    {
        parameters.Axpy(-(float)LearningRate, gradients);
        StepCount++;
    }
}

/// <summary>
/// A synthetic problem with a hand-written gradient: worker w minimizes ½ Σ a_wi (θ_i − c_wi)², so its gradient is
/// a_wi (θ_i − c_wi). Different workers have different optima (non-i.i.d.).
/// </summary>
internal sealed class Quadratic
{
    private readonly float[][] _a;
    private readonly float[][] _c;

    public Quadratic(ParameterLayout layout, int workers, int seed)
    {
        Layout = layout;
        var rng = new Random(seed);
        var n = (int)layout.TotalLength;
        _a = [.. Enumerable.Range(0, workers).Select(_ => Enumerable.Range(0, n).Select(_ => 0.5f + (float)rng.NextDouble()).ToArray())];
        _c = [.. Enumerable.Range(0, workers).Select(_ => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray())];
    }

    public ParameterLayout Layout { get; }

    public static ParameterLayout SmallLayout() => new([("l0.weight", [8, 12]), ("l0.bias", [8]), ("l1.weight", [4, 8]), ("l1.bias", [4])]);

    public void Gradient(int worker, ParameterSet theta, ParameterSet gradient)
    {
        var t = theta.Data;
        var g = gradient.Data;
        for (var i = 0; i < t.Length; i++)
        {
            g[i] = _a[worker][i] * (t[i] - _c[worker][i]);
        }
    }

    public double Loss(ParameterSet theta)
    {
        double loss = 0;
        for (var w = 0; w < _a.Length; w++)
        {
            for (var i = 0; i < theta.Length; i++)
            {
                var d = theta.Data[i] - _c[w][i];
                loss += 0.5 * _a[w][i] * d * d;
            }
        }

        return loss;
    }

    public static ParameterSet Start(ParameterLayout layout, int seed)
    {
        var p = new ParameterSet(layout);
        var rng = new Random(seed);
        for (var i = 0; i < p.Length; i++)
        {
            p.Data[i] = (float)(rng.NextDouble() - 0.5);
        }

        return p;
    }
}

internal static class Cluster
{
    /// <summary>Runs <paramref name="steps"/> local steps on every worker concurrently.</summary>
    public static async Task RunAsync(IReadOnlyList<SyncStrategy> strategies, Quadratic problem, int steps, int[]? workerIndex = null, Func<int, int, ParameterSet, ParameterSet>? corrupt = null)
    {
        await Task.WhenAll(strategies.Select((s, i) => Task.Run(async () =>
        {
            var w = workerIndex?[i] ?? i;
            var g = s.Parameters.CreateZeros();
            for (var t = 0; t < steps; t++)
            {
                problem.Gradient(w, s.Parameters, g);
                var sent = corrupt?.Invoke(w, t, g) ?? g;
                await s.StepAsync(sent, 1 + w);
            }

            await s.FlushAsync();
        })));
    }
}

/// <summary>Finds the repository's sibling <c>shared</c> folder by walking up from the test assembly.</summary>
internal static class SharedFolder
{
    public static string? Find()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null)
        {
            if (File.Exists(Path.Combine(dir.FullName, "NearML.sln")))
            {
                var shared = Path.Combine(dir.Parent?.FullName ?? dir.FullName, "shared");
                return Directory.Exists(shared) ? shared : null;
            }

            dir = dir.Parent;
        }

        return null;
    }

    public static string Require(params string[] parts)
    {
        var shared = Find();
        if (shared is null)
        {
            Assert.Inconclusive("The shared folder (../shared next to the repository) is absent.");
        }

        var path = Path.Combine([shared!, .. parts]);
        if (!File.Exists(path))
        {
            Assert.Inconclusive($"{path} is absent.");
        }

        return path;
    }
}
