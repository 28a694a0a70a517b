using System.Text.Json;
using System.Text.Json.Serialization;

namespace NearML.Enclave;

/// <summary>
/// What a verifier accepts. Mutable options class: bind it from configuration (section <c>NearML:Attestation:Policy</c>
/// by convention) or load it from a JSON file with <see cref="LoadJson(string)"/>. The defaults are strict: real TEEs only,
/// simulated evidence refused, debug guests refused, TCB must be up to date, every verification check must pass.
/// Measurement lists that are empty do not restrict (the verdict says so).
/// </summary>
public sealed class AttestationPolicy
{
    /// <summary>
    /// Gets or sets the accepted vendors; empty means Intel TDX and AMD SEV-SNP. (The default is an empty list rather than those
    /// two because configuration binding appends to a pre-filled list, which would make a configured restriction ineffective.)
    /// </summary>
    /// <value>The default value is empty (Intel TDX and AMD SEV-SNP).</value>
    public IList<AttestationVendor> AllowedVendors { get; set; } = [];

    /// <summary>Gets the vendors actually accepted: <see cref="AllowedVendors"/>, or TDX and SNP when it is empty.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public IReadOnlyList<AttestationVendor> EffectiveVendors =>
        AllowedVendors.Count == 0 ? [AttestationVendor.IntelTdx, AttestationVendor.AmdSevSnp] : [.. AllowedVendors.Distinct()];

    /// <summary>Gets or sets a value indicating whether <see cref="AttestationVendor.InsecureSimulated"/> evidence may pass (development only).</summary>
    /// <value>The default value is <see langword="false"/>.</value>
    public bool AllowSimulated { get; set; }

    /// <summary>Gets or sets a value indicating whether debuggable guests are refused.</summary>
    /// <value>The default value is <see langword="true"/>.</value>
    public bool ForbidDebug { get; set; } = true;

    /// <summary>Gets or sets the worst acceptable TCB status (TDX; ordered UpToDate &lt; SWHardeningNeeded &lt; … &lt; OutOfDateConfigurationNeeded).</summary>
    /// <value>The default value is <see cref="TcbStatus.UpToDate"/>.</value>
    public TcbStatus MinimumTcbStatus { get; set; } = TcbStatus.UpToDate;

    /// <summary>Gets or sets a value indicating whether every verification check (CRLs, collateral freshness, TCB level) must pass, not only the signatures.</summary>
    /// <value>The default value is <see langword="true"/>.</value>
    public bool RequireFullVerification { get; set; } = true;

    /// <summary>Gets or sets the accepted MRTD values (hex, 48 bytes); empty accepts any.</summary>
    /// <value>The default value is empty.</value>
    public IList<string> AllowedMrTd { get; set; } = [];

    /// <summary>Gets or sets the accepted RTMR0 values (hex); empty accepts any.</summary>
    /// <value>The default value is empty.</value>
    public IList<string> AllowedRtmr0 { get; set; } = [];

    /// <summary>Gets or sets the accepted RTMR1 values (hex); empty accepts any.</summary>
    /// <value>The default value is empty.</value>
    public IList<string> AllowedRtmr1 { get; set; } = [];

    /// <summary>Gets or sets the accepted RTMR2 values (hex); empty accepts any.</summary>
    /// <value>The default value is empty.</value>
    public IList<string> AllowedRtmr2 { get; set; } = [];

    /// <summary>Gets or sets the accepted RTMR3 values (hex); empty accepts any.</summary>
    /// <value>The default value is empty.</value>
    public IList<string> AllowedRtmr3 { get; set; } = [];

    /// <summary>Gets or sets the accepted SEV-SNP launch measurements (hex, 48 bytes); empty accepts any.</summary>
    /// <value>The default value is empty.</value>
    public IList<string> AllowedSnpMeasurements { get; set; } = [];

    /// <summary>Gets or sets a value indicating whether SNP guests whose policy allows a migration agent are refused.</summary>
    /// <value>The default value is <see langword="true"/>.</value>
    public bool ForbidSnpMigrationAgent { get; set; } = true;

    /// <summary>Gets or sets a value indicating whether SNP guests whose policy allows SMT are refused.</summary>
    /// <value>The default value is <see langword="false"/>.</value>
    public bool ForbidSnpSmt { get; set; }

    /// <summary>Gets or sets the minimum SNP REPORTED_TCB as <c>"bl.tee.snp.ucode"</c> (for example <c>"3.0.8.115"</c>); empty does not restrict.</summary>
    /// <value>The default value is empty.</value>
    public string MinimumSnpTcb { get; set; } = string.Empty;

    /// <summary>
    /// Returns an independent copy: every property has this policy's value and every list is a new list with the same items,
    /// so a host can derive its effective policy (for example switch <see cref="AllowSimulated"/> on) without changing the
    /// configured one. New properties are copied without edits here (the scalar ones by <see cref="object.MemberwiseClone"/>).
    /// </summary>
    /// <returns>The copy.</returns>
    public AttestationPolicy Clone()
    {
        var copy = (AttestationPolicy)MemberwiseClone();
        copy.AllowedVendors = [.. AllowedVendors];
        copy.AllowedMrTd = [.. AllowedMrTd];
        copy.AllowedRtmr0 = [.. AllowedRtmr0];
        copy.AllowedRtmr1 = [.. AllowedRtmr1];
        copy.AllowedRtmr2 = [.. AllowedRtmr2];
        copy.AllowedRtmr3 = [.. AllowedRtmr3];
        copy.AllowedSnpMeasurements = [.. AllowedSnpMeasurements];
        return copy;
    }

