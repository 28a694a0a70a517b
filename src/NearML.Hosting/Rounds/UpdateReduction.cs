using System.Globalization;
using Microsoft.Extensions.Logging;
using NearML.Core;
using NearML.Core.Collectives;
using NearML.Hosting.Coordinator;

namespace NearML.Hosting.Rounds;

/// <summary>
/// The part the plain DiLoCo and the relay protocols share: assign the cohort, wait for every <c>Update</c> (or the
/// deadline), cap each update's credited samples by its assignment, then screen and average with Core's one reducer
/// (<see cref="ContributionScreen.Reduce"/>) against a sliding window of accepted norms. Holds that window across rounds.
/// </summary>
internal sealed class UpdateReduction
{
    internal const int NormHistory = 32;
    private readonly Queue<double> _acceptedNorms = new();
    private double? _normBound;
    private ParameterSet? _mean;

    /// <summary>
    /// Gets the buffer the round's mean pseudo-gradient is written into: one per protocol, reused every round (the reducer
    /// overwrites it whole), so a round allocates no parameter-sized working set of its own.
    /// </summary>
    public ParameterSet MeanBuffer(ParameterSet parameters) => KeptBuffer(ref _mean, parameters);

    /// <summary>
    /// Returns <paramref name="buffer"/>, allocated (zeros) only when missing or of another layout than
    /// <paramref name="parameters"/>: the one way a protocol keeps its parameter-sized working buffer across rounds.
    /// </summary>
    public static ParameterSet KeptBuffer(ref ParameterSet? buffer, ParameterSet parameters)
    {
        if (buffer is null || !buffer.Layout.Equals(parameters.Layout))
        {
            buffer = parameters.CreateZeros();
        }

        return buffer;
    }

    /// <summary>Sends every cohort member its assignment; returns when all were sent.</summary>
    public static async Task AssignAllAsync(RoundContext context, CancellationToken ct)
    {
        var sends = new List<Task>(context.Cohort.Count);
        foreach (var p in context.Cohort)
        {
            sends.Add(context.AssignAsync(p, null, ct));
        }

        await Task.WhenAll(sends).ConfigureAwait(false);
    }

    /// <summary>
    /// Collects the cohort's updates, credits them, and writes the weighted mean of the accepted ones into
    /// <paramref name="mean"/>.
    /// </summary>
    public Reduced CollectAndReduce(RoundContext context, ParameterSet mean)
    {
        var o = context.Options;
        var round = context.Round;
        var contributions = new List<(RoundParticipant Participant, SubmittedUpdate Update)>();
        var rejected = 0;
        foreach (var p in context.Cohort)
        {
            var u = p.TakeUpdate(round);
            NearMLTracing.RecordUpload(p.Id, round, u?.PayloadBytes, u?.Reason, p.Session.UploadStartedAt, p.Session.UploadEndedAt);
            if (u is null)
            {
                CoordinatorLog.NoUpdate(context.Logger, round, p.Id, p.IsClosed ? $"it {p.CloseKind}: {p.CloseReason}" : "the round's deadline passed");
                continue;
            }

            if (u.Values is null)
            {
                context.Reject(p, u.Reason!, u.Detail!);
                rejected++;
                continue;
            }

            var assigned = context.AssignedRecords(p);
            var credited = CoordinatorService.CreditedSamples(u.SampleCount, o.InnerSteps, o.BatchSize, assigned);
            if (credited == 0)
            {
                context.Reject(p, "NoAssignedWork", $"no shard records were assigned to it this round (claimed {u.SampleCount} samples)");
                rejected++;
                continue;
            }

            if (credited < u.SampleCount)
            {
                CoordinatorLog.SamplesCapped(context.Logger, round, p.Id, u.SampleCount, credited, o.InnerSteps, o.BatchSize, assigned);
                u = u with { SampleCount = credited };
            }

            contributions.Add((p, u));
        }

        // The one reducer (Core's ContributionScreen): non-finite, all-zero, above the absolute bound, or far above the median
        // of this round's and the recent rounds' accepted norms (so a cohort of one or two is screened too); then the
        // sample-weighted mean in cohort order (ascending worker id), the same arithmetic as the in-process collective.
        using var aggregateSpan = NearMLTracing.Start(NearMLTracing.Aggregate);
        _normBound ??= o.MaxUpdateNorm ?? CoordinatorService.DefaultMaxUpdateNorm(o.InnerSteps, o.InnerLearningRate, mean.Length);
        var policy = new ContributionPolicy
        {
            RejectNonFinite = true,
            RejectZero = true,
            MaxNorm = _normBound,
            MaxNormToMedianRatio = o.MaxUpdateNormToMedianRatio,
        };
        var candidates = contributions.Select(c => new ScreenCandidate(c.Participant.Id, c.Update.Values, c.Update.SampleCount)).ToList();
        var reduced = ContributionScreen.Reduce(round, candidates, policy, mean.Data, _acceptedNorms.ToArray());
        var result = reduced.Screen;
        foreach (var r in result.Rejections)
        {
            context.Reject(contributions.First(c => c.Participant.Id == r.WorkerId).Participant, r.Reason.ToString(), r.Detail);
        }

        if (context.Logger.IsEnabled(LogLevel.Information) && contributions.Count > 0)
        {
            var acceptedText = string.Join(", ", result.Accepted.Select(a => string.Create(CultureInfo.InvariantCulture, $"{contributions[a.Index].Participant.Id}: {a.Norm:G4}")));
            var rejectedText = string.Join(", ", result.Rejections.Select(r => $"{r.WorkerId}: {r.Reason}"));
            var median = result.ReferenceNorm is { } m ? m.ToString("G4", CultureInfo.InvariantCulture) : "n/a";
            CoordinatorLog.RoundScreened(context.Logger, round, acceptedText, rejectedText, median, _normBound ?? double.PositiveInfinity);
        }

        foreach (var a in result.Accepted)
        {
            _acceptedNorms.Enqueue(a.Norm);
            while (_acceptedNorms.Count > NormHistory)
            {
                _acceptedNorms.Dequeue();
            }
        }

        var accepted = result.Accepted.Select(a => new RoundContribution(contributions[a.Index].Participant, contributions[a.Index].Update)).ToList();
        var meanLoss = double.NaN;
        long updateBytes = 0;
        if (accepted.Count > 0)
        {
            var lossTotal = accepted.Where(a => float.IsFinite(a.Update.Loss)).Sum(a => (double)a.Update.SampleCount);
            double loss = lossTotal > 0 ? 0 : double.NaN;
            foreach (var a in accepted)
            {
                if (float.IsFinite(a.Update.Loss))
                {
                    // The reported loss is the worker's word: weighted by the credited samples, non-finite values left out.
                    loss += a.Update.SampleCount / lossTotal * a.Update.Loss;
                }

                updateBytes += a.Update.PayloadBytes;
            }

            meanLoss = loss;
        }

        return new Reduced(accepted, rejected + result.Rejections.Count, meanLoss, updateBytes);
    }

    internal sealed record Reduced(List<RoundContribution> Accepted, int Rejected, double MeanLoss, long UpdateBytes)
    {
        public RoundResult ToResult(bool updated) => new(updated, Accepted, Rejected, MeanLoss, UpdateBytes);
    }
}
