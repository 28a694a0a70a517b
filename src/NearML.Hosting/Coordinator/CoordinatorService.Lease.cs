using System.Diagnostics;
using Microsoft.Extensions.Logging;
using NearML.Hosting.State;
using NearML.Ledger;

namespace NearML.Hosting.Coordinator;

/// <summary>The lease on the state (docs/failover.md): taken before the state is opened, held for the process's life.</summary>
public sealed partial class CoordinatorService
{
    private volatile bool _leaseLost;
    private string _leaseDescription = string.Empty;

    /// <summary>
    /// Takes the state backend's lease, waiting as standby (not listening) while another coordinator holds it. The first
    /// attempt's database error fails the start, as opening the state would; once standby, errors are logged and retried.
    /// </summary>
    private async Task<ICoordinatorLease> AcquireLeaseAsync(string data, CancellationToken ct)
    {
        var o = _options;
        var standby = false;
        var waited = Stopwatch.StartNew();
        string? lastProblem = null;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            ICoordinatorLease? lease = null;
            try
            {
                lease = await Task.Run(() => _stateBackend.TryAcquireLease(data, o.JobId), ct).ConfigureAwait(false);
                lastProblem = null;
            }
            catch (LedgerStorageException ex) when (standby)
            {
                if (ex.Message != lastProblem)
                {
                    lastProblem = ex.Message;
                    CoordinatorLog.LeaseUnavailable(_logger, ex.Message);
                }
            }

            if (lease is not null)
            {
                _status.SetLeaseAcquired();
                if (standby)
                {
                    CoordinatorLog.LeaseTaken(_logger, o.JobId, lease.Description, waited.Elapsed.TotalSeconds);
                }
                else if (_stateBackend is not SqliteStateBackend)
                {
                    CoordinatorLog.LeaseHeld(_logger, o.JobId, lease.Description);
                }

                return lease;
            }

            if (!standby)
            {
                standby = true;
                _status.SetStandby(o.JobId);
                CoordinatorLog.Standby(_logger, o.JobId, _stateBackend.Name, o.LeaseRetryInterval.TotalSeconds);
            }

            await Task.Delay(o.LeaseRetryInterval, _time, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Gets a value indicating whether this coordinator lost its lease (it must then stop serving at once).</summary>
    private bool LeaseLost => _leaseLost;
}

/// <summary>Log messages of the lease (event ids 7080–7089).</summary>
internal static partial class CoordinatorLog
{
    [LoggerMessage(EventId = 7080, EventName = "Standby", Level = LogLevel.Information, Message = "Job '{JobId}': another coordinator holds the lease on the {Backend} state; standing by (not listening) and asking again every {Seconds:0.##} s")]
    public static partial void Standby(ILogger logger, string jobId, string backend, double seconds);

    [LoggerMessage(EventId = 7081, EventName = "LeaseTaken", Level = LogLevel.Warning, Message = "Job '{JobId}': took the lease ({Lease}) after {Seconds:0.0} s as standby; loading the state and taking over")]
    public static partial void LeaseTaken(ILogger logger, string jobId, string lease, double seconds);

    [LoggerMessage(EventId = 7082, EventName = "LeaseHeld", Level = LogLevel.Information, Message = "Job '{JobId}': holding the lease ({Lease})")]
    public static partial void LeaseHeld(ILogger logger, string jobId, string lease);

    [LoggerMessage(EventId = 7083, EventName = "LeaseUnavailable", Level = LogLevel.Warning, Message = "Standby: the lease cannot be asked for ({Problem}); trying again")]
    public static partial void LeaseUnavailable(ILogger logger, string problem);

    [LoggerMessage(EventId = 7084, EventName = "LeaseLost", Level = LogLevel.Critical, Message = "Job '{JobId}': lost the lease ({Lease}): another coordinator may take over now, so this one stops at once, without a final checkpoint")]
    public static partial void LeaseLost(ILogger logger, string jobId, string lease);
}
