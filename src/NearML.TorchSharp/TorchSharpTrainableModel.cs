using System.Globalization;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using NearML.Core;
using NearML.Training;
using NearML.Training.Data;
using NearML.Training.Engines;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using InvalidOptimizerStateException = NearML.Training.Optim.InvalidOptimizerStateException;
using NonFiniteValueException = NearML.Training.Tensors.NonFiniteValueException;
using OptimizerState = NearML.Training.Optim.OptimizerState;
using ShapeMismatchException = NearML.Training.Tensors.ShapeMismatchException;
using Tensor = TorchSharp.torch.Tensor;
using TorchOptimizer = TorchSharp.torch.optim.Optimizer;

namespace NearML.TorchSharp;

/// <summary>
/// The engine-neutral training contract (<see cref="ITrainableModel"/>) over any TorchSharp <c>nn.Module</c> that maps
/// a batch tensor to an output tensor, with a loss and TorchSharp's own AdamW or SGD as the inner optimizer.
/// </summary>
/// <remarks>
/// <para>
/// <b>Layout.</b> The parameters are the module's <c>named_parameters()</c> with <c>requires_grad = true</c>, in that
/// order and under those names (PyTorch's <c>state_dict</c> keys, e.g. <c>1.weight</c> for an <c>nn.Sequential</c>).
/// Frozen parameters (<c>requires_grad = false</c>) and buffers (e.g. batch-norm running statistics) are left out: they
/// are neither synchronized across workers nor part of the layout fingerprint, so every worker must build them
/// identically (from the same pretrained file or seed).
/// </para>
/// <para>
/// <b>Sync points.</b> The LibTorch tensors are the training state; <see cref="Parameters"/> and <see cref="Gradients"/>
/// are host (fp32) mirrors copied only by the four pull/push methods. On CPU a copy is a span copy straight from
/// LibTorch's memory (no staging, no allocation); on CUDA it goes through a CPU staging tensor per parameter allocated
/// once. Parameter and gradient handles are cached when the model is created (<c>p.grad</c> allocates a wrapper per
/// call and <c>module.parameters()</c> about 2.9 KB per enumeration), so a steady-state step allocates nothing managed
/// beyond what TorchSharp's own forward, backward and optimizer allocate.
/// </para>
/// <para>
/// <b>Precision.</b> NearML keeps fp32 master weights: a module with a float16/bfloat16 (or float64) trainable
/// parameter is refused with <see cref="UnsupportedTorchModelException"/>; convert it first (<c>module.to(float32)</c>)
/// and use autocast inside <c>forward</c> for mixed precision.
/// </para>
/// <para>
/// <b>Identical initial parameters.</b> <see cref="Create"/> calls <c>torch.manual_seed(seed)</c> before the factory
/// builds the module, so equal (configuration, seed) give bit-identical parameters on one engine; across engines (and
/// in every NearML job) the coordinator's initial <see cref="ParameterSet"/> is what each worker loads with
/// <see cref="PushParameters"/> before round 1.
/// </para>
/// <para>Not thread-safe; one training loop drives one instance. Dispose it to free the native tensors.</para>
/// </remarks>
public sealed class TorchSharpTrainableModel : ITrainableModel
{
    private readonly nn.Module<Tensor, Tensor> _module;
    private readonly Parameter[] _params;
    private readonly Tensor[] _grads;
    private readonly Tensor[]? _staging;
    private readonly Func<Tensor, Tensor, Tensor> _loss;
    private readonly long[]? _sampleShape;
    private readonly bool _onCpu;
    private readonly bool _checkGradients;
    private TorchOptimizer _optimizer;
    private InnerOptimizerSettings _settings;
    private long _sgdSteps;
    private BatchTensors? _batchTensors;
    private bool _training;
    private bool _disposed;

