using BenchmarkDotNet.Attributes;
using NearML.Enclave;

namespace NearML.Enclave.Benchmarks;

/// <summary>
/// Full offline verification of real evidence with warm caches (verifiers, collateral and certificates built once):
/// the dcap-qvl TDX quote with its collateral, and virtee's Milan SNP report with its VCEK and ASK/ARK. Plus parsing alone.
/// Run: <c>dotnet run -c Release --project benchmarks/NearML.Enclave.Benchmarks -- --filter '*' --job short</c>.
/// </summary>
[MemoryDiagnoser]
public class VerificationBenchmarks
{
    private static readonly DateTimeOffset TdxAt = DateTimeOffset.Parse("2025-07-19T10:00:34Z", System.Globalization.CultureInfo.InvariantCulture);
    private static readonly DateTimeOffset SnpAt = DateTimeOffset.Parse("2024-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
    private byte[] _quote = [];
    private byte[] _report = [];
    private TdxCollateral _collateral = null!;
    private SnpCertificates _certs = null!;
    private readonly TdxQuoteVerifier _tdx = new();
    private readonly SnpReportVerifier _snp = new();

    [GlobalSetup]
    public void Setup()
    {
        string dir = Fixtures.Dir;
        _quote = File.ReadAllBytes(Path.Combine(dir, "tdx", "phala-dcap-qvl_tdx_quote"));
        _collateral = TdxCollateral.FromDcapQvlJson(File.ReadAllBytes(Path.Combine(dir, "tdx", "phala-dcap-qvl_tdx_quote_collateral.json")));
        _report = File.ReadAllBytes(Path.Combine(dir, "snp", "virtee-sev_report_milan.bin"));
        _certs = SnpCertificates.Parse(File.ReadAllBytes(Path.Combine(dir, "snp", "virtee-sev_vcek_milan.der")), File.ReadAllBytes(Path.Combine(dir, "snp", "go-sev-guest_ask_ark_milan.pem")));
        if (!TdxFull().IsValid || !SnpFull().IsValid)
        {
            throw new InvalidOperationException("fixture evidence does not verify: the benchmark would measure a failure path");
        }
    }

    [Benchmark]
    public TdxVerificationResult TdxFull() => _tdx.Verify(TdxQuote.Parse(_quote), _collateral, TdxAt);

    [Benchmark]
    public TdxVerificationResult TdxEvidenceOnly() => _tdx.Verify(TdxQuote.Parse(_quote), null, TdxAt);

    [Benchmark]
    public SnpVerificationResult SnpFull() => _snp.Verify(SnpReport.Parse(_report), _certs, SnpAt);

    [Benchmark]
    public TdxQuote TdxParse() => TdxQuote.Parse(_quote);

    [Benchmark]
    public SnpReport SnpParse() => SnpReport.Parse(_report);
}

internal static class Fixtures
{
    public static string Dir
    {
        get
        {
            foreach (string start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
            {
                for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
                {
                    string c = Path.Combine(d.FullName, "shared", "fixtures", "attestation");
                    if (Directory.Exists(c))
                    {
                        return c;
                    }
                }
            }

            throw new DirectoryNotFoundException("shared/fixtures/attestation not found above the benchmark or current directory");
        }
    }
}
