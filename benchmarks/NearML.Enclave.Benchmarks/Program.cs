using System.Diagnostics;
using BenchmarkDotNet.Running;
using NearML.Enclave.Benchmarks;

// BenchmarkDotNet suites: `dotnet run -c Release --project benchmarks/NearML.Enclave.Benchmarks -- --filter '*' --job short --inProcess`.
// Quick harness (no BenchmarkDotNet, steady-state mean and allocation per op): `... -- quick [iterations]`.
// Hostile quotes: `... -- mutated [iterations]` (one fresh byte change per op, per region) and `... -- scan` (every byte, timed).
if (args.Length > 0 && args[0] == "scan")
{
    MutatedQuoteBenchmarks.Scan();
    return;
}

if (args.Length > 0 && args[0] == "mutated")
{
    int n = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 200;
    var honest = new VerificationBenchmarks();
    honest.Setup();
    Measure("honest quote (baseline): TDX full verification", n, () => honest.TdxFull());
    foreach (string region in new[] { "body", "attestation-key", "qe-report", "pck-leaf", "pck-intermediate", "pck-root", "truncated" })
    {
        var m = new MutatedQuoteBenchmarks { Region = region };
        m.Setup();
        Measure($"mutated quote, one fresh byte change in: {region}", n, () => m.VerifyMutated());
    }

    return;
}

if (args.Length > 0 && args[0] == "quick")
{
    int n = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 500;
    var b = new VerificationBenchmarks();
    b.Setup();
    Measure("TDX full verification (dcap-qvl quote + collateral)", n, () => b.TdxFull());
    Measure("TDX evidence only (no collateral)", n, () => b.TdxEvidenceOnly());
    Measure("SNP full verification (virtee Milan report + VCEK/ASK/ARK)", n, () => b.SnpFull());
    // Reference points measured in the same run: the public-key operations a warm verification cannot avoid
    // (TDX: attestation-key import + two P-256 verifies; SNP: one P-384 verify).
    using var p256 = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
    using var p384 = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP384);
    byte[] msg = new byte[632];
    byte[] s256 = p256.SignData(msg, System.Security.Cryptography.HashAlgorithmName.SHA256);
    byte[] s384 = p384.SignData(msg, System.Security.Cryptography.HashAlgorithmName.SHA384);
    Measure("reference: one ECDSA P-256 verify", n, () => p256.VerifyData(msg, s256, System.Security.Cryptography.HashAlgorithmName.SHA256));
    Measure("reference: one ECDSA P-384 verify", n, () => p384.VerifyData(msg, s384, System.Security.Cryptography.HashAlgorithmName.SHA384));
    var q0 = NearML.Enclave.TdxQuote.Parse(File.ReadAllBytes(Path.Combine(Fixtures.Dir, "tdx", "phala-dcap-qvl_tdx_quote")));
    Measure("reference: import P-256 public key (x||y)", n, () =>
    {
        using var k = System.Security.Cryptography.ECDsa.Create(new System.Security.Cryptography.ECParameters
        {
            Curve = System.Security.Cryptography.ECCurve.NamedCurves.nistP256,
            Q = new System.Security.Cryptography.ECPoint { X = q0.AttestationKey.Span[..32].ToArray(), Y = q0.AttestationKey.Span[32..].ToArray() },
        });
        return k.KeySize;
    });
    Measure("TDX quote parse", n * 20, () => b.TdxParse());
    Measure("SNP report parse", n * 20, () => b.SnpParse());
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);

static void Measure(string name, int n, Func<object> op)
{
    for (int i = 0; i < Math.Max(10, n / 10); i++)
    {
        op();
    }

    double best = double.MaxValue;
    long alloc = 0;
    for (int round = 0; round < 5; round++)
    {
        long a0 = GC.GetAllocatedBytesForCurrentThread();
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < n; i++)
        {
            op();
        }

        sw.Stop();
        alloc = (GC.GetAllocatedBytesForCurrentThread() - a0) / n;
        best = Math.Min(best, sw.Elapsed.TotalMicroseconds / n);
    }

    Console.WriteLine($"{name,-62} best-of-5 mean {best,10:F1} µs/op  {alloc,7} B/op");
}
