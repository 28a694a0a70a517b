using System.Globalization;
using System.Net;
using Microsoft.Extensions.Options;
using NearML.Hosting.Jobs;

namespace NearML.Hosting.Coordinator;

/// <summary>
/// Settings of the coordinator (configuration section <c>NearML:Coordinator</c>), validated when the host starts.
/// </summary>
public sealed class NearMLCoordinatorOptions
{
    /// <summary>The configuration section these options bind from.</summary>
    public const string SectionName = "NearML:Coordinator";

    /// <summary>Gets or sets the job id (recorded in the state database and every ledger receipt).</summary>
    /// <value>The default value is <c>nearml-job</c>.</value>
    public string JobId { get; set; } = "nearml-job";

    /// <summary>Gets or sets the IP address to listen on.</summary>
    /// <value>The default value is <c>127.0.0.1</c>.</value>
    public string ListenAddress { get; set; } = "127.0.0.1";

    /// <summary>Gets or sets the TCP port; 0 picks a free port (see <see cref="CoordinatorStatus.Port"/>).</summary>
    /// <value>The default value is 7420.</value>
    public int Port { get; set; } = 7420;

    /// <summary>Gets or sets the folder of the durable state (coordinator.db, ledger.db, checkpoints, keys, dev certificate).</summary>
    /// <value>The default value is <c>nearml-coordinator</c>.</value>
    public string DataDirectory { get; set; } = "nearml-coordinator";

    /// <summary>Gets or sets a PKCS#12 TLS certificate; <see langword="null"/> creates a development certificate in <see cref="DataDirectory"/> and logs its fingerprint.</summary>
    /// <value>The default value is <see langword="null"/>.</value>
    public string? CertificatePath { get; set; }

    /// <summary>Gets or sets the password of <see cref="CertificatePath"/>.</summary>
    /// <value>The default value is <see langword="null"/>.</value>
    public string? CertificatePassword { get; set; }

    /// <summary>Gets or sets the registered model key: a built-in (<c>mlp</c>, <c>cnn</c>, <c>gpt</c>; see <see cref="BuiltInJobs"/>) or one
    /// added with <c>AddModel</c>.</summary>
    /// <value>The default value is <c>mlp</c>.</value>
    public string Model { get; set; } = "mlp";

    /// <summary>Gets or sets the model configuration JSON; <see langword="null"/> for the registration's default.</summary>
    /// <value>The default value is <see langword="null"/>.</value>
    public string? ModelConfigJson { get; set; }

    /// <summary>Gets or sets the registered dataset key: a built-in (<c>fashion-mnist</c>, <c>text</c>, <c>npz</c>; see
    /// <see cref="BuiltInJobs"/>) or one added with <c>AddDataset</c>.</summary>
    /// <value>The default value is <c>fashion-mnist</c>.</value>
    public string Dataset { get; set; } = JobDataset.FashionMnistName;

    /// <summary>Gets or sets the dataset configuration JSON (sent to workers); <see langword="null"/> for <c>{}</c>.</summary>
    /// <value>The default value is <see langword="null"/>.</value>
    public string? DatasetConfigJson { get; set; }

    /// <summary>Gets or sets this host's data folder, passed to dataset providers (Fashion-MNIST's IDX files; the folder
    /// that <c>text</c>/<c>npz</c> file names are relative to); <see langword="null"/> for each provider's default
    /// (<c>$FASHION_MNIST_DIR</c> or the Debian package's folder for Fashion-MNIST).</summary>
    /// <value>The default value is <see langword="null"/>.</value>
    public string? DatasetDirectory { get; set; }

    /// <summary>Gets or sets the number of dataset shards.</summary>
    /// <value>The default value is 60.</value>
    public int ShardCount { get; set; } = 60;

    /// <summary>Gets or sets the number of rounds to train (the job is complete after round <c>Rounds − 1</c>).</summary>
    /// <value>The default value is 10.</value>
    public int Rounds { get; set; } = 10;

    /// <summary>Gets or sets H, the inner steps per round.</summary>
    /// <value>The default value is 100.</value>
    public int InnerSteps { get; set; } = 100;

