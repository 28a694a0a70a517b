namespace NearML.Enclave;

/// <summary>One named check of a verification or one rule of a policy, with its outcome and the reason.</summary>
/// <param name="Name">Stable identifier, for example <c>"pck-chain.root-pinned"</c> or <c>"policy.debug-forbidden"</c>.</param>
/// <param name="Passed">Whether the check passed.</param>
/// <param name="Detail">Why: the values compared, or the failure.</param>
public sealed record AttestationCheck(string Name, bool Passed, string Detail)
{
    /// <inheritdoc />
    public override string ToString() => $"[{(Passed ? "pass" : "FAIL")}] {Name}: {Detail}";
}

/// <summary>The TCB status of a platform as judged against Intel's TCB Info and QE Identity, or AMD's reported TCB.</summary>
/// <remarks>Values are ordered from best to worst; <see cref="NotSupported"/>, <see cref="Revoked"/> and <see cref="Unknown"/> are never acceptable.</remarks>
public enum TcbStatus
{
    /// <summary>The platform is patched to the latest TCB.</summary>
    UpToDate = 0,

    /// <summary>The TCB is current but software hardening is needed (see the advisories).</summary>
    SWHardeningNeeded = 1,

    /// <summary>The TCB is current but the platform configuration needs a change (see the advisories).</summary>
    ConfigurationNeeded = 2,

    /// <summary>Both of the above.</summary>
    ConfigurationAndSWHardeningNeeded = 3,

    /// <summary>The TCB is out of date.</summary>
    OutOfDate = 4,

    /// <summary>The TCB is out of date and the configuration needs a change.</summary>
    OutOfDateConfigurationNeeded = 5,

    /// <summary>The platform's TCB level or a key in its chain is revoked.</summary>
    Revoked = 6,

    /// <summary>No TCB level in the collateral matches the platform: a strict verifier cannot vouch for it.</summary>
    NotSupported = 7,

    /// <summary>The status could not be decided (no or unusable collateral).</summary>
    Unknown = 8,
}
