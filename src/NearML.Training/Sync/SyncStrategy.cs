using System.Globalization;
using NearML.Core;
using NearML.Core.Collectives;

namespace NearML.Training.Sync;

/// <summary>The outcome of one local step of a <see cref="SyncStrategy"/>.</summary>
/// <param name="Synchronized">Whether an exchange with the group completed during this step.</param>
/// <param name="Participants">How many workers' contributions were used in that exchange (0 when none completed).</param>
/// <param name="Rejected">How many contributions the exchange rejected.</param>
public readonly record struct SyncStepResult(bool Synchronized, int Participants, int Rejected)
{
    /// <summary>Gets the result of a purely local step.</summary>
    public static SyncStepResult Local => default;
}

/// <summary>A strategy's durable state: named tensors plus string metadata (what a checkpoint holds).</summary>
/// <param name="Tensors">The tensors, named <c>&lt;part&gt;:&lt;parameter name&gt;</c>.</param>
/// <param name="Metadata">Counters and settings as strings (invariant culture).</param>
public sealed record SyncState(ParameterSet Tensors, IReadOnlyDictionary<string, string> Metadata);

/// <summary>
/// How one worker keeps its model in step with the group. A strategy sees only <see cref="ParameterSet"/>s and an
/// <see cref="ICollective"/>: the caller computes gradients for <see cref="Parameters"/> on its own data and calls
/// <see cref="StepAsync"/> once per local step; the strategy updates <see cref="Parameters"/> in place (locally,
/// and from the group when it synchronizes).
/// </summary>
/// <remarks>Every member of a group must use the same strategy type and options, and call <see cref="StepAsync"/>
/// the same number of times between exchanges (strategies tag rounds from their counters).</remarks>
public abstract class SyncStrategy
{
    private const string KindKey = "nearml.sync.kind";

    /// <summary>Initializes the strategy.</summary>
    /// <param name="collective">This worker's endpoint in the group.</param>
    /// <param name="parameters">The model's parameters, updated in place.</param>
    protected SyncStrategy(ICollective collective, ParameterSet parameters)
    {
        ArgumentNullException.ThrowIfNull(collective);
        ArgumentNullException.ThrowIfNull(parameters);
        Collective = collective;
        Parameters = parameters;
    }

    /// <summary>Gets this worker's collective endpoint (its <see cref="ICollective.Statistics"/> hold the byte counts).</summary>
    public ICollective Collective { get; }

    /// <summary>Gets the worker's live parameters.</summary>
    public ParameterSet Parameters { get; }

    /// <summary>Gets the parameter layout.</summary>
    public ParameterLayout Layout => Parameters.Layout;

    /// <summary>Gets a short name of the strategy (stored in checkpoints).</summary>
    public abstract string Kind { get; }

    /// <summary>Gets the number of local steps this worker has taken (restored from checkpoints).</summary>
    public long LocalStep { get; protected set; }

    /// <summary>Gets the parameters every member agrees on after the last exchange (for evaluation). For DDP and DeMo
    /// these are <see cref="Parameters"/> themselves.</summary>
    public abstract ParameterSet GlobalParameters { get; }

    /// <summary>Gets the contributions rejected in the exchanges this worker took part in (with reasons).</summary>
    public IReadOnlyList<ContributionRejection> Rejections => RejectionLog;

    /// <summary>Gets the mutable rejection log for derived classes.</summary>
    protected List<ContributionRejection> RejectionLog { get; } = [];

    /// <summary>Applies one local step from <paramref name="gradients"/> and synchronizes when the schedule says so.</summary>
    /// <param name="gradients">The gradients of the loss at <see cref="Parameters"/> (same layout).</param>
    /// <param name="samples">The number of samples behind them (the weight of this worker's contribution).</param>
    /// <param name="cancellationToken">Cancels waiting for the group.</param>
    /// <returns>Whether an exchange completed.</returns>
    /// <exception cref="LayoutMismatchException">The gradients' layout differs from the parameters'.</exception>
    public abstract ValueTask<SyncStepResult> StepAsync(ParameterSet gradients, int samples, CancellationToken cancellationToken = default);

    /// <summary>Completes exchanges still in flight (streaming overlap). Call once at the end of training.</summary>
    /// <param name="cancellationToken">Cancels waiting for the group.</param>
    /// <returns>A task that completes when nothing is in flight.</returns>
    public virtual ValueTask FlushAsync(CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

    /// <summary>Copies the strategy's state (local and global parameters, outer optimizer buffers, counters).</summary>
    /// <returns>A deep copy; a joiner restores it with <see cref="RestoreState"/>.</returns>
    /// <exception cref="InvalidOperationException">An exchange is in flight.</exception>
    public SyncState CaptureState()
    {
        EnsureQuiescent();
        var parts = StateParts();
        var combined = new ParameterSet(CombinedLayout(parts));
        var offset = 0;
        foreach (var (_, set) in parts)
        {
            set.Data.CopyTo(combined.Data[offset..]);
            offset += set.Length;
        }

        var metadata = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [KindKey] = Kind,
            ["nearml.sync.local_step"] = LocalStep.ToString(CultureInfo.InvariantCulture),
        };
        WriteMetadata(metadata);
        return new SyncState(combined, metadata);
    }

