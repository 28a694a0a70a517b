using System.Diagnostics;
using System.Reflection;
using NearML.Core.Protocol;

namespace NearML.Hosting;

/// <summary>
/// The one <c>NearML</c> <see cref="ActivitySource"/> of the hosted services, and the names of its spans. The coordinator
/// records <c>nearml.join</c> (one per handshake), <c>nearml.round</c> and, as its children, <c>nearml.upload</c> (one per
/// update received), <c>nearml.aggregate</c>, <c>nearml.checkpoint</c> (written in the background) and
/// <c>nearml.settle</c>; the worker records <c>nearml.join</c>, <c>nearml.train</c> and <c>nearml.upload</c>, the last two as
/// children of the coordinator's round span when the assignment carries its trace context (<c>JobAssignment.trace_parent</c>),
/// so that one trace shows a round across the coordinator and every worker. A failed span has status
/// <see cref="ActivityStatusCode.Error"/> and an <c>error.type</c> tag (OpenTelemetry's general convention: a refusal
/// reason or protocol error code, else the exception's full type name). Export them with OpenTelemetry
/// (<c>.WithTracing(t =&gt; t.AddSource(NearMLTracing.SourceName))</c>, docs/observability.md); the library itself depends on
/// no OpenTelemetry package.
/// </summary>
public static class NearMLTracing
{
    /// <summary>The activity source's (and the meter's) name.</summary>
    public const string SourceName = "NearML";

    /// <summary>A worker's handshake: TLS session to admission or refusal.</summary>
    public const string Join = "nearml.join";

    /// <summary>One coordinator round: cohort, assignment, updates, outer step, evaluation, receipts, settlement.</summary>
    public const string Round = "nearml.round";

    /// <summary>One update: sent by a worker, or received by the coordinator (first part to last).</summary>
    public const string Upload = "nearml.upload";

    /// <summary>A worker's inner steps of one round (DiLoCo), under the coordinator's round span when its trace context arrived.</summary>
    public const string Train = "nearml.train";

    /// <summary>Screening the round's updates, the reducer and the outer step.</summary>
    public const string Aggregate = "nearml.aggregate";

    /// <summary>Writing one checkpoint (in the background, after its round span may have ended).</summary>
    public const string Checkpoint = "nearml.checkpoint";

    /// <summary>Settling one ledger epoch (dry run or on chain).</summary>
    public const string Settle = "nearml.settle";

    /// <summary>OpenTelemetry's attribute for the class of a failure.</summary>
    public const string ErrorTypeTag = "error.type";

    /// <summary>Gets the version of the source and of the <c>NearML</c> meter: the NearML.Hosting package version.</summary>
    public static string Version { get; } = ReadVersion();

    /// <summary>Gets the activity source.</summary>
    public static ActivitySource Source { get; } = new(SourceName, Version);

    /// <summary>Starts an internal span under the current activity (or <paramref name="parent"/> when given).</summary>
    internal static Activity? Start(string name, ActivityContext parent = default, DateTimeOffset startTime = default) =>
        Source.StartActivity(name, ActivityKind.Internal, parent, tags: null, links: null, startTime);

    /// <summary>Starts a <c>nearml.round</c> span.</summary>
    internal static Activity? StartRound(string jobId, long round)
    {
        var a = Start(Round);
        a?.SetTag("nearml.job.id", jobId);
        a?.SetTag("nearml.round", round);
        return a;
    }

    /// <summary>Starts a <c>nearml.settle</c> span.</summary>
    internal static Activity? StartSettle(long epoch, bool dryRun)
    {
        var a = Start(Settle);
        a?.SetTag("nearml.epoch", epoch);
        a?.SetTag("nearml.settlement.dry_run", dryRun);
        return a;
    }

    /// <summary>Gets the W3C trace context to send with a round's assignments: the current span's when it is a <c>nearml.round</c>.</summary>
    internal static string TraceParentOfRound() =>
        Activity.Current is { OperationName: Round, IdFormat: ActivityIdFormat.W3C, Id: { } id } ? id : string.Empty;

    /// <summary>Parses the coordinator's round context from an assignment; <see langword="default"/> (a root span) when absent or malformed.</summary>
    internal static ActivityContext RemoteRound(string? traceParent) =>
        !string.IsNullOrEmpty(traceParent) && ActivityContext.TryParse(traceParent, null, isRemote: true, out var context) ? context : default;

    /// <summary>Starts a <c>nearml.train</c> span on the worker, under the coordinator's round when <paramref name="round"/> is set.</summary>
    internal static Activity? StartTrain(string workerId, ulong roundNumber, ActivityContext round)
    {
        var a = Start(Train, round);
        a?.SetTag("nearml.worker.id", workerId);
        a?.SetTag("nearml.round", (long)roundNumber);
        return a;
    }

