using Microsoft.Extensions.Logging;
using NearML.Core.Contracts;
using NearML.Hosting.Jobs;

namespace NearML.Hosting.Worker;

/// <content>The worker's answer to the job a coordinator announces at join (event ids 7360–7369).</content>
public sealed partial class WorkerService
{
    private (string Key, string Config, string Fingerprint, string? Error)? _lastAnswer;

    /// <summary>Builds the announced job's model (once per key and configuration) and returns its layout fingerprint;
    /// logs why when this worker cannot take part (the coordinator refuses it with the same reason).</summary>
    private string AnswerJob(JobDescriptor job)
    {
        var last = _lastAnswer;
        string fingerprint;
        string? error;
        if (last is { } a && a.Key == job.ModelKey && a.Config == job.ModelConfigJson)
        {
            fingerprint = a.Fingerprint;
            error = a.Error;
        }
        else
        {
            fingerprint = JobModel.Fingerprint(_registry, job, out error);
            _lastAnswer = (job.ModelKey, job.ModelConfigJson, fingerprint, error);
        }

        if (error is null && !string.Equals(fingerprint, job.LayoutFingerprint, StringComparison.OrdinalIgnoreCase))
        {
            error = $"this worker builds model '{job.ModelKey}' with layout fingerprint {fingerprint}, but job '{job.JobId}' announces {job.LayoutFingerprint}";
        }

        if (error is not null)
        {
            LogJobUnsupported(_logger, job.JobId, error);
        }

        return fingerprint;
    }

    [LoggerMessage(EventId = 7360, EventName = "JobUnsupported", Level = LogLevel.Error,
        Message = "Job '{JobId}' announced by the coordinator cannot run here: {Reason}; the coordinator will refuse this worker")]
    private static partial void LogJobUnsupported(ILogger logger, string jobId, string reason);
}