    /// <summary>Gets or sets the workers' batch size.</summary>
    /// <value>The default value is 64.</value>
    public int BatchSize { get; set; } = 64;

    /// <summary>Gets or sets the inner AdamW learning rate.</summary>
    /// <value>The default value is 0.001.</value>
    public double InnerLearningRate { get; set; } = 1e-3;

    /// <summary>Gets or sets the inner AdamW weight decay.</summary>
    /// <value>The default value is 0.01.</value>
    public double WeightDecay { get; set; } = 0.01;

    /// <summary>Gets or sets the outer (Nesterov SGD) learning rate.</summary>
    /// <value>The default value is 0.7.</value>
    public double OuterLearningRate { get; set; } = 0.7;

    /// <summary>Gets or sets the outer momentum.</summary>
    /// <value>The default value is 0.9.</value>
    public double OuterMomentum { get; set; } = 0.9;

    private string? _updateEncoding;
    private string? _compression;

    /// <summary>
    /// Gets or sets the update encoding of DiLoCo rounds (<c>fp32</c>, <c>fp16</c>, <c>int8</c>, <c>int4</c>): the
    /// contract's <c>HyperParameters.update_encoding</c>, configuration key <c>NearML:Coordinator:UpdateEncoding</c>, the
    /// samples' <c>--encoding</c> flag. Until it is set to another value, the deprecated <see cref="Compression"/> (when set)
    /// is in effect.
    /// </summary>
    /// <value>The default value is <c>int8</c>.</value>
    public string UpdateEncoding
    {
        get => _updateEncoding ?? _compression ?? UpdateEncodings.DefaultName;
        set
        {
            // Configuration binding writes every property's current value back; that must not turn the default into an
            // explicit setting that would then disagree with a Compression key bound after it.
            if (_updateEncoding is null && value == (_compression ?? UpdateEncodings.DefaultName))
            {
                return;
            }

            _updateEncoding = value;
        }
    }

    /// <summary>
    /// Gets or sets the update encoding under its old name: a deprecated alias of <see cref="UpdateEncoding"/>, in effect
    /// unless <see cref="UpdateEncoding"/> is set to another value (both set to different values is refused at start). A
    /// coordinator configured with it logs one warning naming <c>UpdateEncoding</c>.
    /// </summary>
    /// <value>The default value is <see langword="null"/> (not set).</value>
    [Obsolete("Use UpdateEncoding (configuration key NearML:Coordinator:UpdateEncoding, samples' flag --encoding); Compression is a deprecated alias.")]
    public string? Compression
    {
        get => _compression;
        set => _compression = value;
    }

    /// <summary>Gets the value set through the deprecated <see cref="Compression"/> alias, or <see langword="null"/>.</summary>
    internal string? DeprecatedCompression => _compression;

    /// <summary>Gets or sets the job seed (model initialisation, shard order, data order).</summary>
    /// <value>The default value is 1.</value>
    public int Seed { get; set; } = 1;

    /// <summary>
    /// Gets or sets the sync strategy: <c>diloco</c> (rounds of H local steps, one compressed pseudo-gradient each), or <c>ddp</c> /
    /// <c>demo</c>, whose per-step exchanges the coordinator relays (see docs/hosting.md, "DDP and DeMo via the relay").
    /// </summary>
    /// <value>The default value is <c>diloco</c>.</value>
    public string SyncStrategy { get; set; } = "diloco";

    /// <summary>Gets the wire value of <see cref="SyncStrategy"/> (DILOCO for anything but <c>ddp</c> and <c>demo</c>).</summary>
    internal NearML.Core.Contracts.SyncStrategy SyncStrategyKind => SyncStrategy?.Trim().ToLowerInvariant() switch
    {
        "ddp" => NearML.Core.Contracts.SyncStrategy.Ddp,
        "demo" => NearML.Core.Contracts.SyncStrategy.Demo,
        _ => NearML.Core.Contracts.SyncStrategy.Diloco,
    };

    /// <summary>Gets or sets how many admitted workers must be connected before a round starts.</summary>
    /// <value>The default value is 1.</value>
    public int MinWorkers { get; set; } = 1;

