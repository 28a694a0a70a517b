using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using NearML.Hosting.Coordinator;
using NearML.Hosting.Worker;

namespace NearML.Hosting;

/// <summary>Settings of the coordinator's health check (<c>AddNearMLCoordinator(…).AddHealthChecks()</c>).</summary>
public sealed class NearMLCoordinatorHealthOptions
{
    /// <summary>
    /// Gets or sets how long rounds may go without one completing while workers are connected before the check reports
    /// <see cref="HealthStatus.Degraded"/>; <see langword="null"/> means twice the coordinator's <c>RoundTimeout</c>.
    /// </summary>
    public TimeSpan? RoundStallTimeout { get; set; }
}

/// <summary>Settings of the worker's health check (<c>AddNearMLWorker(…).AddHealthChecks()</c>).</summary>
public sealed class NearMLWorkerHealthOptions
{
    /// <summary>
    /// Gets or sets a value indicating whether a worker admitted without hardware attestation evidence (provider
    /// <c>none</c> or <c>simulated</c>) is <see cref="HealthStatus.Unhealthy"/>; otherwise its attestation is only reported.
    /// </summary>
    public bool RequireHardwareAttestation { get; set; }
}

/// <summary>
/// Registers NearML's health checks with Microsoft.Extensions.Diagnostics.HealthChecks. Opt in, after the service:
/// <c>services.AddNearMLCoordinator(…).AddHealthChecks()</c> or <c>services.AddNearMLWorker(…).AddHealthChecks()</c>;
/// ASP.NET Core hosts then map them with <c>app.MapHealthChecks("/healthz")</c>, others read
/// <see cref="HealthCheckService"/>. Both checks are tagged <see cref="Tag"/>.
/// </summary>
public static class NearMLHealthCheckExtensions
{
    /// <summary>The coordinator check's name.</summary>
    public const string CoordinatorCheckName = "nearml-coordinator";

    /// <summary>The worker check's name.</summary>
    public const string WorkerCheckName = "nearml-worker";

    /// <summary>The tag of both checks.</summary>
    public const string Tag = "nearml";

    /// <summary>Adds the coordinator health check (<see cref="CoordinatorHealthCheck"/>): listening, rounds progressing, state folder writable.</summary>
    /// <param name="builder">The coordinator builder.</param>
    /// <param name="configure">Sets the check's options.</param>
    /// <returns>The builder.</returns>
    public static NearMLCoordinatorBuilder AddHealthChecks(this NearMLCoordinatorBuilder builder, Action<NearMLCoordinatorHealthOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = builder.Services.AddOptions<NearMLCoordinatorHealthOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        builder.Services.AddHealthChecks().AddCheck<CoordinatorHealthCheck>(CoordinatorCheckName, failureStatus: HealthStatus.Unhealthy, tags: [Tag]);
        return builder;
    }

    /// <summary>Adds the worker health check (<see cref="WorkerHealthCheck"/>): connected, attested, training.</summary>
    /// <param name="builder">The worker builder.</param>
    /// <param name="configure">Sets the check's options.</param>
    /// <returns>The builder.</returns>
    public static NearMLWorkerBuilder AddHealthChecks(this NearMLWorkerBuilder builder, Action<NearMLWorkerHealthOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = builder.Services.AddOptions<NearMLWorkerHealthOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        builder.Services.AddHealthChecks().AddCheck<WorkerHealthCheck>(WorkerCheckName, failureStatus: HealthStatus.Unhealthy, tags: [Tag]);
        return builder;
    }
}

