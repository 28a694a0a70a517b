using NearML.Core;

namespace NearML.Training.Data;

/// <summary>The Fashion-MNIST training and test sets.</summary>
/// <param name="Train">60 000 training images (28×28, pixels / 255) with labels 0–9.</param>
/// <param name="Test">10 000 test images with labels.</param>
public sealed record FashionMnistData(LabeledDataset Train, LabeledDataset Test);

/// <summary>A dataset directory or file the caller asked for does not exist.</summary>
public sealed class DatasetNotFoundException : NearMLException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="path">The missing path.</param>
    /// <param name="message">What is missing and how to get it.</param>
    public DatasetNotFoundException(string path, string message) : base(message) => Path = path;

    /// <summary>Gets the missing path.</summary>
    public string Path { get; }
}

/// <summary>
/// Loads Fashion-MNIST from its four IDX files (gzip or raw), exactly as the PyTorch reference scripts do:
/// pixels as float32 <c>x / 255</c> with sample shape [1, 28, 28], labels 0–9.
/// </summary>
public static class FashionMnist
{
    /// <summary>The directory Debian's <c>dataset-fashion-mnist</c> package installs to.</summary>
    public const string DefaultDirectory = "/usr/share/datasets/fashion-mnist";

    /// <summary>The environment variable that overrides <see cref="DefaultDirectory"/> (as in the reference scripts).</summary>
    public const string DirectoryVariable = "FASHION_MNIST_DIR";

    /// <summary>The number of classes.</summary>
    public const int ClassCount = 10;

    /// <summary>Gets the directory used when none is given: <c>$FASHION_MNIST_DIR</c> if set, else <see cref="DefaultDirectory"/>.</summary>
    public static string ResolveDefaultDirectory() =>
        Environment.GetEnvironmentVariable(DirectoryVariable) is { Length: > 0 } d ? d : DefaultDirectory;

    /// <summary>Loads the training and test sets.</summary>
    /// <param name="directory">The folder holding <c>train-images-idx3-ubyte[.gz]</c> etc.; <see langword="null"/> for <see cref="ResolveDefaultDirectory"/>.</param>
    /// <returns>The two sets.</returns>
    /// <exception cref="DatasetNotFoundException">The folder or a file is missing (the message names it and the install command).</exception>
    /// <exception cref="InvalidDataFormatException">A file is corrupt.</exception>
    public static FashionMnistData Load(string? directory = null)
    {
        directory ??= ResolveDefaultDirectory();
        if (!Directory.Exists(directory))
        {
            throw new DatasetNotFoundException(directory, $"Fashion-MNIST folder '{directory}' does not exist. Install it with 'sudo apt-get install dataset-fashion-mnist' (Debian/Ubuntu, installs to {DefaultDirectory}) or point to a folder holding the four IDX files (--data or ${DirectoryVariable}).");
        }

        return new FashionMnistData(
            LoadSplit(directory, "train"),
            LoadSplit(directory, "t10k"));
    }

    private static LabeledDataset LoadSplit(string directory, string prefix)
    {
        var images = IdxReader.ReadFile(Find(directory, $"{prefix}-images-idx3-ubyte"));
        var labels = IdxReader.ReadFile(Find(directory, $"{prefix}-labels-idx1-ubyte"));
        if (images.Dimensions.Length != 3 || images.Dimensions[1] != 28 || images.Dimensions[2] != 28)
        {
            throw new InvalidDataFormatException(images.Source, 4, $"expected images of dimensions [N, 28, 28] but found [{string.Join(", ", images.Dimensions)}].");
        }

        var set = LabeledDataset.FromIdx(images, labels, ClassCount);
        return new LabeledDataset(set.Features, set.Labels, [1, 28, 28], ClassCount);
    }

    private static string Find(string directory, string name)
    {
        foreach (var candidate in new[] { name + ".gz", name })
        {
            var p = Path.Combine(directory, candidate);
            if (File.Exists(p))
            {
                return p;
            }
        }

        throw new DatasetNotFoundException(Path.Combine(directory, name + ".gz"), $"Fashion-MNIST file '{Path.Combine(directory, name + ".gz")}' (or its uncompressed form) is missing. Reinstall with 'sudo apt-get install --reinstall dataset-fashion-mnist' or point to a complete folder.");
    }
}