    /// <summary>Replaces the strategy's state with <paramref name="state"/> (resume, or a joiner adopting the group's state).</summary>
    /// <param name="state">State captured from a strategy of the same kind, options and layout.</param>
    /// <exception cref="LayoutMismatchException">The tensors do not match this strategy's layout.</exception>
    /// <exception cref="InvalidDataFormatException">The metadata is missing or of another strategy kind.</exception>
    public void RestoreState(SyncState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        EnsureQuiescent();
        var parts = StateParts();
        CombinedLayout(parts).EnsureSameAs(state.Tensors.Layout);
        if (!state.Metadata.TryGetValue(KindKey, out var kind) || kind != Kind)
        {
            throw new InvalidDataFormatException("sync state", -1, $"metadata '{KindKey}' is '{kind ?? "(missing)"}', expected '{Kind}'");
        }

        var localStep = ReadLong(state.Metadata, "nearml.sync.local_step");
        ReadMetadata(state.Metadata);
        LocalStep = localStep;
        var offset = 0;
        foreach (var (_, set) in parts)
        {
            state.Tensors.Data.Slice(offset, set.Length).CopyTo(set.Data);
            offset += set.Length;
        }
    }

    /// <summary>Writes <see cref="CaptureState"/> to a safetensors file atomically.</summary>
    /// <param name="path">The destination file.</param>
    public void SaveCheckpoint(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var state = CaptureState();
        SafeTensors.WriteFile(path, state.Tensors, state.Metadata);
    }

    /// <summary>Reads a checkpoint written by <see cref="SaveCheckpoint"/> and restores it.</summary>
    /// <param name="path">The checkpoint file.</param>
    /// <exception cref="LayoutMismatchException">The file's tensors do not match this strategy's layout.</exception>
    /// <exception cref="InvalidDataFormatException">The file is not a checkpoint of this strategy kind.</exception>
    public void LoadCheckpoint(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var content = SafeTensors.ReadFile(path);
        RestoreState(new SyncState(content.Parameters, content.Metadata));
    }

    /// <summary>Lists the state tensors, each under a part name (e.g. <c>global</c>, <c>momentum</c>).</summary>
    /// <returns>The parts, in a fixed order.</returns>
    protected abstract IReadOnlyList<(string Part, ParameterSet Set)> StateParts();

    /// <summary>Adds counters and settings to checkpoint metadata.</summary>
    /// <param name="metadata">The map to fill.</param>
    protected virtual void WriteMetadata(IDictionary<string, string> metadata)
    {
    }

    /// <summary>Restores counters from checkpoint metadata.</summary>
    /// <param name="metadata">The map read back.</param>
    protected virtual void ReadMetadata(IReadOnlyDictionary<string, string> metadata)
    {
    }

    /// <summary>Throws when an exchange is in flight (state cannot be captured then).</summary>
    protected virtual void EnsureQuiescent()
    {
    }

    /// <summary>Checks that <paramref name="gradients"/> fit this strategy.</summary>
    /// <param name="gradients">The gradients.</param>
    /// <param name="samples">The sample count.</param>
    protected void ValidateStep(ParameterSet gradients, int samples)
    {
        ArgumentNullException.ThrowIfNull(gradients);
        ArgumentOutOfRangeException.ThrowIfNegative(samples);
        Layout.EnsureSameAs(gradients.Layout);
    }

    /// <summary>Reads an integer counter from metadata.</summary>
    /// <param name="metadata">The map.</param>
    /// <param name="key">The key.</param>
    /// <returns>The value.</returns>
    /// <exception cref="InvalidDataFormatException">The key is missing or not an integer.</exception>
    protected static long ReadLong(IReadOnlyDictionary<string, string> metadata, string key)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        if (!metadata.TryGetValue(key, out var text) || !long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value))
        {
            throw new InvalidDataFormatException("sync state", -1, $"metadata '{key}' is missing or not an integer");
        }

        return value;
    }

    private static ParameterLayout CombinedLayout(IReadOnlyList<(string Part, ParameterSet Set)> parts) =>
        new(parts.SelectMany(p => p.Set.Layout.Entries.Select(e => (p.Part + ":" + e.Name, e.Shape.ToArray()))));
}
