using System.Globalization;
using Microsoft.Extensions.Options;
using NearML.Aggregation;
using NearML.Core.Protocol;
using NearML.Ledger;

namespace NearML.Hosting.Worker;

/// <summary>
/// Settings of the NearML worker (<c>services.AddNearMLWorker(...)</c>), bound from the configuration section
/// <see cref="SectionName"/> and validated when the host starts.
/// </summary>
public sealed class NearMLWorkerOptions
{
    /// <summary>The configuration section the options are conventionally bound from.</summary>
    public const string SectionName = "NearML:Worker";

    /// <summary>Attestation provider name: Linux configfs-tsm (Intel TDX / AMD SEV-SNP guests).</summary>
    public const string ConfigFsTsmProvider = "configfs-tsm";

    /// <summary>Attestation provider name: NearML's INSECURE simulated evidence, for development only.</summary>
    public const string SimulatedProvider = "simulated";

    /// <summary>Attestation provider name: no evidence is sent.</summary>
    public const string NoProvider = "none";

    /// <summary>Gets or sets the coordinator's host name or IP address (also the TLS host name checked under CA validation).</summary>
    /// <value>The default value is <c>127.0.0.1</c>.</value>
    public string CoordinatorHost { get; set; } = "127.0.0.1";

    /// <summary>Gets or sets the coordinator's TCP port.</summary>
    /// <value>The default value is 7420.</value>
    public int CoordinatorPort { get; set; } = 7420;

    /// <summary>
    /// Gets or sets every coordinator address the worker may use, as <c>host:port</c> (<c>[v6]:port</c>; a missing port is
    /// <see cref="CoordinatorPort"/>): a serving coordinator and its standbys sharing one PostgreSQL state
    /// (docs/failover.md). When the connection fails or drops, the worker tries the next address at once and backs off only
    /// after every address failed. Empty: the one address <see cref="CoordinatorHost"/>:<see cref="CoordinatorPort"/>.
    /// Every coordinator must present the certificate <see cref="CoordinatorFingerprint"/> pins (or one the CAs trust).
    /// </summary>
    /// <value>The default value is an empty list.</value>
    public IList<string> CoordinatorAddresses { get; set; } = [];

    /// <summary>
    /// Gets or sets the SHA-256 fingerprint of the coordinator's TLS certificate to pin (as the coordinator prints it,
    /// <c>AB:CD:…</c> or 64 hex digits); <see langword="null"/> validates the certificate against the system CAs instead.
    /// </summary>
    /// <value>The default value is <see langword="null"/>.</value>
    public string? CoordinatorFingerprint { get; set; }

    /// <summary>
    /// Gets or sets the coordinator's receipt-signing key (<c>ed25519:&lt;base58&gt;</c>); <see langword="null"/> trusts the key
    /// of the first valid receipt and remembers it in <see cref="DataDirectory"/> (trust on first use).
    /// </summary>
    /// <value>The default value is <see langword="null"/>.</value>
    public string? CoordinatorReceiptKey { get; set; }

    /// <summary>Gets or sets the worker's name shown to the coordinator (1–128 characters). Required.</summary>
    /// <value>The default value is empty, which is invalid.</value>
    public string WorkerId { get; set; } = string.Empty;

    /// <summary>Gets or sets the folder holding the worker's identity key (<c>worker.key</c>) and its receipts log (<c>receipts.log</c>).</summary>
    /// <value>The default value is <c>nearml-worker</c> (relative to the current directory).</value>
    public string DataDirectory { get; set; } = "nearml-worker";

    /// <summary>Gets or sets the folder with the Fashion-MNIST IDX files; <see langword="null"/> for the Debian package's path.</summary>
    /// <value>The default value is <see langword="null"/>.</value>
    public string? DatasetDirectory { get; set; }

    /// <summary>
    /// Gets or sets where attestation evidence comes from: <c>configfs-tsm</c> (a TDX / SEV-SNP guest; startup fails if
    /// <c>/sys/kernel/config/tsm</c> is absent), <c>simulated</c> (INSECURE, development only, logged loudly) or <c>none</c>.
    /// </summary>
    /// <value>The default value is <c>none</c>.</value>
    public string AttestationProvider { get; set; } = NoProvider;