    /// <summary>Wraps a module (moved to the options' device) with the given inner optimizer.</summary>
    /// <param name="module">The module: batch tensor (float32 [N, …sample shape] or int64 tokens [N, T]) → output (e.g. logits).
    /// The wrapper takes ownership and disposes it.</param>
    /// <param name="optimizer">The inner optimizer settings (<c>adamw</c> or <c>sgd</c>; every value is passed, never TorchSharp's defaults).</param>
    /// <param name="options">Options, or <see langword="null"/> for the defaults (CPU, cross-entropy).</param>
    /// <exception cref="TorchSharpNativeLoadException">LibTorch cannot be loaded on this machine.</exception>
    /// <exception cref="UnsupportedTorchModelException">No trainable parameter, a non-fp32 or non-contiguous one, or one with a zero-sized dimension.</exception>
    /// <exception cref="TorchDeviceUnavailableException">The device is not available.</exception>
    /// <exception cref="ArgumentException">The device text or the optimizer kind is invalid.</exception>
    public TorchSharpTrainableModel(nn.Module<Tensor, Tensor> module, InnerOptimizerSettings optimizer, TorchSharpModelOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(optimizer);
        options ??= new TorchSharpModelOptions();
        TorchSharpRuntime.EnsureLoaded();
        if (options.Threads is { } threads)
        {
            TorchSharpRuntime.SetThreads(threads);
        }

        Device = TorchDevices.Resolve(options.Device);
        DeviceName = options.Device;
        _onCpu = Device.type == DeviceType.CPU;
        _checkGradients = options.CheckGradients;
        _loss = options.Loss ?? DefaultLoss;
        _sampleShape = options.SampleShape?.ToArray();

        var trainable = new List<(string Name, Parameter P)>();
        foreach (var (name, p) in module.named_parameters())
        {
            if (!p.requires_grad)
            {
                continue;
            }

            if (p.dtype != ScalarType.Float32)
            {
                var hint = p.dtype is ScalarType.Float16 or ScalarType.BFloat16
                    ? "NearML keeps fp32 master weights and synchronizes fp32: convert the module with module.to(torch.float32) before wrapping it, and use autocast inside forward for mixed precision."
                    : "Only float32 parameters are supported: convert the module with module.to(torch.float32).";
                throw new UnsupportedTorchModelException($"Parameter '{name}' is {p.dtype}. {hint}");
            }

            trainable.Add((name, p));
        }

        if (trainable.Count == 0)
        {
            throw new UnsupportedTorchModelException("The module has no trainable parameters (none with requires_grad = true): there is nothing to train or synchronize.");
        }

        module.to(Device);
        _module = module;

        // named_parameters() again after the move: on another device the Parameter objects are new
        var byName = module.named_parameters().ToDictionary(t => t.name, t => t.parameter, StringComparer.Ordinal);
        _params = new Parameter[trainable.Count];
        var shapes = new List<(string, int[])>(trainable.Count);
        for (var i = 0; i < trainable.Count; i++)
        {
            var name = trainable[i].Name;
            var p = byName[name];
            if (!p.is_contiguous())
            {
                throw new UnsupportedTorchModelException($"Parameter '{name}' is not contiguous; call .contiguous() on it when building the module.");
            }

            var shape = new int[p.shape.Length];
            for (var d = 0; d < shape.Length; d++)
            {
                if (p.shape[d] <= 0 || p.shape[d] > int.MaxValue)
                {
                    throw new UnsupportedTorchModelException($"Parameter '{name}' has shape [{string.Join(", ", p.shape)}]; every dimension must be between 1 and {int.MaxValue}.");
                }

                shape[d] = (int)p.shape[d];
            }

            _params[i] = p;
            shapes.Add((name, shape));
        }

        Layout = new ParameterLayout(shapes);
        Parameters = new ParameterSet(Layout);
        Gradients = new ParameterSet(Layout);

        // Give every parameter a gradient tensor now and keep its handle: backward then accumulates into it in place
        // (it is zeroed in place each step), so the cached handle stays the parameter's gradient.
        _grads = new Tensor[_params.Length];
        using (no_grad())
        {
            for (var i = 0; i < _params.Length; i++)
            {
                var existing = _params[i].grad;
                if (existing is null)
                {
                    _params[i].grad = zeros_like(_params[i]).DetachFromDisposeScope();
                    existing = _params[i].grad!;
                }

                _grads[i] = existing.DetachFromDisposeScope();
            }
        }

        if (!_onCpu)
        {
            _staging = new Tensor[_params.Length];
            for (var i = 0; i < _params.Length; i++)
            {
                _staging[i] = empty(_params[i].shape, ScalarType.Float32, CPU).DetachFromDisposeScope();
            }
        }

        _settings = optimizer;
        _optimizer = BuildOptimizer(optimizer);
        _module.train();
        _training = true;
        PullParameters();
    }