    /// <summary>Gets or sets the most workers admitted at once; more are refused with COHORT_FULL (they retry).</summary>
    /// <value>The default value is 256.</value>
    public int MaxWorkers { get; set; } = 256;

    /// <summary>Gets or sets how long a round waits for its cohort's updates after the assignment.</summary>
    /// <value>The default value is 5 minutes.</value>
    public TimeSpan RoundTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Gets or sets the heartbeat interval announced to workers; a peer silent for 3 intervals is dropped.</summary>
    /// <value>The default value is 15 seconds.</value>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Gets or sets the deadline of a worker's handshake.</summary>
    /// <value>The default value is 10 seconds.</value>
    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Gets how long an attestation challenge nonce the coordinator issues stays valid: <see cref="HandshakeTimeout"/> plus
    /// five seconds (a handshake that outlives it has failed anyway). The coordinator's <c>AttestationNonceStore</c> forgets a
    /// nonce one lifetime after it expired, so its memory is bounded by the admission rate.
    /// </summary>
    public TimeSpan AttestationNonceLifetime => HandshakeTimeout + TimeSpan.FromSeconds(5);

    /// <summary>
    /// Gets or sets how often a standby coordinator asks for the lease on a shared state backend (PostgreSQL) while
    /// another coordinator holds it; see docs/failover.md. Backends owned by one process (SQLite) grant it at once.
    /// </summary>
    /// <value>The default value is 1 second.</value>
    public TimeSpan LeaseRetryInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Gets or sets the most connections still in their TLS or NearML handshake served at once: unauthenticated clients
    /// get this budget of their own, apart from the admitted workers' (see docs/operator-guide.md, "Connection limits").
    /// </summary>
    /// <value>The default value is 64.</value>
    public int MaxPendingHandshakes { get; set; } = 64;

    /// <summary>Gets or sets the most connections in their handshake from one IP address at once.</summary>
    /// <value>The default value is 16.</value>
    public int MaxPendingHandshakesPerAddress { get; set; } = 16;

    /// <summary>Gets or sets the sustained rate of new connections accepted from one IP address, per second.</summary>
    /// <value>The default value is 10.</value>
    public double HandshakeRatePerAddress { get; set; } = 10;

    /// <summary>Gets or sets the burst of new connections accepted from one IP address.</summary>
    /// <value>The default value is 32.</value>
    public int HandshakeBurstPerAddress { get; set; } = 32;

    /// <summary>
    /// Gets or sets the interval of the refused-connection log: at most <see cref="RefusalLogBurst"/> refusals and
    /// connection faults are logged one by one per interval; the rest are counted into one summary line at its end.
    /// </summary>
    /// <value>The default value is 10 seconds.</value>
    public TimeSpan RefusalLogInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Gets or sets the refusals and connection faults logged one by one per <see cref="RefusalLogInterval"/>.</summary>
    /// <value>The default value is 10.</value>
    public int RefusalLogBurst { get; set; } = 10;

    /// <summary>
    /// Gets or sets a value indicating whether NearML.Enclave's INSECURE simulated evidence is accepted (development only:
    /// it proves nothing about the worker's machine; the evidence must still bind the handshake).
    /// </summary>
    /// <value>The default value is <see langword="false"/>.</value>
    public bool AllowSimulatedAttestation { get; set; }

    /// <summary>
    /// Gets a value indicating whether simulated evidence is effectively accepted: <see cref="AllowSimulatedAttestation"/>,
    /// or <see cref="Attestation"/> accepting it by itself (its <see cref="NearML.Enclave.AttestationPolicy.AllowSimulated"/>
    /// with <see cref="NearML.Enclave.AttestationVendor.InsecureSimulated"/> among its vendors, NearML.Enclave's rule). The
    /// one value admission (<see cref="AttestationAdmissionPolicy.EffectivePolicy"/>), the <c>InsecureAdmission</c> start-up
    /// warning and the reward policy (<see cref="CountsUnattestedWork"/>) read.
    /// </summary>
    public bool SimulatedAttestationAccepted =>
        AllowSimulatedAttestation
        || (Attestation is { AllowSimulated: true } policy && policy.EffectiveVendors.Contains(NearML.Enclave.AttestationVendor.InsecureSimulated));

