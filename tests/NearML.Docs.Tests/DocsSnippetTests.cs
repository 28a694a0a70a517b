using System.Collections.Immutable;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace NearML.Docs.Tests;

/// <summary>
/// Every <c>```csharp</c> block of README.md, docs/*.md and src/*/README.md compiles against the packages it documents,
/// so a renamed type or a missing <c>using</c> fails CI instead of the reader. A block is compiled on its own, as a
/// console program when it has top-level statements and as a library otherwise, with the implicit usings of an
/// ASP.NET Core project (the most generous SDK: nothing of NearML's is implicit, so a snippet must name its own
/// <c>using NearML…;</c>). Two HTML comments on the line just before a block steer it:
/// <c>&lt;!-- snippet: prelude CODE --&gt;</c> (one or more lines, inserted after the block's <c>using</c> directives) declares what a fragment assumes (e.g. <c>IServiceCollection services = null!;</c>),
/// and <c>&lt;!-- snippet: skip REASON --&gt;</c> leaves it out (a reason is required).
/// </summary>
[TestClass]
public sealed partial class DocsSnippetTests
{
    private static readonly string[] ImplicitUsings =
    [
        "System", "System.Collections.Generic", "System.IO", "System.Linq", "System.Net.Http", "System.Net.Http.Json", "System.Threading",
        "System.Threading.Tasks", "Microsoft.AspNetCore.Builder", "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Http",
        "Microsoft.AspNetCore.Routing", "Microsoft.Extensions.Configuration", "Microsoft.Extensions.DependencyInjection",
        "Microsoft.Extensions.Hosting", "Microsoft.Extensions.Logging",
    ];

    private static readonly Lazy<ImmutableArray<MetadataReference>> References = new(LoadReferences);

    public TestContext TestContext { get; set; } = null!;

    /// <summary>Every snippet: the file (relative to the checkout) and the line of its opening fence.</summary>
    public static IEnumerable<object[]> Snippets() => FindSnippets().Select(s => new object[] { s.File, s.Line });

    [TestMethod]
    public void The_documents_hold_snippets_and_every_skip_names_a_reason()
    {
        var all = FindSnippets().ToList();
        Assert.IsGreaterThanOrEqualTo(15, all.Count, "fewer C# snippets found than the docs hold: is the checkout found?");
        foreach (var s in all.Where(s => s.Skip is not null))
        {
            Assert.IsGreaterThanOrEqualTo(10, s.Skip!.Trim().Length, $"{s.File}:{s.Line}: a skipped snippet must say why");
        }
    }

    [TestMethod]
    [DynamicData(nameof(Snippets))]
    public void The_snippet_compiles(string file, int line)
    {
        Snippet snippet = FindSnippets().Single(s => s.File == file && s.Line == line);
        if (snippet.Skip is not null)
        {
            Assert.Inconclusive($"{file}:{line} is not compiled: {snippet.Skip}");
        }

        var usings = string.Concat(ImplicitUsings.Select(u => $"global using global::{u};\n"));
        string code = WithPrelude(snippet.Code, snippet.Prelude);
        var options = new CSharpParseOptions(LanguageVersion.Preview);
        SyntaxTree tree = CSharpSyntaxTree.ParseText(code, options, path: $"{file}:{line}");
        bool program = tree.GetCompilationUnitRoot().Members.Any(m => m is GlobalStatementSyntax);
        var compilation = CSharpCompilation.Create(
            "Snippet_" + line,
            [CSharpSyntaxTree.ParseText(usings, options, path: "ImplicitUsings.cs"), tree],
            References.Value,
            new CSharpCompilationOptions(program ? OutputKind.ConsoleApplication : OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable, allowUnsafe: true));
        var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        if (errors.Count > 0)
        {
            var numbered = string.Join('\n', code.Split('\n').Select((l, i) => $"{i + 1,3}| {l}"));
            Assert.Fail($"{file}:{line}: the snippet does not compile:\n{string.Join('\n', errors.Take(12))}\n\n{numbered}");
        }
    }

    private static IEnumerable<Snippet> FindSnippets()
    {
        string root = RepositoryRoot();
        var files = new List<string> { Path.Combine(root, "README.md") };
        files.AddRange(Directory.GetFiles(Path.Combine(root, "docs"), "*.md", SearchOption.AllDirectories).Order(StringComparer.Ordinal));
        files.AddRange(Directory.GetDirectories(Path.Combine(root, "src")).Select(d => Path.Combine(d, "README.md")).Where(File.Exists).Order(StringComparer.Ordinal));
        foreach (string path in files)
        {
            string relative = Path.GetRelativePath(root, path).Replace('\\', '/');
            string[] lines = File.ReadAllText(path).Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
            for (int i = 0; i < lines.Length; i++)
            {
                if (!Fence().IsMatch(lines[i]))
                {
                    continue;
                }

                int start = i;
                var body = new StringBuilder();
                for (i++; i < lines.Length && !lines[i].TrimStart().StartsWith("```", StringComparison.Ordinal); i++)
                {
                    body.Append(lines[i]).Append('\n');
                }

                string? prelude = null;
                string? skip = null;
                for (int j = start - 1; j >= 0 && lines[j].TrimStart().StartsWith("<!--", StringComparison.Ordinal); j--)
                {
                    Match m = Directive().Match(lines[j]);
                    if (m.Success && m.Groups[1].Value == "prelude")
                    {
                        // several prelude lines read top to bottom (the scan runs upwards)
                        prelude = prelude is null ? m.Groups[2].Value : m.Groups[2].Value + "\n" + prelude;
                    }
                    else if (m.Success && m.Groups[1].Value == "skip")
                    {
                        skip = m.Groups[2].Value;
                    }
                }

                yield return new Snippet(relative, start + 1, body.ToString(), prelude, skip);
            }
        }
    }

