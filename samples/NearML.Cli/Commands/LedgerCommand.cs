using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using NearML.Ledger;
using NearML.Samples;
using Spectre.Console;

namespace NearML.Cli.Commands;

/// <summary><c>nearml ledger verify|show|export</c>: check and read a coordinator's contribution ledger (<c>ledger.db</c>).</summary>
internal static class LedgerCommand
{
    private const string LedgerFile = "ledger.db";

    public static Command Create()
    {
        var ledger = new Command("ledger", "Verify, show and export the contribution ledger (ledger.db, or the coordinator data folder holding it)");
        ledger.Subcommands.Add(CreateVerify());
        ledger.Subcommands.Add(CreateShow());
        ledger.Subcommands.Add(CreateExport());
        return ledger;
    }

    internal static Argument<string> PathArgument() => new("ledger") { Description = "ledger.db, or the coordinator data folder that holds it" };

    /// <summary>Opens an existing ledger (never creates one).</summary>
    internal static ContributionLedger Open(string path) => ContributionLedger.OpenSqlite(CliIO.ExistingSqlite(path, LedgerFile, "ledger database (ledger.db)"));

    private static Command CreateVerify()
    {
        var path = PathArgument();
        var skipSignatures = new Option<bool>("--skip-signatures") { Description = "Check only the hash chain (signatures are ~100x slower)" };
        var coordinatorKey = new Option<string?>("--coordinator-key") { Description = "Require every receipt to be signed by this key (ed25519:<base58>)", HelpName = "KEY" };
        var json = CliIO.JsonOption();
        var verify = new Command("verify", "Walk the hash chain and check every receipt's signatures; exit 0 when intact, 1 naming the first bad entry")
        {
            path, skipSignatures, coordinatorKey, json,
        };
        verify.SetAction(parse =>
        {
            NearPublicKey? key = null;
            if (parse.GetValue(coordinatorKey) is { } k)
            {
                try
                {
                    key = NearPublicKey.Parse(k);
                }
                catch (Exception ex) when (ex is InvalidNearKeyException or FormatException or ArgumentException)
                {
                    throw new CommandLineExitException(SampleCommandLine.BadInput, $"--coordinator-key '{k}' is not an ed25519:<base58> key: {ex.Message}");
                }
            }

            var file = CliIO.ExistingSqlite(parse.GetRequiredValue(path), LedgerFile, "ledger database (ledger.db)");
            using var ledger = ContributionLedger.OpenSqlite(file);
            var head = ledger.Head;
            var epochs = ledger.Store.ListEpochs();
            var chain = ledger.Verify();
            LedgerVerificationResult? signatures = chain.IsValid && !parse.GetValue(skipSignatures)
                ? ledger.VerifySignatures(key)
                : null;
            var failure = !chain.IsValid ? chain : signatures is { IsValid: false } ? signatures : null;
            if (parse.GetValue(json))
            {
                CliIO.WriteJson(new JsonObject
                {
                    ["path"] = file,
                    ["valid"] = failure is null,
                    ["entries"] = head.Count,
                    ["epochs"] = epochs.Count,
                    ["head"] = Head(head),
                    ["chain"] = Result(chain),
                    ["signatures"] = signatures is null ? null : Result(signatures),
                    ["problem"] = failure?.Message,
                });
            }
            else
            {
                AnsiConsole.MarkupLineInterpolated($"Ledger [bold]{file}[/]: {head.Count} entries in {epochs.Count} epoch(s); head hash {CliIO.Hex(head.LastHash)} (epoch {head.LastEpoch})");
                AnsiConsole.MarkupLineInterpolated($"hash chain: {(chain.IsValid ? "OK" : "FAILED")} - {chain.Message}");
                AnsiConsole.MarkupLineInterpolated($"signatures: {(signatures is null ? "not checked" : signatures.IsValid ? "OK" : "FAILED")}{(signatures is null ? string.Empty : " - " + signatures.Message)}");
                AnsiConsole.MarkupLine(failure is null ? "[bold green]VERIFIED[/]" : "[bold red]NOT VERIFIED[/]");
            }

            if (failure is not null)
            {
                return SampleCommandLine.Fail(SampleCommandLine.Refused, $"ledger verification failed ({failure.Problem}): {failure.Message}");
            }

            return SampleCommandLine.Success;
        });
        return verify;
    }

