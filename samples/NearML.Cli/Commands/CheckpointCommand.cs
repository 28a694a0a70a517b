using System.CommandLine;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using NearML.Core;
using NearML.Hosting.State;
using NearML.Samples;
using Spectre.Console;

namespace NearML.Cli.Commands;

/// <summary>
/// <c>nearml checkpoint inspect FILE|DATA</c>: reads a coordinator checkpoint (safetensors: <c>param.*</c> and
/// <c>outer_momentum.*</c> tensors, <c>nearml.*</c> metadata), checks its SHA-256 against the coordinator's index and the
/// parameters against the hash in its own metadata. Exit 0 when every check passes, 1 otherwise.
/// </summary>
internal static class CheckpointCommand
{
    private const string ParamPrefix = "param.";
    private const string MomentumPrefix = "outer_momentum.";

    public static Command Create()
    {
        var checkpoint = new Command("checkpoint", "Inspect coordinator checkpoints");
        var path = new Argument<string>("checkpoint") { Description = "A .safetensors checkpoint, or the coordinator data folder (its latest indexed checkpoint)" };
        var json = CliIO.JsonOption();
        var inspect = new Command("inspect", "Show a checkpoint's tensors and metadata and verify its file hash (against coordinator.db) and parameter hash")
        {
            path, json,
        };
        inspect.SetAction(parse => Inspect(parse.GetRequiredValue(path), parse.GetValue(json)));
        checkpoint.Subcommands.Add(inspect);
        return checkpoint;
    }

    private static int Inspect(string path, bool json)
    {
        var full = Path.GetFullPath(path);
        CheckpointRecord? indexed = null;
        string? indexPath = null;
        if (Directory.Exists(full))
        {
            var db = CliIO.ExistingSqlite(full, "coordinator.db", "coordinator state (coordinator.db)");
            using var state = new CoordinatorStateStore(db);
            indexed = state.LatestCheckpoint() ?? throw new CommandLineExitException(SampleCommandLine.Refused, $"{db} indexes no checkpoint yet");
            indexPath = db;
            full = indexed.Path;
            if (!File.Exists(full))
            {
                return SampleCommandLine.Fail(SampleCommandLine.Refused, $"the latest checkpoint (round {indexed.Round}) indexed in {db} is missing: {full}");
            }
        }
        else
        {
            full = CliIO.ExistingFile(full, string.Empty, "checkpoint file");
            var db = Path.Combine(Path.GetDirectoryName(Path.GetDirectoryName(full)!) ?? string.Empty, "coordinator.db");
            if (File.Exists(db))
            {
                using var state = new CoordinatorStateStore(db);
                indexed = state.ListCheckpoints().FirstOrDefault(c => string.Equals(Path.GetFullPath(c.Path), full, StringComparison.Ordinal));
                indexPath = indexed is null ? null : db;
            }
        }

        var bytes = File.ReadAllBytes(full);
        var sha = Convert.ToHexStringLower(SHA256.HashData(bytes));
        var checks = new List<(string Name, bool Passed, string Detail)>();
        if (indexed is not null)
        {
            checks.Add(("file SHA-256", sha == indexed.FileSha256, sha == indexed.FileSha256
                ? $"{sha} as indexed in {indexPath}"
                : $"{sha}, but {indexPath} recorded {indexed.FileSha256} ({bytes.Length} bytes now, {indexed.Bytes} then)"));
        }

        SafeTensorsContent content;
        try
        {
            using var ms = new MemoryStream(bytes, writable: false);
            content = SafeTensors.Read(ms, full);
        }
        catch (InvalidDataFormatException ex)
        {
            return SampleCommandLine.Fail(SampleCommandLine.Refused, $"'{full}' is not a readable safetensors checkpoint: {ex.Message}");
        }

        var entries = content.Parameters.Layout.Entries;
        var parameters = entries.Where(e => e.Name.StartsWith(ParamPrefix, StringComparison.Ordinal)).ToList();
        var momentum = entries.Where(e => e.Name.StartsWith(MomentumPrefix, StringComparison.Ordinal)).ToList();
        if (parameters.Count > 0)
        {
            var layout = new ParameterLayout(parameters.Select(e => (e.Name[ParamPrefix.Length..], e.Shape.ToArray())));
            var set = new ParameterSet(layout);
            foreach (var e in parameters)
            {
                content.Parameters.GetSpan(e.Name).CopyTo(set.GetSpan(e.Name[ParamPrefix.Length..]));
            }

            var hash = Convert.ToHexStringLower(set.ComputeHash());
            if (content.Metadata.TryGetValue("nearml.parameters_sha256", out var recorded))
            {
                checks.Add(("parameters SHA-256", hash == recorded, hash == recorded ? hash : $"{hash}, but the metadata says {recorded}"));
            }

            checks.Add(("finite", set.IsFinite, set.IsFinite ? "every parameter is finite" : "a parameter is NaN or infinite"));
        }

        if (momentum.Count > 0)
        {
            var matches = momentum.Count == parameters.Count && momentum.All(m => parameters.Any(p => p.Name[ParamPrefix.Length..] == m.Name[MomentumPrefix.Length..] && p.Shape.SequenceEqual(m.Shape)));
            checks.Add(("momentum layout", matches, matches ? "one outer-momentum tensor per parameter, same shapes" : "the outer-momentum tensors do not match the parameters"));
        }

        var ok = checks.All(c => c.Passed);
        if (json)
        {
            CliIO.WriteJson(new JsonObject
            {
                ["path"] = full,
                ["bytes"] = bytes.Length,
                ["sha256"] = sha,
                ["metadata"] = new JsonObject([.. content.Metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))]),
                ["parameters"] = parameters.Sum(e => (long)e.Length),
                ["tensors"] = new JsonArray([.. entries.Select(e => (JsonNode)new JsonObject { ["name"] = e.Name, ["shape"] = new JsonArray([.. e.Shape.Select(s => (JsonNode)s)]), ["elements"] = e.Length })]),
                ["checks"] = new JsonArray([.. checks.Select(c => (JsonNode)new JsonObject { ["name"] = c.Name, ["passed"] = c.Passed, ["detail"] = c.Detail })]),
                ["valid"] = ok,
            });
        }
        else
        {
            AnsiConsole.MarkupLineInterpolated($"Checkpoint [bold]{full}[/]: {bytes.Length:N0} bytes, SHA-256 {sha}");
            foreach (var (k, v) in content.Metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                AnsiConsole.MarkupLineInterpolated($"  {k} = {v}");
            }

            var table = new Table().AddColumns("tensor", "shape", "elements");
            foreach (var e in entries)
            {
                table.AddRow(Markup.Escape(e.Name), Markup.Escape(e.ShapeText), e.Length.ToString("N0", CultureInfo.InvariantCulture));
            }

            AnsiConsole.Write(table);
            AnsiConsole.MarkupLineInterpolated($"{parameters.Count} parameter tensors ({parameters.Sum(e => (long)e.Length):N0} values), {momentum.Count} outer-momentum tensors");
            foreach (var c in checks)
            {
                AnsiConsole.MarkupLineInterpolated($"{(c.Passed ? "pass" : "FAIL")}  {c.Name}: {c.Detail}");
            }

            AnsiConsole.MarkupLine(ok ? "[bold green]OK[/]" : "[bold red]CHECK FAILED[/]");
        }

        if (!ok)
        {
            return SampleCommandLine.Fail(SampleCommandLine.Refused, "checkpoint check failed: " + string.Join("; ", checks.Where(c => !c.Passed).Select(c => $"{c.Name}: {c.Detail}")));
        }

        return SampleCommandLine.Success;
    }
}
