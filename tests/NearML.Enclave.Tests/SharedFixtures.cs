namespace NearML.Enclave.Tests;

/// <summary>Locates ../shared/fixtures/attestation by walking up from the test assembly; Inconclusive when absent.</summary>
internal static class SharedFixtures
{
    private static readonly Lazy<string?> Root = new(() =>
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string candidate = Path.Combine(d.FullName, "shared", "fixtures", "attestation");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    });

    public static string Dir
    {
        get
        {
            if (Root.Value is null)
            {
                Assert.Inconclusive("../shared/fixtures/attestation not found next to the repository");
            }

            return Root.Value!;
        }
    }

    public static string Path2(params string[] parts) => Path.Combine([Dir, .. parts]);

    public static byte[] Bytes(params string[] parts) => File.ReadAllBytes(Path2(parts));
}
