using System.Data.Common;
using System.Globalization;
using System.Security.Cryptography;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using NearML.Core;
using NearML.Hosting.Coordinator;
using NearML.Hosting.State;
using NearML.Ledger;

namespace NearML.Hosting.Settlement;

/// <summary>
/// The coordinator's settlement component: when the coordinator signals that a ledger epoch closed, it turns the epoch's
/// receipts into payouts (<see cref="RewardPolicy"/>), the payouts into NEAR transactions signed by the payer key, and
/// either stores them signed but unsent (dry run) or pays them exactly once through <see cref="NearSettler"/> and the
/// settlement store; then it records the transactions in the coordinator state, the live status and the log.
/// </summary>
/// <remarks>
/// <para>
/// A hosted service only for its start: <see cref="StartAsync"/> loads the payer key (refusing a bad key file before the
/// coordinator listens). Settling itself is driven by the coordinator, inline at the end of the round that closes the
/// epoch, and awaited: an epoch is settled and recorded before the next round chooses the epoch of its receipts, so no
/// receipt lands in a settled epoch and a restart finds exactly what was settled (docs/hosting.md, "Settlement").
/// </para>
/// <para>
/// The payer key is never the ledger's receipt-signing key by default: live settlement needs
/// <see cref="NearMLCoordinatorOptions.SettlementKeyPath"/>; a dry run without it signs with a key generated once in
/// <see cref="DryRunPayerKeyFileName"/> in the data folder. NEAR JSON-RPC goes through one pooled client from
/// <see cref="IHttpClientFactory"/> (named <see cref="HttpClientName"/>); transient faults are retried by
/// <see cref="NearRpcClient"/>'s own Polly pipeline (sends re-send the same signed bytes), so no second retry layer is added.
/// </para>
/// </remarks>
public sealed class SettlementService : IHostedService, IDisposable
{
    /// <summary>The name of the <see cref="HttpClient"/> the NEAR JSON-RPC calls use (configure it with <c>services.AddHttpClient(SettlementService.HttpClientName)</c>).</summary>
    public const string HttpClientName = "NearML.Settlement.NearRpc";

    /// <summary>
    /// Registers the pooled NEAR JSON-RPC client <see cref="HttpClientName"/> (what <c>AddNearMLCoordinator</c> does; a tool
    /// that settles outside a coordinator, such as <c>nearml settle</c>, calls it on its own service collection).
    /// </summary>
    /// <param name="services">The services.</param>
    /// <returns>The client's builder (add handlers, set timeouts).</returns>
    public static IHttpClientBuilder AddRpcHttpClient(IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        return services.AddHttpClient(HttpClientName);
    }

    /// <summary>
    /// Creates the NEAR JSON-RPC client every settlement uses: over the pooled <see cref="HttpClientName"/> client of
    /// <paramref name="httpClientFactory"/>, with <see cref="NearRpcClient"/>'s own Polly retry of transient faults (one
    /// retry layer; a send re-sends the same signed bytes).
    /// </summary>
    /// <param name="httpClientFactory">The factory holding <see cref="HttpClientName"/> (<see cref="AddRpcHttpClient"/>).</param>
    /// <param name="endpoint">The NEAR JSON-RPC endpoint.</param>
    /// <param name="loggerFactory">The loggers, or <see langword="null"/>.</param>
    /// <param name="timeProvider">The clock of retry delays, or <see langword="null"/> for the system clock.</param>
    /// <returns>The client (it does not own the pooled <see cref="HttpClient"/>).</returns>
    public static NearRpcClient CreateRpcClient(IHttpClientFactory httpClientFactory, Uri endpoint, ILoggerFactory? loggerFactory = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(httpClientFactory);
        return CreateRpcClient(httpClientFactory.CreateClient(HttpClientName), endpoint, loggerFactory, timeProvider);
    }

    private static NearRpcClient CreateRpcClient(HttpClient http, Uri endpoint, ILoggerFactory? loggerFactory, TimeProvider? timeProvider)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        return new NearRpcClient(http, new NearRpcClientOptions { Endpoint = endpoint }, (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<NearRpcClient>(), timeProvider ?? TimeProvider.System);
    }

    /// <summary>The dry-run payer key file in the data folder, generated once when no <see cref="NearMLCoordinatorOptions.SettlementKeyPath"/> is set.</summary>
    public const string DryRunPayerKeyFileName = "settlement-payer.key";

    private readonly NearMLCoordinatorOptions _options;
    private readonly CoordinatorStatus _status;
    private readonly ILoggerFactory _loggers;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly IHttpClientFactory? _httpFactory;
    private readonly ICoordinatorStateBackend _stateBackend;
    private readonly Lock _gate = new();
    private HttpClient? _ownHttp;
    private NearKeyPair? _payer;