    /// <summary>Loads a policy from a JSON file whose properties match this class (enums by name).</summary>
    /// <param name="path">The file.</param>
    /// <returns>The policy.</returns>
    /// <exception cref="AttestationException">The file is not a valid policy.</exception>
    public static AttestationPolicy LoadJson(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return ParseJson(File.ReadAllBytes(path), path);
    }

    /// <summary>Parses a policy from JSON.</summary>
    /// <param name="json">UTF-8 JSON.</param>
    /// <param name="source">Where it came from, for messages.</param>
    /// <returns>The policy.</returns>
    /// <exception cref="AttestationException">The JSON is not a valid policy.</exception>
    public static AttestationPolicy ParseJson(ReadOnlySpan<byte> json, string source = "policy JSON")
    {
        AttestationPolicy? p;
        try
        {
            p = JsonSerializer.Deserialize(json, PolicyJsonContext.Default.AttestationPolicy);
        }
        catch (JsonException e)
        {
            throw new AttestationException($"{source}: invalid attestation policy at {e.Path}: {e.Message}", false, e);
        }

        p ??= new AttestationPolicy();
        string? error = p.Validate();
        return error is null ? p : throw new AttestationException($"{source}: {error}");
    }

    /// <summary>Checks the policy for values that cannot be right.</summary>
    /// <returns>An error message, or <see langword="null"/> when valid.</returns>
    public string? Validate()
    {
        foreach ((string name, IList<string> list) in new[] { ("AllowedMrTd", AllowedMrTd), ("AllowedRtmr0", AllowedRtmr0), ("AllowedRtmr1", AllowedRtmr1),
            ("AllowedRtmr2", AllowedRtmr2), ("AllowedRtmr3", AllowedRtmr3), ("AllowedSnpMeasurements", AllowedSnpMeasurements) })
        {
            foreach (string v in list)
            {
                if (v.Length != 96 || !v.All(Uri.IsHexDigit))
                {
                    return $"{name}: \"{v}\" is not a 48-byte hex measurement";
                }
            }
        }

        if (MinimumTcbStatus > TcbStatus.OutOfDateConfigurationNeeded)
        {
            return $"MinimumTcbStatus: {MinimumTcbStatus} can never be accepted";
        }

        if (MinimumSnpTcb.Length != 0 && ParseSnpTcb(MinimumSnpTcb) is null)
        {
            return $"MinimumSnpTcb: \"{MinimumSnpTcb}\" is not \"bl.tee.snp.ucode\"";
        }

        return null;
    }

