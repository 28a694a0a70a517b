using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using Google.Protobuf.Reflection;

namespace NearML.Docs.Tests;

/// <summary>
/// docs/protocol.md matches the .proto files exactly: its "Message reference" lists every message with every field (number,
/// name, type), every enum with every value, and every reserved range of <c>src/NearML.Core/Protos/*.proto</c>, and nothing
/// else. The .proto files are read as text (they are the public contract); the parse is also checked against the descriptors
/// compiled into NearML.Core, so the reader cannot silently miss a field.
/// </summary>
[TestClass]
public sealed partial class ProtocolDocTests
{
    private static readonly string[] ProtoFiles = ["wire.proto", "aggregation.proto"];

    [TestMethod]
    public void The_message_reference_in_docs_protocol_md_matches_the_proto_files()
    {
        var differences = Compare(ReadProtos(), ReadDoc());
        Assert.IsEmpty(differences, "docs/protocol.md and the .proto files differ:\n" + string.Join('\n', differences));
    }

    [TestMethod]
    public void The_proto_reader_sees_what_the_compiler_compiled()
    {
        var files = ReadProtos();
        var compiled = new Dictionary<string, FileDescriptor>(StringComparer.Ordinal)
        {
            ["wire.proto"] = NearML.Core.Contracts.WireReflection.Descriptor,
            ["aggregation.proto"] = NearML.Core.Contracts.Aggregation.AggregationReflection.Descriptor,
        };
        foreach (var (file, items) in files)
        {
            var descriptor = compiled[file];
            CollectionAssert.AreEquivalent(
                descriptor.MessageTypes.Select(m => m.Name).ToList(), items.Where(i => i.Kind == "message").Select(i => i.Name).ToList(), file);
            CollectionAssert.AreEquivalent(
                descriptor.EnumTypes.Select(e => e.Name).ToList(), items.Where(i => i.Kind == "enum").Select(i => i.Name).ToList(), file);
            foreach (var m in descriptor.MessageTypes)
            {
                var item = items.Single(i => i.Kind == "message" && i.Name == m.Name);
                CollectionAssert.AreEqual(
                    m.Fields.InDeclarationOrder().Select(f => $"{f.FieldNumber} {f.Name}").ToList(),
                    item.Entries.Select(e => $"{e.Number} {e.Name}").ToList(),
                    $"{file} {m.Name}");
            }

            foreach (var e in descriptor.EnumTypes)
            {
                var item = items.Single(i => i.Kind == "enum" && i.Name == e.Name);
                CollectionAssert.AreEqual(e.Values.Select(v => $"{v.Number} {v.Name}").ToList(), item.Entries.Select(x => $"{x.Number} {x.Name}").ToList(), $"{file} {e.Name}");
            }
        }
    }

    [TestMethod]
    public void Every_single_drift_is_reported()
    {
        var protos = ReadProtos();
        var lines = File.ReadAllLines(DocPath());
        var (start, end) = ReferenceSection(lines);
        var mutated = 0;
        for (var i = start; i < end; i++)
        {
            var line = lines[i];
            if (!line.StartsWith("| ", StringComparison.Ordinal) || line.StartsWith("| #", StringComparison.Ordinal) || line.StartsWith("| Value", StringComparison.Ordinal))
            {
                continue;
            }

            // Dropping a row, and renaming its field or value, must each be reported.
            var dropped = lines.Where((_, j) => j != i).ToArray();
            Assert.IsNotEmpty(Compare(protos, ParseDoc(dropped)), $"dropping line {i + 1} went unnoticed: {line}");
            var renamed = (string[])lines.Clone();
            renamed[i] = BacktickName().Replace(line, m => $"`{m.Groups[1].Value}_x`", 1);
            Assert.IsNotEmpty(Compare(protos, ParseDoc(renamed)), $"renaming in line {i + 1} went unnoticed: {line}");
            mutated++;
        }

        Assert.IsGreaterThan(200, mutated, "the reference holds every field and enum value (hundreds of rows)");

        // A field added to a .proto but not to the doc.
        var extra = protos.ToDictionary(p => p.Key, p => p.Value.Select(i => i with { Entries = [.. i.Entries] }).ToList());
        extra["wire.proto"].First(i => i.Name == "Hello").Entries.Add(new ProtoEntry("99", "new_field", "string"));
        var differences = Compare(extra, ReadDoc());
        Assert.HasCount(1, differences);
        StringAssert.Contains(differences[0], "Hello");
        StringAssert.Contains(differences[0], "new_field");
    }

