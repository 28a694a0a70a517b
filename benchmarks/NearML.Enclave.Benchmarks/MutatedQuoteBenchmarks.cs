using System.Diagnostics;
using BenchmarkDotNet.Attributes;

namespace NearML.Enclave.Benchmarks;

/// <summary>
/// Worst-case verification of hostile quotes: the dcap-qvl TDX quote (with its collateral, caches warm for the honest
/// quote) with one byte changed in a chosen region, a fresh change on every operation so no cache or memo can answer it.
/// Each region exercises one rejection path: a signed body byte (one P-256 verify), the attestation key (binding hash
/// only), the QE report (one verify), a certificate of the embedded PCK chain (parse one new certificate + at most one
/// verify; the root: fingerprint only), the PEM framing (parse error), a truncation (parse error).
/// Run: <c>dotnet run -c Release --project benchmarks/NearML.Enclave.Benchmarks -- --filter '*Mutated*' --job short --inProcess</c>.
/// </summary>
[MemoryDiagnoser]
public class MutatedQuoteBenchmarks
{
    private static readonly DateTimeOffset At = DateTimeOffset.Parse("2025-07-19T10:00:34Z", System.Globalization.CultureInfo.InvariantCulture);
    private readonly TdxQuoteVerifier _tdx = new();
    private byte[] _quote = [];
    private TdxCollateral _collateral = null!;
    private (int Start, int Length) _range;
    private int _counter;

    /// <summary>Gets or sets the region of the quote whose bytes are changed.</summary>
    [Params("body", "attestation-key", "qe-report", "pck-leaf", "pck-intermediate", "pck-root", "truncated")]
    public string Region { get; set; } = "body";

    [GlobalSetup]
    public void Setup()
    {
        _quote = File.ReadAllBytes(Path.Combine(Fixtures.Dir, "tdx", "phala-dcap-qvl_tdx_quote"));
        _collateral = TdxCollateral.FromDcapQvlJson(File.ReadAllBytes(Path.Combine(Fixtures.Dir, "tdx", "phala-dcap-qvl_tdx_quote_collateral.json")));
        if (!_tdx.Verify(TdxQuote.Parse(_quote), _collateral, At).IsValid)
        {
            throw new InvalidOperationException("the honest quote does not verify: the benchmark would measure the wrong path");
        }

        _range = Regions(_quote)[Region];
    }

    /// <summary>Verifies the quote with the next distinct one-byte change in <see cref="Region"/>.</summary>
    [Benchmark]
    public bool VerifyMutated() => VerifyVariant(_tdx, _quote, _collateral, _range, _counter++);

    internal static bool VerifyVariant(TdxQuoteVerifier tdx, byte[] quote, TdxCollateral collateral, (int Start, int Length) range, int n)
    {
        if (range.Length == 0)
        {
            // Truncation: a different length every time.
            try
            {
                return tdx.Verify(TdxQuote.Parse(quote.AsMemory(0, 48 + (n % (quote.Length - 600)))), collateral, At).IsValid;
            }
            catch (AttestationFormatException)
            {
                return false;
            }
        }

        int offset = range.Start + (n % range.Length);
        byte mask = (byte)(1 + ((n / range.Length) % 255));
        byte original = quote[offset];
        quote[offset] ^= mask;
        try
        {
            return tdx.Verify(TdxQuote.Parse(quote), collateral, At).IsValid;
        }
        catch (AttestationFormatException)
        {
            return false;
        }
        finally
        {
            quote[offset] = original;
        }
    }

