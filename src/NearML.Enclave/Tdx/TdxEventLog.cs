using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using NearML.Enclave.Internal;

namespace NearML.Enclave;

/// <summary>One measured event of a TDX event log.</summary>
/// <param name="MrIndex">The CC measurement register index as logged (0 = MRTD, 1..4 = RTMR0..3).</param>
/// <param name="EventType">The TCG event type (for example 0x80000001 EV_EFI_VARIABLE_DRIVER_CONFIG).</param>
/// <param name="Sha384Digest">The SHA-384 digest extended into the register (48 bytes).</param>
/// <param name="Data">The event data.</param>
/// <param name="Offset">Offset of the event in the log.</param>
public sealed record TdxEvent(uint MrIndex, uint EventType, ReadOnlyMemory<byte> Sha384Digest, ReadOnlyMemory<byte> Data, int Offset);

/// <summary>The ACPI CCEL table that locates a confidential-computing event log.</summary>
/// <param name="CcType">CC type (2 = TDX).</param>
/// <param name="CcSubtype">CC subtype.</param>
/// <param name="LogAreaMinimumLength">LAML: length of the log area.</param>
/// <param name="LogAreaStartAddress">LASA: guest physical address of the log area.</param>
/// <param name="OemId">The table's OEM id (for example "INTEL ").</param>
public sealed record CcelTable(byte CcType, byte CcSubtype, ulong LogAreaMinimumLength, ulong LogAreaStartAddress, string OemId)
{
    /// <summary>Parses the 56-byte table (for example <c>/sys/firmware/acpi/tables/CCEL</c>).</summary>
    /// <param name="table">The table bytes.</param>
    /// <returns>The parsed table.</returns>
    /// <exception cref="AttestationFormatException">The signature is not "CCEL", the length field is inconsistent or the checksum does not sum to zero.</exception>
    public static CcelTable Parse(ReadOnlySpan<byte> table)
    {
        const string W = "CCEL table";
        FieldReader.Require(table, 0, 56, W, "table");
        if (!table[..4].SequenceEqual("CCEL"u8))
        {
            throw new AttestationFormatException(W, "Signature", 0, $"is \"{Encoding.ASCII.GetString(table[..4])}\", expected \"CCEL\"");
        }

        uint len = BinaryPrimitives.ReadUInt32LittleEndian(table[4..]);
        if (len < 56 || len > table.Length)
        {
            throw new AttestationFormatException(W, "Length", 4, $"is {len} but {table.Length} bytes were given (minimum 56)");
        }

        // ACPI 6.5 §5.2.6 (System Description Table Header): all bytes of the table, checksum included, sum to zero.
        byte sum = 0;
        foreach (byte b in table[..(int)len])
        {
            sum += b;
        }

        if (sum != 0)
        {
            throw new AttestationFormatException(W, "Checksum", 9, $"the table's bytes sum to 0x{sum:x2}, not 0: the table is damaged");
        }

        return new CcelTable(table[36], table[37], BinaryPrimitives.ReadUInt64LittleEndian(table[40..]), BinaryPrimitives.ReadUInt64LittleEndian(table[48..]),
            Encoding.ASCII.GetString(table.Slice(10, 6)));
    }
}

/// <summary>
/// A TDX event log (TCG PC Client crypto-agile format, as exposed through the ACPI CCEL table) with SHA-384 digests,
/// replayable into RTMR0–3 and comparable with a quote.
/// </summary>
public sealed class TdxEventLog
{
    private const string W = "TCG event log";
    private const ushort Sha384AlgId = 0x000C;
    private const uint EvNoAction = 3;

    private TdxEventLog(List<TdxEvent> events, int length)
    {
        Events = events;
        Length = length;
    }

    /// <summary>Gets the measured events in log order (EV_NO_ACTION events excluded).</summary>
    public IReadOnlyList<TdxEvent> Events { get; }

    /// <summary>Gets the number of bytes of the log that hold events (the rest of the area is padding).</summary>
    public int Length { get; }