    /// <summary>
    /// The snippet with its prelude inserted after its leading <c>using</c> directives (and the blank or comment lines
    /// among them), which C# requires to come first.
    /// </summary>
    private static string WithPrelude(string code, string? prelude)
    {
        if (prelude is null)
        {
            return code;
        }

        // a prelude line that declares a type goes after the snippet (top-level statements must come before types)
        string[] preludeLines = prelude.Split('\n');
        string statements = string.Join('\n', preludeLines.Where(l => !TypeDeclaration().IsMatch(l)));
        string types = string.Join('\n', preludeLines.Where(l => TypeDeclaration().IsMatch(l)));
        string[] lines = code.Split('\n');
        int head = 0;
        for (int i = 0; i < lines.Length; i++)
        {
            string t = lines[i].Trim();
            if (UsingDirective().IsMatch(t))
            {
                head = i + 1;
            }
            else if (t.Length > 0 && !t.StartsWith("//", StringComparison.Ordinal))
            {
                break;
            }
        }

        return string.Join('\n', lines.Take(head).Append(statements).Concat(lines.Skip(head)).Append(types));
    }

    private static ImmutableArray<MetadataReference> LoadReferences()
    {
        // The runtime's and ASP.NET Core's assemblies, then every assembly next to the tests (NearML's packages and their
        // dependencies); one reference per assembly name.
        var paths = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        string tpa = AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES") as string ?? string.Empty;
        foreach (string p in tpa.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries).Concat(Directory.GetFiles(AppContext.BaseDirectory, "*.dll")))
        {
            string name = Path.GetFileNameWithoutExtension(p);
            if (name.StartsWith("Microsoft.CodeAnalysis", StringComparison.Ordinal) || name.StartsWith("MSTest", StringComparison.Ordinal) || name.StartsWith("Microsoft.VisualStudio", StringComparison.Ordinal) || name.StartsWith("Microsoft.TestPlatform", StringComparison.Ordinal) || name.StartsWith("testhost", StringComparison.Ordinal) || name.StartsWith("NearML.Docs.Tests", StringComparison.Ordinal))
            {
                continue;
            }

            paths.TryAdd(name, p);
        }

        var refs = ImmutableArray.CreateBuilder<MetadataReference>();
        foreach (string p in paths.Values)
        {
            try
            {
                using var fs = File.OpenRead(p);
                using var pe = new System.Reflection.PortableExecutable.PEReader(fs);
                if (pe.HasMetadata)
                {
                    refs.Add(MetadataReference.CreateFromFile(p));
                }
            }
            catch (BadImageFormatException)
            {
                // a native library with a .dll name
            }
        }

        return refs.ToImmutable();
    }

    /// <summary>The checkout: the first folder above the test binaries (or above this source file) with NearML.sln.</summary>
    private static string RepositoryRoot([CallerFilePath] string path = "")
    {
        foreach (string start in new[] { AppContext.BaseDirectory, Path.GetDirectoryName(path) ?? string.Empty })
        {
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            {
                if (File.Exists(Path.Combine(d.FullName, "NearML.sln")) && File.Exists(Path.Combine(d.FullName, "README.md")))
                {
                    return d.FullName;
                }
            }
        }

        throw new InvalidOperationException($"no checkout (NearML.sln + README.md) above {AppContext.BaseDirectory}");
    }

    [GeneratedRegex(@"^\s*```(csharp|cs|c#)\s*$", RegexOptions.IgnoreCase)]
    private static partial Regex Fence();

    [GeneratedRegex(@"<!--\s*snippet:\s*(prelude|skip)\s+(.*?)\s*-->")]
    private static partial Regex Directive();

    [GeneratedRegex(@"^(global\s+)?using\s+(static\s+)?[\w.]+(\s*=\s*[\w.<>, ]+)?\s*;$")]
    private static partial Regex UsingDirective();

    [GeneratedRegex(@"^\s*((public|internal|sealed|static|abstract|partial)\s+)*(class|record|struct|interface)\s")]
    private static partial Regex TypeDeclaration();

    private sealed record Snippet(string File, int Line, string Code, string? Prelude, string? Skip);
}
