using System.Text.Json;
using System.Text.Json.Serialization;

namespace NearML.Dashboard;

/// <summary>
/// What the dashboard serves (<c>api/status</c> and every Server-Sent Event): public progress only. It is built field by
/// field from <see cref="NearML.Hosting.Coordinator.CoordinatorStatus"/>; nothing else (options, keys, updates) reaches it.
/// </summary>
internal sealed record DashboardSnapshot(
    long Version,
    string JobId,
    string State,
    long Round,
    int TotalRounds,
    int InnerSteps,
    long ParameterVersion,
    long ParameterCount,
    double? Accuracy,
    long BytesUp,
    long BytesDown,
    long DdpBytes,
    long LedgerEntries,
    string? LedgerRoot,
    int RoundsOmitted,
    IReadOnlyList<DashboardRound> Rounds,
    IReadOnlyList<DashboardWorker> Workers,
    IReadOnlyList<DashboardSettlement> Settlements,
    IReadOnlyList<DashboardPayout> Payouts,
    long GeneratedAtMs);

internal sealed record DashboardRound(long Round, int Cohort, int Accepted, int Rejected, double? Loss, double? Accuracy, long DurationMs, long UpdateBytes, long DdpBytes, IReadOnlyList<string> Workers);

internal sealed record DashboardWorker(string Id, string State, string Attestation, long Round, int Step, double? Loss, double SamplesPerSecond, long Receipts, long BytesSent, long BytesReceived);

internal sealed record DashboardSettlement(long Epoch, string Hash, string Receiver, string Amount, bool DryRun);

internal sealed record DashboardPayout(string Account, string Amount);

/// <summary>The verdict of the "verify ledger" action.</summary>
internal sealed record LedgerVerdict(
    bool Valid,
    string Problem,
    long FirstBadSequence,
    long EntriesChecked,
    string Message,
    bool SignaturesValid,
    string SignatureMessage,
    long TrustedEntries,
    string? TrustedRoot,
    long ElapsedMs,
    long CheckedAtMs);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(DashboardSnapshot))]
[JsonSerializable(typeof(LedgerVerdict))]
internal sealed partial class DashboardJsonContext : JsonSerializerContext;
