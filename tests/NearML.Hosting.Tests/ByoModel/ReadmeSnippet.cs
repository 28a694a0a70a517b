#pragma warning disable SA1649, CA1812 // the README's snippet, compiled verbatim
// README:begin
using Microsoft.Extensions.DependencyInjection;
using NearML.Hosting;
using NearML.Training.Data;
using NearML.Training.Engines;
using NearML.Training.Modules;
using NearML.Training.Tensors;

namespace MyApp;

// 1. A managed model: declare layers (or raw tensors with AddParameter), then initialise them from the job's seed.
public sealed class TwoLayerNet : Model
{
    private readonly Linear _fc1;
    private readonly Linear _fc2;

    public TwoLayerNet(int inputs, int hidden, int classes, int seed)
    {
        Classes = classes;
        _fc1 = new Linear(this, "fc1", inputs, hidden);
        _fc2 = new Linear(this, "fc2", hidden, classes);
        InitializeParameters(seed);
    }

    public override int Classes { get; }

    public override Tensor Forward(Tape tape, Batch batch)
    {
        var x = tape.Input(batch.Features, 0, batch.Count, batch.FeaturesPerSample);
        return _fc2.Forward(tape, _fc1.Forward(tape, x, Activation.Relu));
    }
}

public static class Registration
{
    // 2. Register it, and your data, under keys a job names: the same on the coordinator (AddNearMLCoordinator)
    //    and on every worker. A worker without the job's keys, or whose model has another layout, is refused at join.
    public static void AddMyModel(IServiceCollection services, string npzPath) =>
        services.AddNearMLWorker(o => o.WorkerId = "alice.near")
                .AddModel("twolayer", ctx => new ManagedTrainableModel(new TwoLayerNet(6, 32, 3, ctx.Seed), ctx.Optimizer))
                .AddDataset("my-data", ctx => ClassificationDataset.FromNpz("my-data", npzPath));
}
// README:end