    /// <summary>Initializes the component (use <c>AddNearMLCoordinator</c>, which registers it).</summary>
    /// <param name="options">The coordinator options (settlement account, payer key, endpoint, reward pool).</param>
    /// <param name="status">The live status the settled transactions are added to.</param>
    /// <param name="loggerFactory">The loggers (this component's, the RPC client's and the settler's).</param>
    /// <param name="timeProvider">The clock of RPC retry delays.</param>
    /// <param name="httpClientFactory">The pooled HTTP clients (<see langword="null"/>: one client owned by this component).</param>
    /// <param name="stateBackend">Where the settlement store is kept (<see langword="null"/>: SQLite in the data folder).</param>
    public SettlementService(
        IOptions<NearMLCoordinatorOptions> options,
        CoordinatorStatus status,
        ILoggerFactory? loggerFactory = null,
        TimeProvider? timeProvider = null,
        IHttpClientFactory? httpClientFactory = null,
        ICoordinatorStateBackend? stateBackend = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(status);
        _options = options.Value;
        _status = status;
        _loggers = loggerFactory ?? NullLoggerFactory.Instance;
        _logger = _loggers.CreateLogger<SettlementService>();
        _time = timeProvider ?? TimeProvider.System;
        _httpFactory = httpClientFactory;
        _stateBackend = stateBackend ?? SqliteStateBackend.Instance;
    }

    /// <summary>Gets the payer's public key (loaded by <see cref="StartAsync"/> or the first settlement), or <see langword="null"/> before.</summary>
    public NearPublicKey? PayerPublicKey
    {
        get
        {
            lock (_gate)
            {
                return _payer?.PublicKey;
            }
        }
    }