    private static Command CreateShow()
    {
        var path = PathArgument();
        var epoch = new Option<long?>("--epoch") { Description = "List the receipts of this epoch", HelpName = "N" };
        var json = CliIO.JsonOption();
        var show = new Command("show", "Show the ledger head and each epoch (entries, Merkle root, workers, samples), or one epoch's receipts")
        {
            path, epoch, json,
        };
        show.SetAction(parse =>
        {
            using var ledger = Open(parse.GetRequiredValue(path));
            var head = ledger.Head;
            if (parse.GetValue(epoch) is { } e)
            {
                return ShowEpoch(ledger, e, parse.GetValue(json));
            }

            var rows = new JsonArray();
            var table = new Table().AddColumns("epoch", "entries", "sequences", "Merkle root", "workers", "samples");
            foreach (var ep in ledger.Store.ListEpochs())
            {
                var (first, count) = ledger.Store.GetEpochRange(ep)!.Value;
                var receipts = ReadReceipts(ledger, ep);
                var root = CliIO.Hex(ledger.ComputeEpochRoot(ep));
                var workers = receipts.Select(r => r.Receipt.WorkerId).Distinct(StringComparer.Ordinal).Count();
                var samples = receipts.Aggregate(0UL, (s, r) => s + r.Receipt.SamplesProcessed);
                rows.Add(new JsonObject { ["epoch"] = ep, ["entries"] = count, ["first_sequence"] = first, ["root"] = root, ["workers"] = workers, ["samples"] = samples });
                table.AddRow(
                    ep.ToString(CultureInfo.InvariantCulture), count.ToString(CultureInfo.InvariantCulture), $"{first}..{first + count - 1}",
                    root, workers.ToString(CultureInfo.InvariantCulture), samples.ToString("N0", CultureInfo.InvariantCulture));
            }

            if (parse.GetValue(json))
            {
                CliIO.WriteJson(new JsonObject { ["head"] = Head(head), ["epochs"] = rows });
            }
            else
            {
                AnsiConsole.MarkupLineInterpolated($"{head.Count} entries; head hash {CliIO.Hex(head.LastHash)} (epoch {head.LastEpoch}). Not verified here: run 'nearml ledger verify'.");
                AnsiConsole.Write(table);
            }

            return SampleCommandLine.Success;
        });
        return show;
    }

    private static int ShowEpoch(ContributionLedger ledger, long epoch, bool json)
    {
        if (ledger.Store.GetEpochRange(epoch) is not { } range)
        {
            return SampleCommandLine.Fail(SampleCommandLine.Refused, $"epoch {epoch} has no entries (epochs: {string.Join(", ", ledger.Store.ListEpochs())})");
        }

        var receipts = ReadReceipts(ledger, epoch);
        var root = CliIO.Hex(ledger.ComputeEpochRoot(epoch));
        if (json)
        {
            CliIO.WriteJson(new JsonObject
            {
                ["epoch"] = epoch,
                ["root"] = root,
                ["receipts"] = new JsonArray([.. receipts.Select((r, i) => (JsonNode)Receipt(range.FirstSequence + i, r))]),
            });
            return SampleCommandLine.Success;
        }

        AnsiConsole.MarkupLineInterpolated($"Epoch {epoch}: {range.Count} entries from sequence {range.FirstSequence}, Merkle root {root}");
        var table = new Table().AddColumns("seq", "job", "round", "worker", "samples", "steps", "compute s", "attestation", "countersigned");
        for (var i = 0; i < receipts.Count; i++)
        {
            var r = receipts[i].Receipt;
            table.AddRow(
                Markup.Escape((range.FirstSequence + i).ToString(CultureInfo.InvariantCulture)), Markup.Escape(r.JobId), r.Round.ToString(CultureInfo.InvariantCulture),
                Markup.Escape(r.WorkerId), r.SamplesProcessed.ToString("N0", CultureInfo.InvariantCulture), r.InnerSteps.ToString(CultureInfo.InvariantCulture),
                r.ComputeSeconds.ToString("0.0", CultureInfo.InvariantCulture), r.Verdict.ToString(), receipts[i].WorkerKey is null ? "no" : "yes");
        }

        AnsiConsole.Write(table);
        return SampleCommandLine.Success;
    }

