using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using NearML.Core;
using NearML.Ledger;
using ReceiptFrame = NearML.Core.Contracts.Receipt;

namespace NearML.Hosting.Worker;

/// <summary>A receipt the coordinator sent for one of this worker's contributions, after its signature checked out.</summary>
/// <param name="JobId">The job.</param>
/// <param name="Round">The round.</param>
/// <param name="Sequence">The coordinator's ledger sequence number of the entry.</param>
/// <param name="Receipt">The signed receipt (the ledger entry's payload).</param>
/// <param name="ReceivedUnixMilliseconds">When the worker received it.</param>
public sealed record WorkerReceipt(string JobId, ulong Round, ulong Sequence, SignedReceipt Receipt, long ReceivedUnixMilliseconds);

/// <summary>A receipt failed verification: bad signature, wrong key, or it does not describe the update this worker sent.</summary>
public sealed class ReceiptVerificationException : NearMLException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="message">What did not verify.</param>
    /// <param name="innerException">The cause, if any.</param>
    public ReceiptVerificationException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// The worker's append-only log of verified receipts, one JSON object per line in <c>receipts.log</c> in the data folder,
/// each line flushed to disk before the receipt counts. The coordinator's receipt key is pinned by option or trusted on first
/// use (remembered in <c>coordinator-receipt-key.txt</c>), so a later receipt signed by another key is refused.
/// </summary>
public sealed class WorkerReceiptLog
{
    private readonly string _path;
    private readonly string _keyPath;
    private readonly Lock _lock = new();
    private NearPublicKey? _coordinatorKey;
    private readonly bool _pinned;

    /// <summary>Opens (or prepares to create) the log in <paramref name="directory"/>.</summary>
    /// <param name="directory">The worker's data folder.</param>
    /// <param name="pinnedCoordinatorKey">The coordinator key to require, or <see langword="null"/> for trust on first use.</param>
    public WorkerReceiptLog(string directory, NearPublicKey? pinnedCoordinatorKey = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        _path = System.IO.Path.Combine(directory, "receipts.log");
        _keyPath = System.IO.Path.Combine(directory, "coordinator-receipt-key.txt");
        _coordinatorKey = pinnedCoordinatorKey;
        _pinned = pinnedCoordinatorKey is not null;
        if (!_pinned && File.Exists(_keyPath))
        {
            _coordinatorKey = NearPublicKey.Parse(File.ReadAllText(_keyPath).Trim());
        }
    }

    /// <summary>Gets the log file path.</summary>
    public string Path => _path;

    /// <summary>Gets the coordinator key receipts must be signed with, or <see langword="null"/> before the first receipt (trust on first use).</summary>
    public NearPublicKey? CoordinatorKey
    {
        get
        {
            lock (_lock)
            {
                return _coordinatorKey;
            }
        }
    }

    /// <summary>
    /// Verifies a receipt frame against the update this worker sent and, if it checks out, appends it to the log durably.
    /// </summary>
    /// <param name="frame">The receipt frame.</param>
    /// <param name="expectedJobId">The job the update was for.</param>
    /// <param name="expectedRound">The round the update was for.</param>
    /// <param name="updateHash">SHA-256 of the whole update payload the worker sent.</param>
    /// <param name="receivedUnixMilliseconds">The receive time to record.</param>
    /// <returns>The verified receipt.</returns>
    /// <exception cref="ReceiptVerificationException">The receipt does not verify; nothing is appended.</exception>
    public WorkerReceipt VerifyAndAppend(ReceiptFrame frame, string expectedJobId, ulong expectedRound, ReadOnlySpan<byte> updateHash, long receivedUnixMilliseconds)
    {
        ArgumentNullException.ThrowIfNull(frame);
        ArgumentNullException.ThrowIfNull(expectedJobId);
        var receipt = Verify(frame, expectedJobId, expectedRound, updateHash);
        var result = new WorkerReceipt(frame.JobId, frame.Round, frame.Sequence, receipt, receivedUnixMilliseconds);
        lock (_lock)
        {
            if (_coordinatorKey is null)
            {
                Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(_keyPath))!);
                File.WriteAllText(_keyPath, receipt.CoordinatorKey + "\n");
                _coordinatorKey = receipt.CoordinatorKey;
            }
            else if (!_coordinatorKey.Equals(receipt.CoordinatorKey))
            {
                throw new ReceiptVerificationException(
                    $"receipt for round {frame.Round} is signed by {receipt.CoordinatorKey}, but this worker {(_pinned ? "pins" : "first trusted")} {_coordinatorKey}");
            }