    /// <summary>Starts a <c>nearml.upload</c> span on the worker, under the coordinator's round when <paramref name="round"/> is set.</summary>
    internal static Activity? StartUpload(string workerId, ulong roundNumber, string encoding, ActivityContext round = default)
    {
        var a = Start(Upload, round);
        a?.SetTag("nearml.worker.id", workerId);
        a?.SetTag("nearml.round", (long)roundNumber);
        a?.SetTag("nearml.update.encoding", encoding);
        return a;
    }

    /// <summary>Records the outcome of a round on its span.</summary>
    internal static void RoundOutcome(Activity? round, int cohort, int accepted, int rejected, double meanLoss)
    {
        if (round is null)
        {
            return;
        }

        round.SetTag("nearml.cohort", cohort);
        round.SetTag("nearml.updates.accepted", accepted);
        round.SetTag("nearml.updates.rejected", rejected);
        if (double.IsFinite(meanLoss))
        {
            round.SetTag("nearml.loss", meanLoss);
        }
    }

    /// <summary>
    /// Records, under the current (round) span, the receipt of one worker's update from its first part to its last, or
    /// nothing when none arrived; a refused update gets status Error and its reason as <c>error.type</c>.
    /// </summary>
    internal static void RecordUpload(string workerId, long round, long? payloadBytes, string? refusal, DateTimeOffset started, DateTimeOffset ended)
    {
        if (started == default || !Source.HasListeners())
        {
            return;
        }

        using var a = Start(Upload, default, started);
        if (a is null)
        {
            return;
        }

        a.SetTag("nearml.worker.id", workerId);
        a.SetTag("nearml.round", round);
        if (payloadBytes is { } bytes)
        {
            a.SetTag("nearml.update.bytes", bytes);
        }

        if (refusal is not null)
        {
            Fail(a, refusal, "the update was refused");
        }

        a.SetEndTime(ended > started ? ended.UtcDateTime : started.UtcDateTime);
    }

    /// <summary>Runs a handshake inside a <c>nearml.join</c> span: admitted, or failed with the refusal reason or error code.</summary>
    /// <typeparam name="T">The handshake's result.</typeparam>
    internal static async Task<T> TraceJoinAsync<T>(string side, string? workerIdOrRemote, Func<Task<T>> handshake)
    {
        using var a = Start(Join);
        a?.SetTag("nearml.side", side);
        if (workerIdOrRemote is not null)
        {
            a?.SetTag(side == "worker" ? "nearml.worker.id" : "network.peer.address", workerIdOrRemote);
        }

        try
        {
            var result = await handshake().ConfigureAwait(false);
            if (result is AdmittedWorker admitted)
            {
                a?.SetTag("nearml.worker.id", admitted.WorkerId);
                a?.SetTag("nearml.attestation.format", admitted.EvidenceFormat);
            }

            return result;
        }
        catch (Exception ex)
        {
            Fail(a, ex);
            throw;
        }
    }

    /// <summary>Awaits <paramref name="work"/>; when it throws, marks <paramref name="span"/> failed (cancellation is not a failure).</summary>
    /// <typeparam name="T">The result.</typeparam>
    internal static async Task<T> Traced<T>(Activity? span, Task<T> work)
    {
        try
        {
            return await work.ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Fail(span, ex);
            throw;
        }
    }

    /// <summary>Marks a span failed by an exception: status Error, <c>error.type</c> as OpenTelemetry says (a refusal reason
    /// or protocol error code where there is one, else the exception's full type name), and an <c>exception</c> event.</summary>
    /// <param name="activity">The span (ignored when null).</param>
    /// <param name="exception">The failure.</param>
    internal static void Fail(Activity? activity, Exception exception)
    {
        if (activity is null)
        {
            return;
        }

        var type = exception switch
        {
            AdmissionRefusedException r => r.Reason.ToString(),
            ProtocolException p => p.Code.ToString(),
            _ => exception.GetType().FullName ?? exception.GetType().Name,
        };
        activity.AddException(exception);
        Fail(activity, type, exception.Message);
    }

    /// <summary>Marks a span failed: status Error with <paramref name="description"/>, tag <c>error.type</c>.</summary>
    internal static void Fail(Activity? activity, string errorType, string? description)
    {
        activity?.SetTag(ErrorTypeTag, errorType);
        activity?.SetStatus(ActivityStatusCode.Error, description);
    }

    private static string ReadVersion()
    {
        var assembly = typeof(NearMLTracing).Assembly;
        var informational = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
        if (!string.IsNullOrEmpty(informational))
        {
            var plus = informational.IndexOf('+', StringComparison.Ordinal);
            return plus < 0 ? informational : informational[..plus];
        }

        return assembly.GetName().Version?.ToString(3) ?? "0.0.0";
    }
}
