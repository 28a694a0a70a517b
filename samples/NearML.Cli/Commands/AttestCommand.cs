using System.CommandLine;
using System.Globalization;
using NearML.Enclave;
using NearML.Samples;
using Spectre.Console;

namespace NearML.Cli.Commands;

/// <summary><c>nearml attest …</c>: inspect and verify TEE evidence offline.</summary>
internal static class AttestCommand
{
    public static Command Create()
    {
        var attest = new Command("attest", "Inspect and verify TEE attestation evidence (Intel TDX quotes, AMD SEV-SNP reports)");
        attest.Subcommands.Add(CreateVerify());
        return attest;
    }

    private static Command CreateVerify()
    {
        var evidence = new Argument<FileInfo>("evidence") { Description = "TDX quote (v4/v5) or SEV-SNP report, binary" };
        var collateral = new Option<string?>("--collateral")
        {
            Description = "TDX: directory of Intel PCS collateral (tcbinfo, qeidentity, tcb_signing_chain.pem, pckcrl, rootcrl) or a dcap-qvl collateral JSON. "
                + "SNP: directory with the VCEK/VLEK (*.der) and ASK/ARK chains (*.pem); the pair that verifies the report is used",
        };
        var at = new Option<string?>("--at") { Description = "Evaluation time (ISO 8601, UTC); default: now" };
        var policy = new Option<FileInfo?>("--policy") { Description = "Attestation policy JSON (default: NearML's strict default policy)" };
        var eventLog = new Option<FileInfo?>("--event-log") { Description = "TDX CCEL event log to replay into RTMR0-3" };
        var vcek = new Option<FileInfo?>("--vcek") { Description = "SNP: VCEK/VLEK certificate (DER), instead of searching --collateral" };
        var chain = new Option<FileInfo?>("--chain") { Description = "SNP: ASK/ARK chain (PEM), instead of searching --collateral" };
        var json = CliIO.JsonOption();
        var verify = new Command("verify", "Verify evidence offline against vendor roots, collateral and a policy; print the parsed fields and the verdict");
        verify.Arguments.Add(evidence);
        foreach (Option o in new Option[] { collateral, at, policy, eventLog, vcek, chain, json })
        {
            verify.Options.Add(o);
        }

        verify.SetAction(parse =>
        {
            try
            {
                DateTimeOffset when = parse.GetValue(at) is { } s
                    ? DateTimeOffset.Parse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal)
                    : TimeProvider.System.GetUtcNow();
                AttestationPolicy pol = parse.GetValue(policy) is { } pf ? AttestationPolicy.LoadJson(pf.FullName) : new AttestationPolicy();
                byte[] bytes = File.ReadAllBytes(parse.GetRequiredValue(evidence).FullName);
                var report = new Report();
                int code = LooksLikeTdx(bytes)
                    ? VerifyTdx(report, bytes, parse.GetValue(collateral), parse.GetValue(eventLog), when, pol)
                    : VerifySnp(report, bytes, parse.GetValue(collateral), parse.GetValue(vcek), parse.GetValue(chain), when, pol);
                if (code == SampleCommandLine.Success || code == SampleCommandLine.Refused)
                {
                    report.Write(parse.GetValue(json));
                }

                return code;
            }
            catch (Exception e) when (e is NearML.Core.NearMLException or IOException or FormatException or UnauthorizedAccessException)
            {
                return SampleCommandLine.Fail(SampleCommandLine.BadInput, e.Message);
            }
        });
        return verify;
    }

    private static bool LooksLikeTdx(byte[] b) => b.Length >= 8 && (b[0] is 4 or 5) && b[1] == 0 && BitConverter.ToUInt32(b, 4) == TdxQuote.TeeTypeTdx;

    private static int VerifyTdx(Report report, byte[] bytes, string? collateralPath, FileInfo? eventLog, DateTimeOffset at, AttestationPolicy policy)
    {
        TdxQuote q = TdxQuote.Parse(bytes);
        var fields = report.Fields($"Intel TDX quote v{q.Version} ({q.BodyKind}, {q.Raw.Length} bytes, {q.TrailingByteCount} trailing)");
        fields.AddRow("TEE_TCB_SVN", Hex(q.Body.TeeTcbSvn));
        if (q.BodyKind == TdxReportBodyKind.Td15)
        {
            fields.AddRow("TEE_TCB_SVN_2", Hex(q.Body.TeeTcbSvn2));
            fields.AddRow("MRSERVICETD", Hex(q.Body.MrServiceTd));
        }

        fields.AddRow("MRSEAM", Hex(q.Body.MrSeam));
        fields.AddRow("TDATTRIBUTES", Hex(q.Body.TdAttributes) + (q.Body.IsDebug ? " (DEBUG)" : string.Empty));
        fields.AddRow("XFAM", Hex(q.Body.Xfam));
        fields.AddRow("MRTD", Hex(q.Body.MrTd));
        fields.AddRow("MRCONFIGID", Hex(q.Body.MrConfigId));
        for (int i = 0; i < 4; i++)
        {
            fields.AddRow($"RTMR{i}", Hex(q.Body.Rtmr(i)));
        }

        fields.AddRow("REPORTDATA", Hex(q.Body.ReportData));
        fields.AddRow("QE", $"ISVPRODID {q.QeReport.IsvProdId}, ISVSVN {q.QeReport.IsvSvn}, MRSIGNER {Hex(q.QeReport.MrSigner)}");

        TdxCollateral? col = collateralPath is null ? null : TdxCollateral.Load(collateralPath);
        TdxVerificationResult r = new TdxQuoteVerifier().Verify(q, col, at);
        var checks = new List<AttestationCheck>(r.Checks);
        if (eventLog is not null)
        {
            checks.AddRange(TdxEventLog.Parse(File.ReadAllBytes(eventLog.FullName)).CompareWithQuote(q));
        }

        report.Checks($"Verification at {at:O}", checks);
        report.Note("tcb", $"TCB status: {r.TcbStatus} (platform {r.PlatformTcbStatus?.ToString() ?? "-"}, module {r.ModuleTcbStatus?.ToString() ?? "-"}, QE {r.QeTcbStatus?.ToString() ?? "-"}); FMSPC {r.Fmspc ?? "-"}; advisories: {(r.AdvisoryIds.Count == 0 ? "none" : string.Join(", ", r.AdvisoryIds))}");
        AttestationClaims claims = AttestationClaims.FromTdx(q, r);
        if (eventLog is not null)
        {
            claims = new AttestationClaims
            {
                Vendor = claims.Vendor, VerificationChecks = checks, Authentic = claims.Authentic, TcbStatus = claims.TcbStatus, AdvisoryIds = claims.AdvisoryIds,
                ReportData = claims.ReportData, Measurement = claims.Measurement, Rtmrs = claims.Rtmrs, Debug = claims.Debug,
            };
        }

        return report.Verdict(policy.Evaluate(claims));
    }

    private static int VerifySnp(Report report, byte[] bytes, string? collateralPath, FileInfo? vcek, FileInfo? chain, DateTimeOffset at, AttestationPolicy policy)
    {
        SnpReport rep = SnpReport.Parse(bytes);
        var fields = report.Fields($"AMD SEV-SNP report v{rep.Version} ({rep.Raw.Length} bytes), signed by {rep.SigningKey}");
        fields.AddRow("POLICY", $"0x{rep.Policy:x16} (SMT {rep.PolicySmtAllowed}, migration agent {rep.PolicyMigrationAgentAllowed}, " + (rep.PolicyDebugAllowed ? "DEBUG)" : "debug off)"));
        fields.AddRow("VMPL", rep.Vmpl.ToString(CultureInfo.InvariantCulture));
        fields.AddRow("MEASUREMENT", Hex(rep.Measurement));
        fields.AddRow("REPORT_DATA", Hex(rep.ReportData));
        fields.AddRow("HOST_DATA", Hex(rep.HostData));
        fields.AddRow("ID_KEY_DIGEST", Hex(rep.IdKeyDigest));
        fields.AddRow("CHIP_ID", Hex(rep.ChipId));
        fields.AddRow("REPORTED_TCB", $"0x{rep.ReportedTcb:x16}");
        fields.AddRow("CURRENT_TCB / LAUNCH_TCB", $"0x{rep.CurrentTcb:x16} / 0x{rep.LaunchTcb:x16}");
        fields.AddRow("Firmware", rep.CurrentFirmware.ToString());

        var candidates = new List<(string Vcek, string Chain)>();
        if (vcek is not null && chain is not null)
        {
            candidates.Add((vcek.FullName, chain.FullName));
        }
        else if (collateralPath is not null && Directory.Exists(collateralPath))
        {
            string[] ders = vcek is not null ? [vcek.FullName] : Directory.GetFiles(collateralPath, "*.der");
            string[] pems = chain is not null ? [chain.FullName] : Directory.GetFiles(collateralPath, "*.pem");
            candidates.AddRange(from d in ders.Order(StringComparer.Ordinal) from p in pems.Order(StringComparer.Ordinal) select (d, p));
        }

        if (candidates.Count == 0)
        {
            return SampleCommandLine.Fail(SampleCommandLine.BadInput, "SNP verification needs --vcek and --chain, or --collateral <dir> holding them");
        }

        var verifier = new SnpReportVerifier();
        SnpVerificationResult? best = null;
        string bestName = string.Empty;
        foreach ((string d, string p) in candidates)
        {
            SnpVerificationResult r;
            try
            {
                r = verifier.Verify(rep, SnpCertificates.Parse(File.ReadAllBytes(d), File.ReadAllBytes(p)), at);
            }
            catch (AttestationFormatException)
            {
                continue;
            }

            if (best is null || r.Checks.Count(c => c.Passed) > best.Checks.Count(c => c.Passed))
            {
                (best, bestName) = (r, $"{Path.GetFileName(d)} + {Path.GetFileName(p)}");
            }
        }

        if (best is null)
        {
            return SampleCommandLine.Fail(SampleCommandLine.BadInput, "no usable VCEK/VLEK and ASK/ARK pair found");
        }

        report.Checks($"Verification at {at:O} with {bestName}", best.Checks);
        report.Note("product", $"Product: {best.Product}; REPORTED_TCB {best.ReportedTcb}");
        return report.Verdict(policy.Evaluate(AttestationClaims.FromSnp(rep, best)));
    }

    private static string Hex(ReadOnlyMemory<byte> m) => Convert.ToHexString(m.Span).ToLowerInvariant();

    /// <summary>What a verification found, written as tables or as one JSON document.</summary>
    private sealed class Report
    {
        private readonly List<(string Title, List<(string Name, string Value)> Rows)> _fields = [];
        private readonly List<(string Title, List<AttestationCheck> Rows)> _checks = [];
        private readonly List<(string Key, string Text)> _notes = [];
        private AttestationVerdict? _verdict;

        public FieldRows Fields(string title)
        {
            var rows = new List<(string, string)>();
            _fields.Add((title, rows));
            return new FieldRows(rows);
        }

        public void Checks(string title, IEnumerable<AttestationCheck> checks) => _checks.Add((title, [.. checks]));

        public void Note(string key, string text) => _notes.Add((key, text));

        public int Verdict(AttestationVerdict verdict)
        {
            _verdict = verdict;
            return verdict.Accepted ? SampleCommandLine.Success : SampleCommandLine.Refused;
        }

        public void Write(bool json)
        {
            if (json)
            {
                var root = new System.Text.Json.Nodes.JsonObject
                {
                    ["evidence"] = _fields.Count == 0 ? null : _fields[0].Title,
                    ["fields"] = new System.Text.Json.Nodes.JsonObject([.. _fields.SelectMany(f => f.Rows).Select(r => KeyValuePair.Create(r.Name, (System.Text.Json.Nodes.JsonNode?)r.Value))]),
                    ["checks"] = Array(_checks.SelectMany(c => c.Rows)),
                    ["accepted"] = _verdict?.Accepted ?? false,
                    ["policy"] = _verdict is null ? null : Array(_verdict.Rules),
                };
                foreach (var (key, text) in _notes)
                {
                    root[key] = text;
                }

                CliIO.WriteJson(root);
                return;
            }

            foreach (var (title, rows) in _fields)
            {
                var t = new Table { Title = new TableTitle(Markup.Escape(title)) };
                t.AddColumn("Field");
                t.AddColumn("Value");
                foreach (var (name, value) in rows)
                {
                    t.AddRow(Markup.Escape(name), Markup.Escape(value));
                }

                AnsiConsole.Write(t);
            }

            foreach (var (title, rows) in _checks)
            {
                PrintChecks(title, rows);
            }

            foreach (var (_, text) in _notes)
            {
                AnsiConsole.WriteLine(text);
            }

            if (_verdict is not null)
            {
                PrintChecks("Policy verdict", _verdict.Rules);
                AnsiConsole.MarkupLine(_verdict.Accepted ? "[bold green]ACCEPTED[/]" : "[bold red]REFUSED[/]");
            }
        }

        private static System.Text.Json.Nodes.JsonArray Array(IEnumerable<AttestationCheck> checks) =>
            new([.. checks.Select(c => (System.Text.Json.Nodes.JsonNode)new System.Text.Json.Nodes.JsonObject { ["name"] = c.Name, ["passed"] = c.Passed, ["detail"] = c.Detail })]);

        private static void PrintChecks(string title, IEnumerable<AttestationCheck> checks)
        {
            var t = new Table { Title = new TableTitle(Markup.Escape(title)) };
            t.AddColumn("");
            t.AddColumn("Check");
            t.AddColumn("Detail");
            foreach (AttestationCheck c in checks)
            {
                t.AddRow(c.Passed ? "[green]pass[/]" : "[red]FAIL[/]", Markup.Escape(c.Name), Markup.Escape(c.Detail));
            }

            AnsiConsole.Write(t);
        }
    }

    /// <summary>Rows of one field table.</summary>
    private readonly struct FieldRows(List<(string Name, string Value)> rows)
    {
        public void AddRow(string name, string value) => rows.Add((name, value));
    }
}
