namespace NearML.Core.Collectives;

/// <summary>
/// One worker's view of a group that exchanges numeric payloads: a weighted mean-reduce (the sum of
/// weight·values over the round's participants divided by the sum of weights) and an all-gather of opaque byte
/// messages. The sync strategies of NearML.Training talk only to this interface, so the same code runs in-process,
/// over the network or through secure aggregation.
/// </summary>
/// <remarks>
/// <para>Every operation names a <c>round</c>: a tag that all members use for the same exchange (for example the
/// outer step, or outer step × fragment count + fragment). A round completes when every worker that was a member
/// when the round opened has contributed, abstained (<see cref="AbstainAsync"/>) or left; the result uses only the
/// contributions that arrived (elastic membership). Results are reduced in ascending worker-id order, so they do
/// not depend on thread timing.</para>
/// <para>Byte accounting follows a star (relay) topology: a worker sends its encoded payload once and receives the
/// encoded result (reduce) or every other participant's payload (all-gather). Only payload bytes are counted;
/// transport framing, the weight scalar and membership headers are not.</para>
/// </remarks>
public interface ICollective : IAsyncDisposable
{
    /// <summary>Gets this worker's id (unique within the group; reductions are ordered by it, ordinally).</summary>
    string WorkerId { get; }

    /// <summary>Gets the bytes this worker sent and received so far.</summary>
    CollectiveStatistics Statistics { get; }

    /// <summary>
    /// Contributes <paramref name="values"/> with <paramref name="weight"/> to round <paramref name="round"/> and
    /// receives the weighted mean of the accepted contributions in <paramref name="result"/>.
    /// </summary>
    /// <param name="round">The round tag, equal on every member for the same exchange.</param>
    /// <param name="values">This worker's values.</param>
    /// <param name="weight">Its weight (for example the number of samples behind it); positive and finite.</param>
    /// <param name="codec">How the values travel on the wire (all participants must use the same codec).</param>
    /// <param name="result">Receives the mean; same length as <paramref name="values"/>. Left unchanged when no
    /// contribution was accepted.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>Who took part, who was rejected and the bytes this worker moved.</returns>
    ValueTask<ReduceResult> AllReduceMeanAsync(long round, ReadOnlyMemory<float> values, double weight, IPayloadCodec codec,
        Memory<float> result, CancellationToken cancellationToken = default);

    /// <summary>Sends <paramref name="payload"/> to round <paramref name="round"/> and receives every participant's payload.</summary>
    /// <param name="round">The round tag, equal on every member for the same exchange.</param>
    /// <param name="payload">This worker's message (for example a sparse or quantized encoding).</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>The payloads in ascending worker-id order (this worker's own included).</returns>
    ValueTask<GatherResult> AllGatherAsync(long round, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default);

    /// <summary>Takes part in round <paramref name="round"/> without contributing (the round does not wait for this worker).</summary>
    /// <param name="round">The round tag.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>A task that completes once the abstention is recorded (it does not wait for the round).</returns>
    ValueTask AbstainAsync(long round, CancellationToken cancellationToken = default);
}

/// <summary>Encodes float values for the wire and decodes them back (for example fp32, fp16, int8 with block scales).</summary>
public interface IPayloadCodec
{
    /// <summary>Gets a short name that identifies the encoding (participants of one round must agree on it).</summary>
    string Name { get; }

    /// <summary>Gets the exact number of bytes <see cref="Encode"/> writes for <paramref name="count"/> values.</summary>
    /// <param name="count">The number of values.</param>
    /// <returns>The encoded length in bytes.</returns>
    int GetEncodedLength(int count);

    /// <summary>Encodes <paramref name="values"/> into <paramref name="destination"/>.</summary>
    /// <param name="values">The values.</param>
    /// <param name="destination">At least <see cref="GetEncodedLength"/> bytes.</param>
    void Encode(ReadOnlySpan<float> values, Span<byte> destination);

    /// <summary>Decodes <paramref name="source"/> into <paramref name="destination"/> (whose length is the value count).</summary>
    /// <param name="source">Exactly <see cref="GetEncodedLength"/>(destination.Length) bytes.</param>
    /// <param name="destination">Receives the values.</param>
    /// <exception cref="InvalidDataFormatException">The bytes have the wrong length or are malformed.</exception>
    void Decode(ReadOnlySpan<byte> source, Span<float> destination);
}