    private static Command CreateExport()
    {
        var path = PathArgument();
        var format = new Option<string>("--format") { Description = "jsonl (one JSON object per entry) or csv", DefaultValueFactory = _ => "jsonl" };
        format.AcceptOnlyFromAmong("jsonl", "csv");
        var output = new Option<string?>("--output", "-o") { Description = "Write to this file instead of stdout", HelpName = "FILE" };
        var export = new Command("export", "Export every entry with its receipt (sequence, epoch, hashes, job, round, worker, work, verdict, keys, signatures); not verified here")
        {
            path, format, output,
        };
        export.SetAction(parse =>
        {
            using var ledger = Open(parse.GetRequiredValue(path));
            var csv = parse.GetValue(format) == "csv";
            var target = parse.GetValue(output);
            using var writer = target is null ? null : new StreamWriter(target, append: false, CliIO.Utf8);
            var w = writer ?? Console.Out;
            string[] columns =
            [
                "sequence", "epoch", "hash", "previous_hash", "job", "round", "worker", "samples", "tokens", "inner_steps", "compute_ms", "verdict",
                "update_hash", "timestamp_ms", "coordinator_key", "coordinator_signature", "worker_key", "worker_signature", "error",
            ];
            if (csv)
            {
                w.WriteLine(string.Join(',', columns));
            }

            long count = 0;
            foreach (var e in ledger.Store.Read(0))
            {
                var row = Entry(e);
                if (csv)
                {
                    w.WriteLine(string.Join(',', columns.Select(c => CliIO.Csv(row[c] is { } v ? v.ToString() : string.Empty))));
                }
                else
                {
                    w.WriteLine(row.ToJsonString());
                }

                count++;
            }

            if (target is not null)
            {
                Console.Error.WriteLine($"{count} entries written to {Path.GetFullPath(target)}");
            }

            return SampleCommandLine.Success;
        });
        return export;
    }

    private static JsonObject Entry(LedgerEntry e)
    {
        var row = new JsonObject
        {
            ["sequence"] = e.Sequence,
            ["epoch"] = e.Epoch,
            ["hash"] = CliIO.Hex(e.Hash),
            ["previous_hash"] = CliIO.Hex(e.PreviousHash),
        };
        try
        {
            var r = SignedReceipt.Parse(e.Payload, $"ledger entry {e.Sequence}");
            foreach (var (k, v) in Receipt(e.Sequence, r).ToList())
            {
                if (k != "sequence")
                {
                    row[k] = v?.DeepClone();
                }
            }
        }
        catch (Exception ex) when (ex is NearML.Core.InvalidDataFormatException or InvalidNearKeyException)
        {
            row["error"] = ex.Message;
        }

        return row;
    }

    private static JsonObject Receipt(long sequence, SignedReceipt s)
    {
        var r = s.Receipt;
        return new JsonObject
        {
            ["sequence"] = sequence,
            ["job"] = r.JobId,
            ["round"] = r.Round,
            ["worker"] = r.WorkerId,
            ["samples"] = r.SamplesProcessed,
            ["tokens"] = r.TokensProcessed,
            ["inner_steps"] = r.InnerSteps,
            ["compute_ms"] = r.ComputeMilliseconds,
            ["verdict"] = r.Verdict.ToString(),
            ["update_hash"] = CliIO.Hex(r.UpdateHash),
            ["timestamp_ms"] = r.TimestampUnixMilliseconds,
            ["coordinator_key"] = s.CoordinatorKey.ToString(),
            ["coordinator_signature"] = CliIO.Hex(s.CoordinatorSignature),
            ["worker_key"] = s.WorkerKey?.ToString(),
            ["worker_signature"] = s.WorkerSignature is null ? null : CliIO.Hex(s.WorkerSignature),
        };
    }

    internal static IReadOnlyList<SignedReceipt> ReadReceipts(ContributionLedger ledger, long epoch)
    {
        try
        {
            return ledger.ReadEpochReceipts(epoch);
        }
        catch (Exception ex) when (ex is NearML.Core.InvalidDataFormatException or InvalidNearKeyException or LedgerIntegrityException)
        {
            throw new CommandLineExitException(SampleCommandLine.Refused, $"epoch {epoch} cannot be read: {ex.Message} (run 'nearml ledger verify')");
        }
    }

    internal static JsonObject Head(LedgerHead head) => new() { ["count"] = head.Count, ["last_hash"] = CliIO.Hex(head.LastHash), ["last_epoch"] = head.LastEpoch };

    private static JsonObject Result(LedgerVerificationResult r) => new()
    {
        ["valid"] = r.IsValid,
        ["problem"] = r.Problem.ToString(),
        ["first_bad_sequence"] = r.FirstBadSequence,
        ["entries_checked"] = r.EntriesChecked,
        ["message"] = r.Message,
    };
}
