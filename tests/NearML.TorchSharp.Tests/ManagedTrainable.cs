using NearML.Core;
using NearML.Training;
using NearML.Training.Data;
using NearML.Training.Engines;
using NearML.Training.Modules;
using NearML.Training.Optim;
using NearML.Training.Tensors;

namespace NearML.TorchSharp.Tests;

/// <summary>The managed MLP behind <see cref="ITrainableModel"/> (test scaffolding until Training ships its own).</summary>
internal sealed class ManagedTrainable : ITrainableModel
{
    private readonly Mlp _model;
    private readonly LocalTrainer _eval;
    private readonly Tape _tape = new();
    private Optimizer _optimizer;

    public ManagedTrainable(Mlp model, InnerOptimizerSettings settings)
    {
        _model = model;
        _optimizer = Build(settings);
        _eval = new LocalTrainer(model, _optimizer);
    }

    public string Engine => "managed";

    public ParameterLayout Layout => _model.Parameters.Layout;

    public ParameterSet Parameters => _model.Parameters;

    public ParameterSet Gradients => _model.Gradients;

    public void PullParameters() { }

    public void PushParameters() { }

    public void PullGradients() { }

    public void PushGradients() { }

    public float ComputeGradients(Batch batch)
    {
        _tape.Reset();
        _tape.GradEnabled = true;
        _tape.Training = true;
        _model.ZeroGrad();
        var loss = _model.Loss(_tape, batch);
        var v = loss.Data[0];
        if (!float.IsFinite(v))
        {
            throw new NonFiniteValueException("loss", -1, v);
        }

        _tape.Backward(loss);
        return v;
    }

    public void OptimizerStep() => _optimizer.Step(_model.Parameters, _model.Gradients);

    public EvaluationResult Evaluate(IBatchSource source, CancellationToken cancellationToken = default) => _eval.Evaluate(source, cancellationToken);

    public void ResetOptimizer(InnerOptimizerSettings settings) => _optimizer = Build(settings);

    public OptimizerState ExportOptimizerState() => _optimizer.ExportState();

    public void ImportOptimizerState(OptimizerState state) => _optimizer.ImportState(state);

    public void Dispose() { }

    private Optimizer Build(InnerOptimizerSettings s) => s.Kind == "adamw"
        ? new AdamW(_model.Parameters.Layout, new AdamWOptions { LearningRate = s.LearningRate, WeightDecay = s.WeightDecay, Beta1 = s.Beta1, Beta2 = s.Beta2, Epsilon = s.Epsilon })
        : new Sgd(_model.Parameters.Layout, new SgdOptions { LearningRate = s.LearningRate, Momentum = s.Momentum, WeightDecay = s.WeightDecay });
}