    /// <summary>
    /// Gets a value indicating whether work without real TEE evidence is admitted and rewarded: <see cref="SimulatedAttestationAccepted"/>
    /// or <see cref="AllowUnattestedWorkers"/> (the <c>InsecureAdmission</c> warning is logged at start and the reward policy counts
    /// unattested receipts).
    /// </summary>
    public bool CountsUnattestedWork => SimulatedAttestationAccepted || AllowUnattestedWorkers;

    /// <summary>Gets or sets a value indicating whether workers without any attestation evidence are admitted (development and tests only).</summary>
    /// <value>The default value is <see langword="false"/>.</value>
    public bool AllowUnattestedWorkers { get; set; }

    /// <summary>Gets or sets the attestation policy applied to TDX / SEV-SNP evidence (measurements, TCB, debug).</summary>
    /// <value>The default value is NearML.Enclave's default policy.</value>
    public NearML.Enclave.AttestationPolicy Attestation { get; set; } = new();

    /// <summary>Gets or sets how often (in rounds) the global model is evaluated on the test set; 0 never.</summary>
    /// <value>The default value is 1.</value>
    public int EvaluateEveryRounds { get; set; } = 1;

    /// <summary>Gets or sets how many test samples an evaluation uses; 0 for all.</summary>
    /// <value>The default value is 0.</value>
    public int EvaluationSamples { get; set; }

    /// <summary>Gets or sets how often (in rounds) a checkpoint is written; the last round is always checkpointed.</summary>
    /// <value>The default value is 1.</value>
    public int CheckpointEveryRounds { get; set; } = 1;

    /// <summary>Gets or sets how many checkpoint files are kept.</summary>
    /// <value>The default value is 3.</value>
    public int CheckpointsToKeep { get; set; } = 3;

    /// <summary>Gets or sets the rounds per ledger epoch; each epoch is settled when it ends.</summary>
    /// <value>The default value is 5.</value>
    public int SettleEveryRounds { get; set; } = 5;

    /// <summary>Gets or sets a value indicating whether settlement transactions are only signed offline and stored, never sent.</summary>
    /// <value>The default value is <see langword="true"/>.</value>
    public bool SettlementDryRun { get; set; } = true;

    /// <summary>Gets or sets the paying NEAR account.</summary>
    /// <value>The default value is <c>nearml-coordinator.testnet</c>.</value>
    public string SettlementAccount { get; set; } = "nearml-coordinator.testnet";

    /// <summary>
    /// Gets or sets the file holding the payer key: the secret key of <see cref="SettlementAccount"/> that signs settlement
    /// transactions, as NEAR key text (<c>ed25519:&lt;base58&gt;</c>) or a NEAR CLI credential file (JSON with
    /// <c>account_id</c> and <c>private_key</c>; its account must be <see cref="SettlementAccount"/>). It is separate from
    /// the ledger's receipt-signing key (<c>ledger-signer.key</c>), which never pays. Required when
    /// <see cref="SettlementDryRun"/> is false; in a dry run without it, a payer key generated once and kept in
    /// <c>settlement-payer.key</c> (mode 0600) in <see cref="DataDirectory"/> signs the offline transactions.
    /// </summary>
    /// <value>The default value is <see langword="null"/>.</value>
    public string? SettlementKeyPath { get; set; }

    /// <summary>Gets or sets the NEAR JSON-RPC endpoint (used only when <see cref="SettlementDryRun"/> is false).</summary>
    /// <value>The default value is <see langword="null"/>.</value>
    public Uri? SettlementRpcEndpoint { get; set; }

    /// <summary>Gets or sets the reward pool per epoch, in yoctoNEAR (decimal text).</summary>
    /// <value>The default value is 1 NEAR.</value>
    public string RewardPerEpoch { get; set; } = "1000000000000000000000000";

