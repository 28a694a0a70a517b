namespace NearML.Training.Tests.Data;

/// <summary>Finds the project's shared folder (a sibling named <c>shared</c> of the repository root) by walking up.</summary>
internal static class SharedFolder
{
    public static string? Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "NearML.sln")))
            {
                var shared = Path.Combine(dir.Parent?.FullName ?? dir.FullName, "shared");
                return Directory.Exists(shared) ? shared : null;
            }
        }

        return null;
    }

    public static string RequireFile(string relative)
    {
        var shared = Find();
        var path = shared is null ? null : Path.Combine(shared, relative);
        if (path is null || !File.Exists(path))
        {
            Assert.Inconclusive($"Shared file '{relative}' is not available (looked for a 'shared' folder next to the repository root).");
        }

        return path!;
    }
}
