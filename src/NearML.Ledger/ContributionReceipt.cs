using System.Security.Cryptography;

namespace NearML.Ledger;

/// <summary>The attestation verdict recorded with a contribution.</summary>
public enum AttestationVerdict : byte
{
    /// <summary>No attestation was performed or it is not known.</summary>
    Unattested = 0,

    /// <summary>The worker's enclave quote and update verified; the work counts for rewards.</summary>
    Verified = 1,

    /// <summary>The attestation or the update failed verification; the work does not count.</summary>
    Rejected = 2,
}

/// <summary>
/// One verified contribution of one worker in one round of a training job. Its canonical Borsh form
/// (<see cref="ToBorsh"/>) is what the coordinator and the worker sign.
/// </summary>
/// <param name="JobId">The training job.</param>
/// <param name="Round">The round within the job.</param>
/// <param name="WorkerId">The worker's NEAR account id (payouts go there).</param>
/// <param name="SamplesProcessed">Samples processed in the round.</param>
/// <param name="TokensProcessed">Tokens processed in the round (0 when not a language model).</param>
/// <param name="InnerSteps">Local optimizer steps taken.</param>
/// <param name="ComputeMilliseconds">Compute time spent, in milliseconds.</param>
/// <param name="Verdict">The attestation verdict.</param>
/// <param name="UpdateHash">SHA-256 of the worker's update (32 bytes).</param>
/// <param name="TimestampUnixMilliseconds">When the coordinator accepted the update, as Unix milliseconds.</param>
public sealed record ContributionReceipt(
    string JobId,
    long Round,
    string WorkerId,
    ulong SamplesProcessed,
    ulong TokensProcessed,
    uint InnerSteps,
    ulong ComputeMilliseconds,
    AttestationVerdict Verdict,
    byte[] UpdateHash,
    long TimestampUnixMilliseconds)
{
    private const string Domain = "nearml/receipt/v1";

    /// <summary>Gets the compute time as seconds.</summary>
    public double ComputeSeconds => ComputeMilliseconds / 1000.0;

    /// <summary>Checks field rules and throws <see cref="ArgumentException"/> naming the first bad field.</summary>
    public void Validate()
    {
        ArgumentException.ThrowIfNullOrEmpty(JobId, nameof(JobId));
        ArgumentOutOfRangeException.ThrowIfNegative(Round, nameof(Round));
        NearAccountId.Validate(WorkerId, nameof(WorkerId));
        if (UpdateHash is null || UpdateHash.Length != 32)
        {
            throw new ArgumentException($"UpdateHash must be 32 bytes, got {UpdateHash?.Length ?? 0}.", nameof(UpdateHash));
        }

        if (!Enum.IsDefined(Verdict))
        {
            throw new ArgumentOutOfRangeException(nameof(Verdict), Verdict, "Unknown attestation verdict.");
        }
    }

    /// <summary>Writes the canonical Borsh form (a domain string first, then every field in order).</summary>
    /// <param name="writer">The writer.</param>
    public void WriteBorsh(BorshWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteString(Domain);
        writer.WriteString(JobId);
        writer.WriteI64(Round);
        writer.WriteString(WorkerId);
        writer.WriteU64(SamplesProcessed);
        writer.WriteU64(TokensProcessed);
        writer.WriteU32(InnerSteps);
        writer.WriteU64(ComputeMilliseconds);
        writer.WriteU8((byte)Verdict);
        writer.WriteFixed(UpdateHash);
        writer.WriteI64(TimestampUnixMilliseconds);
    }

    /// <summary>Returns the canonical Borsh bytes.</summary>
    /// <returns>The bytes.</returns>
    public byte[] ToBorsh()
    {
        var w = new BorshWriter(160);
        WriteBorsh(w);
        return w.ToArray();
    }

    /// <summary>Returns SHA-256 of the canonical bytes: the message both parties sign.</summary>
    /// <returns>The 32-byte hash.</returns>
    public byte[] ComputeHash() => SHA256.HashData(ToBorsh());

    /// <summary>Reads a receipt written by <see cref="WriteBorsh"/>.</summary>
    /// <param name="reader">The reader.</param>
    /// <returns>The receipt.</returns>
    public static ContributionReceipt ReadBorsh(BorshReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        int at = reader.Position;
        string domain = reader.ReadString();
        if (domain != Domain)
        {
            throw reader.FailAt(at, $"receipt domain is '{domain}', expected '{Domain}'");
        }

        string job = reader.ReadString();
        long round = reader.ReadI64();
        string worker = reader.ReadString();
        ulong samples = reader.ReadU64();
        ulong tokens = reader.ReadU64();
        uint steps = reader.ReadU32();
        ulong ms = reader.ReadU64();
        int verdictAt = reader.Position;
        byte verdict = reader.ReadU8();
        if (verdict > (byte)AttestationVerdict.Rejected)
        {
            throw reader.FailAt(verdictAt, $"attestation verdict {verdict} is unknown");
        }

        byte[] update = reader.ReadFixed(32);
        long ts = reader.ReadI64();
        return new ContributionReceipt(job, round, worker, samples, tokens, steps, ms, (AttestationVerdict)verdict, update, ts);
    }
}
