using System.Diagnostics;
using Microsoft.Extensions.Options;
using NearML.Hosting.Coordinator;
using NearML.Hosting.State;
using NearML.Ledger;

namespace NearML.Dashboard;

/// <summary>
/// The "verify ledger" action: walks the coordinator's ledger file with <see cref="ContributionLedger.Verify"/> (hash chain,
/// against the head the running coordinator reports, so a truncated or rewritten tail is caught) and
/// <see cref="ContributionLedger.VerifySignatures"/> (every receipt's signatures). One check at a time; it only reads.
/// The ledger is the coordinator's <c>ledger.db</c> (or <see cref="NearMLDashboardOptions.LedgerPath"/>), or, when another
/// <see cref="ICoordinatorStateBackend"/> is registered (PostgreSQL), that backend's ledger store.
/// </summary>
internal sealed class LedgerVerifier(
    CoordinatorStatus status, IOptions<NearMLCoordinatorOptions> coordinator, IOptions<NearMLDashboardOptions> options, ICoordinatorStateBackend? backend = null) : IDisposable
{
    private readonly SemaphoreSlim _one = new(1, 1);

    private string DataDirectory => Path.GetFullPath(coordinator.Value.DataDirectory);

    /// <summary>Gets whether the ledger is the SQLite file (read with <see cref="SqliteLedgerStore.OpenReadOnly"/>) rather than another backend's store.</summary>
    private bool IsFile => options.Value.LedgerPath is not null || backend is null or SqliteStateBackend;

    public string LedgerPath => options.Value.LedgerPath is { } p
        ? Path.GetFullPath(p)
        : Path.Combine(DataDirectory, CoordinatorStateFolder.LedgerFileName);

    public async Task<LedgerVerdict> VerifyAsync(CancellationToken cancellationToken)
    {
        await _one.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await Task.Run(() => Verify(cancellationToken), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _one.Release();
        }
    }

    public void Dispose() => _one.Dispose();

    private LedgerVerdict Verify(CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

        // The head the coordinator reported last: the file must hold at least this chain (it may have grown since).
        // The count only grows and the root only changes with it: equal counts around the root's read make a consistent pair.
        long trustedCount;
        string? trustedRoot;
        do
        {
            trustedCount = status.LedgerEntries;
            trustedRoot = status.LedgerRoot;
        }
        while (trustedCount != status.LedgerEntries);

        var path = LedgerPath;
        try
        {
            if (IsFile ? !File.Exists(path) : backend!.Probe(DataDirectory, StateStoreKind.Ledger) != StoreStatus.Present)
            {
                return new LedgerVerdict(false, "Missing", -1, 0, trustedCount == 0 ? "no ledger yet: the first receipts create it" : "the ledger is missing", false, string.Empty, trustedCount, trustedRoot, clock.ElapsedMilliseconds, now);
            }

            // Another backend (PostgreSQL) opens the existing store as the coordinator does; its ledger tables are append-only
            // and verification only reads them.
            using var ledger = new ContributionLedger(IsFile ? SqliteLedgerStore.OpenReadOnly(path) : backend!.OpenLedger(DataDirectory));
            var trusted = trustedRoot is { Length: 64 } ? new LedgerHead(trustedCount, Convert.FromHexString(trustedRoot), 0) : null;
            var chain = ledger.Verify(trusted, cancellationToken);
            var signatures = chain.IsValid ? ledger.VerifySignatures(maxDegreeOfParallelism: 1, cancellationToken: cancellationToken) : null;
            return new LedgerVerdict(
                chain.IsValid && signatures?.IsValid == true,
                chain.IsValid ? signatures!.Problem.ToString() : chain.Problem.ToString(),
                chain.IsValid ? signatures!.FirstBadSequence : chain.FirstBadSequence,
                chain.EntriesChecked,
                chain.Message,
                signatures?.IsValid == true,
                signatures?.Message ?? "not checked (the chain does not verify)",
                trustedCount,
                trustedRoot,
                clock.ElapsedMilliseconds,
                now);
        }
        catch (Exception ex) when (ex is NearML.Core.NearMLException or IOException or UnauthorizedAccessException)
        {
            return new LedgerVerdict(false, "Unreadable", -1, 0, "the ledger could not be read: " + ex.GetType().Name, false, string.Empty, trustedCount, trustedRoot, clock.ElapsedMilliseconds, now);
        }
    }
}