            Append(result);
        }

        return result;
    }

    /// <summary>Reads every receipt in the log, re-verifying each signature.</summary>
    /// <returns>The receipts in log order.</returns>
    /// <exception cref="ReceiptVerificationException">A line is malformed or a signature does not verify.</exception>
    public IReadOnlyList<WorkerReceipt> ReadAll()
    {
        var list = new List<WorkerReceipt>();
        lock (_lock)
        {
            if (!File.Exists(_path))
            {
                return list;
            }

            var lineNumber = 0;
            foreach (var line in File.ReadLines(_path))
            {
                lineNumber++;
                if (line.Length == 0)
                {
                    continue;
                }

                try
                {
                    using var doc = JsonDocument.Parse(line);
                    var root = doc.RootElement;
                    var entry = Convert.FromBase64String(root.GetProperty("entry").GetString()!);
                    var signed = SignedReceipt.Parse(entry, $"{_path} line {lineNumber}");
                    if (!signed.Verify())
                    {
                        throw new ReceiptVerificationException($"{_path} line {lineNumber}: the receipt signature does not verify");
                    }

                    list.Add(new WorkerReceipt(
                        root.GetProperty("job").GetString()!,
                        root.GetProperty("round").GetUInt64(),
                        root.GetProperty("sequence").GetUInt64(),
                        signed,
                        root.GetProperty("receivedUnixMs").GetInt64()));
                }
                catch (Exception ex) when (ex is JsonException or FormatException or KeyNotFoundException or InvalidOperationException or InvalidDataFormatException)
                {
                    throw new ReceiptVerificationException($"{_path} line {lineNumber} is not a receipt record: {ex.Message}", ex);
                }
            }
        }

        return list;
    }

    internal static SignedReceipt Verify(ReceiptFrame frame, string expectedJobId, ulong expectedRound, ReadOnlySpan<byte> updateHash)
    {
        if (frame.JobId != expectedJobId || frame.Round != expectedRound)
        {
            throw new ReceiptVerificationException(
                $"receipt for job '{frame.JobId}' round {frame.Round} does not match the update sent for job '{expectedJobId}' round {expectedRound}");
        }

        SignedReceipt signed;
        try
        {
            signed = SignedReceipt.Parse(frame.Entry.Memory, $"receipt for round {frame.Round}");
        }
        catch (Exception ex) when (ex is InvalidDataFormatException or InvalidNearKeyException or ArgumentException)
        {
            throw new ReceiptVerificationException($"receipt for round {frame.Round} has a malformed entry: {ex.Message}", ex);
        }

        if (!CryptographicOperations.FixedTimeEquals(signed.CoordinatorSignature, frame.Signature.Span))
        {
            throw new ReceiptVerificationException($"receipt for round {frame.Round}: the frame's signature differs from the entry's coordinator signature");
        }

        if (!signed.Verify())
        {
            throw new ReceiptVerificationException(
                $"receipt for round {frame.Round}: the coordinator signature by {signed.CoordinatorKey} does not verify over the receipt");
        }

        var receipt = signed.Receipt;
        if (receipt.JobId != expectedJobId || receipt.Round != (long)expectedRound)
        {
            throw new ReceiptVerificationException(
                $"receipt entry names job '{receipt.JobId}' round {receipt.Round}; expected job '{expectedJobId}' round {expectedRound}");
        }

        if (!CryptographicOperations.FixedTimeEquals(receipt.UpdateHash, updateHash))
        {
            throw new ReceiptVerificationException(
                $"receipt for round {frame.Round} credits update {Convert.ToHexStringLower(receipt.UpdateHash)}, but this worker sent {Convert.ToHexStringLower(updateHash)}");
        }

        return signed;
    }

    private void Append(WorkerReceipt receipt)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("job", receipt.JobId);
            json.WriteNumber("round", receipt.Round);
            json.WriteNumber("sequence", receipt.Sequence);
            json.WriteString("worker", receipt.Receipt.Receipt.WorkerId);
            json.WriteNumber("samples", receipt.Receipt.Receipt.SamplesProcessed);
            json.WriteString("coordinatorKey", receipt.Receipt.CoordinatorKey.ToString());
            json.WriteString("entry", Convert.ToBase64String(receipt.Receipt.ToBorsh()));
            json.WriteNumber("receivedUnixMs", receipt.ReceivedUnixMilliseconds);
            json.WriteEndObject();
        }

        buffer.Write(Encoding.UTF8.GetBytes("\n"));
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(_path))!);
        using var file = new FileStream(_path, FileMode.Append, FileAccess.Write, FileShare.Read);
        file.Write(buffer.GetBuffer(), 0, (int)buffer.Length);
        file.Flush(flushToDisk: true);
    }
}
