using NearML.Core;
using NearML.Training.Data;
using NearML.Training.Optim;

namespace NearML.Training.Engines;

/// <summary>
/// The engine-neutral training contract: one model, its loss and its inner optimizer, as the sync strategies and
/// Hosting see it. Strategies and hosts never touch an engine's internals; they move parameters and gradients as
/// <see cref="ParameterSet"/>s (fp32, stable names and shapes, the same order on every engine) at sync points only.
/// </summary>
/// <remarks>
/// <para>
/// <b>Host views.</b> <see cref="Parameters"/> and <see cref="Gradients"/> are host-side (CPU, fp32) sets with the
/// model's <see cref="Layout"/>. An engine whose tensors live elsewhere (LibTorch, a GPU) keeps them as mirrors and
/// copies only when asked: <see cref="PullParameters"/> (engine → host), <see cref="PushParameters"/> (host → engine),
/// and the same for gradients. An engine whose tensors already live in those sets (the managed engine) implements the
/// four methods as no-ops. Callers must therefore call them at every sync point, whatever the engine.
/// </para>
/// <para>
/// <b>One local step</b> is <see cref="ComputeGradients"/> (zero the gradients, forward, loss, backward; returns the
/// loss) followed by <see cref="OptimizerStep"/> (the inner optimizer updates the engine's parameters from the
/// engine's gradients). DDP-like strategies pull the gradients in between, reduce them across the group, push the
/// result back, and then step. <see cref="TrainableModelExtensions.TrainStep"/> does both for the local case.
/// </para>
/// <para>
/// <b>Only trainable parameters</b> are in the layout: an engine leaves frozen tensors (and buffers such as running
/// statistics) out, and they are neither synchronized nor checkpointed through this contract.
/// </para>
/// <para>Instances are not thread-safe: one training loop drives one instance.</para>
/// </remarks>
public interface ITrainableModel : IDisposable
{
    /// <summary>Gets the engine's short name, for logs and join records (e.g. <c>managed</c>, <c>torchsharp</c>).</summary>
    string Engine { get; }

    /// <summary>Gets the trainable parameters' layout (names, shapes; fp32). Its <see cref="ParameterLayout.Fingerprint"/>
    /// must match the job's for a worker to be admitted.</summary>
    ParameterLayout Layout { get; }

    /// <summary>Gets the host view of the trainable parameters (valid after <see cref="PullParameters"/>; written to the
    /// engine by <see cref="PushParameters"/>).</summary>
    ParameterSet Parameters { get; }

    /// <summary>Gets the host view of the gradients of the last <see cref="ComputeGradients"/> (valid after
    /// <see cref="PullGradients"/>; written to the engine by <see cref="PushGradients"/>).</summary>
    ParameterSet Gradients { get; }

    /// <summary>Copies the engine's current parameters into <see cref="Parameters"/> (a no-op where they are the same memory).</summary>
    void PullParameters();

    /// <summary>Copies <see cref="Parameters"/> into the engine (a no-op where they are the same memory).</summary>
    void PushParameters();

    /// <summary>Copies the engine's current gradients into <see cref="Gradients"/> (a no-op where they are the same memory).</summary>
    void PullGradients();

    /// <summary>Copies <see cref="Gradients"/> into the engine, replacing its gradients (a no-op where they are the same memory).</summary>
    void PushGradients();

    /// <summary>Zeroes the gradients, runs forward and backward on the first <see cref="Batch.Count"/> samples of
    /// <paramref name="batch"/> and leaves the gradients in the engine.</summary>
    /// <param name="batch">The batch (features or tokens, and targets).</param>
    /// <returns>The mean loss over the batch.</returns>
    /// <exception cref="Tensors.NonFiniteValueException">The loss or a gradient is NaN or infinite; the caller should
    /// withhold this round's contribution (nothing was applied to the parameters).</exception>
    /// <exception cref="Tensors.ShapeMismatchException">The batch does not fit the model.</exception>
    float ComputeGradients(Batch batch);

