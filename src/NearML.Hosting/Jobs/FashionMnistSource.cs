using NearML.Training.Data;

namespace NearML.Hosting.Jobs;

/// <summary>Where Fashion-MNIST was found: a folder, and whether it is the full data set or the shipped subset.</summary>
/// <param name="Directory">The folder holding the four IDX files.</param>
/// <param name="IsSubset"><see langword="true"/> when the folder is the subset shipped with NearML (its
/// <see cref="FashionMnistSource.ManifestName"/> is present), <see langword="false"/> for the full data set or a folder
/// the caller named.</param>
public sealed record FashionMnistLocation(string Directory, bool IsSubset)
{
    /// <summary>Gets a one-line description for logs and summaries, e.g. <c>the full Fashion-MNIST data set (/usr/share/datasets/fashion-mnist)</c>.</summary>
    public string Description => IsSubset
        ? $"the Fashion-MNIST subset shipped with NearML ({FashionMnistSource.SubsetTrainCount:N0} training, {FashionMnistSource.SubsetTestCount:N0} test images; {Directory})"
        : $"Fashion-MNIST from {Directory}";
}

/// <summary>
/// Finds Fashion-MNIST for the built-in <c>fashion-mnist</c> dataset: a folder the caller names (<c>--data</c>, the host's
/// data folder) is used as is; otherwise <c>$FASHION_MNIST_DIR</c> if set; otherwise the full data set in
/// <see cref="FashionMnist.DefaultDirectory"/> (Debian's <c>dataset-fashion-mnist</c>) when it is installed; otherwise the
/// compact subset shipped with NearML (the first 10,000 training and 2,000 test images; repository folder
/// <c>data/fashion-mnist-subset</c>, copied next to the application as <see cref="SubsetFolder"/>).
/// </summary>
public static class FashionMnistSource
{
    /// <summary>The shipped subset's folder, relative to the application's base directory.</summary>
    public const string SubsetFolder = "data/fashion-mnist-subset";

    /// <summary>The file (sha256sum format) that marks a folder as the shipped subset and pins its bytes.</summary>
    public const string ManifestName = "SHA256SUMS";

    /// <summary>The number of training images in the shipped subset.</summary>
    public const int SubsetTrainCount = 10_000;

    /// <summary>The number of test images in the shipped subset.</summary>
    public const int SubsetTestCount = 2_000;

    /// <summary>The four IDX file names (each also accepted with <c>.gz</c>).</summary>
    public static IReadOnlyList<string> FileNames { get; } =
        ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

    /// <summary>Decides which Fashion-MNIST folder to load.</summary>
    /// <param name="requested">A folder the caller named (used as is, even if incomplete, so that the loader's error names it); <see langword="null"/> to look.</param>
    /// <param name="fullDirectory">Where the full data set is looked for; <see langword="null"/> for <see cref="FashionMnist.ResolveDefaultDirectory"/>.</param>
    /// <param name="subsetDirectory">Where the shipped subset is looked for; <see langword="null"/> for <see cref="SubsetFolder"/> under <see cref="AppContext.BaseDirectory"/>.</param>
    /// <returns>The folder and whether it is the subset. When neither is present, the full data set's folder (loading it then fails with the install hint).</returns>
    public static FashionMnistLocation Resolve(string? requested = null, string? fullDirectory = null, string? subsetDirectory = null)
    {
        if (requested is not null)
        {
            return new FashionMnistLocation(requested, IsShippedSubset(requested));
        }

        var explicitVariable = fullDirectory is null && Environment.GetEnvironmentVariable(FashionMnist.DirectoryVariable) is { Length: > 0 };
        var full = fullDirectory ?? FashionMnist.ResolveDefaultDirectory();
        if (explicitVariable || IsComplete(full))
        {
            return new FashionMnistLocation(full, IsShippedSubset(full));
        }

        var subset = subsetDirectory ?? Path.Combine(AppContext.BaseDirectory, SubsetFolder);
        return IsComplete(subset) ? new FashionMnistLocation(subset, true) : new FashionMnistLocation(full, false);
    }

    /// <summary>Gets whether <paramref name="directory"/> holds all four IDX files (raw or <c>.gz</c>).</summary>
    /// <param name="directory">The folder.</param>
    /// <returns><see langword="true"/> when all four are present.</returns>
    public static bool IsComplete(string directory) =>
        System.IO.Directory.Exists(directory)
        && FileNames.All(f => File.Exists(Path.Combine(directory, f)) || File.Exists(Path.Combine(directory, f + ".gz")));

    private static bool IsShippedSubset(string directory) => File.Exists(Path.Combine(directory, ManifestName));
}
