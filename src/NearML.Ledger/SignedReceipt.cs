using NearML.Core;

namespace NearML.Ledger;

/// <summary>
/// A contribution receipt signed by the coordinator and, where available, countersigned by the worker. Both sign
/// <see cref="ContributionReceipt.ComputeHash"/>. The Borsh form of this record is the payload of a ledger entry.
/// </summary>
/// <param name="Receipt">The receipt.</param>
/// <param name="CoordinatorKey">The coordinator's public key.</param>
/// <param name="CoordinatorSignature">The coordinator's 64-byte signature.</param>
/// <param name="WorkerKey">The worker's public key, if the worker countersigned.</param>
/// <param name="WorkerSignature">The worker's 64-byte signature, if the worker countersigned.</param>
public sealed record SignedReceipt(ContributionReceipt Receipt, NearPublicKey CoordinatorKey, byte[] CoordinatorSignature, NearPublicKey? WorkerKey = null, byte[]? WorkerSignature = null)
{
    /// <summary>Signs a receipt as the coordinator.</summary>
    /// <param name="receipt">The receipt.</param>
    /// <param name="coordinator">The coordinator's key.</param>
    /// <returns>The signed receipt (without countersignature).</returns>
    public static SignedReceipt Sign(ContributionReceipt receipt, NearKeyPair coordinator)
    {
        ArgumentNullException.ThrowIfNull(receipt);
        ArgumentNullException.ThrowIfNull(coordinator);
        receipt.Validate();
        return new SignedReceipt(receipt, coordinator.PublicKey, coordinator.Sign(receipt.ComputeHash()));
    }

    /// <summary>Adds the worker's countersignature.</summary>
    /// <param name="worker">The worker's key.</param>
    /// <returns>A copy with the countersignature.</returns>
    public SignedReceipt Countersign(NearKeyPair worker)
    {
        ArgumentNullException.ThrowIfNull(worker);
        return this with { WorkerKey = worker.PublicKey, WorkerSignature = worker.Sign(Receipt.ComputeHash()) };
    }

    /// <summary>Adds a countersignature the worker produced elsewhere, after checking it.</summary>
    /// <param name="workerKey">The worker's public key.</param>
    /// <param name="workerSignature">The worker's signature of the receipt hash.</param>
    /// <returns>A copy with the countersignature.</returns>
    /// <exception cref="ArgumentException">The signature does not verify.</exception>
    public SignedReceipt WithCountersignature(NearPublicKey workerKey, byte[] workerSignature)
    {
        ArgumentNullException.ThrowIfNull(workerKey);
        ArgumentNullException.ThrowIfNull(workerSignature);
        if (!workerKey.Verify(Receipt.ComputeHash(), workerSignature))
        {
            throw new ArgumentException($"The countersignature by {workerKey} does not verify for this receipt.", nameof(workerSignature));
        }

        return this with { WorkerKey = workerKey, WorkerSignature = workerSignature };
    }

    /// <summary>Verifies the coordinator's signature and, when present, the worker's.</summary>
    /// <returns><see langword="true"/> when every present signature verifies.</returns>
    public bool Verify()
    {
        byte[] hash = Receipt.ComputeHash();
        if (!CoordinatorKey.Verify(hash, CoordinatorSignature))
        {
            return false;
        }

        return WorkerKey is null || (WorkerSignature is not null && WorkerKey.Verify(hash, WorkerSignature));
    }

    /// <summary>Writes the signed receipt in Borsh.</summary>
    /// <param name="writer">The writer.</param>
    public void WriteBorsh(BorshWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        Receipt.WriteBorsh(writer);
        writer.WriteFixed(CoordinatorKey.Bytes);
        WriteSignature(writer, CoordinatorSignature, nameof(CoordinatorSignature));
        if (WorkerKey is not null)
        {
            writer.WriteU8(1);
            writer.WriteFixed(WorkerKey.Bytes);
            WriteSignature(writer, WorkerSignature, nameof(WorkerSignature));
        }
        else
        {
            writer.WriteU8(0);
        }
    }

    /// <summary>Returns the Borsh bytes.</summary>
    /// <returns>The bytes.</returns>
    public byte[] ToBorsh()
    {
        var w = new BorshWriter(320);
        WriteBorsh(w);
        return w.ToArray();
    }

    /// <summary>Parses a signed receipt from Borsh bytes.</summary>
    /// <param name="bytes">The bytes.</param>
    /// <param name="source">A description of the bytes' origin for error messages.</param>
    /// <returns>The signed receipt.</returns>
    /// <exception cref="InvalidDataFormatException">The bytes are malformed.</exception>
    public static SignedReceipt Parse(ReadOnlyMemory<byte> bytes, string source = "signed receipt")
    {
        var r = new BorshReader(bytes, source);
        ContributionReceipt receipt = ContributionReceipt.ReadBorsh(r);
        NearPublicKey coordinator = NearPublicKey.FromBytes(r.ReadFixed(NearPublicKey.Size));
        byte[] sig = r.ReadFixed(64);
        int at = r.Position;
        byte hasWorker = r.ReadU8();
        SignedReceipt result = hasWorker switch
        {
            0 => new SignedReceipt(receipt, coordinator, sig),
            1 => new SignedReceipt(receipt, coordinator, sig, NearPublicKey.FromBytes(r.ReadFixed(NearPublicKey.Size)), r.ReadFixed(64)),
            _ => throw r.FailAt(at, $"worker countersignature flag {hasWorker} is not 0 or 1"),
        };
        r.EnsureEnd();
        return result;
    }

    private static void WriteSignature(BorshWriter writer, byte[]? signature, string name)
    {
        if (signature is null || signature.Length != 64)
        {
            throw new InvalidOperationException($"{name} must be 64 bytes, got {signature?.Length ?? 0}.");
        }

        writer.WriteFixed(signature);
    }
}