    internal sealed record ProtoEntry(string Number, string Name, string? Type);

    internal sealed record ProtoItem(string Kind, string Name, List<ProtoEntry> Entries, List<string> Reserved);

    private static Dictionary<string, List<ProtoItem>> ReadProtos() =>
        ProtoFiles.ToDictionary(f => f, f => ParseProto(File.ReadAllLines(Path.Combine(RepositoryRoot(), "src", "NearML.Core", "Protos", f))), StringComparer.Ordinal);

    private static Dictionary<string, List<ProtoItem>> ReadDoc() => ParseDoc(File.ReadAllLines(DocPath()));

    private static string DocPath() => Path.Combine(RepositoryRoot(), "docs", "protocol.md");

    /// <summary>Reads messages, enums, fields (oneof members included), values and reserved statements from proto3 text.</summary>
    internal static List<ProtoItem> ParseProto(IEnumerable<string> lines)
    {
        var items = new List<ProtoItem>();
        var stack = new Stack<ProtoItem?>(); // null marks a oneof block (its fields belong to the enclosing message)
        foreach (var raw in lines)
        {
            var code = LineComment().Replace(raw, string.Empty).Trim();
            if (code.Length == 0)
            {
                continue;
            }

            Match m;
            if ((m = Block().Match(code)).Success)
            {
                var item = new ProtoItem(m.Groups[1].Value, m.Groups[2].Value, [], []);
                items.Add(item);
                stack.Push(item);
            }
            else if (OneOf().IsMatch(code))
            {
                stack.Push(null);
            }
            else if (code == "}")
            {
                stack.Pop();
            }
            else if (stack.Count > 0)
            {
                var owner = stack.First(s => s is not null)!;
                if ((m = Reserved().Match(code)).Success)
                {
                    owner.Reserved.Add(m.Groups[1].Value);
                }
                else if (owner.Kind == "message" && (m = Field().Match(code)).Success)
                {
                    owner.Entries.Add(new ProtoEntry(m.Groups[4].Value, m.Groups[3].Value, m.Groups[1].Value + m.Groups[2].Value));
                }
                else if (owner.Kind == "enum" && (m = EnumValue().Match(code)).Success)
                {
                    owner.Entries.Add(new ProtoEntry(m.Groups[2].Value, m.Groups[1].Value, null));
                }
                else
                {
                    throw new FormatException($"unrecognised line in {owner.Kind} {owner.Name}: {raw}");
                }
            }
        }

        return items;
    }

    private static (int Start, int End) ReferenceSection(string[] lines)
    {
        var start = Array.FindIndex(lines, l => l.Trim() == "## Message reference");
        Assert.IsGreaterThanOrEqualTo(0, start, "docs/protocol.md has no \"## Message reference\" section");
        var end = Array.FindIndex(lines, start + 1, l => l.StartsWith("## ", StringComparison.Ordinal));
        return (start + 1, end < 0 ? lines.Length : end);
    }

    /// <summary>Reads the reference section: <c>### file.proto</c>, <c>#### message `X`</c> / <c>#### enum `X`</c>, table rows, <c>Reserved: `…`</c>.</summary>
    private static Dictionary<string, List<ProtoItem>> ParseDoc(string[] lines)
    {
        var (start, end) = ReferenceSection(lines);
        var files = new Dictionary<string, List<ProtoItem>>(StringComparer.Ordinal);
        List<ProtoItem>? file = null;
        ProtoItem? item = null;
        for (var i = start; i < end; i++)
        {
            var line = lines[i].Trim();
            Match m;
            if (line.StartsWith("### ", StringComparison.Ordinal))
            {
                file = files[line[4..].Trim()] = [];
                item = null;
            }
            else if ((m = DocHeading().Match(line)).Success)
            {
                item = new ProtoItem(m.Groups[1].Value, m.Groups[2].Value, [], []);
                (file ?? throw new FormatException($"line {i + 1}: {line} comes before any ### file heading")).Add(item);
            }
            else if (item is not null && (m = DocReserved().Match(line)).Success)
            {
                item.Reserved.Add(m.Groups[1].Value);
            }
            else if (item is { Kind: "message" } && (m = DocFieldRow().Match(line)).Success)
            {
                item.Entries.Add(new ProtoEntry(m.Groups[1].Value, m.Groups[2].Value, m.Groups[3].Value));
            }
            else if (item is { Kind: "enum" } && (m = DocValueRow().Match(line)).Success)
            {
                item.Entries.Add(new ProtoEntry(m.Groups[1].Value, m.Groups[2].Value, null));
            }
        }

        return files;
    }