    /// <summary>
    /// Builds a model the way a NearML model factory should: sets the thread count from <paramref name="context"/>,
    /// seeds LibTorch's generator with <see cref="ModelBuildContext.Seed"/>, builds the module and wraps it with the
    /// job's inner optimizer.
    /// </summary>
    /// <param name="context">The build context (seed, optimizer, threads).</param>
    /// <param name="build">Builds the module (called after <c>torch.manual_seed</c>).</param>
    /// <param name="options">Options (device, loss, sample shape); its <see cref="TorchSharpModelOptions.Threads"/> is taken from the context when set there.</param>
    /// <returns>The model.</returns>
    public static TorchSharpTrainableModel Create(ModelBuildContext context, Func<nn.Module<Tensor, Tensor>> build, TorchSharpModelOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(build);
        options ??= new TorchSharpModelOptions();
        if (context.Threads is { } t)
        {
            options.Threads = t;
        }

        TorchSharpRuntime.EnsureLoaded();
        if (options.Threads is { } threads)
        {
            TorchSharpRuntime.SetThreads(threads);
        }

        random.manual_seed(context.Seed);
        return new TorchSharpTrainableModel(build(), context.Optimizer, options);
    }

    /// <inheritdoc/>
    public string Engine => "torchsharp";

    /// <summary>Gets the device the module lives on.</summary>
    public Device Device { get; }

    /// <summary>Gets the device as it was asked for (<c>cpu</c>, <c>cuda</c>, <c>cuda:N</c>).</summary>
    public string DeviceName { get; }

    /// <summary>Gets the wrapped module.</summary>
    public nn.Module<Tensor, Tensor> Module => _module;

    /// <inheritdoc/>
    public ParameterLayout Layout { get; }

    /// <inheritdoc/>
    public ParameterSet Parameters { get; }

    /// <inheritdoc/>
    public ParameterSet Gradients { get; }

    /// <summary>Gets the inner optimizer's settings.</summary>
    public InnerOptimizerSettings OptimizerSettings => _settings;