    /// <summary>Byte ranges of the regions in a quote with an embedded PCK chain (type 6 → type 5).</summary>
    internal static Dictionary<string, (int Start, int Length)> Regions(byte[] quote)
    {
        TdxQuote q = TdxQuote.Parse(quote);
        int sig = q.SignedRegion.Length + 4; // the signature data follows its u32 length
        byte[] span = quote;
        int pem = span.AsSpan().IndexOf("-----BEGIN CERTIFICATE-----"u8);
        int Block(int i)
        {
            int at = pem;
            for (int k = 0; k < i; k++)
            {
                at += span.AsSpan(at + 1).IndexOf("-----BEGIN CERTIFICATE-----"u8) + 1;
            }

            return at;
        }

        (int, int) Body(int i)
        {
            int start = Block(i) + 28;
            int end = start + span.AsSpan(start).IndexOf("-----END CERTIFICATE-----"u8);
            return (start + 64, end - start - 128); // inside the base64, away from the framing
        }

        return new Dictionary<string, (int, int)>(StringComparer.Ordinal)
        {
            ["body"] = (48, q.SignedRegion.Length - 48),
            ["attestation-key"] = (sig + 64, 64),
            ["qe-report"] = (sig + 128 + 6, 384),
            ["pck-leaf"] = Body(0),
            ["pck-intermediate"] = Body(1),
            ["pck-root"] = Body(2),
            ["truncated"] = (0, 0),
        };
    }

    /// <summary>
    /// The quick harness' scan: every byte of the quote changed (XOR 0x01, then XOR 0x80), each verification timed;
    /// prints mean, p99 and the maximum per region, and the slowest variant overall.
    /// </summary>
    internal static void Scan()
    {
        var tdx = new TdxQuoteVerifier();
        byte[] quote = File.ReadAllBytes(Path.Combine(Fixtures.Dir, "tdx", "phala-dcap-qvl_tdx_quote"));
        TdxCollateral collateral = TdxCollateral.FromDcapQvlJson(File.ReadAllBytes(Path.Combine(Fixtures.Dir, "tdx", "phala-dcap-qvl_tdx_quote_collateral.json")));
        tdx.Verify(TdxQuote.Parse(quote), collateral, At);
        TdxQuote q = TdxQuote.Parse(quote);
        int sig = q.SignedRegion.Length + 4; // the signature data follows its u32 length
        int pem = quote.AsSpan().IndexOf("-----BEGIN CERTIFICATE-----"u8);
        string RegionOf(int o) => o < 48 ? "header" : o < q.SignedRegion.Length ? "body" : o < sig ? "sig-data-len" : o < sig + 64 ? "quote-signature"
            : o < sig + 128 ? "attestation-key" : o < sig + 134 ? "cert-data-header" : o < sig + 134 + 384 ? "qe-report" : o < pem ? "qe-sig/auth/header"
            : o < quote.Length - q.TrailingByteCount ? "pck-chain-pem" : "trailing";
        var times = new Dictionary<string, List<double>>(StringComparer.Ordinal);
        double worst = 0;
        string worstWhat = "-";
        foreach (byte mask in new byte[] { 0x01, 0x80 })
        {
            for (int i = 0; i < quote.Length; i++)
            {
                quote[i] ^= mask;
                long t0 = Stopwatch.GetTimestamp();
                try
                {
                    tdx.Verify(TdxQuote.Parse(quote), collateral, At);
                }
                catch (AttestationFormatException)
                {
                }

                double us = Stopwatch.GetElapsedTime(t0).TotalMicroseconds;
                quote[i] ^= mask;
                string r = RegionOf(i);
                (times.TryGetValue(r, out var l) ? l : times[r] = []).Add(us);
                if (us > worst)
                {
                    worst = us;
                    worstWhat = $"byte 0x{i:X} ({r}) ^= 0x{mask:X2}";
                }
            }
        }

        Console.WriteLine($"{"region (every byte, XOR 0x01 and 0x80)",-42} {"variants",8} {"mean µs",9} {"p99 µs",9} {"max µs",9}");
        foreach ((string r, List<double> l) in times.OrderBy(kv => kv.Value.Average()))
        {
            l.Sort();
            Console.WriteLine($"{r,-42} {l.Count,8} {l.Average(),9:F1} {l[(int)(0.99 * (l.Count - 1))],9:F1} {l[^1],9:F1}");
        }

        Console.WriteLine($"slowest variant: {worst:F1} µs for {worstWhat}");
    }
}
