using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using NearML.Hosting.State;
using NearML.Ledger;
using NearML.Samples;
using Spectre.Console;

namespace NearML.Cli.Commands;

/// <summary><c>nearml job status DATA</c>: what a coordinator's state folder says about its job (works while it runs, or after).</summary>
internal static class JobCommand
{
    public static Command Create()
    {
        var job = new Command("job", "Read a coordinator's job state");
        var data = new Argument<string>("data") { Description = "The coordinator data folder (coordinator.db, ledger.db, checkpoints/)" };
        var json = CliIO.JsonOption();
        var status = new Command("status", "Job, completed rounds, latest checkpoint, ledger head, settlements and workers, from the coordinator's state folder")
        {
            data, json,
        };
        status.SetAction(parse =>
        {
            var folder = Path.GetFullPath(parse.GetRequiredValue(data));
            var db = CliIO.ExistingSqlite(folder, "coordinator.db", "coordinator state (coordinator.db)");
            folder = Path.GetDirectoryName(db)!;
            using var state = new CoordinatorStateStore(db);
            var jobRecord = state.ReadJob();
            var rounds = state.ReadRounds();
            var checkpoints = state.ListCheckpoints();
            var settlements = state.ReadSettlements();
            var membership = state.ReadMembership();
            var workers = membership.GroupBy(m => m.WorkerId, StringComparer.Ordinal)
                .Select(g => (Id: g.Key, Last: g.Last()))
                .OrderBy(w => w.Id, StringComparer.Ordinal)
                .ToList();
            LedgerHead? head = null;
            var ledgerPath = Path.Combine(folder, "ledger.db");
            if (File.Exists(ledgerPath))
            {
                using var ledger = ContributionLedger.OpenSqlite(ledgerPath);
                head = ledger.Head;
            }

            var configured = jobRecord is null ? null : Setting(jobRecord.Settings, "rounds");
            var last = rounds.Count == 0 ? null : rounds[^1];
            var latest = checkpoints.Count == 0 ? null : checkpoints[^1];
            var complete = configured is { } total && last is not null && last.Round + 1 >= total;
            if (parse.GetValue(json))
            {
                CliIO.WriteJson(new JsonObject
                {
                    ["data"] = folder,
                    ["job"] = jobRecord is null ? null : new JsonObject
                    {
                        ["id"] = jobRecord.JobId,
                        ["model"] = jobRecord.Model,
                        ["model_config"] = jobRecord.ModelConfig,
                        ["dataset_root"] = jobRecord.DatasetRoot,
                        ["settings"] = jobRecord.Settings,
                        ["created"] = CliIO.Time(jobRecord.CreatedUnixMs),
                    },
                    ["rounds_configured"] = configured,
                    ["rounds_completed"] = rounds.Count,
                    ["complete"] = complete,
                    ["last_round"] = last is null ? null : new JsonObject
                    {
                        ["round"] = last.Round,
                        ["parameter_version"] = last.ParameterVersion,
                        ["cohort"] = last.Cohort,
                        ["accepted"] = last.Accepted,
                        ["rejected"] = last.Rejected,
                        ["mean_loss"] = double.IsFinite(last.MeanLoss) ? last.MeanLoss : null,
                        ["accuracy"] = last.Accuracy,
                        ["completed"] = CliIO.Time(last.CompletedUnixMs),
                    },
                    ["last_accuracy"] = rounds.LastOrDefault(r => r.Accuracy is not null)?.Accuracy,
                    ["checkpoint"] = latest is null ? null : new JsonObject
                    {
                        ["round"] = latest.Round, ["path"] = latest.Path, ["sha256"] = latest.FileSha256, ["bytes"] = latest.Bytes, ["exists"] = File.Exists(latest.Path),
                    },
                    ["ledger"] = head is null ? null : LedgerCommand.Head(head),
                    ["settlements"] = new JsonArray([.. settlements.GroupBy(s => s.Epoch).Select(g => (JsonNode)new JsonObject
                    {
                        ["epoch"] = g.Key, ["transactions"] = g.Count(), ["dry_run"] = g.All(s => s.DryRun), ["hashes"] = new JsonArray([.. g.Select(s => (JsonNode)s.Hash)]),
                    })]),
                    ["workers"] = new JsonArray([.. workers.Select(w => (JsonNode)new JsonObject
                    {
                        ["id"] = w.Id, ["last_event"] = w.Last.Event, ["round"] = w.Last.Round, ["detail"] = w.Last.Detail,
                    })]),
                });
                return SampleCommandLine.Success;
            }

            if (jobRecord is null)
            {
                AnsiConsole.MarkupLineInterpolated($"{db}: no job recorded yet (the coordinator has not started a job here).");
                return SampleCommandLine.Success;
            }

            var grid = new Table().AddColumns("", "");
            grid.AddRow("job", Markup.Escape($"{jobRecord.JobId} ({jobRecord.Model} {jobRecord.ModelConfig}), started {CliIO.Time(jobRecord.CreatedUnixMs)}"));
            grid.AddRow("settings", Markup.Escape(jobRecord.Settings));
            grid.AddRow("rounds", Markup.Escape($"{rounds.Count} completed of {configured?.ToString(CultureInfo.InvariantCulture) ?? "?"}{(complete ? " (complete)" : string.Empty)}"));
            if (last is not null)
            {
                grid.AddRow("last round", Markup.Escape(string.Create(CultureInfo.InvariantCulture,
                    $"{last.Round}: {last.Accepted}/{last.Cohort} accepted, {last.Rejected} rejected, loss {(double.IsFinite(last.MeanLoss) ? last.MeanLoss.ToString("0.0000", CultureInfo.InvariantCulture) : "n/a")}, at {CliIO.Time(last.CompletedUnixMs)}")));
            }

            if (rounds.LastOrDefault(r => r.Accuracy is not null) is { } evaluated)
            {
                grid.AddRow("test accuracy", Markup.Escape(string.Create(CultureInfo.InvariantCulture, $"{evaluated.Accuracy:P2} after round {evaluated.Round}")));
            }

            grid.AddRow("checkpoint", Markup.Escape(latest is null ? "none" : $"round {latest.Round}: {latest.Path} ({latest.Bytes} bytes{(File.Exists(latest.Path) ? string.Empty : ", FILE MISSING")})"));
            grid.AddRow("ledger", Markup.Escape(head is null ? "none" : $"{head.Count} receipts, last epoch {head.LastEpoch}, head {CliIO.Hex(head.LastHash)}"));
            grid.AddRow("settlements", Markup.Escape(settlements.Count == 0 ? "none" : string.Join("; ", settlements.GroupBy(s => s.Epoch).Select(g => $"epoch {g.Key}: {g.Count()} tx{(g.All(s => s.DryRun) ? " (dry run)" : string.Empty)}"))));
            grid.AddRow("workers", Markup.Escape(workers.Count == 0 ? "none" : string.Join(", ", workers.Select(w => $"{w.Id} ({w.Last.Event} in round {w.Last.Round})"))));
            AnsiConsole.Write(grid);
            return SampleCommandLine.Success;
        });
        job.Subcommands.Add(status);
        return job;
    }

    private static long? Setting(string settings, string name)
    {
        foreach (var part in settings.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var kv = part.Split('=', 2);
            if (kv.Length == 2 && kv[0] == name && long.TryParse(kv[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var v))
            {
                return v;
            }
        }

        return null;
    }
}