    /// <summary>Loads the payer key: the configured file, or in a dry run the data folder's generated key (created on first start).</summary>
    /// <param name="cancellationToken">Not used: loading is quick.</param>
    /// <returns>A completed task.</returns>
    /// <exception cref="InvalidNearKeyException">The key file cannot be read as a NEAR ed25519 key, or a credential file names another account.</exception>
    /// <exception cref="InvalidOperationException">Live settlement is configured without a payer key.</exception>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        _ = Payer();
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// Settles a closed epoch: reward distribution over its receipts, then dry-run signing or live, exactly-once payment;
    /// records the transactions in <paramref name="state"/> and the status. A failure is logged, traced and reported as
    /// <see langword="false"/>; durable state stays consistent (a live settlement resumes with the same signed bytes).
    /// </summary>
    /// <param name="epoch">The epoch that closed.</param>
    /// <param name="ledger">The ledger holding the epoch's receipts.</param>
    /// <param name="state">The coordinator state the settlement records go to.</param>
    /// <param name="cancellationToken">Stops the settlement (state is kept).</param>
    /// <returns><see langword="true"/> when the epoch is settled (dry run: signed and stored).</returns>
    public async Task<bool> SettleAsync(long epoch, ContributionLedger ledger, ICoordinatorStateStore state, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        ArgumentNullException.ThrowIfNull(ledger);
        ArgumentNullException.ThrowIfNull(state);
        var o = _options;
        using var span = NearMLTracing.StartSettle(epoch, o.SettlementDryRun);
        try
        {
            var payer = Payer();
            var receipts = ledger.ReadEpochReceipts(epoch).Select(r => r.Receipt).ToList();
            var root = ledger.ComputeEpochRoot(epoch);
            var policy = new RewardPolicy { CountUnattested = o.CountsUnattestedWork };
            var payouts = policy.Distribute(epoch, receipts, o.RewardPool).Payouts.Where(p => p.Amount > 0).ToList();
            var records = o.SettlementDryRun
                ? SignOffline(epoch, root, payouts, payer, state)
                : await SendAsync(epoch, root, payouts, payer, cancellationToken).ConfigureAwait(false);
            state.RecordSettlement(records);
            foreach (var r in records)
            {
                _status.AddSettlement(r.Epoch, r.Hash, r.Receiver, UInt128.TryParse(r.Amount, CultureInfo.InvariantCulture, out var amount) ? amount : 0, r.DryRun);
            }

            if (_logger.IsEnabled(LogLevel.Information))
            {
                var rootHex = Convert.ToHexStringLower(root);
                var hashes = string.Join(", ", records.Select(r => r.Hash));
                SettlementLog.Settled(_logger, epoch, o.SettlementDryRun ? "dry run: signed offline, not sent" : "sent", rootHex, records.Count, hashes);
            }

            return true;
        }
        catch (Exception ex) when (ex is NearMLException or HttpRequestException or DbException)
        {
            NearMLTracing.Fail(span, ex);
            SettlementLog.SettlementFailed(_logger, ex, epoch);
            return false;
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (_gate)
        {
            _payer?.Dispose();
            _payer = null;
            _ownHttp?.Dispose();
            _ownHttp = null;
        }
    }

    // Offline: no chain access, so the block hash is a placeholder derived from the epoch root; the nonces continue from
    // the last stored transaction across epochs and restarts, so every transaction differs.
    private List<SettlementRecord> SignOffline(long epoch, byte[] root, List<WorkerPayout> payouts, NearKeyPair payer, ICoordinatorStateStore state)
    {
        var stored = state.ReadSettlements();
        var nextNonce = stored.Count == 0 ? 1UL : stored.Max(s => s.Nonce) + 1;
        var blockHash = SHA256.HashData([.. "nearml/offline-settlement/v1"u8, .. root]);
        var records = new List<SettlementRecord>(payouts.Count);
        for (var i = 0; i < payouts.Count; i++)
        {
            var nonce = nextNonce + (ulong)i;
            var tx = new NearTransaction(_options.SettlementAccount, payer.PublicKey, nonce, payouts[i].WorkerId, blockHash, [new TransferAction(payouts[i].Amount)]);
            var signed = tx.Sign(payer);
            records.Add(new SettlementRecord(epoch, i, nonce, signed.HashBase58, payouts[i].WorkerId, payouts[i].Amount.ToString(CultureInfo.InvariantCulture), true));
        }

        return records;
    }

    private async Task<List<SettlementRecord>> SendAsync(long epoch, byte[] root, List<WorkerPayout> payouts, NearKeyPair payer, CancellationToken ct)
    {
        var o = _options;
        var client = _httpFactory is not null
            ? CreateRpcClient(_httpFactory, o.SettlementRpcEndpoint!, _loggers, _time)
            : CreateRpcClient(OwnHttp(), o.SettlementRpcEndpoint!, _loggers, _time);
        using var store = _stateBackend.OpenSettlement(Path.GetFullPath(o.DataDirectory));
        using var credentials = NearCredentials.FromSecretKey(o.SettlementAccount, payer.ExportSecretKey());
        var settler = new NearSettler(client, store, credentials, new SettlementOptions { DryRun = false }, _loggers.CreateLogger<NearSettler>());
        var result = await settler.SettleAsync(epoch, root, payouts, ct).ConfigureAwait(false);
        return [.. result.Transactions.Select(t => new SettlementRecord(epoch, t.Slot, t.Nonce, t.Hash, SignedNearTransaction.Parse(t.SignedBytes).Transaction.ReceiverId, string.Empty, false))];
    }

    // A client from the factory shares its pooled handler (connections, DNS refresh) with every other; without a factory
    // (the component built by hand) one client is kept for the component's lifetime.
    private HttpClient OwnHttp()
    {
        lock (_gate)
        {
            return _ownHttp ??= new HttpClient();
        }
    }

    private NearKeyPair Payer()
    {
        lock (_gate)
        {
            return _payer ??= LoadPayer();
        }
    }

    private NearKeyPair LoadPayer()
    {
        var o = _options;
        var mode = o.SettlementDryRun ? "dry run" : "live";
        NearKeyPair key;
        string source;
        if (!string.IsNullOrWhiteSpace(o.SettlementKeyPath))
        {
            source = Path.GetFullPath(o.SettlementKeyPath);
            key = ReadKeyFile(source, o.SettlementAccount, "SettlementKeyPath");
        }
        else if (!o.SettlementDryRun)
        {
            throw new InvalidOperationException(
                $"SettlementKeyPath is required when SettlementDryRun is false: live settlement signs with the payer key of SettlementAccount '{o.SettlementAccount}', never with the ledger's receipt-signing key.");
        }
        else
        {
            var data = Directory.CreateDirectory(o.DataDirectory).FullName;
            source = Path.Combine(data, DryRunPayerKeyFileName);
            if (File.Exists(source))
            {
                key = ReadKeyFile(source, o.SettlementAccount, DryRunPayerKeyFileName);
            }
            else
            {
                key = SecretKeyFile.CreateNew(source);
                if (_logger.IsEnabled(LogLevel.Information))
                {
                    var created = key.PublicKey.ToString();
                    SettlementLog.PayerKeyCreated(_logger, source, created);
                }
            }
        }

        if (_logger.IsEnabled(LogLevel.Information))
        {
            var publicKey = key.PublicKey.ToString();
            SettlementLog.Payer(_logger, mode, o.SettlementAccount, publicKey, source);
        }

        return key;
    }

    // NEAR key text (ed25519:<base58>), or a NEAR CLI credential file whose account must be the paying account.
    private static NearKeyPair ReadKeyFile(string path, string account, string setting)
    {
        var field = $"{setting} '{path}'";
        string text;
        try
        {
            text = File.ReadAllText(path).Trim();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new InvalidNearKeyException(field, $"cannot be read: {ex.Message}");
        }

        try
        {
            if (!text.StartsWith('{'))
            {
                return NearKeyPair.Parse(text);
            }

            using var credentials = NearCredentials.FromFile(path);
            if (!string.Equals(credentials.AccountId, account, StringComparison.Ordinal))
            {
                throw new InvalidNearKeyException(field, $"the credential file is for '{credentials.AccountId}', not for SettlementAccount '{account}'");
            }

            return NearKeyPair.Parse(credentials.Key.ExportSecretKey());
        }
        catch (InvalidNearKeyException ex) when (ex.Field != field)
        {
            throw new InvalidNearKeyException(field, $"is not a NEAR ed25519 secret key (ed25519:<base58>) or NEAR CLI credential file: {ex.Message}");
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException)
        {
            throw new InvalidNearKeyException(field, $"is not a NEAR ed25519 secret key (ed25519:<base58>) or NEAR CLI credential file: {ex.Message}");
        }
    }
}
