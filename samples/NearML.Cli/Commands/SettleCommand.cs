using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using NearML.Hosting.Settlement;
using NearML.Hosting.State;
using NearML.Ledger;
using NearML.Samples;
using Spectre.Console;

namespace NearML.Cli.Commands;

/// <summary>
/// <c>nearml settle DATA --epoch N --dry-run|--send</c>: pays an epoch of a coordinator's ledger on NEAR. The ledger is verified
/// (chain and signatures) first; the epoch's Merkle root and payouts are computed with <see cref="RewardPolicy"/> exactly as the
/// coordinator does. <c>--dry-run</c> prints the plan and touches nothing; <c>--send</c> settles through <see cref="NearSettler"/>
/// and the coordinator's own <c>settlement.db</c> (NEAR JSON-RPC through <see cref="SettlementService.CreateRpcClient"/>, the
/// coordinator's pooled client and retry), so a settlement is exactly once whether the coordinator or this tool (or
/// both, one after the other) ran it, and an interrupted run resumes with the same signed bytes.
/// </summary>
internal static class SettleCommand
{
    public static Command Create()
    {
        var data = new Argument<string>("data") { Description = "The coordinator data folder (ledger.db, ledger-signer.key, settlement.db)" };
        var epoch = new Option<long>("--epoch") { Description = "The ledger epoch to settle", Required = true, HelpName = "N" };
        var dryRun = new Option<bool>("--dry-run") { Description = "Verify and print the settlement plan (root, payouts); sign and send nothing" };
        var send = new Option<bool>("--send") { Description = "Sign and send the transactions (needs --rpc and --account)" };
        var pool = new Option<string>("--pool") { Description = "Reward pool of the epoch in yoctoNEAR (the coordinator's RewardPerEpoch)", DefaultValueFactory = _ => "1000000000000000000000000", HelpName = "YOCTO" };
        var countUnattested = new Option<bool>("--count-unattested") { Description = "Pay unattested work too (as a coordinator that allows simulated or unattested workers does)" };
        var account = new Option<string?>("--account") { Description = "The paying NEAR account (the coordinator's SettlementAccount)", HelpName = "ACCOUNT" };
        var key = new Option<string?>("--settlement-key", "--key")
        {
            Description = "Payer key file of --account (ed25519:<base58> or a NEAR CLI credential file; the coordinator's SettlementKeyPath). Required with --send; the ledger's signing key is never used by default",
            HelpName = "FILE",
        };
        var rpc = new Option<string?>("--rpc") { Description = "NEAR JSON-RPC endpoint (http or https URL)", HelpName = "URL" };
        var token = new Option<string?>("--token-contract") { Description = "Pay in this NEP-141 token instead of NEAR", HelpName = "ACCOUNT" };
        var anchor = new Option<string?>("--anchor-contract") { Description = "Also anchor the epoch root with this contract", HelpName = "ACCOUNT" };
        var json = CliIO.JsonOption();
        var settle = new Command("settle", "Settle one ledger epoch on NEAR: --dry-run prints the plan, --send pays exactly once (resumable)")
        {
            data, epoch, dryRun, send, pool, countUnattested, account, key, rpc, token, anchor, json,
        };
        settle.Validators.Add(r =>
        {
            var d = r.GetValue(dryRun);
            var s = r.GetValue(send);
            if (d == s)
            {
                r.AddError(d ? "--dry-run and --send exclude each other" : "choose --dry-run (print the plan) or --send (pay)");
            }
            else if (s && (r.GetResult(rpc) is null || r.GetResult(account) is null || r.GetResult(key) is null))
            {
                r.AddError("--send needs --rpc URL, --account ACCOUNT and --settlement-key FILE (the payer's key, not the ledger's)");
            }

        });

        settle.SetAction(async (parse, ct) =>
        {
            if (!UInt128.TryParse(parse.GetValue(pool), NumberStyles.None, CultureInfo.InvariantCulture, out var poolAmount))
            {
                return SampleCommandLine.Fail(SampleCommandLine.BadInput, $"--pool '{parse.GetValue(pool)}' is not a non-negative whole number of yoctoNEAR");
            }

            var folder = Path.GetFullPath(parse.GetRequiredValue(data));
            var e = parse.GetValue(epoch);
            var asJson = parse.GetValue(json);
            using var ledger = LedgerCommand.Open(folder);
            var chain = ledger.Verify(cancellationToken: ct);
            var signatures = chain.IsValid ? ledger.VerifySignatures(cancellationToken: ct) : chain;
            if (!signatures.IsValid)
            {
                return SampleCommandLine.Fail(SampleCommandLine.Refused, $"the ledger does not verify, nothing is settled: {signatures.Message}");
            }

            if (ledger.Store.GetEpochRange(e) is null)
            {
                return SampleCommandLine.Fail(SampleCommandLine.Refused, $"epoch {e} has no receipts in the ledger (epochs: {string.Join(", ", ledger.Store.ListEpochs())})");
            }

            var receipts = LedgerCommand.ReadReceipts(ledger, e).Select(r => r.Receipt).ToList();
            var root = ledger.ComputeEpochRoot(e);
            var distribution = new RewardPolicy { CountUnattested = parse.GetValue(countUnattested) }.Distribute(e, receipts, poolAmount);
            var payouts = distribution.Payouts.Where(p => p.Amount > 0).ToList();
            var previous = PreviousSettlements(folder, e);
            if (parse.GetValue(dryRun))
            {
                Print(asJson, e, root, receipts.Count, payouts, previous, null);
                return SampleCommandLine.Success;
            }

            if (!Uri.TryCreate(parse.GetValue(rpc), UriKind.Absolute, out var endpoint) || endpoint.Scheme is not ("http" or "https"))
            {
                return SampleCommandLine.Fail(SampleCommandLine.BadInput, $"--rpc '{parse.GetValue(rpc)}' is not an http(s) URL");
            }

            var keyPath = CliIO.ExistingFile(parse.GetValue(key)!, "settlement-payer.key", "payer key file");
            NearCredentials credentials;
            try
            {
                var keyText = File.ReadAllText(keyPath).Trim();
                credentials = keyText.StartsWith('{') ? NearCredentials.FromFile(keyPath) : NearCredentials.FromSecretKey(parse.GetValue(account)!, keyText);
                if (credentials.AccountId != parse.GetValue(account))
                {
                    var named = credentials.AccountId;
                    credentials.Dispose();
                    return SampleCommandLine.Fail(SampleCommandLine.BadInput, $"the credential file '{keyPath}' is for '{named}', not for --account '{parse.GetValue(account)}'");
                }
            }
            catch (Exception ex) when (ex is InvalidNearKeyException or FormatException or ArgumentException)
            {
                return SampleCommandLine.Fail(SampleCommandLine.BadInput, $"cannot use the signing key '{keyPath}' for '{parse.GetValue(account)}': {ex.Message}");
            }

            using (credentials)
            {
                // The coordinator's own path: the pooled named client from IHttpClientFactory and NearRpcClient's Polly retry.
                var services = new ServiceCollection();
                SettlementService.AddRpcHttpClient(services);
                using var provider = services.BuildServiceProvider();
                var client = SettlementService.CreateRpcClient(provider.GetRequiredService<IHttpClientFactory>(), endpoint);
                using var store = new SettlementStore(Path.Combine(folder, "settlement.db"));
                var settler = new NearSettler(client, store, credentials, new SettlementOptions
                {
                    DryRun = false,
                    TokenContract = parse.GetValue(token),
                    AnchorContract = parse.GetValue(anchor),
                });
                SettlementResult result;
                try
                {
                    result = await settler.SettleAsync(e, root, payouts, ct).ConfigureAwait(false);
                }
                catch (SettlementException ex)
                {
                    return SampleCommandLine.Fail(SampleCommandLine.Refused,
                        $"epoch {e} is not settled: {SampleCommandLine.OneLine(ex)}{(ex.IsTransient ? " (run the same command again: it re-sends the same signed bytes)" : string.Empty)}");
                }
                catch (Exception ex) when (ex is HttpRequestException or NearRpcException)
                {
                    return SampleCommandLine.Fail(SampleCommandLine.Refused,
                        $"epoch {e} is not settled: {SampleCommandLine.OneLine(ex)} (state is kept in {store.Path}; run the same command again)");
                }

                Print(asJson, e, root, receipts.Count, payouts, previous, result);
                return result.Settled ? SampleCommandLine.Success : SampleCommandLine.Refused;
            }
        });
        return settle;
    }