    /// <inheritdoc/>
    public void PullParameters()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        for (var i = 0; i < _params.Length; i++)
        {
            CopyToHost(_params[i], i, Parameters.GetSpan(i));
        }
    }

    /// <inheritdoc/>
    public void PushParameters()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        for (var i = 0; i < _params.Length; i++)
        {
            CopyFromHost(Parameters.GetSpan(i), i, _params[i]);
        }
    }

    /// <inheritdoc/>
    public void PullGradients()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        for (var i = 0; i < _grads.Length; i++)
        {
            CopyToHost(_grads[i], i, Gradients.GetSpan(i));
        }
    }

    /// <inheritdoc/>
    public void PushGradients()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        for (var i = 0; i < _grads.Length; i++)
        {
            CopyFromHost(Gradients.GetSpan(i), i, _grads[i]);
        }
    }

    /// <inheritdoc/>
    public float ComputeGradients(Batch batch)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.Count <= 0 || batch.Count > batch.Capacity)
        {
            throw new ArgumentOutOfRangeException(nameof(batch), batch.Count, "The batch must hold between 1 and Capacity samples.");
        }

        if (!_training)
        {
            _module.train();
            _training = true;
        }

        // gradient tensors do not require grad: zeroing them in place needs no no_grad() guard (and allocates nothing)
        for (var i = 0; i < _grads.Length; i++)
        {
            _grads[i].zero_();
        }

        float value;
        using (var scope = NewDisposeScope())
        {
            var (input, targets) = Stage(batch);
            using var output = _module.forward(input);
            using var loss = _loss(output, targets);
            value = loss.item<float>();
            if (!float.IsFinite(value))
            {
                throw new NonFiniteValueException("loss", -1, value);
            }

            loss.backward();
        }

        if (_checkGradients)
        {
            CheckGradientsFinite();
        }

        return value;
    }

    /// <inheritdoc/>
    public void OptimizerStep()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _optimizer.step();
        _sgdSteps++;
    }

    /// <inheritdoc/>
    public EvaluationResult Evaluate(IBatchSource source, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(source);
        var batch = source.CreateBatch();
        source.StartEpoch(0);
        double lossSum = 0;
        long correct = 0, targetsSeen = 0;
        _module.eval();
        _training = false;
        using (no_grad())
        {
            while (source.TryFill(batch))
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                var (input, targets) = Stage(batch);
                var output = _module.forward(input);
                var n = batch.Count * batch.TargetsPerSample;
                lossSum += _loss(output, targets).item<float>() * (double)n;
                var logits = output.reshape(-1, output.shape[^1]);
                correct += logits.argmax(1).eq(targets).sum().item<long>();
                targetsSeen += n;
            }
        }

        return new EvaluationResult(targetsSeen > 0 ? lossSum / targetsSeen : double.NaN, targetsSeen > 0 ? (double)correct / targetsSeen : 0, targetsSeen);
    }

    /// <inheritdoc/>
    public void ResetOptimizer(InnerOptimizerSettings settings)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(settings);
        var fresh = BuildOptimizer(settings);
        _optimizer.Dispose();
        _optimizer = fresh;
        _settings = settings;
        _sgdSteps = 0;
    }

    /// <inheritdoc/>
    public OptimizerState ExportOptimizerState()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var states = StateList();
        if (_optimizer is AdamW)
        {
            var m = new ParameterSet(Layout);
            var v = new ParameterSet(Layout);
            long step = 0;
            for (var i = 0; i < states.Count; i++)
            {
                var s = (AdamW.State)states[i];
                CopyToHost(s.exp_avg, i, m.GetSpan(i));
                CopyToHost(s.exp_avg_sq, i, v.GetSpan(i));
                step = Math.Max(step, s.step);
            }

            return new OptimizerState("adamw", step, _settings.LearningRate,
                new Dictionary<string, ParameterSet>(StringComparer.Ordinal) { ["exp_avg"] = m, ["exp_avg_sq"] = v },
                Hyperparameters(_settings, Layout.Count));
        }

        var buffers = new Dictionary<string, ParameterSet>(StringComparer.Ordinal);
        if (_settings.Momentum != 0)
        {
            var b = new ParameterSet(Layout);
            for (var i = 0; i < states.Count; i++)
            {
                if (((SGD.State)states[i]).momentum_buffer is { } buf)
                {
                    CopyToHost(buf, i, b.GetSpan(i));
                }
            }

            buffers["momentum_buffer"] = b;
        }

        return new OptimizerState("sgd", _sgdSteps, _settings.LearningRate, buffers, Hyperparameters(_settings, Layout.Count));
    }

    /// <inheritdoc/>
    public void ImportOptimizerState(OptimizerState state)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(state);
        var kind = _optimizer is AdamW ? "adamw" : "sgd";
        if (!string.Equals(state.Kind, kind, StringComparison.Ordinal))
        {
            throw new InvalidOptimizerStateException($"Cannot import optimizer state of kind '{state.Kind}' into a '{kind}' optimizer.");
        }

        if (!double.IsFinite(state.LearningRate) || state.LearningRate < 0)
        {
            throw new InvalidOptimizerStateException($"Optimizer state has an invalid learning rate ({state.LearningRate}).");
        }

        foreach (var (name, mine) in Hyperparameters(_settings, Layout.Count))
        {
            if (state.Hyperparameters.TryGetValue(name, out var theirs) && !theirs.Equals(mine))
            {
                throw new InvalidOptimizerStateException(string.Create(CultureInfo.InvariantCulture,
                    $"Optimizer state has {name} = {theirs} but this optimizer has {mine}; the continuation would not match."));
            }
        }

        ParameterSet Require(string name)
        {
            if (!state.Buffers.TryGetValue(name, out var b))
            {
                throw new InvalidOptimizerStateException($"Optimizer state of kind '{state.Kind}' has no buffer '{name}'.");
            }

            if (!b.Layout.Equals(Layout))
            {
                throw new InvalidOptimizerStateException($"Optimizer state buffer '{name}' has layout {b.Layout.Fingerprint}, not this model's {Layout.Fingerprint}.");
            }

            if (b.FindNonFinite() is { } bad)
            {
                throw new InvalidOptimizerStateException($"Optimizer state buffer '{name}' has a non-finite value in '{bad.Tensor}' at element {bad.Index}.");
            }

            return b;
        }

        var states = StateList();
        using var _ = no_grad();
        if (_optimizer is AdamW)
        {
            var m = Require("exp_avg");
            var v = Require("exp_avg_sq");
            for (var i = 0; i < states.Count; i++)
            {
                var s = (AdamW.State)states[i];
                CopyFromHost(m.GetSpan(i), i, s.exp_avg);
                CopyFromHost(v.GetSpan(i), i, s.exp_avg_sq);
                s.step = state.StepCount;
            }
        }
        else if (_settings.Momentum != 0)
        {
            var b = Require("momentum_buffer");
            for (var i = 0; i < states.Count; i++)
            {
                var s = (SGD.State)states[i];
                if (state.StepCount == 0)
                {
                    // PyTorch (and the managed SGD) start the buffer from the first gradient
                    s.momentum_buffer?.Dispose();
                    s.momentum_buffer = null;
                    continue;
                }

                s.momentum_buffer ??= zeros_like(_params[i]).DetachFromDisposeScope();
                CopyFromHost(b.GetSpan(i), i, s.momentum_buffer);
            }
        }

        _sgdSteps = state.StepCount;
        SetLearningRate(state.LearningRate);
        _settings = _settings with { LearningRate = state.LearningRate };
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _optimizer.Dispose();
        foreach (var g in _grads)
        {
            g.Dispose();
        }

        if (_staging is not null)
        {
            foreach (var s in _staging)
            {
                s.Dispose();
            }
        }

        _batchTensors?.Dispose();
        _module.Dispose();
    }

    private static Tensor DefaultLoss(Tensor output, Tensor targets) =>
        output.dim() == 2
            ? nn.functional.cross_entropy(output, targets)
            : nn.functional.cross_entropy(output.reshape(-1, output.shape[^1]), targets);

    private static Dictionary<string, double> Hyperparameters(InnerOptimizerSettings s, int tensors) =>
        string.Equals(s.Kind, "adamw", StringComparison.Ordinal)
            ? new(StringComparer.Ordinal)
            {
                ["beta1"] = s.Beta1, ["beta2"] = s.Beta2, ["eps"] = s.Epsilon, ["weight_decay"] = s.WeightDecay, ["decayed_tensors"] = tensors,
            }
            : new(StringComparer.Ordinal)
            {
                ["momentum"] = s.Momentum, ["dampening"] = 0, ["nesterov"] = 0, ["weight_decay"] = s.WeightDecay, ["decayed_tensors"] = tensors,
            };

    private TorchOptimizer BuildOptimizer(InnerOptimizerSettings s)
    {
        static void Check(string name, double value, double max = double.MaxValue)
        {
            if (!double.IsFinite(value) || value < 0 || value >= max)
            {
                throw new ArgumentOutOfRangeException(name, value, $"{name} must be finite, non-negative and below {max}.");
            }
        }

        Check(nameof(s.LearningRate), s.LearningRate);
        Check(nameof(s.WeightDecay), s.WeightDecay);
        switch (s.Kind)
        {
            case "adamw":
                Check(nameof(s.Beta1), s.Beta1, 1);
                Check(nameof(s.Beta2), s.Beta2, 1);
                Check(nameof(s.Epsilon), s.Epsilon);

                // every value explicitly: TorchSharp's AdamW defaults to weight_decay 0 (PyTorch: 0.01) and its
                // torch.optim.AdamW factory to beta2 0.99
                return new AdamW(_params, lr: s.LearningRate, beta1: s.Beta1, beta2: s.Beta2, eps: s.Epsilon, weight_decay: s.WeightDecay, amsgrad: false, maximize: false);
            case "sgd":
                Check(nameof(s.Momentum), s.Momentum);
                return new SGD(_params, lr: s.LearningRate, momentum: s.Momentum, dampening: 0, weight_decay: s.WeightDecay, nesterov: false, maximize: false);
            default:
                throw new ArgumentException($"Inner optimizer '{s.Kind}' is not supported by the TorchSharp engine (adamw, sgd).", nameof(s));
        }
    }

    private List<global::TorchSharp.Modules.OptimizerState> StateList() => ((OptimizerHelper)_optimizer).state_dict().State;

    private void SetLearningRate(double lr)
    {
        foreach (var g in _optimizer.ParamGroups)
        {
            g.LearningRate = lr;
        }
    }

    private (Tensor Input, Tensor Targets) Stage(Batch batch)
    {
        var staged = _batchTensors;
        if (staged is null || !staged.Fits(batch))
        {
            staged?.Dispose();
            staged = _batchTensors = new BatchTensors(batch, _sampleShape);
        }

        return staged.Fill(batch, Device, _onCpu);
    }

    private unsafe void CheckGradientsFinite()
    {
        for (var i = 0; i < _grads.Length; i++)
        {
            var g = _grads[i];
            if (_onCpu)
            {
                var span = new ReadOnlySpan<float>(Ptr(g), Layout.Entries[i].Length);
                var at = IndexOfNonFinite(span);
                if (at >= 0)
                {
                    throw new NonFiniteValueException("gradient of " + Layout.Entries[i].Name, at, span[at]);
                }
            }
            else
            {
                using var scope = NewDisposeScope();
                if (!g.isfinite().all().item<bool>())
                {
                    CopyToHost(g, i, Gradients.GetSpan(i));
                    var at = IndexOfNonFinite(Gradients.GetSpan(i));
                    throw new NonFiniteValueException("gradient of " + Layout.Entries[i].Name, at, at >= 0 ? Gradients.GetSpan(i)[at] : float.NaN);
                }
            }
        }
    }

    internal static int IndexOfNonFinite(ReadOnlySpan<float> x)
    {
        var i = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= Vector<float>.Count)
        {
            var v = MemoryMarshal.Cast<float, Vector<float>>(x);
            for (var k = 0; k < v.Length; k++)
            {
                // x − x is 0 for finite x and NaN for ±Inf and NaN
                if (!Vector.EqualsAll(v[k] - v[k], Vector<float>.Zero))
                {
                    i = k * Vector<float>.Count;
                    break;
                }

                i = (k + 1) * Vector<float>.Count;
            }
        }

        for (; i < x.Length; i++)
        {
            if (!float.IsFinite(x[i]))
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>The first element of a contiguous CPU tensor (TorchSharp's <c>bytes</c> view, no copy).</summary>
    internal static unsafe void* Ptr(Tensor t) => Unsafe.AsPointer(ref MemoryMarshal.GetReference(t.bytes));

    private unsafe void CopyToHost(Tensor source, int index, Span<float> destination)
    {
        if (_onCpu)
        {
            new ReadOnlySpan<float>(Ptr(source), destination.Length).CopyTo(destination);
            return;
        }

        var staging = _staging![index];
        staging.copy_(source);
        new ReadOnlySpan<float>(Ptr(staging), destination.Length).CopyTo(destination);
    }

    private unsafe void CopyFromHost(ReadOnlySpan<float> source, int index, Tensor destination)
    {
        if (_onCpu)
        {
            source.CopyTo(new Span<float>(Ptr(destination), source.Length));
            return;
        }

        // writing raw memory (the CPU path above) bypasses autograd; copy_ into a leaf that requires grad needs no_grad
        var staging = _staging![index];
        source.CopyTo(new Span<float>(Ptr(staging), source.Length));
        using var _ = no_grad();
        destination.copy_(staging);
    }

    /// <summary>CPU tensors sized for one batch shape, filled in place every step.</summary>
    private sealed class BatchTensors : IDisposable
    {
        private readonly Tensor _input;
        private readonly Tensor _targets;
        private readonly int _capacity;
        private readonly int _features;
        private readonly int _tokens;
        private readonly int _targetsPerSample;

        public BatchTensors(Batch batch, long[]? sampleShape)
        {
            _capacity = batch.Capacity;
            _features = batch.FeaturesPerSample;
            _tokens = batch.TokensPerSample;
            _targetsPerSample = batch.TargetsPerSample;
            if (_features > 0)
            {
                var shape = sampleShape ?? [_features];
                long product = 1;
                foreach (var d in shape)
                {
                    product *= d;
                }

                if (product != _features)
                {
                    throw new ShapeMismatchException(string.Create(CultureInfo.InvariantCulture,
                        $"The sample shape [{string.Join(", ", shape)}] holds {product} values but the batch has {_features} features per sample."));
                }

                _input = empty([_capacity, .. shape], ScalarType.Float32, CPU).DetachFromDisposeScope();
            }
            else if (_tokens > 0)
            {
                _input = empty([_capacity, _tokens], ScalarType.Int64, CPU).DetachFromDisposeScope();
            }
            else
            {
                throw new ShapeMismatchException("The batch has neither features nor tokens.");
            }

            _targets = empty([(long)_capacity * _targetsPerSample], ScalarType.Int64, CPU).DetachFromDisposeScope();
        }

        public bool Fits(Batch batch) =>
            batch.Capacity == _capacity && batch.FeaturesPerSample == _features && batch.TokensPerSample == _tokens && batch.TargetsPerSample == _targetsPerSample;

        public unsafe (Tensor Input, Tensor Targets) Fill(Batch batch, Device device, bool onCpu)
        {
            var n = batch.Count;
            if (_features > 0)
            {
                batch.Features.AsSpan(0, n * _features).CopyTo(new Span<float>(Ptr(_input), n * _features));
            }
            else
            {
                var dst = new Span<long>(Ptr(_input), n * _tokens);
                var src = batch.Tokens.AsSpan(0, n * _tokens);
                for (var i = 0; i < dst.Length; i++)
                {
                    dst[i] = src[i];
                }
            }

            var t = new Span<long>(Ptr(_targets), n * _targetsPerSample);
            var ts = batch.Targets.AsSpan(0, n * _targetsPerSample);
            for (var i = 0; i < t.Length; i++)
            {
                t[i] = ts[i];
            }

            var input = n == _capacity ? _input : _input.narrow(0, 0, n);
            var targets = n == _capacity ? _targets : _targets.narrow(0, 0, (long)n * _targetsPerSample);
            return onCpu ? (input, targets) : (input.to(device), targets.to(device));
        }

        public void Dispose()
        {
            _input.Dispose();
            _targets.Dispose();
        }
    }
}