    private static List<string> Compare(Dictionary<string, List<ProtoItem>> protos, Dictionary<string, List<ProtoItem>> doc)
    {
        var differences = new List<string>();
        foreach (var name in doc.Keys.Except(protos.Keys))
        {
            differences.Add($"the doc describes {name}, which is not a .proto file");
        }

        foreach (var (fileName, items) in protos)
        {
            if (!doc.TryGetValue(fileName, out var documented))
            {
                differences.Add($"{fileName}: no \"### {fileName}\" heading");
                continue;
            }

            foreach (var item in items)
            {
                var d = documented.FirstOrDefault(x => x.Kind == item.Kind && x.Name == item.Name);
                if (d is null)
                {
                    differences.Add($"{fileName}: {item.Kind} {item.Name} is not documented");
                    continue;
                }

                var want = item.Entries.Select(Row).ToList();
                var have = d.Entries.Select(Row).ToList();
                differences.AddRange(want.Except(have).Select(r => $"{fileName}: {item.Kind} {item.Name}: {r} is missing from the doc"));
                differences.AddRange(have.Except(want).Select(r => $"{fileName}: {item.Kind} {item.Name}: the doc has {r}, the .proto does not"));
                if (want.Count == have.Count && !want.SequenceEqual(have))
                {
                    differences.Add($"{fileName}: {item.Kind} {item.Name}: the doc lists its entries in another order");
                }

                if (!item.Reserved.SequenceEqual(d.Reserved))
                {
                    differences.Add($"{fileName}: {item.Kind} {item.Name}: reserved [{string.Join("; ", item.Reserved)}] in the .proto, [{string.Join("; ", d.Reserved)}] in the doc");
                }
            }

            foreach (var extra in documented.Where(d => !items.Any(i => i.Kind == d.Kind && i.Name == d.Name)))
            {
                differences.Add($"{fileName}: the doc describes {extra.Kind} {extra.Name}, which the .proto does not have");
            }
        }

        return differences;

        static string Row(ProtoEntry e) => e.Type is null ? $"{e.Number} {e.Name}" : $"{e.Number} {e.Name} ({e.Type})";
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

    [GeneratedRegex(@"//.*$")]
    private static partial Regex LineComment();

    [GeneratedRegex(@"^(message|enum)\s+(\w+)\s*\{$")]
    private static partial Regex Block();

    [GeneratedRegex(@"^oneof\s+\w+\s*\{$")]
    private static partial Regex OneOf();

    [GeneratedRegex(@"^reserved\s+(.*);$")]
    private static partial Regex Reserved();

    [GeneratedRegex(@"^(repeated\s+)?(map<[^>]+>|[\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;$")]
    private static partial Regex Field();

    [GeneratedRegex(@"^(\w+)\s*=\s*(-?\d+)\s*;$")]
    private static partial Regex EnumValue();

    [GeneratedRegex(@"^#### (message|enum) `(\w+)`$")]
    private static partial Regex DocHeading();

    [GeneratedRegex(@"^Reserved: `(.*)`$")]
    private static partial Regex DocReserved();

    [GeneratedRegex(@"^\| (\d+) \| `(\w+)` \| `([^`]+)` \|")]
    private static partial Regex DocFieldRow();

    [GeneratedRegex(@"^\| (-?\d+) \| `(\w+)` \|")]
    private static partial Regex DocValueRow();

    [GeneratedRegex(@"`(\w+)`")]
    private static partial Regex BacktickName();
}