    private static IReadOnlyList<SettlementRecord> PreviousSettlements(string folder, long epoch)
    {
        var db = Path.Combine(folder, "coordinator.db");
        if (!File.Exists(db))
        {
            return [];
        }

        using var state = new CoordinatorStateStore(db);
        return [.. state.ReadSettlements().Where(s => s.Epoch == epoch)];
    }

    private static void Print(bool json, long epoch, byte[] root, int receipts, List<WorkerPayout> payouts, IReadOnlyList<SettlementRecord> previous, SettlementResult? result)
    {
        var total = payouts.Aggregate(UInt128.Zero, (s, p) => s + p.Amount);
        if (json)
        {
            CliIO.WriteJson(new JsonObject
            {
                ["epoch"] = epoch,
                ["root"] = CliIO.Hex(root),
                ["receipts"] = receipts,
                ["dry_run"] = result is null,
                ["total"] = total.ToString(CultureInfo.InvariantCulture),
                ["payouts"] = new JsonArray([.. payouts.Select(p => (JsonNode)new JsonObject
                {
                    ["worker"] = p.WorkerId,
                    ["work"] = p.Work.ToString(CultureInfo.InvariantCulture),
                    ["amount"] = p.Amount.ToString(CultureInfo.InvariantCulture),
                })]),
                ["coordinator_records"] = new JsonArray([.. previous.Select(s => (JsonNode)new JsonObject
                {
                    ["slot"] = s.Slot, ["hash"] = s.Hash, ["receiver"] = s.Receiver, ["amount"] = s.Amount, ["dry_run"] = s.DryRun,
                })]),
                ["transactions"] = result is null ? null : new JsonArray([.. result.Transactions.Select(t => (JsonNode)new JsonObject
                {
                    ["slot"] = t.Slot, ["attempt"] = t.Attempt, ["nonce"] = t.Nonce, ["hash"] = t.Hash, ["state"] = t.State.ToString(),
                })]),
                ["settled"] = result?.Settled ?? false,
            });
            return;
        }

        AnsiConsole.MarkupLineInterpolated($"Epoch {epoch}: {receipts} receipts, ledger verified, Merkle root {CliIO.Hex(root)}");
        var table = new Table().AddColumns("worker", "work", "payout (yoctoNEAR)");
        foreach (var p in payouts)
        {
            table.AddRow(Markup.Escape(p.WorkerId), p.Work.ToString(CultureInfo.InvariantCulture), p.Amount.ToString(CultureInfo.InvariantCulture));
        }

        AnsiConsole.Write(table);
        AnsiConsole.MarkupLineInterpolated($"Total {total} yoctoNEAR to {payouts.Count} worker(s).");
        if (previous.Count > 0)
        {
            AnsiConsole.MarkupLineInterpolated($"The coordinator already recorded {previous.Count} settlement transaction(s) for this epoch ({(previous.All(p => p.DryRun) ? "dry run, signed offline, not sent" : "sent")}): {string.Join(", ", previous.Select(p => p.Hash))}");
        }

        if (result is null)
        {
            AnsiConsole.MarkupLine("DRY RUN: nothing was signed or sent. Run with --send --rpc URL --account ACCOUNT to pay.");
        }
        else
        {
            AnsiConsole.WriteLine(result.Summary);
        }
    }
}
