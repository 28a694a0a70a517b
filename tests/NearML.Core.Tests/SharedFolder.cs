namespace NearML.Core.Tests;

/// <summary>Locates the repository root and the <c>shared</c> folder beside it.</summary>
internal static class SharedFolder
{
    public static string? RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "NearML.sln")))
            {
                return dir.FullName;
            }
        }

        return null;
    }

    public static string Fixture(params string[] parts) => Path.Combine([AppContext.BaseDirectory, "Fixtures", .. parts]);
}
