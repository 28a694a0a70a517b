using System.Diagnostics;
using NearML.Core;
using NearML.Core.Collectives;
using NearML.Training.Data;
using NearML.Training.Engines;
using NearML.Training.Modules;
using NearML.Training.Optim;
using NearML.Training.Sync;

namespace NearML.TorchSharp.Tests;

/// <summary>
/// §4b in process: one DiLoCo job over the in-process collective in which two workers train with the managed engine
/// and two with LibTorch, against the same recipe with four managed workers. Each worker drives its engine through
/// <see cref="ITrainableModel"/> only (its own inner AdamW), and the group's exchange is <see cref="DiLoCoStrategy"/>'s
/// (the same reducer and outer Nesterov step the coordinator uses).
/// </summary>
[TestClass]
public sealed class MixedEngineInProcessTests
{
    internal const int Workers = 4;
    internal const int Hidden = 128;
    internal const int BatchSize = 64;
    internal const int InnerSteps = 25;
    internal const int Rounds = 10;
    internal static readonly InnerOptimizerSettings Inner = new("adamw", LearningRate: 1e-3, WeightDecay: 0.01);

    [TestMethod]
    [TestCategory("Slow")]
    public async Task Two_Managed_And_Two_TorchSharp_Workers_Reach_The_Accuracy_Of_Four_Managed_Workers()
    {
        TorchEnv.Require();
        TorchSharpRuntime.SetThreads(1);
        FashionMnistData data;
        try
        {
            data = FashionMnist.Load();
        }
        catch (DatasetNotFoundException e)
        {
            Assert.Inconclusive($"Fashion-MNIST is not installed ({e.Message}); apt-get install dataset-fashion-mnist.");
            return;
        }

        var sw = Stopwatch.StartNew();
        var managedOnly = await RunAsync(data, torchWorkers: 0);
        var mixed = await RunAsync(data, torchWorkers: 2);
        Console.WriteLine($"4 managed: accuracy {managedOnly:P2}; 2 managed + 2 TorchSharp: {mixed:P2}; {sw.Elapsed.TotalSeconds:F1} s");
        Assert.IsTrue(managedOnly > 0.80, $"the recipe should train: {managedOnly:P2}");
        Assert.IsTrue(Math.Abs(mixed - managedOnly) <= 0.005, $"mixed {mixed:P2} vs managed-only {managedOnly:P2}: more than 0.5 pt apart");
    }

    internal static async Task<double> RunAsync(FashionMnistData data, int torchWorkers)
    {
        var group = new InProcessCollectiveGroup();
        var initial = new Mlp(hidden: Hidden, seed: 1).Parameters; // the coordinator's initial set, loaded by every worker
        var models = new ITrainableModel[Workers];
        var strategies = new DiLoCoStrategy[Workers];
        for (var w = 0; w < Workers; w++)
        {
            models[w] = w < Workers - torchWorkers
                ? new ManagedTrainableModel(new Mlp(hidden: Hidden, seed: 100 + w), Inner)
                : new TorchSharpTrainableModel(TorchModels.Mlp(hidden: Hidden), Inner);
            models[w].Parameters.CopyFrom(initial);
            models[w].PushParameters();

            // the strategy's own inner optimizer is a no-op (SGD, lr 0): each engine steps with its own AdamW
            strategies[w] = new DiLoCoStrategy(group.Join("w" + w), models[w].Parameters, new Sgd(models[w].Layout, new SgdOptions { LearningRate = 0 }),
                new DiLoCoOptions { InnerSteps = InnerSteps, OuterLearningRate = 0.7, OuterMomentum = 0.9 });
        }

        var labels = data.Train.Labels;
        var tasks = Enumerable.Range(0, Workers).Select(w => Task.Run(async () =>
        {
            var shard = Enumerable.Range(0, labels.Length).Where(i => i % Workers == w).ToArray();
            var source = new ClassificationBatchSource(data.Train, shard, BatchSize, (ulong)(7 + w));
            var batch = source.CreateBatch();
            var zeros = models[w].Parameters.CreateZeros();
            var epoch = 0;
            source.StartEpoch(epoch);
            for (var step = 0; step < InnerSteps * Rounds; step++)
            {
                if (!source.TryFill(batch))
                {
                    source.StartEpoch(++epoch);
                    source.TryFill(batch);
                }

                models[w].TrainStep(batch);
                if ((step + 1) % InnerSteps == 0)
                {
                    models[w].PullParameters();
                }

                var r = await strategies[w].StepAsync(zeros, batch.Count);
                if (r.Synchronized)
                {
                    models[w].PushParameters();
                }
            }
        })).ToArray();
        await Task.WhenAll(tasks);

        for (var w = 1; w < Workers; w++)
        {
            CollectionAssert.AreEqual(strategies[0].GlobalParameters.Buffer, strategies[w].GlobalParameters.Buffer, "every worker holds the same global model");
        }

        var evaluator = new Mlp(hidden: Hidden, seed: 0);
        evaluator.Parameters.CopyFrom(strategies[0].GlobalParameters);
        var result = new ManagedTrainableModel(evaluator, Inner).Evaluate(new ClassificationBatchSource(data.Test, 1000, 0, shuffle: false));
        foreach (var m in models)
        {
            m.Dispose();
        }

        return result.Accuracy;
    }
}
