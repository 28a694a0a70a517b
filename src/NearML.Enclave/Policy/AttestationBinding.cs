using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace NearML.Enclave;

/// <summary>
/// Binds evidence to a session: the 64-byte report data is SHA-512 over the worker's identity public key, the verifier's
/// fresh nonce and a context label, each preceded by its length as a 32-bit little-endian integer (so no two different
/// inputs can concatenate to the same bytes). The verifier recomputes it from what it expects.
/// </summary>
public static class AttestationBinding
{
    /// <summary>Length of TEE report data.</summary>
    public const int ReportDataLength = 64;

    /// <summary>Computes the report data.</summary>
    /// <param name="identityPublicKey">The worker's identity public key (encoded as the caller's protocol encodes it, e.g. SubjectPublicKeyInfo).</param>
    /// <param name="nonce">The verifier's nonce.</param>
    /// <param name="contextLabel">A label naming the protocol and purpose, e.g. <c>"nearml/worker-admission/v1"</c>.</param>
    /// <returns>64 bytes.</returns>
    public static byte[] ComputeReportData(ReadOnlySpan<byte> identityPublicKey, ReadOnlySpan<byte> nonce, string contextLabel)
    {
        byte[] result = new byte[ReportDataLength];
        ComputeReportData(identityPublicKey, nonce, contextLabel, result);
        return result;
    }

    /// <summary>Computes the report data into a caller buffer.</summary>
    /// <param name="identityPublicKey">The worker's identity public key.</param>
    /// <param name="nonce">The verifier's nonce.</param>
    /// <param name="contextLabel">The context label.</param>
    /// <param name="destination">At least 64 bytes.</param>
    public static void ComputeReportData(ReadOnlySpan<byte> identityPublicKey, ReadOnlySpan<byte> nonce, string contextLabel, Span<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(contextLabel);
        ArgumentOutOfRangeException.ThrowIfLessThan(destination.Length, ReportDataLength, nameof(destination));
        if (identityPublicKey.IsEmpty)
        {
            throw new ArgumentException("the identity public key is empty", nameof(identityPublicKey));
        }

        if (nonce.IsEmpty)
        {
            throw new ArgumentException("the nonce is empty", nameof(nonce));
        }

        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA512);
        Span<byte> len = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(len, identityPublicKey.Length);
        h.AppendData(len);
        h.AppendData(identityPublicKey);
        BinaryPrimitives.WriteInt32LittleEndian(len, nonce.Length);
        h.AppendData(len);
        h.AppendData(nonce);
        byte[] label = Encoding.UTF8.GetBytes(contextLabel);
        BinaryPrimitives.WriteInt32LittleEndian(len, label.Length);
        h.AppendData(len);
        h.AppendData(label);
        h.GetHashAndReset(destination);
    }
}

/// <summary>Why a nonce was or was not accepted.</summary>
public enum NonceStatus
{
    /// <summary>Issued by this store, unexpired, first use.</summary>
    Valid,

    /// <summary>Never issued by this store.</summary>
    Unknown,

    /// <summary>Issued, but its lifetime has passed.</summary>
    Expired,

    /// <summary>Already consumed: the evidence is a replay.</summary>
    Replayed,
}

/// <summary>
/// Issues single-use verifier nonces with an expiry and consumes them, distinguishing unknown, expired and replayed nonces.
/// Time comes from an injected <see cref="TimeProvider"/>. Thread-safe. A nonce is remembered for two lifetimes (so a late
/// or replayed answer is reported as such) and then forgotten: every <see cref="Issue"/> and <see cref="Consume"/> prunes
/// the forgotten ones at most once per quarter lifetime, so memory is bounded by the issue rate × 2¼ lifetimes.
/// </summary>
public sealed class AttestationNonceStore
{
    private readonly TimeProvider _time;
    private readonly TimeSpan _lifetime;
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();
    private DateTimeOffset _nextPrune = DateTimeOffset.MinValue;

    /// <summary>Initializes a store.</summary>
    /// <param name="timeProvider">The clock.</param>
    /// <param name="lifetime">How long an issued nonce stays valid (consumed nonces are remembered as long, to report replays).</param>
    public AttestationNonceStore(TimeProvider timeProvider, TimeSpan lifetime)
    {
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(lifetime, TimeSpan.Zero);
        _time = timeProvider;
        _lifetime = lifetime;
    }

    /// <summary>Gets the number of nonces currently remembered (for tests and metrics).</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>Issues a fresh 32-byte nonce from the CSPRNG.</summary>
    /// <returns>The nonce.</returns>
    public byte[] Issue()
    {
        byte[] nonce = RandomNumberGenerator.GetBytes(32);
        DateTimeOffset now = _time.GetUtcNow();
        lock (_lock)
        {
            Prune(now);
            _entries[Convert.ToHexString(nonce)] = new Entry(now + _lifetime, false);
        }

        return nonce;
    }

    /// <summary>Consumes a nonce: only the first use of an unexpired, issued nonce is <see cref="NonceStatus.Valid"/>.</summary>
    /// <param name="nonce">The nonce the evidence claims to answer.</param>
    /// <returns>The status.</returns>
    public NonceStatus Consume(ReadOnlySpan<byte> nonce)
    {
        string key = Convert.ToHexString(nonce);
        DateTimeOffset now = _time.GetUtcNow();
        lock (_lock)
        {
            Prune(now);
            if (!_entries.TryGetValue(key, out Entry e))
            {
                return NonceStatus.Unknown;
            }

            if (e.Consumed)
            {
                return NonceStatus.Replayed;
            }

            if (now >= e.Expires)
            {
                return NonceStatus.Expired;
            }

            _entries[key] = e with { Consumed = true };
            return NonceStatus.Valid;
        }
    }

    /// <summary>Forgets the nonces whose lifetime ended a lifetime ago (at most once per quarter lifetime; lock held).</summary>
    private void Prune(DateTimeOffset now)
    {
        if (now < _nextPrune)
        {
            return;
        }

        _nextPrune = now + (_lifetime / 4);
        foreach (KeyValuePair<string, Entry> kv in _entries)
        {
            if (now >= kv.Value.Expires + _lifetime)
            {
                _entries.Remove(kv.Key);
            }
        }
    }

    private readonly record struct Entry(DateTimeOffset Expires, bool Consumed);
}