    /// <summary>Gets or sets the longest wait between reconnection attempts (the backoff doubles from <see cref="InitialReconnectDelay"/> up to this, with jitter).</summary>
    /// <value>The default value is 30 seconds.</value>
    public TimeSpan MaxReconnectDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Gets or sets the first wait before reconnecting after a fault.</summary>
    /// <value>The default value is 500 milliseconds.</value>
    public TimeSpan InitialReconnectDelay { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// Gets or sets how many threads training may use; <see langword="null"/> for the engine's default. It reaches every
    /// registered model factory as <see cref="NearML.Training.Engines.ModelBuildContext.Threads"/> (a TorchSharp model sets
    /// LibTorch's thread count from it).
    /// </summary>
    /// <value>The default value is <see langword="null"/>.</value>
    public int? ThreadCount { get; set; }

    /// <summary>Gets or sets the deadline for connecting and completing the handshake.</summary>
    /// <value>The default value is 15 seconds.</value>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Gets or sets how long shutdown waits for the current step to end and the <c>Goodbye</c> to be sent.</summary>
    /// <value>The default value is 10 seconds.</value>
    public TimeSpan StopTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Gets or sets a value indicating whether a permanent failure (refusal, untrusted certificate, dataset mismatch) also
    /// stops the host application; otherwise only the worker stops and reports it in <see cref="WorkerStatus.LastError"/>.
    /// </summary>
    /// <value>The default value is <see langword="false"/>.</value>
    public bool StopApplicationOnFatalError { get; set; }

    /// <summary>
    /// Gets or sets a value indicating whether the worker stops the host application when the coordinator says the job is
    /// complete (<see cref="WorkerState.Completed"/>), so a console worker exits (code 0) instead of idling; integrators that
    /// host the worker inside a longer-lived service leave it off and watch <see cref="WorkerStatus"/> instead.
    /// </summary>
    /// <value>The default value is <see langword="false"/>.</value>
    public bool StopApplicationOnCompletion { get; set; }

    /// <summary>
    /// Gets or sets a value indicating whether to replace every pseudo-gradient by NaN before encoding. TEST ONLY: it exists so
    /// the coordinator's rejection of bad updates can be exercised end to end; never set it on a real worker.
    /// </summary>
    /// <value>The default value is <see langword="false"/>.</value>
    public bool InjectNanUpdate { get; set; }

    /// <summary>
    /// Gets or sets the worker's local floor for secure-aggregation rounds: the worker joins only the signed
    /// (malicious-coordinator) variant with its own handshake key at its client id, a threshold and degree at least
    /// <see cref="SecureAggregationPolicy.MinimumThreshold"/> / <see cref="SecureAggregationPolicy.MinimumDegree"/>, and a
    /// (degree, threshold) that no split view can break with ⌊γn⌋ colluders (γ = <see cref="SecureAggregationPolicy.CorruptFraction"/>);
    /// anything weaker is refused with the reason (see docs/secure-aggregation.md). Bound from <c>NearML:Worker:SecureAggregationMinimum</c>.
    /// </summary>
    /// <value>The default value is t ≥ 2, k ≥ 2, γ = 0.05, σ = 40 bits: the coordinator's own planning assumptions.</value>
    public SecureAggregationPolicy SecureAggregationMinimum { get; set; } = new();

    /// <summary>Gets the identity key file path.</summary>
    internal string IdentityPath => Path.Combine(DataDirectory, "worker.key");

    /// <summary>Gets the receipts log path.</summary>
    internal string ReceiptsPath => Path.Combine(DataDirectory, "receipts.log");

    /// <summary>Builds the certificate trust rule from <see cref="CoordinatorFingerprint"/>.</summary>
    /// <returns>Pinned when a fingerprint is set, otherwise CA validation.</returns>
    internal CoordinatorTrust CreateTrust() =>
        string.IsNullOrWhiteSpace(CoordinatorFingerprint) ? CoordinatorTrust.CertificateAuthority() : CoordinatorTrust.Pinned(CoordinatorFingerprint);
}

/// <summary>Validates <see cref="NearMLWorkerOptions"/>; every message names the setting and its value.</summary>
internal sealed class NearMLWorkerOptionsValidator : IValidateOptions<NearMLWorkerOptions>
{
    public ValidateOptionsResult Validate(string? name, NearMLWorkerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var errors = new List<string>();
        const string S = NearMLWorkerOptions.SectionName;
        if (string.IsNullOrWhiteSpace(options.WorkerId) || options.WorkerId.Length > 128)
        {
            errors.Add($"{S}:WorkerId is required (1 to 128 characters); got '{options.WorkerId}'.");
        }

        if (string.IsNullOrWhiteSpace(options.CoordinatorHost))
        {
            errors.Add($"{S}:CoordinatorHost is required.");
        }

        if (options.CoordinatorPort is < 1 or > 65535)
        {
            errors.Add($"{S}:CoordinatorPort must be between 1 and 65535; got {options.CoordinatorPort}.");
        }

        if (options.CoordinatorAddresses is null)
        {
            errors.Add($"{S}:CoordinatorAddresses must not be null (leave it empty for CoordinatorHost:CoordinatorPort).");
        }
        else
        {
            for (var i = 0; i < options.CoordinatorAddresses.Count; i++)
            {
                try
                {
                    _ = CoordinatorAddress.Parse(options.CoordinatorAddresses[i] ?? string.Empty, options.CoordinatorPort is >= 1 and <= 65535 ? options.CoordinatorPort : 7420);
                }
                catch (FormatException ex)
                {
                    errors.Add($"{S}:CoordinatorAddresses:{i.ToString(CultureInfo.InvariantCulture)} is not a coordinator address (host:port): {ex.Message}.");
                }
            }
        }

        if (!string.IsNullOrWhiteSpace(options.CoordinatorFingerprint))
        {
            try
            {
                _ = CoordinatorCertificate.ParseFingerprint(options.CoordinatorFingerprint);
            }
            catch (FormatException ex)
            {
                errors.Add($"{S}:CoordinatorFingerprint '{options.CoordinatorFingerprint}' is not a SHA-256 fingerprint: {ex.Message}");
            }
        }

        if (!string.IsNullOrWhiteSpace(options.CoordinatorReceiptKey))
        {
            try
            {
                _ = NearPublicKey.Parse(options.CoordinatorReceiptKey);
            }
            catch (Exception ex) when (ex is InvalidNearKeyException or FormatException or ArgumentException)
            {
                errors.Add($"{S}:CoordinatorReceiptKey '{options.CoordinatorReceiptKey}' is not an ed25519:<base58> key: {ex.Message}");
            }
        }

        if (string.IsNullOrWhiteSpace(options.DataDirectory))
        {
            errors.Add($"{S}:DataDirectory is required.");
        }

        if (options.AttestationProvider is not (NearMLWorkerOptions.ConfigFsTsmProvider or NearMLWorkerOptions.SimulatedProvider or NearMLWorkerOptions.NoProvider))
        {
            errors.Add($"{S}:AttestationProvider must be 'configfs-tsm', 'simulated' or 'none'; got '{options.AttestationProvider}'.");
        }

        if (options.InitialReconnectDelay <= TimeSpan.Zero)
        {
            errors.Add($"{S}:InitialReconnectDelay must be positive; got {options.InitialReconnectDelay}.");
        }

        if (options.MaxReconnectDelay < options.InitialReconnectDelay)
        {
            errors.Add($"{S}:MaxReconnectDelay ({options.MaxReconnectDelay}) must be at least InitialReconnectDelay ({options.InitialReconnectDelay}).");
        }

        if (options.ThreadCount is < 1)
        {
            errors.Add($"{S}:ThreadCount must be at least 1 when set; got {options.ThreadCount.Value.ToString(CultureInfo.InvariantCulture)}.");
        }

        if (options.ConnectTimeout <= TimeSpan.Zero)
        {
            errors.Add($"{S}:ConnectTimeout must be positive; got {options.ConnectTimeout}.");
        }

        if (options.StopTimeout < TimeSpan.Zero)
        {
            errors.Add($"{S}:StopTimeout must not be negative; got {options.StopTimeout}.");
        }

        if (options.SecureAggregationMinimum is null)
        {
            errors.Add($"{S}:SecureAggregationMinimum is required.");
        }
        else
        {
            errors.AddRange(options.SecureAggregationMinimum.Problems().Select(p => $"{S}:SecureAggregationMinimum:{p}"));
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
