using Microsoft.AspNetCore.Http;

namespace NearML.Dashboard;

/// <summary>The page, script and style sheet embedded in this assembly.</summary>
internal static class DashboardAssets
{
    private static readonly Dictionary<string, byte[]> Cache = Load();

    public static IReadOnlyCollection<string> Names => Cache.Keys;

    public static byte[] Get(string name) => Cache[name];

    public static async Task WriteAsync(HttpContext context, string name)
    {
        context.Response.ContentType = Path.GetExtension(name) switch
        {
            ".html" => "text/html; charset=utf-8",
            ".js" => "text/javascript; charset=utf-8",
            ".css" => "text/css; charset=utf-8",
            _ => "application/octet-stream",
        };
        await context.Response.Body.WriteAsync(Cache[name], context.RequestAborted).ConfigureAwait(false);
    }

    private static Dictionary<string, byte[]> Load()
    {
        const string Prefix = "NearML.Dashboard.Assets.";
        var assembly = typeof(DashboardAssets).Assembly;
        var result = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var resource in assembly.GetManifestResourceNames().Where(n => n.StartsWith(Prefix, StringComparison.Ordinal)))
        {
            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            result[resource[Prefix.Length..]] = copy.ToArray();
        }

        return result;
    }
}