/// <summary>
/// The coordinator's health: <see cref="HealthStatus.Healthy"/> with the description "standby: …" while it waits as
/// standby for the lease on a shared state (<see cref="CoordinatorRole.Standby"/>, docs/failover.md: ready to take over,
/// not serving), <see cref="HealthStatus.Unhealthy"/> as a standby whose shared state cannot be reached (it could not take
/// over); <see cref="HealthStatus.Unhealthy"/> when it is not listening (starting, or stopped by a
/// fault), its state folder cannot be written or its state backend cannot serve
/// (<see cref="State.ICoordinatorStateBackend.CheckHealthAsync"/>: a PostgreSQL database that cannot be reached); <see cref="HealthStatus.Degraded"/> when workers are connected but no
/// round has completed within <see cref="NearMLCoordinatorHealthOptions.RoundStallTimeout"/> (counted from the later of the
/// last completed round, the start of listening and the moment workers connected); otherwise
/// <see cref="HealthStatus.Healthy"/>, also after the job's last round.
/// </summary>
/// <param name="status">The coordinator's live status.</param>
/// <param name="coordinator">The coordinator's options.</param>
/// <param name="health">The check's options.</param>
/// <param name="timeProvider">The clock.</param>
/// <param name="stateBackend">Where the coordinator keeps its state (SQLite in the state folder by default).</param>
public sealed class CoordinatorHealthCheck(
    CoordinatorStatus status,
    IOptions<NearMLCoordinatorOptions> coordinator,
    IOptions<NearMLCoordinatorHealthOptions> health,
    TimeProvider timeProvider,
    State.ICoordinatorStateBackend stateBackend) : IHealthCheck
{
    /// <inheritdoc/>
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        var o = coordinator.Value;
        var (connected, connectedSince) = status.ConnectedWorkersSince();
        var data = new Dictionary<string, object>(StringComparer.Ordinal)
        {
            ["job"] = o.JobId,
            ["round"] = status.Round,
            ["rounds"] = o.Rounds,
            ["connected_workers"] = connected,
        };
        if (status.LastError is { } error)
        {
            return Result(context, HealthStatus.Unhealthy, $"the coordinator stopped: {error}", data);
        }

        data["role"] = status.Role.ToString().ToLowerInvariant();
        var directory = Path.GetFullPath(o.DataDirectory);
        data["state_backend"] = stateBackend.Name;
        var unreachable = await stateBackend.CheckHealthAsync(directory, cancellationToken).ConfigureAwait(false);
        if (status.Role == CoordinatorRole.Standby)
        {
            // A standby is healthy while it could take over (restarting it would gain nothing), it just does not serve; one
            // whose shared state cannot be reached could not take over, and says why.
            return unreachable is not null
                ? Result(context, HealthStatus.Unhealthy, $"standby that could not take over: {unreachable}", data)
                : Result(context, HealthStatus.Healthy, "standby: another coordinator holds the lease on the shared state; this one takes over when it is released", data);
        }

        if (status.ListeningSince is not { } listeningSince)
        {
            return Result(context, HealthStatus.Unhealthy, "the coordinator is not listening yet (loading the job or opening its state folder)", data);
        }

        data["port"] = status.Port;
        if (ProbeWritable(directory) is { } problem)
        {
            return Result(context, HealthStatus.Unhealthy, problem, data);
        }

        if (unreachable is not null)
        {
            return Result(context, HealthStatus.Unhealthy, unreachable, data);
        }

        if (status.Completed)
        {
            return Result(context, HealthStatus.Healthy, $"the job is complete ({o.Rounds} rounds)", data);
        }

        var now = timeProvider.GetUtcNow();
        var lastRound = status.LastRoundCompletedAt;
        if (lastRound is { } at)
        {
            data["last_round_age_s"] = Math.Round((now - at).TotalSeconds, 1);
        }

        if (connected > 0 && connectedSince is { } since)
        {
            var limit = health.Value.RoundStallTimeout ?? (o.RoundTimeout * 2);
            var from = Max(Max(lastRound ?? listeningSince, listeningSince), since);
            if (now - from > limit)
            {
                var reference = lastRound is null ? "since it started listening" : "since the last one";
                var waiting = connected < o.MinWorkers ? $" (MinWorkers is {o.MinWorkers})" : string.Empty;
                return Result(
                    context,
                    HealthStatus.Degraded,
                    FormattableString.Invariant($"no round completed for {(now - from).TotalSeconds:0} s {reference} while {connected} worker(s) are connected{waiting}; limit {limit.TotalSeconds:0} s"),
                    data);
            }
        }

        return Result(context, HealthStatus.Healthy, FormattableString.Invariant($"listening on port {status.Port}, round {status.Round} of {o.Rounds}, {connected} worker(s) connected"), data);
    }

    /// <summary>Writes, flushes and deletes a small file in <paramref name="directory"/>; returns why that failed, or null.</summary>
    internal static string? ProbeWritable(string directory)
    {
        var probe = Path.Combine(directory, $".health-{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose))
            {
                fs.WriteByte(1);
                fs.Flush(flushToDisk: true);
            }

            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return $"the state folder {directory} is not writable: {ex.Message}";
        }
    }

    private static DateTimeOffset Max(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;

    private static HealthCheckResult Result(HealthCheckContext context, HealthStatus status, string description, Dictionary<string, object> data) =>
        new(status == HealthStatus.Unhealthy ? context.Registration.FailureStatus : status, description, data: data);
}