    /// <summary>
    /// Gets or sets the largest accepted Euclidean norm of an update. <see langword="null"/> derives it from the job:
    /// InnerSteps × InnerLearningRate × √(parameter count), the norm H AdamW steps reach only if every parameter moved a
    /// full learning rate the same way on every step (see docs/hosting.md, "Hostile workers").
    /// </summary>
    /// <value>The default value is <see langword="null"/> (derived).</value>
    public double? MaxUpdateNorm { get; set; }

    /// <summary>
    /// Gets or sets k: an update whose norm exceeds k × the reference median is rejected. The reference is the lower median
    /// of this round's finite norms together with the last 32 accepted norms of earlier rounds, so a cohort of one or two
    /// workers is screened too; <see langword="null"/> disables.
    /// </summary>
    /// <value>The default value is 10.</value>
    public double? MaxUpdateNormToMedianRatio { get; set; } = 10;

    /// <summary>Gets or sets the largest frame payload accepted, bytes.</summary>
    /// <value>The default value is 4 MiB.</value>
    public int MaxFrameSize { get; set; } = 4 << 20;

    /// <summary>
    /// Gets or sets a value indicating whether rounds use secure aggregation (SecAgg+ over <c>AggregationEnvelope</c> frames):
    /// the coordinator learns only the sum of the weighted fixed-point updates. Needs at least 3 workers per round.
    /// </summary>
    /// <value>The default value is <see langword="false"/>.</value>
    public bool SecureAggregation { get; set; }

    /// <summary>Gets or sets the clip bound of pseudo-gradient entries in secure rounds.</summary>
    /// <value>The default value is 0.5.</value>
    public float SecureClipRange { get; set; } = 0.5f;

    /// <summary>Gets or sets the fixed-point bits per entry in secure rounds.</summary>
    /// <value>The default value is 16.</value>
    public int SecureValueBits { get; set; } = 16;

    internal UInt128 RewardPool => UInt128.Parse(RewardPerEpoch, CultureInfo.InvariantCulture);
}

/// <summary>Validates <see cref="NearMLCoordinatorOptions"/> (every failure is listed, naming the setting).</summary>
internal sealed class NearMLCoordinatorOptionsValidator : IValidateOptions<NearMLCoordinatorOptions>
{
    private readonly JobRegistry _registry;

    public NearMLCoordinatorOptionsValidator()
        : this(JobRegistry.BuiltIn)
    {
    }

    public NearMLCoordinatorOptionsValidator(JobRegistry registry) => _registry = registry;

