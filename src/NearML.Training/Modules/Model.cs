using NearML.Training.Data;
using NearML.Training.Modules.Internal;
using NearML.Training.Tensors;

namespace NearML.Training.Modules;

/// <summary>A trainable model: maps a <see cref="Batch"/> to logits [rows, classes] scored against the batch's targets.</summary>
public abstract class Model : Module
{
    /// <summary>Starts a model with its own, still empty parameter set: declare layers and parameters in the derived
    /// constructor, then call <see cref="InitializeParameters"/>.</summary>
    protected Model()
        : base(new ParameterRegistry(), string.Empty)
    {
    }

    private protected Model(ParameterRegistry registry)
        : base(registry, string.Empty)
    {
    }

    /// <summary>Allocates the model's parameter and gradient sets (one contiguous buffer each, in declaration order)
    /// and initialises every declared parameter from a generator seeded with <paramref name="seed"/>. Call it once, at
    /// the end of the derived constructor.</summary>
    /// <param name="seed">The initialisation seed: equal seeds give bit-identical parameters.</param>
    /// <exception cref="InvalidOperationException">The parameters are already initialised, or the model declares none
    /// (a model with no trainable parameters cannot be trained or synchronised).</exception>
    protected void InitializeParameters(int seed) => Registry.Complete(seed);

    /// <summary>Gets the number of classes (the logits' last dimension).</summary>
    public abstract int Classes { get; }

    /// <summary>Computes the logits for the first <see cref="Batch.Count"/> samples of <paramref name="batch"/>.</summary>
    /// <param name="tape">The tape that records the step.</param>
    /// <param name="batch">The batch.</param>
    /// <returns>Logits [rows, <see cref="Classes"/>], one row per target in the batch.</returns>
    public abstract Tensor Forward(Tape tape, Batch batch);

    /// <summary>Computes the mean cross-entropy of <see cref="Forward(Tape, Batch)"/> against the batch's targets.</summary>
    /// <param name="tape">The tape.</param>
    /// <param name="batch">The batch.</param>
    /// <returns>The scalar loss.</returns>
    public Tensor Loss(Tape tape, Batch batch)
    {
        ArgumentNullException.ThrowIfNull(tape);
        ArgumentNullException.ThrowIfNull(batch);
        return tape.CrossEntropy(Forward(tape, batch), batch.Targets, 0);
    }

    /// <summary>Counts rows of <paramref name="logits"/> whose arg-max equals the target.</summary>
    /// <param name="logits">Logits [rows, classes].</param>
    /// <param name="targets">Targets (rows of them from index 0).</param>
    /// <returns>The number of correct rows.</returns>
    public static int CountCorrect(Tensor logits, int[] targets)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(targets);
        var c = logits.Dim(-1);
        var rows = logits.Length / c;
        var d = logits.Data;
        var correct = 0;
        for (var r = 0; r < rows; r++)
        {
            if (System.Numerics.Tensors.TensorPrimitives.IndexOfMax(d.Slice(r * c, c)) == targets[r])
            {
                correct++;
            }
        }

        return correct;
    }

    /// <summary>Checks that <paramref name="batch"/> has <paramref name="features"/> features per sample and a valid count.</summary>
    /// <param name="batch">The batch.</param>
    /// <param name="features">The features the model takes per sample.</param>
    /// <exception cref="ShapeMismatchException">The batch has another feature count.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The batch count is outside [1, Capacity].</exception>
    protected static void CheckFeatures(Batch batch, int features)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.FeaturesPerSample != features)
        {
            throw new ShapeMismatchException($"The model takes {features} features per sample but the batch has {batch.FeaturesPerSample}.");
        }

        if (batch.Count <= 0 || batch.Count > batch.Capacity)
        {
            throw new ArgumentOutOfRangeException(nameof(batch), batch.Count, "The batch must hold between 1 and Capacity samples.");
        }
    }
}

