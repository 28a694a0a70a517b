using System.Runtime.CompilerServices;
using Microsoft.Extensions.DependencyInjection;
using NearML.Hosting.Jobs;
using NearML.Training.Data;
using NearML.Training.Engines;

namespace NearML.Hosting.Tests.ByoModel;

/// <summary>The README's "Bring your own model" snippet is ReadmeSnippet.cs (compiled here) and runs.</summary>
[TestClass]
public sealed class ReadmeSnippetTests
{
    [TestMethod]
    public void The_readme_snippet_is_the_compiled_file_verbatim()
    {
        var root = RepositoryRoot();
        var code = File.ReadAllText(Path.Combine(root, "tests", "NearML.Hosting.Tests", "ByoModel", "ReadmeSnippet.cs"));
        var begin = code.IndexOf("// README:begin\n", StringComparison.Ordinal);
        var end = code.IndexOf("// README:end", StringComparison.Ordinal);
        Assert.IsTrue(begin >= 0 && end > begin, "ReadmeSnippet.cs has lost its README markers");
        var snippet = code[(begin + "// README:begin\n".Length)..end].Replace("\r\n", "\n", StringComparison.Ordinal).TrimEnd();

        var readmePath = Path.Combine(root, "README.md");
        var readme = File.ReadAllText(readmePath).Replace("\r\n", "\n", StringComparison.Ordinal);
        const string Marker = "<!-- compiled: tests/NearML.Hosting.Tests/ByoModel/ReadmeSnippet.cs -->\n```csharp\n";
        var at = readme.IndexOf(Marker, StringComparison.Ordinal);
        Assert.IsGreaterThanOrEqualTo(0, at, "README.md has no managed 'Bring your own model' snippet marker");
        var start = at + Marker.Length;
        var stop = readme.IndexOf("\n```", start, StringComparison.Ordinal);
        var block = readme[start..stop].TrimEnd();
        Assert.AreEqual(snippet, block, "README.md's snippet differs from ReadmeSnippet.cs; copy the file's README region into the README");
    }

    [TestMethod]
    public void The_readme_snippet_registers_a_model_that_builds_and_trains()
    {
        var npz = Path.Combine(AppContext.BaseDirectory, "ByoModel", "blobs.npz");
        var services = new ServiceCollection();
        services.AddLogging();
        MyApp.Registration.AddMyModel(services, npz);
        using var provider = services.BuildServiceProvider();
        var registry = provider.GetRequiredService<JobRegistry>();
        using var model = registry.BuildModel("twolayer", new ModelBuildContext("{}", 3, new InnerOptimizerSettings(LearningRate: 0.01)));
        Assert.AreEqual("fc1.weight", model.Layout.Entries[0].Name);
        var data = ByoModelFixtures.BlobsDataset();
        var source = data.CreateTrainingSource([.. Enumerable.Range(0, data.RecordCount)], 16, 1);
        var eval = data.CreateEvaluationSource(30, 0);
        var before = model.Evaluate(eval).MeanLoss;
        var batch = source.CreateBatch();
        for (var epoch = 0; epoch < 5; epoch++)
        {
            source.StartEpoch(epoch);
            while (source.TryFill(batch))
            {
                model.TrainStep(batch);
            }
        }

        Assert.IsLessThan(before / 2, model.Evaluate(eval).MeanLoss);
        Assert.IsTrue(registry.HasDataset("my-data"));
    }

    /// <summary>The checkout: the first folder above the test binaries (or, failing that, above this source file) with NearML.sln.
    /// CI builds map source paths (/_/…), so the binaries' location is tried first.</summary>
    private static string RepositoryRoot([CallerFilePath] string path = "")
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Path.GetDirectoryName(path) ?? string.Empty })
        {
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            {
                if (File.Exists(Path.Combine(d.FullName, "NearML.sln")) && File.Exists(Path.Combine(d.FullName, "README.md")))
                {
                    return d.FullName;
                }
            }
        }

        Assert.Fail($"no checkout (NearML.sln + README.md) above {AppContext.BaseDirectory}");
        return string.Empty;
    }
}