    public ValidateOptionsResult Validate(string? name, NearMLCoordinatorOptions options)
    {
        var f = new List<string>();
        void Check(bool ok, string message)
        {
            if (!ok)
            {
                f.Add(message);
            }
        }

        static bool Finite(double v) => double.IsFinite(v);
        Check(!string.IsNullOrWhiteSpace(options.JobId) && options.JobId.Length <= 64, $"JobId must have 1 to 64 characters (got '{options.JobId}').");
        Check(IPAddress.TryParse(options.ListenAddress, out _), $"ListenAddress '{options.ListenAddress}' is not an IP address.");
        Check(options.Port is >= 0 and <= 65535, $"Port {options.Port} must be in [0, 65535] (0 = any free port).");
        Check(!string.IsNullOrWhiteSpace(options.DataDirectory), "DataDirectory is required.");
        Check(options.CertificatePath is null || File.Exists(options.CertificatePath), $"CertificatePath '{options.CertificatePath}' does not exist.");
        try
        {
            using var model = _registry.BuildModel(options.Model, new NearML.Training.Engines.ModelBuildContext(options.ModelConfigJson ?? string.Empty, options.Seed, new NearML.Training.Engines.InnerOptimizerSettings()));
        }
        catch (JobConfigurationException ex)
        {
            f.Add($"Model: {ex.Message}");
        }

        Check(_registry.HasDataset(options.Dataset), $"Dataset '{options.Dataset}' is not registered (registered: {string.Join(", ", _registry.DatasetKeys)}); add it with AddDataset.");

        Check(options.ShardCount > 0, $"ShardCount {options.ShardCount} must be positive.");
        Check(options.Rounds > 0, $"Rounds {options.Rounds} must be positive.");
        Check(options.InnerSteps > 0, $"InnerSteps {options.InnerSteps} must be positive.");
        Check(options.BatchSize > 0, $"BatchSize {options.BatchSize} must be positive.");
        Check(Finite(options.InnerLearningRate) && options.InnerLearningRate > 0, $"InnerLearningRate {options.InnerLearningRate} must be positive and finite.");
        Check(Finite(options.WeightDecay) && options.WeightDecay >= 0, $"WeightDecay {options.WeightDecay} must be non-negative and finite.");
        Check(Finite(options.OuterLearningRate) && options.OuterLearningRate > 0, $"OuterLearningRate {options.OuterLearningRate} must be positive and finite.");
        Check(Finite(options.OuterMomentum) && options.OuterMomentum > 0 && options.OuterMomentum < 1, $"OuterMomentum {options.OuterMomentum} must be in (0, 1) (Nesterov needs momentum).");
        if (options.DeprecatedCompression is { } alias)
        {
            Check(UpdateEncodings.IsKnown(alias), $"Compression '{alias}' (deprecated alias of UpdateEncoding) is unknown (known: {string.Join(", ", UpdateEncodings.Names)}).");
            Check(
                !UpdateEncodings.IsKnown(alias) || UpdateEncodings.Parse(alias) == UpdateEncodings.Parse(options.UpdateEncoding) || !UpdateEncodings.IsKnown(options.UpdateEncoding),
                $"Compression '{alias}' (deprecated) and UpdateEncoding '{options.UpdateEncoding}' disagree; set UpdateEncoding only.");
        }

        Check(
            (options.DeprecatedCompression is not null && options.UpdateEncoding == options.DeprecatedCompression) || UpdateEncodings.IsKnown(options.UpdateEncoding),
            $"UpdateEncoding '{options.UpdateEncoding}' is unknown (known: {string.Join(", ", UpdateEncodings.Names)}).");
        var strategy = options.SyncStrategy?.Trim().ToLowerInvariant();
        Check(strategy is "diloco" or "ddp" or "demo", $"SyncStrategy '{options.SyncStrategy}' is unknown; use 'diloco', 'ddp' or 'demo'.");
        Check(
            strategy is not ("ddp" or "demo") || !options.SecureAggregation,
            $"SyncStrategy '{options.SyncStrategy}' runs over the coordinator relay, which sees every contribution; SecureAggregation needs SyncStrategy=diloco.");
        Check(options.MinWorkers >= 1, $"MinWorkers {options.MinWorkers} must be at least 1.");
        Check(options.MaxWorkers >= options.MinWorkers, $"MaxWorkers {options.MaxWorkers} must be at least MinWorkers {options.MinWorkers}.");
        Check(options.RoundTimeout > TimeSpan.Zero, $"RoundTimeout {options.RoundTimeout} must be positive.");
        Check(options.HeartbeatInterval >= TimeSpan.FromMilliseconds(50), $"HeartbeatInterval {options.HeartbeatInterval} must be at least 50 ms.");
        Check(options.HandshakeTimeout > TimeSpan.Zero, $"HandshakeTimeout {options.HandshakeTimeout} must be positive.");
        Check(options.LeaseRetryInterval > TimeSpan.Zero, $"LeaseRetryInterval {options.LeaseRetryInterval} must be positive.");
        Check(options.MaxPendingHandshakes >= 1, $"MaxPendingHandshakes {options.MaxPendingHandshakes} must be at least 1.");
        Check(
            options.MaxPendingHandshakesPerAddress >= 1 && options.MaxPendingHandshakesPerAddress <= options.MaxPendingHandshakes,
            $"MaxPendingHandshakesPerAddress {options.MaxPendingHandshakesPerAddress} must be in [1, MaxPendingHandshakes {options.MaxPendingHandshakes}].");
        Check(Finite(options.HandshakeRatePerAddress) && options.HandshakeRatePerAddress > 0, $"HandshakeRatePerAddress {options.HandshakeRatePerAddress} must be positive and finite.");
        Check(options.HandshakeBurstPerAddress >= 1, $"HandshakeBurstPerAddress {options.HandshakeBurstPerAddress} must be at least 1.");
        Check(options.RefusalLogInterval >= TimeSpan.FromMilliseconds(100), $"RefusalLogInterval {options.RefusalLogInterval} must be at least 100 ms.");
        Check(options.RefusalLogBurst >= 0, $"RefusalLogBurst {options.RefusalLogBurst} must be non-negative.");
        Check(options.EvaluateEveryRounds >= 0, $"EvaluateEveryRounds {options.EvaluateEveryRounds} must be non-negative.");
        Check(options.EvaluationSamples >= 0, $"EvaluationSamples {options.EvaluationSamples} must be non-negative.");
        Check(options.CheckpointEveryRounds >= 1, $"CheckpointEveryRounds {options.CheckpointEveryRounds} must be at least 1.");
        Check(options.CheckpointsToKeep >= 1, $"CheckpointsToKeep {options.CheckpointsToKeep} must be at least 1.");
        Check(options.SettleEveryRounds >= 1, $"SettleEveryRounds {options.SettleEveryRounds} must be at least 1.");
        Check(UInt128.TryParse(options.RewardPerEpoch, NumberStyles.None, CultureInfo.InvariantCulture, out _), $"RewardPerEpoch '{options.RewardPerEpoch}' must be a non-negative integer (yoctoNEAR).");
        try
        {
            NearML.Ledger.NearAccountId.Validate(options.SettlementAccount, nameof(options.SettlementAccount));
        }
        catch (ArgumentException ex)
        {
            f.Add($"SettlementAccount: {ex.Message}");
        }

        Check(options.SettlementDryRun || options.SettlementRpcEndpoint is not null, "SettlementRpcEndpoint is required when SettlementDryRun is false.");
        Check(
            options.SettlementDryRun || !string.IsNullOrWhiteSpace(options.SettlementKeyPath),
            $"SettlementKeyPath is required when SettlementDryRun is false: live settlement signs with the payer key of SettlementAccount '{options.SettlementAccount}', never with the ledger's receipt-signing key (set NearML:Coordinator:SettlementKeyPath to the key file; the samples take --settlement-key FILE).");
        Check(
            string.IsNullOrWhiteSpace(options.SettlementKeyPath) || File.Exists(options.SettlementKeyPath),
            $"SettlementKeyPath '{options.SettlementKeyPath}' does not exist.");
        Check(options.MaxUpdateNorm is null || (Finite(options.MaxUpdateNorm.Value) && options.MaxUpdateNorm > 0), $"MaxUpdateNorm {options.MaxUpdateNorm} must be positive.");
        Check(options.MaxUpdateNormToMedianRatio is null || options.MaxUpdateNormToMedianRatio > 1, $"MaxUpdateNormToMedianRatio {options.MaxUpdateNormToMedianRatio} must be above 1.");
        Check(options.MaxFrameSize >= (1 << 20) + 4096, $"MaxFrameSize {options.MaxFrameSize} must be at least 1 MiB + 4 KiB (updates travel in parts of up to 1 MiB).");
        Check(options.Attestation is null || options.Attestation.Validate() is null, $"Attestation: {options.Attestation?.Validate()}");
        if (options.SecureAggregation)
        {
            Check(float.IsFinite(options.SecureClipRange) && options.SecureClipRange > 0, $"SecureClipRange {options.SecureClipRange} must be positive.");
            Check(options.SecureValueBits is >= 2 and <= 24, $"SecureValueBits {options.SecureValueBits} must be in [2, 24].");
            Check(
                options.SecureValueBits + Math.Ceiling(Math.Log2((double)options.MaxWorkers * Math.Max(1, options.InnerSteps))) <= 32,
                $"SecureValueBits {options.SecureValueBits} + log2(MaxWorkers {options.MaxWorkers} × InnerSteps {options.InnerSteps}) exceeds the 32-bit ring; lower one of them.");
        }
        return f.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(f);
    }
}
