using System.Diagnostics;
using Microsoft.Extensions.Logging;
using NearML.Core.Contracts;
using NearML.Core.Protocol;
using NearML.Training.Optim;
using NearML.Training.Sync;
using NearML.Training.Tensors;

namespace NearML.Hosting.Worker;

/// <summary>DDP and DeMo rounds: the engine's strategy runs the round's steps, every exchange relayed by the coordinator.</summary>
public sealed partial class WorkerService
{
    [LoggerMessage(EventId = 7340, EventName = "RelayRoundDone", Level = LogLevel.Information,
        Message = "Relay round {Round} ({Strategy}): {Steps} steps, {Exchanges} exchanges, relay bytes sent {Sent} / received {Received}, mean loss {Loss:0.####}")]
    private static partial void LogRelayRoundDone(ILogger logger, ulong round, string strategy, int steps, long exchanges, long sent, long received, float loss);

    [LoggerMessage(EventId = 7341, EventName = "RelayRoundLeft", Level = LogLevel.Warning, Message = "Relay round {Round} left: {Reason}")]
    private static partial void LogRelayRoundLeft(ILogger logger, ulong round, string reason);

    /// <summary>Gets a copy of the worker's current model parameters (null before the first assignment); for tests.</summary>
    internal float[]? CopyParameters() => _job?.Model.Parameters.Data.ToArray();

    private sealed partial class Session
    {
        /// <summary>
        /// Runs the round's <paramref name="steps"/> steps with <see cref="DdpStrategy"/> (AdamW on the mean gradient) or
        /// <see cref="DeMoStrategy"/> over a <see cref="RelayCollective"/>, then sends the fp32 change of the parameters as the round's
        /// <see cref="Update"/> (the coordinator's copy of the parameters and the receipts follow the DiLoCo path). Every cohort member
        /// runs the same number of steps (the exchanges are tagged by step), so the deadline does not cut the round short: a round that
        /// does not finish before it is left.
        /// </summary>
        private async Task<PendingReceipt?> RunRelayRoundAsync(
            WorkerJob job, JobAssignment assignment, HyperParameters hp, int steps, DateTimeOffset deadline, CancellationToken stopping)
        {
            var model = job.Model;
            var parameters = model.Parameters;
            var collective = new RelayCollective(
                owner._options.WorkerId, assignment.JobId, assignment.Round,
                (m, ct) => connection.SendAsync(m, ct),
                ReceiveAsync,
                m => _deferred = m);
            NearML.Training.Sync.SyncStrategy strategy = hp.SyncStrategy == NearML.Core.Contracts.SyncStrategy.Ddp
                ? new DdpStrategy(collective, parameters, new AdamW(parameters.Layout, new AdamWOptions { LearningRate = hp.InnerLearningRate, WeightDecay = hp.WeightDecay }))
                : new DeMoStrategy(collective, parameters, new DeMoOptions { LearningRate = hp.InnerLearningRate, WeightDecay = hp.WeightDecay });
            Status.SetState(WorkerState.Training);
            var shards = assignment.ShardIds.Select(static s => (int)s).ToArray();
            var seed = unchecked(hp.Seed * 0x9E3779B97F4A7C15UL + assignment.Round);
            var source = job.Dataset.CreateBatchSource(shards, (int)hp.BatchSize, seed);
            var epoch = 0;
            source.StartEpoch(epoch);
            var batch = source.CreateBatch();
            var start = Stopwatch.GetTimestamp();
            long samples = 0;
            double lossSum = 0;
            var lastLoss = float.NaN;
            var lastProgress = start;
            using var round = CancellationTokenSource.CreateLinkedTokenSource(stopping);
            if (deadline != DateTimeOffset.MaxValue)
            {
                var left = deadline - owner._time.GetUtcNow();
                round.CancelAfter(left > TimeSpan.Zero ? left : TimeSpan.Zero);
            }

            try
            {
                for (var step = 0; step < steps; step++)
                {
                    if (!source.TryFill(batch))
                    {
                        source.StartEpoch(++epoch);
                        if (!source.TryFill(batch))
                        {
                            throw new WorkerFatalException($"shards [{string.Join(", ", shards)}] give no training batch of {hp.BatchSize} samples");
                        }
                    }

                    // The strategy updates the host view of the parameters; the engine computes the gradients.
                    lastLoss = model.ComputeGradients(batch);
                    model.PullGradients();
                    samples += batch.Count;
                    lossSum += (double)lastLoss * batch.Count;
                    await strategy.StepAsync(model.Gradients, batch.Count, round.Token).ConfigureAwait(false);
                    model.PushParameters();
                    Status.SetProgress(step + 1, lastLoss);
                    if (Stopwatch.GetElapsedTime(lastProgress) >= ProgressInterval)
                    {
                        lastProgress = Stopwatch.GetTimestamp();
                        var elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
                        await connection.SendAsync(
                            new Progress { Round = assignment.Round, Step = (uint)(step + 1), TotalSteps = (uint)steps, Loss = lastLoss, SamplesPerSecond = elapsed > 0 ? samples / elapsed : 0 },
                            round.Token).ConfigureAwait(false);
                    }
                }
            }
            catch (NonFiniteValueException ex)
            {
                LogNonFinite(Logger, assignment.Round, ex.Message);
                return null;
            }
            catch (RelayAbortedException ex)
            {
                LogRelayRoundLeft(Logger, assignment.Round, ex.Message);
                return null;
            }
            catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
            {
                LogRelayRoundLeft(Logger, assignment.Round, "the round's deadline passed during a relay exchange");
                return null;
            }
            finally
            {
                SyncTraffic();
            }

            var elapsedTime = Stopwatch.GetElapsedTime(start);
            owner._metrics?.Steps(steps, elapsedTime > TimeSpan.Zero ? samples / elapsedTime.TotalSeconds : 0);
            var stats = collective.Statistics;
            var meanLoss = samples > 0 ? (float)(lossSum / samples) : float.NaN;
            LogRelayRoundDone(Logger, assignment.Round, strategy.Kind, steps, stats.SyncCount, stats.BytesSent, stats.BytesReceived, meanLoss);
            Status.SetState(WorkerState.Uploading);
            var result = new InnerResult(steps, samples, meanLoss, lastLoss, elapsedTime);
            var hash = await SendUpdateAsync(job, assignment, hp, result, stopping, UpdateEncoding.Fp32).ConfigureAwait(false);
            return new PendingReceipt(assignment.JobId, assignment.Round, hash);
        }
    }
}