    /// <summary>Applies one step of the inner optimizer to the engine's parameters from the engine's gradients.</summary>
    void OptimizerStep();

    /// <summary>Scores the parameters on every batch of <paramref name="source"/> (epoch 0), without changing them.</summary>
    /// <param name="source">The evaluation data.</param>
    /// <param name="cancellationToken">Cancels the pass.</param>
    /// <returns>The mean loss per target and the job's metric (accuracy of the arg-max).</returns>
    EvaluationResult Evaluate(IBatchSource source, CancellationToken cancellationToken = default);

    /// <summary>Replaces the inner optimizer with a fresh one (zero moments, step 0) built from <paramref name="settings"/>.</summary>
    /// <param name="settings">The job's inner optimizer settings.</param>
    /// <exception cref="ArgumentException">The optimizer kind is not supported by this engine.</exception>
    void ResetOptimizer(InnerOptimizerSettings settings);

    /// <summary>Exports the inner optimizer's state (moments keyed by parameter name, step count) for a checkpoint.</summary>
    /// <returns>A deep copy in the engine-neutral form, importable by any engine with the same layout and optimizer kind.</returns>
    OptimizerState ExportOptimizerState();

    /// <summary>Restores the inner optimizer's state from <see cref="ExportOptimizerState"/> (possibly of another engine).</summary>
    /// <param name="state">The state.</param>
    /// <exception cref="InvalidOptimizerStateException">The state is of another optimizer kind or layout.</exception>
    void ImportOptimizerState(OptimizerState state);
}

/// <summary>The inner (local) optimizer a job asks every worker to use, whatever its engine.</summary>
/// <param name="Kind"><c>adamw</c> or <c>sgd</c>.</param>
/// <param name="LearningRate">The learning rate.</param>
/// <param name="WeightDecay">Decoupled weight decay (AdamW) or L2 (SGD). Note that TorchSharp's AdamW defaults to 0, not
/// PyTorch's 0.01: engines must use this value, never their own default.</param>
/// <param name="Beta1">AdamW's first-moment decay.</param>
/// <param name="Beta2">AdamW's second-moment decay.</param>
/// <param name="Epsilon">AdamW's denominator epsilon.</param>
/// <param name="Momentum">SGD's momentum.</param>
public sealed record InnerOptimizerSettings(
    string Kind = "adamw",
    double LearningRate = 1e-3,
    double WeightDecay = 0.01,
    double Beta1 = 0.9,
    double Beta2 = 0.999,
    double Epsilon = 1e-8,
    double Momentum = 0.0);

/// <summary>What a model factory gets to build the same model on the coordinator and on every worker.</summary>
/// <param name="ConfigJson">The model's configuration JSON as the job gives it (never <see langword="null"/>; <c>{}</c> for none).</param>
/// <param name="Seed">The initialisation seed: equal (configuration, seed) give bit-identical initial parameters on one engine.
/// Across engines the coordinator's initial <see cref="ParameterSet"/> is what every worker loads before round 1.</param>
/// <param name="Optimizer">The job's inner optimizer settings.</param>
/// <param name="Threads">Compute threads the engine may use (<see langword="null"/>: the engine's default).</param>
public sealed record ModelBuildContext(string ConfigJson, int Seed, InnerOptimizerSettings Optimizer, int? Threads = null);

/// <summary>Conveniences over <see cref="ITrainableModel"/>.</summary>
public static class TrainableModelExtensions
{
    /// <summary>One purely local step: <see cref="ITrainableModel.ComputeGradients"/> then <see cref="ITrainableModel.OptimizerStep"/>.</summary>
    /// <param name="model">The model.</param>
    /// <param name="batch">The batch.</param>
    /// <returns>The loss before the step.</returns>
    public static float TrainStep(this ITrainableModel model, Batch batch)
    {
        ArgumentNullException.ThrowIfNull(model);
        var loss = model.ComputeGradients(batch);
        model.OptimizerStep();
        return loss;
    }
}
