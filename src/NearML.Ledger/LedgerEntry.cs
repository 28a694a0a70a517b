using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace NearML.Ledger;

/// <summary>
/// One entry of the hash-chained ledger. <see cref="Hash"/> = SHA-256("nearml/ledger/entry/v1" ‖ sequence u64 ‖
/// epoch u64 ‖ previous hash ‖ payload length u32 ‖ payload), all integers little-endian, so each entry commits to
/// its position, its epoch, its content and the whole history before it.
/// </summary>
/// <param name="Sequence">The zero-based position in the ledger.</param>
/// <param name="Epoch">The reward epoch the entry belongs to (non-decreasing along the ledger).</param>
/// <param name="PreviousHash">The hash of the previous entry (32 zero bytes for the first).</param>
/// <param name="Hash">This entry's hash.</param>
/// <param name="Payload">The entry's content (a <see cref="SignedReceipt"/> in Borsh).</param>
public sealed record LedgerEntry(long Sequence, long Epoch, byte[] PreviousHash, byte[] Hash, byte[] Payload)
{
    /// <summary>The size of entry hashes in bytes.</summary>
    public const int HashSize = 32;

    private static readonly byte[] Domain = Encoding.ASCII.GetBytes("nearml/ledger/entry/v1");

    /// <summary>Gets the previous hash of the first entry: 32 zero bytes.</summary>
    public static ReadOnlySpan<byte> GenesisHash => new byte[HashSize];

    /// <summary>Computes an entry hash.</summary>
    /// <param name="sequence">The entry's position.</param>
    /// <param name="epoch">The entry's epoch.</param>
    /// <param name="previousHash">The previous entry's hash.</param>
    /// <param name="payload">The payload.</param>
    /// <returns>The 32-byte hash.</returns>
    public static byte[] ComputeHash(long sequence, long epoch, ReadOnlySpan<byte> previousHash, ReadOnlySpan<byte> payload)
    {
        var hash = new byte[HashSize];
        ComputeHash(sequence, epoch, previousHash, payload, hash);
        return hash;
    }

    /// <summary>Computes an entry hash into <paramref name="destination"/> without allocating.</summary>
    /// <param name="sequence">The entry's position.</param>
    /// <param name="epoch">The entry's epoch.</param>
    /// <param name="previousHash">The previous entry's hash.</param>
    /// <param name="payload">The payload.</param>
    /// <param name="destination">32 bytes that receive the hash.</param>
    public static void ComputeHash(long sequence, long epoch, ReadOnlySpan<byte> previousHash, ReadOnlySpan<byte> payload, Span<byte> destination)
    {
        if (previousHash.Length != HashSize)
        {
            throw new ArgumentException($"previousHash must be {HashSize} bytes, got {previousHash.Length}.", nameof(previousHash));
        }

        // One-shot SHA-256 over a contiguous buffer: no per-entry hasher object on the hot path.
        int total = Domain.Length + 8 + 8 + HashSize + 4 + payload.Length;
        byte[]? rented = null;
        Span<byte> buf = total <= 1024 ? stackalloc byte[1024] : (rented = ArrayPool<byte>.Shared.Rent(total));
        try
        {
            Domain.CopyTo(buf);
            Span<byte> header = buf[Domain.Length..];
            BinaryPrimitives.WriteInt64LittleEndian(header, sequence);
            BinaryPrimitives.WriteInt64LittleEndian(header[8..], epoch);
            previousHash.CopyTo(header[16..]);
            BinaryPrimitives.WriteInt32LittleEndian(header[(16 + HashSize)..], payload.Length);
            payload.CopyTo(header[(20 + HashSize)..]);
            SHA256.HashData(buf[..total], destination);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    /// <summary>Returns whether <see cref="Hash"/> matches the entry's content.</summary>
    /// <returns><see langword="true"/> when consistent.</returns>
    public bool IsSelfConsistent()
    {
        Span<byte> h = stackalloc byte[HashSize];
        ComputeHash(Sequence, Epoch, PreviousHash, Payload, h);
        return h.SequenceEqual(Hash);
    }
}

/// <summary>The end of the ledger: how many entries it holds and the last entry's hash and epoch.</summary>
/// <param name="Count">The number of entries.</param>
/// <param name="LastHash">The last entry's hash (32 zero bytes when empty).</param>
/// <param name="LastEpoch">The last entry's epoch (-1 when empty).</param>
public sealed record LedgerHead(long Count, byte[] LastHash, long LastEpoch)
{
    /// <summary>Gets the head of an empty ledger.</summary>
    public static LedgerHead Empty { get; } = new(0, new byte[LedgerEntry.HashSize], -1);

    /// <summary>Returns whether two heads name the same ledger state.</summary>
    /// <param name="other">The other head.</param>
    /// <returns><see langword="true"/> when count, hash and epoch agree.</returns>
    public bool SameAs(LedgerHead other) =>
        other is not null && Count == other.Count && LastEpoch == other.LastEpoch && LastHash.AsSpan().SequenceEqual(other.LastHash);
}