/// <summary>
/// The worker's health: <see cref="HealthStatus.Healthy"/> while connected (waiting, downloading, training, uploading) or
/// after the coordinator completed the job; <see cref="HealthStatus.Degraded"/> while (re)connecting;
/// <see cref="HealthStatus.Unhealthy"/> before it started, after it stopped or failed, and — with
/// <see cref="NearMLWorkerHealthOptions.RequireHardwareAttestation"/> — when it joined without hardware evidence.
/// </summary>
/// <param name="status">The worker's live status.</param>
/// <param name="health">The check's options.</param>
public sealed class WorkerHealthCheck(WorkerStatus status, IOptions<NearMLWorkerHealthOptions> health) : IHealthCheck
{
    /// <inheritdoc/>
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        var state = status.State;
        var attestation = status.Attestation;
        var data = new Dictionary<string, object>(StringComparer.Ordinal)
        {
            ["state"] = state.ToString(),
            ["round"] = status.Round,
            ["step"] = status.Step,
            ["total_steps"] = status.TotalSteps,
            ["receipts"] = status.Receipts,
            ["reconnects"] = status.Reconnects,
            ["attestation"] = attestation ?? "not admitted yet",
        };
        var error = status.LastError;
        var result = state switch
        {
            WorkerState.NotStarted => (HealthStatus.Unhealthy, "the worker has not started"),
            WorkerState.Failed => (HealthStatus.Unhealthy, $"the worker failed: {error}"),
            WorkerState.Stopped => (HealthStatus.Unhealthy, "the worker stopped"),
            WorkerState.Connecting or WorkerState.Reconnecting => (HealthStatus.Degraded, $"not connected to the coordinator ({state}, {status.Reconnects} reconnect(s)){(error is null ? string.Empty : ": " + error)}"),
            WorkerState.Completed => (HealthStatus.Healthy, "the coordinator completed the job"),
            _ when health.Value.RequireHardwareAttestation && attestation is NearMLWorkerOptions.NoProvider or NearMLWorkerOptions.SimulatedProvider =>
                (HealthStatus.Unhealthy, $"admitted with attestation '{attestation}', but hardware attestation is required"),
            WorkerState.Training => (HealthStatus.Healthy, FormattableString.Invariant($"training round {status.Round}, step {status.Step} of {status.TotalSteps}")),
            _ => (HealthStatus.Healthy, FormattableString.Invariant($"connected ({state}), attestation {attestation}")),
        };
        var (s, description) = result;
        return Task.FromResult(new HealthCheckResult(s == HealthStatus.Unhealthy ? context.Registration.FailureStatus : s, description, data: data));
    }
}