    /// <summary>Parses a log.</summary>
    /// <param name="log">The log area (trailing 0xFF or 0x00 padding is allowed).</param>
    /// <returns>The parsed log.</returns>
    /// <exception cref="AttestationFormatException">The header is not a crypto-agile Spec ID event, SHA-384 is not logged, or an event is truncated.</exception>
    public static TdxEventLog Parse(ReadOnlyMemory<byte> log)
    {
        ReadOnlySpan<byte> d = log.Span;
        // Legacy header event: pcrIndex, eventType, SHA-1 digest[20], eventSize, TCG_EfiSpecIDEvent.
        uint headerSize = FieldReader.U32(d, 28, W, "header.eventSize");
        FieldReader.Require(d, 32, (int)Math.Min(headerSize, int.MaxValue), W, "header.event");
        ReadOnlySpan<byte> spec = d.Slice(32, (int)headerSize);
        if (spec.Length < 29 || !spec[..16].SequenceEqual("Spec ID Event03\0"u8))
        {
            throw new AttestationFormatException(W, "header.signature", 32, "is not \"Spec ID Event03\": not a crypto-agile log");
        }

        uint algCount = FieldReader.U32(spec, 24, W, "header.numberOfAlgorithms");
        if (algCount is 0 or > 16)
        {
            throw new AttestationFormatException(W, "header.numberOfAlgorithms", 32 + 24, $"is {algCount}");
        }

        var sizes = new Dictionary<ushort, int>();
        for (int i = 0; i < algCount; i++)
        {
            int o = 28 + (4 * i);
            sizes[FieldReader.U16(spec, o, W, "header.algorithmId")] = FieldReader.U16(spec, o + 2, W, "header.digestSize");
        }

        if (!sizes.TryGetValue(Sha384AlgId, out int shaSize) || shaSize != 48)
        {
            throw new AttestationFormatException(W, "header.digestSizes", 32 + 28, "SHA-384 (algorithm 0x000C, 48 bytes) is not logged");
        }

        var events = new List<TdxEvent>();
        int pos = 32 + (int)headerSize;
        while (pos + 12 <= d.Length)
        {
            uint index = BinaryPrimitives.ReadUInt32LittleEndian(d[pos..]);
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(d[(pos + 4)..]);
            if (index == uint.MaxValue || (index == 0 && type == 0))
            {
                break; // padding after the last event
            }

            int start = pos;
            uint count = BinaryPrimitives.ReadUInt32LittleEndian(d[(pos + 8)..]);
            if (count == 0 || count > algCount)
            {
                throw new AttestationFormatException(W, "event.digests.count", pos + 8, $"is {count} (the header declares {algCount} algorithm(s))");
            }

            pos += 12;
            ReadOnlyMemory<byte> sha384 = default;
            for (int i = 0; i < count; i++)
            {
                ushort alg = FieldReader.U16(d, pos, W, "event.digest.algorithmId");
                if (!sizes.TryGetValue(alg, out int sz))
                {
                    throw new AttestationFormatException(W, "event.digest.algorithmId", pos, $"0x{alg:x4} is not declared in the header");
                }

                FieldReader.Require(d, pos + 2, sz, W, "event.digest");
                if (alg == Sha384AlgId)
                {
                    sha384 = log.Slice(pos + 2, sz);
                }

                pos += 2 + sz;
            }

            uint size = FieldReader.U32(d, pos, W, "event.eventSize");
            if (size > (uint)(d.Length - pos - 4))
            {
                throw new AttestationFormatException(W, "event.eventSize", pos, $"is {size} but only {d.Length - pos - 4} byte(s) remain");
            }

            ReadOnlyMemory<byte> data = log.Slice(pos + 4, (int)size);
            pos += 4 + (int)size;
            if (type == EvNoAction)
            {
                continue;
            }

            if (sha384.IsEmpty)
            {
                throw new AttestationFormatException(W, "event.digests", start, "measured event has no SHA-384 digest");
            }

            events.Add(new TdxEvent(index, type, sha384, data, start));
        }

        return new TdxEventLog(events, pos);
    }

    /// <summary>Replays the log: RTMR[i-1] = SHA-384(RTMR[i-1] ‖ digest) for every event with MR index i in 1..4.</summary>
    /// <returns>The four replayed RTMRs (48 bytes each).</returns>
    public byte[][] ReplayRtmrs()
    {
        byte[][] rtmr = [new byte[48], new byte[48], new byte[48], new byte[48]];
        Span<byte> buf = stackalloc byte[96];
        foreach (TdxEvent e in Events)
        {
            if (e.MrIndex is >= 1 and <= 4)
            {
                byte[] r = rtmr[e.MrIndex - 1];
                r.CopyTo(buf);
                e.Sha384Digest.Span.CopyTo(buf[48..]);
                SHA384.HashData(buf, r);
            }
        }

        return rtmr;
    }

    /// <summary>Replays the log and compares each RTMR with the quote's.</summary>
    /// <param name="quote">The quote whose RTMRs the log must explain.</param>
    /// <returns>One check per RTMR (<c>event-log.rtmr0</c> … <c>event-log.rtmr3</c>).</returns>
    public IReadOnlyList<AttestationCheck> CompareWithQuote(TdxQuote quote)
    {
        ArgumentNullException.ThrowIfNull(quote);
        byte[][] replayed = ReplayRtmrs();
        var checks = new List<AttestationCheck>(4);
        for (int i = 0; i < 4; i++)
        {
            bool eq = quote.Body.Rtmr(i).Span.SequenceEqual(replayed[i]);
            int n = Events.Count(e => e.MrIndex == i + 1);
            checks.Add(new AttestationCheck($"event-log.rtmr{i}", eq, eq
                ? $"{n} event(s) replay to the quote's RTMR{i}"
                : $"{n} event(s) replay to {Convert.ToHexString(replayed[i])}, quote has {Convert.ToHexString(quote.Body.Rtmr(i).Span)}"));
        }

        return checks;
    }
}
