using System.Security.Cryptography;
using NearML.Hosting.Jobs;
using NearML.Training.Data;

namespace NearML.Hosting.Tests.Jobs;

/// <summary>
/// The Fashion-MNIST subset shipped in data/fashion-mnist-subset (so that the README's first command works on a machine
/// without Debian's dataset-fashion-mnist) and <see cref="FashionMnistSource"/>, which picks it when the full set is absent.
/// </summary>
[TestClass]
public sealed class FashionMnistSubsetTests
{
    private static string SubsetDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "data", "fashion-mnist-subset");
            if (File.Exists(Path.Combine(candidate, FashionMnistSource.ManifestName)))
            {
                return candidate;
            }
        }

        throw new AssertFailedException("data/fashion-mnist-subset was not found above " + AppContext.BaseDirectory);
    }

    private static string NewTempDirectory()
    {
        var dir = Path.Combine(Path.GetTempPath(), "nearml-fmnist-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    [TestMethod]
    public void The_shipped_files_are_the_ones_the_generator_recorded()
    {
        var dir = SubsetDirectory();
        var lines = File.ReadAllLines(Path.Combine(dir, FashionMnistSource.ManifestName));
        var expected = FashionMnistSource.FileNames.Select(f => f + ".gz").Order(StringComparer.Ordinal).ToArray();
        var named = lines.Select(l => l.Split("  ", 2)[1]).Order(StringComparer.Ordinal).ToArray();
        CollectionAssert.AreEqual(expected, named, "SHA256SUMS must name exactly the four IDX files");
        foreach (var line in lines)
        {
            var parts = line.Split("  ", 2);
            var bytes = File.ReadAllBytes(Path.Combine(dir, parts[1]));
            Assert.AreEqual(parts[0], Convert.ToHexStringLower(SHA256.HashData(bytes)), parts[1]);

            // Reproducible gzip: the generator writes mtime 0 (bytes 4-7 of the header).
            Assert.AreEqual(0, BitConverter.ToInt32(bytes, 4), parts[1] + " gzip mtime");
        }

        Assert.IsTrue(File.ReadAllText(Path.Combine(dir, "LICENSE")).Contains("Zalando SE", StringComparison.Ordinal), "the MIT attribution ships with the files");
        Assert.IsLessThan(6L * 1024 * 1024, Directory.GetFiles(dir, "*.gz").Sum(f => new FileInfo(f).Length), "the subset stays small");
    }

    [TestMethod]
    public void The_subset_loads_with_every_class_in_both_splits()
    {
        var data = FashionMnist.Load(SubsetDirectory());
        Assert.AreEqual(FashionMnistSource.SubsetTrainCount, data.Train.Count);
        Assert.AreEqual(FashionMnistSource.SubsetTestCount, data.Test.Count);
        foreach (var split in new[] { data.Train, data.Test })
        {
            var perClass = split.Labels.GroupBy(l => l).ToDictionary(g => g.Key, g => g.Count());
            Assert.HasCount(10, perClass);
            Assert.IsTrue(perClass.Values.All(n => n >= split.Count / 20), "each class has at least half its share");
        }

        Assert.IsTrue(data.Train.Features.All(x => x is >= 0f and <= 1f));
        Assert.IsGreaterThan(0.1f, data.Train.Features.Average(), "real images, not zeros");
    }

    [TestMethod]
    public void The_subset_is_the_first_images_of_the_full_set()
    {
        if (!FashionMnistSource.IsComplete(FashionMnist.DefaultDirectory))
        {
            Assert.Inconclusive("the full Fashion-MNIST set is not installed (sudo apt-get install dataset-fashion-mnist)");
        }

        var full = FashionMnist.Load(FashionMnist.DefaultDirectory);
        var subset = FashionMnist.Load(SubsetDirectory());
        CollectionAssert.AreEqual(full.Train.Labels[..subset.Train.Count], subset.Train.Labels);
        CollectionAssert.AreEqual(full.Test.Labels[..subset.Test.Count], subset.Test.Labels);
        Assert.IsTrue(full.Train.Features.AsSpan(0, subset.Train.Features.Length).SequenceEqual(subset.Train.Features));
        Assert.IsTrue(full.Test.Features.AsSpan(0, subset.Test.Features.Length).SequenceEqual(subset.Test.Features));
    }

    [TestMethod]
    public void Resolve_uses_the_subset_when_the_full_set_is_absent()
    {
        var subset = SubsetDirectory();
        var missing = Path.Combine(Path.GetTempPath(), "nearml-no-such-" + Guid.NewGuid().ToString("N"));
        var location = FashionMnistSource.Resolve(null, missing, subset);
        Assert.AreEqual(new FashionMnistLocation(subset, true), location);
        Assert.Contains("subset", location.Description);
        Assert.AreEqual(FashionMnistSource.SubsetTrainCount, FashionMnist.Load(location.Directory).Train.Count);
    }

    [TestMethod]
    public void Resolve_uses_the_full_set_when_all_four_files_are_there_and_the_subset_when_any_one_is_missing()
    {
        var subset = SubsetDirectory();
        var full = NewTempDirectory();
        try
        {
            // Raw and .gz names both count.
            for (var i = 0; i < FashionMnistSource.FileNames.Count; i++)
            {
                File.WriteAllBytes(Path.Combine(full, FashionMnistSource.FileNames[i] + (i % 2 == 0 ? ".gz" : string.Empty)), [0]);
            }

            Assert.AreEqual(new FashionMnistLocation(full, false), FashionMnistSource.Resolve(null, full, subset));

            foreach (var file in Directory.GetFiles(full))
            {
                var aside = file + ".aside";
                File.Move(file, aside);
                Assert.AreEqual(new FashionMnistLocation(subset, true), FashionMnistSource.Resolve(null, full, subset), "without " + Path.GetFileName(file));
                File.Move(aside, file);
            }
        }
        finally
        {
            Directory.Delete(full, recursive: true);
        }
    }

    [TestMethod]
    public void Resolve_takes_a_named_folder_as_is_and_falls_back_to_the_full_folder_when_nothing_is_there()
    {
        var subset = SubsetDirectory();
        var missing = Path.Combine(Path.GetTempPath(), "nearml-no-such-" + Guid.NewGuid().ToString("N"));

        // A folder the caller names is never replaced by the subset, so the loader's error names it.
        Assert.AreEqual(new FashionMnistLocation(missing, false), FashionMnistSource.Resolve(missing, subset, subset));
        Assert.AreEqual(new FashionMnistLocation(subset, true), FashionMnistSource.Resolve(subset, missing, missing));

        // Neither present: the full set's folder, whose loading fails with the install hint.
        var location = FashionMnistSource.Resolve(null, missing, missing + "-subset");
        Assert.AreEqual(new FashionMnistLocation(missing, false), location);
        var ex = Assert.ThrowsExactly<DatasetNotFoundException>(() => FashionMnist.Load(location.Directory));
        Assert.AreEqual(missing, ex.Path);
    }

    [TestMethod]
    public void The_fashion_mnist_registration_loads_the_subset_from_the_host_data_folder()
    {
        var registration = BuiltInJobs.Datasets.Single(d => d.Key == JobDataset.FashionMnistName);
        var data = (ClassificationDataset)registration.Provider(EmptyServices.Instance, new DatasetLoadContext("{}", 1, SubsetDirectory()));
        Assert.AreEqual(FashionMnistSource.SubsetTrainCount, data.RecordCount);
        Assert.AreEqual(FashionMnistSource.SubsetTestCount, data.Test.Count);
    }

    private sealed class EmptyServices : IServiceProvider
    {
        public static readonly EmptyServices Instance = new();

        public object? GetService(Type serviceType) => null;
    }
}