    internal static SnpTcbVersion? ParseSnpTcb(string s)
    {
        string[] p = s.Split('.');
        return p.Length == 4 && p.All(x => byte.TryParse(x, System.Globalization.CultureInfo.InvariantCulture, out _))
            ? new SnpTcbVersion(0, byte.Parse(p[0], System.Globalization.CultureInfo.InvariantCulture), byte.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture),
                byte.Parse(p[2], System.Globalization.CultureInfo.InvariantCulture), byte.Parse(p[3], System.Globalization.CultureInfo.InvariantCulture))
            : null;
    }

    /// <summary>Judges claims against this policy; every rule is listed with pass/fail.</summary>
    /// <param name="claims">The verified claims.</param>
    /// <returns>The verdict.</returns>
    public AttestationVerdict Evaluate(AttestationClaims claims)
    {
        ArgumentNullException.ThrowIfNull(claims);
        var rules = new List<AttestationCheck>(16);
        AddEvidenceRules(rules, claims);
        Evaluate(claims, rules);
        return new AttestationVerdict(rules, claims);
    }

    internal void AddEvidenceRules(List<AttestationCheck> rules, AttestationClaims claims)
    {
        AttestationCheck? firstBad = claims.VerificationChecks.FirstOrDefault(c => !c.Passed);
        rules.Add(new AttestationCheck("evidence.authentic", claims.Authentic, claims.Authentic
            ? "signatures and certificate chain to a pinned root verify"
            : $"evidence is not authentic: {firstBad}"));
        if (RequireFullVerification)
        {
            rules.Add(new AttestationCheck("evidence.verified", firstBad is null, firstBad is null
                ? $"all {claims.VerificationChecks.Count} verification checks pass"
                : $"{claims.VerificationChecks.Count(c => !c.Passed)} verification check(s) fail, first: {firstBad}"));
        }
    }

    internal void Evaluate(AttestationClaims c, List<AttestationCheck> rules)
    {
        IReadOnlyList<AttestationVendor> vendors = EffectiveVendors;
        bool vendor = vendors.Contains(c.Vendor);
        rules.Add(new AttestationCheck("policy.vendor-allowed", vendor, $"{c.Vendor} {(vendor ? "is" : "is not")} among the allowed vendors [{string.Join(", ", vendors)}]"));
        if (c.Vendor == AttestationVendor.InsecureSimulated)
        {
            rules.Add(new AttestationCheck("policy.simulated-allowed", AllowSimulated, AllowSimulated
                ? "INSECURE: simulated evidence accepted because AllowSimulated is set"
                : "simulated evidence proves nothing about the machine and AllowSimulated is false"));
        }

        rules.Add(new AttestationCheck("policy.debug-forbidden", !ForbidDebug || !c.Debug,
            c.Debug ? (ForbidDebug ? "the guest is debuggable (its memory is not confidential) and debug is forbidden" : "the guest is debuggable; allowed by policy") : "the guest is not debuggable"));

        if (c.Vendor == AttestationVendor.IntelTdx)
        {
            bool tcb = c.TcbStatus <= MinimumTcbStatus;
            rules.Add(new AttestationCheck("policy.minimum-tcb", tcb,
                $"TCB status {c.TcbStatus}{(c.AdvisoryIds.Count > 0 ? $" ({string.Join(", ", c.AdvisoryIds)})" : string.Empty)}, worst accepted {MinimumTcbStatus}"));
            Measure(rules, "policy.mrtd", AllowedMrTd, c.Measurement);
            IList<string>[] rt = [AllowedRtmr0, AllowedRtmr1, AllowedRtmr2, AllowedRtmr3];
            for (int i = 0; i < 4; i++)
            {
                Measure(rules, $"policy.rtmr{i}", rt[i], i < c.Rtmrs.Count ? c.Rtmrs[i] : ReadOnlyMemory<byte>.Empty);
            }
        }
        else if (c.Vendor == AttestationVendor.AmdSevSnp)
        {
            SnpTcbVersion? min = ParseSnpTcb(MinimumSnpTcb);
            SnpTcbVersion r = c.SnpReportedTcb ?? default;
            bool tcb = min is not { } m || (r.Bootloader >= m.Bootloader && r.Tee >= m.Tee && r.Snp >= m.Snp && r.Microcode >= m.Microcode);
            rules.Add(new AttestationCheck("policy.minimum-tcb", tcb, min is null ? $"REPORTED_TCB {r}; no minimum configured" : $"REPORTED_TCB {r}, minimum {min}"));
            Measure(rules, "policy.snp-measurement", AllowedSnpMeasurements, c.Measurement);
            rules.Add(new AttestationCheck("policy.snp-migration-agent", !ForbidSnpMigrationAgent || !c.SnpMigrationAgentAllowed,
                $"guest policy {(c.SnpMigrationAgentAllowed ? "allows" : "does not allow")} a migration agent{(ForbidSnpMigrationAgent ? "; forbidden" : string.Empty)}"));
            rules.Add(new AttestationCheck("policy.snp-smt", !ForbidSnpSmt || !c.SnpSmtAllowed,
                $"guest policy {(c.SnpSmtAllowed ? "allows" : "does not allow")} SMT{(ForbidSnpSmt ? "; forbidden" : string.Empty)}"));
        }
        else
        {
            Measure(rules, "policy.measurement", AllowedMrTd, c.Measurement);
        }
    }

    private static void Measure(List<AttestationCheck> rules, string name, IList<string> allowed, ReadOnlyMemory<byte> value)
    {
        string hex = Convert.ToHexString(value.Span);
        if (allowed.Count == 0)
        {
            rules.Add(new AttestationCheck(name, true, $"{hex} (unrestricted: no allowed values configured)"));
            return;
        }

        bool ok = allowed.Any(a => string.Equals(a, hex, StringComparison.OrdinalIgnoreCase));
        rules.Add(new AttestationCheck(name, ok, $"{hex} {(ok ? "is" : "is not")} among {allowed.Count} allowed value(s)"));
    }
}

/// <summary>A policy decision: every rule with pass/fail and the claims it judged.</summary>
public sealed class AttestationVerdict
{
    internal AttestationVerdict(IReadOnlyList<AttestationCheck> rules, AttestationClaims? claims)
    {
        Rules = rules;
        Claims = claims;
    }

    /// <summary>Gets a value indicating whether every rule passed.</summary>
    public bool Accepted => Rules.Count > 0 && Rules.All(r => r.Passed);

    /// <summary>Gets every rule evaluated, in order (evidence, binding, then policy rules).</summary>
    public IReadOnlyList<AttestationCheck> Rules { get; }

    /// <summary>Gets the claims judged, or <see langword="null"/> when the evidence could not be parsed.</summary>
    public AttestationClaims? Claims { get; }

    /// <summary>Gets the reasons for refusal (the failed rules), empty when accepted.</summary>
    public IEnumerable<AttestationCheck> Failures => Rules.Where(r => !r.Passed);
}

[JsonSourceGenerationOptions(PropertyNameCaseInsensitive = true, ReadCommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow, UseStringEnumConverter = true)]
[JsonSerializable(typeof(AttestationPolicy))]
internal sealed partial class PolicyJsonContext : JsonSerializerContext;