/// <summary>
/// The Fashion-MNIST multilayer perceptron: Flatten → Linear(784, 256) → ReLU → Linear(256, 256) → ReLU →
/// Linear(256, 10) (PyTorch <c>nn.Sequential</c> names <c>1.*</c>, <c>3.*</c>, <c>5.*</c>, as in bench_mlp.py).
/// </summary>
public sealed class Mlp : Model
{
    /// <summary>Creates the model with PyTorch's default initialisation from a seeded generator.</summary>
    /// <param name="inputs">Input features.</param>
    /// <param name="hidden">Hidden width.</param>
    /// <param name="classes">Output classes.</param>
    /// <param name="seed">The initialisation seed.</param>
    public Mlp(int inputs = 784, int hidden = 256, int classes = 10, int seed = 0)
        : base(new ParameterRegistry())
    {
        Inputs = inputs;
        Classes = classes;
        Fc1 = new Linear(Registry, "1", inputs, hidden, true, InitScheme.Torch);
        Fc2 = new Linear(Registry, "3", hidden, hidden, true, InitScheme.Torch);
        Fc3 = new Linear(Registry, "5", hidden, classes, true, InitScheme.Torch);
        Registry.Complete(seed);
    }

    /// <summary>Gets the number of input features.</summary>
    public int Inputs { get; }

    /// <inheritdoc/>
    public override int Classes { get; }

    /// <summary>Gets the first layer.</summary>
    public Linear Fc1 { get; }

    /// <summary>Gets the second layer.</summary>
    public Linear Fc2 { get; }

    /// <summary>Gets the output layer.</summary>
    public Linear Fc3 { get; }

    /// <inheritdoc/>
    public override Tensor Forward(Tape tape, Batch batch)
    {
        ArgumentNullException.ThrowIfNull(tape);
        CheckFeatures(batch, Inputs);
        return Forward(tape, tape.Input(batch.Features, 0, batch.Count, Inputs));
    }

    /// <summary>Computes logits from an input tensor.</summary>
    /// <param name="tape">The tape.</param>
    /// <param name="x">Input [N, inputs].</param>
    /// <returns>Logits [N, classes].</returns>
    public Tensor Forward(Tape tape, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(tape);
        var h = Fc1.Forward(tape, x, Activation.Relu);
        h = Fc2.Forward(tape, h, Activation.Relu);
        return Fc3.Forward(tape, h);
    }
}

/// <summary>
/// The small Fashion-MNIST CNN of bench_cnn.py: Conv(1→32, 3) → ReLU → MaxPool 2 → Conv(32→64, 3) → ReLU →
/// MaxPool 2 → Flatten (1600) → Linear(1600, 128) → ReLU → Linear(128, 10); names <c>0.*</c>, <c>3.*</c>,
/// <c>7.*</c>, <c>9.*</c>.
/// </summary>
public sealed class SmallCnn : Model
{
    /// <summary>Creates the model with PyTorch's default initialisation from a seeded generator.</summary>
    /// <param name="seed">The initialisation seed.</param>
    public SmallCnn(int seed = 0)
        : base(new ParameterRegistry())
    {
        Conv1 = new Conv2d(Registry, "0", 1, 32, 3, 1, 0);
        Conv2 = new Conv2d(Registry, "3", 32, 64, 3, 1, 0);
        Fc1 = new Linear(Registry, "7", 1600, 128, true, InitScheme.Torch);
        Fc2 = new Linear(Registry, "9", 128, 10, true, InitScheme.Torch);
        Registry.Complete(seed);
    }

    /// <inheritdoc/>
    public override int Classes => 10;

    /// <summary>Gets the first convolution.</summary>
    public Conv2d Conv1 { get; }

    /// <summary>Gets the second convolution.</summary>
    public Conv2d Conv2 { get; }

    /// <summary>Gets the hidden fully connected layer.</summary>
    public Linear Fc1 { get; }

    /// <summary>Gets the output layer.</summary>
    public Linear Fc2 { get; }

    /// <inheritdoc/>
    public override Tensor Forward(Tape tape, Batch batch)
    {
        ArgumentNullException.ThrowIfNull(tape);
        CheckFeatures(batch, 784);
        return Forward(tape, tape.Input(batch.Features, 0, batch.Count, 1, 28, 28));
    }

    /// <summary>Computes logits from an image tensor.</summary>
    /// <param name="tape">The tape.</param>
    /// <param name="x">Images [N, 1, 28, 28].</param>
    /// <returns>Logits [N, 10].</returns>
    public Tensor Forward(Tape tape, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(tape);
        ArgumentNullException.ThrowIfNull(x);
        var h = Conv1.Forward(tape, x, Activation.Relu);
        h = tape.MaxPool2d(h, 2);
        h = Conv2.Forward(tape, h, Activation.Relu);
        h = tape.MaxPool2d(h, 2);
        h = tape.Reshape(h, h.Dim(0), 1600);
        h = Fc1.Forward(tape, h, Activation.Relu);
        return Fc2.Forward(tape, h);
    }
}
