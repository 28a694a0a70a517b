using System.Globalization;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using NearML.Enclave.Internal;

namespace NearML.Enclave;

/// <summary>
/// Gets TDX quotes or SEV-SNP reports through the Linux configfs-tsm interface (<c>/sys/kernel/config/tsm/report</c>, kernel 6.7+):
/// creates a private entry directory, writes <c>inblob</c>, reads <c>outblob</c>, <c>auxblob</c> and <c>provider</c>, and checks
/// <c>generation</c> before and after: if another writer touched the entry in between (generation advanced by more than our
/// one write), the result may belong to someone else's report data, so the request is retried, then failed as transient.
/// </summary>
public sealed partial class ConfigFsTsmAttestationProvider : IAttestationProvider
{
    /// <summary>The default configfs-tsm report directory.</summary>
    public const string DefaultRoot = "/sys/kernel/config/tsm/report";

    /// <summary>Where Linux exposes the TDX guest's event log (the ACPI CCEL log area).</summary>
    public const string DefaultEventLogPath = "/sys/firmware/acpi/tables/data/CCEL";

    private const int MaxAttempts = 3;
    private readonly string _root;
    private readonly ITsmFileSystem _fs;
    private readonly ILogger _logger;

    /// <summary>Initializes a provider.</summary>
    /// <param name="root">The configfs-tsm report directory.</param>
    /// <param name="logger">Logger; <see langword="null"/> for none.</param>
    public ConfigFsTsmAttestationProvider(string root = DefaultRoot, ILogger<ConfigFsTsmAttestationProvider>? logger = null)
        : this(root, new RealTsmFileSystem(), logger)
    {
    }

    internal ConfigFsTsmAttestationProvider(string root, ITsmFileSystem fs, ILogger? logger)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        _root = root;
        _fs = fs;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <inheritdoc />
    public string Name => "configfs-tsm";

    /// <summary>
    /// Gets or sets the TDX event log file attached to TDX evidence (<see cref="AttestationEvidence.EventLog"/>, trimmed to its
    /// events), so a verifier can replay it into the quote's RTMRs; <see langword="null"/> attaches none. A missing,
    /// unreadable or malformed log is logged and not attached (the evidence is still produced).
    /// </summary>
    /// <value>The default value is <see cref="DefaultEventLogPath"/>.</value>
    public string? EventLogPath { get; set; } = DefaultEventLogPath;

    /// <summary>Gets a value indicating whether the configfs-tsm report directory exists on this machine.</summary>
    public bool IsAvailable => _fs.DirectoryExists(_root);

    /// <inheritdoc />
    public async Task<AttestationEvidence> GetEvidenceAsync(ReadOnlyMemory<byte> reportData, CancellationToken cancellationToken = default)
    {
        if (reportData.Length != AttestationBinding.ReportDataLength)
        {
            throw new ArgumentException($"report data must be {AttestationBinding.ReportDataLength} bytes, got {reportData.Length}", nameof(reportData));
        }

        if (!_fs.DirectoryExists(_root))
        {
            throw new AttestationException($"configfs-tsm is not available at '{_root}' (needs Linux 6.7+ with CONFIG_TSM_REPORTS, configfs mounted, inside a TDX or SEV-SNP guest)");
        }

        string entry = Path.Combine(_root, "nearml-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(8)).ToLowerInvariant());
        try
        {
            _fs.CreateDirectory(entry);
        }
        catch (IOException e)
        {
            throw new AttestationException($"cannot create configfs-tsm entry '{entry}': {e.Message}", true, e);
        }

        try
        {
            for (int attempt = 1; attempt <= MaxAttempts; attempt++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                long before = ReadGeneration(entry);
                await _fs.WriteAllBytesAsync(Path.Combine(entry, "inblob"), reportData, cancellationToken).ConfigureAwait(false);
                byte[] outblob = await _fs.ReadAllBytesAsync(Path.Combine(entry, "outblob"), cancellationToken).ConfigureAwait(false);
                string provider = (await _fs.ReadAllTextAsync(Path.Combine(entry, "provider"), cancellationToken).ConfigureAwait(false)).Trim();
                string auxPath = Path.Combine(entry, "auxblob");
                byte[] aux = _fs.FileExists(auxPath) ? await _fs.ReadAllBytesAsync(auxPath, cancellationToken).ConfigureAwait(false) : [];
                long after = ReadGeneration(entry);
                if (after == before + 1)
                {
                    AttestationVendor vendor = provider switch
                    {
                        "tdx_guest" => AttestationVendor.IntelTdx,
                        "sev_guest" => AttestationVendor.AmdSevSnp,
                        _ => throw new AttestationException($"configfs-tsm provider '{provider}' is not supported (expected tdx_guest or sev_guest)"),
                    };
                    if (outblob.Length == 0)
                    {
                        throw new AttestationException($"configfs-tsm entry '{entry}' returned an empty outblob", true);
                    }

                    ReadOnlyMemory<byte> eventLog = vendor == AttestationVendor.IntelTdx ? await ReadEventLogAsync(cancellationToken).ConfigureAwait(false) : default;
                    return new AttestationEvidence(vendor, outblob, aux, provider) { EventLog = eventLog };
                }

                LogGenerationRace(_logger, entry, before, after, attempt);
            }

            throw new AttestationException($"configfs-tsm entry '{entry}' kept being written by another process (generation raced {MaxAttempts} times)", true);
        }
        finally
        {
            try
            {
                _fs.DeleteDirectory(entry);
            }
            catch (IOException e)
            {
                LogCleanupFailed(_logger, entry, e.Message);
            }
        }
    }

    private async Task<ReadOnlyMemory<byte>> ReadEventLogAsync(CancellationToken cancellationToken)
    {
        if (EventLogPath is not { Length: > 0 } path || !_fs.FileExists(path))
        {
            return default;
        }

        try
        {
            byte[] log = await _fs.ReadAllBytesAsync(path, cancellationToken).ConfigureAwait(false);
            return log.AsMemory(0, TdxEventLog.Parse(log).Length);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or AttestationFormatException)
        {
            LogEventLogUnavailable(_logger, path, e.Message);
            return default;
        }
    }

    private long ReadGeneration(string entry)
    {
        string text = _fs.ReadAllText(Path.Combine(entry, "generation")).Trim();
        return long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long g)
            ? g
            : throw new AttestationException($"configfs-tsm '{entry}/generation' holds \"{text}\", not a number");
    }

    [LoggerMessage(EventId = 5101, EventName = "TsmGenerationRace", Level = LogLevel.Warning,
        Message = "configfs-tsm entry {Entry} was written concurrently (generation {Before} -> {After}); retrying, attempt {Attempt}")]
    private static partial void LogGenerationRace(ILogger logger, string entry, long before, long after, int attempt);

    [LoggerMessage(EventId = 5107, EventName = "TsmEventLogUnavailable", Level = LogLevel.Warning, Message = "TDX event log {Path} not attached to the evidence: {Reason}")]
    private static partial void LogEventLogUnavailable(ILogger logger, string path, string reason);

    [LoggerMessage(EventId = 5102, EventName = "TsmCleanupFailed", Level = LogLevel.Warning, Message = "could not remove configfs-tsm entry {Entry}: {Reason}")]
    private static partial void LogCleanupFailed(ILogger logger, string entry, string reason);
}