/// <summary>Why a contribution was left out of a reduction.</summary>
public enum RejectionReason
{
    /// <summary>A value was NaN or infinite.</summary>
    NonFinite,

    /// <summary>The Euclidean norm exceeded <see cref="ContributionPolicy.MaxNorm"/>.</summary>
    NormAboveLimit,

    /// <summary>The norm exceeded <see cref="ContributionPolicy.MaxNormToMedianRatio"/> × the cohort's median norm.</summary>
    NormFarAboveMedian,

    /// <summary>The weight was not positive and finite.</summary>
    InvalidWeight,

    /// <summary>The message could not be decoded (wrong length or malformed).</summary>
    Malformed,

    /// <summary>Every value was zero (<see cref="ContributionPolicy.RejectZero"/>): the contribution carries no change.</summary>
    ZeroNorm,
}

/// <summary>A contribution that was not averaged in, with the reason.</summary>
/// <param name="WorkerId">The worker that sent it.</param>
/// <param name="Round">The round tag.</param>
/// <param name="Reason">Why it was rejected.</param>
/// <param name="Detail">A human-readable explanation (norms, the offending index).</param>
public sealed record ContributionRejection(string WorkerId, long Round, RejectionReason Reason, string Detail);

/// <summary>The outcome of <see cref="ICollective.AllReduceMeanAsync"/> for one worker.</summary>
/// <param name="Round">The round tag.</param>
/// <param name="Participants">The workers whose contributions were averaged in, ascending.</param>
/// <param name="TotalWeight">The sum of their weights (0 when none was accepted).</param>
/// <param name="Rejections">Contributions left out, with reasons.</param>
/// <param name="BytesSent">Bytes this worker sent in this round.</param>
/// <param name="BytesReceived">Bytes this worker received in this round.</param>
public sealed record ReduceResult(long Round, IReadOnlyList<string> Participants, double TotalWeight,
    IReadOnlyList<ContributionRejection> Rejections, long BytesSent, long BytesReceived)
{
    /// <summary>Gets a value indicating whether at least one contribution was averaged in (the result buffer was written).</summary>
    public bool HasResult => Participants.Count > 0;
}

/// <summary>One worker's payload in an all-gather.</summary>
/// <param name="WorkerId">The sender.</param>
/// <param name="Payload">Its bytes (read-only; shared by all receivers).</param>
public sealed record GatheredPayload(string WorkerId, ReadOnlyMemory<byte> Payload);

/// <summary>The outcome of <see cref="ICollective.AllGatherAsync"/> for one worker.</summary>
/// <param name="Round">The round tag.</param>
/// <param name="Payloads">Every participant's payload, ascending by worker id.</param>
/// <param name="BytesSent">Bytes this worker sent in this round.</param>
/// <param name="BytesReceived">Bytes this worker received in this round (the other participants' payloads).</param>
public sealed record GatherResult(long Round, IReadOnlyList<GatheredPayload> Payloads, long BytesSent, long BytesReceived);

/// <summary>What the reducer accepts into a mean. Rejected contributions are counted and reported, never averaged in.</summary>
public sealed class ContributionPolicy
{
    /// <summary>Gets or sets a value indicating whether contributions holding NaN or infinity are rejected.</summary>
    /// <value>The default value is <see langword="true"/>.</value>
    public bool RejectNonFinite { get; set; } = true;

    /// <summary>Gets or sets the largest accepted Euclidean norm (<see langword="null"/> for no absolute limit).</summary>
    /// <value>The default value is <see langword="null"/>.</value>
    public double? MaxNorm { get; set; }

    /// <summary>
    /// Gets or sets k such that a contribution whose norm exceeds k × the reference median is rejected: the lower median
    /// of the round's finite nonzero norms together with any earlier accepted norms the caller passes to
    /// <see cref="ContributionScreen.Screen"/> (applied only when that pool holds at least two norms).
    /// <see langword="null"/> disables the check.
    /// </summary>
    /// <value>The default value is 10.</value>
    public double? MaxNormToMedianRatio { get; set; } = 10;

    /// <summary>
    /// Gets or sets a value indicating whether a contribution whose values are all zero is rejected (it carries no
    /// change, and where contributions are rewarded it would be paid for nothing).
    /// </summary>
    /// <value>The default value is <see langword="false"/>.</value>
    public bool RejectZero { get; set; }
}
