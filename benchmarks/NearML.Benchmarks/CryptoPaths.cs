using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using NearML.Core.Crypto.Internal;
using NSec.Cryptography;
using CoreEd25519 = NearML.Core.Crypto.Ed25519;
using CoreX25519 = NearML.Core.Crypto.X25519;

namespace NearML.Benchmarks;

/// <summary>
/// ed25519 / X25519 paths side by side (issue 15 §4): OpenSSL EVP (NearML's native path), BouncyCastle (the managed
/// fallback), NSec 26.4 (its public API over libsodium 1.0.22), libsodium called directly (NearML.Core's path since
/// this measurement), and NearML's AVX-512
/// X25519 batch. Cells run in the same process, alternating path by path, <c>--runs</c> times; the table shows the
/// median of the runs in ops/s by wall clock and by this thread's CPU time (getrusage(RUSAGE_THREAD)), and the
/// bytes allocated per op. Wall-clock figures depend on the machine's load (printed); CPU-time figures much less.
/// Usage: <c>dotnet run -c Release --project benchmarks/NearML.Benchmarks -- crypto [--runs 3] [--seconds 0.3]</c>.
/// </summary>
internal static partial class CryptoPaths
{
    private const int Batch = 8;

    public static int Run(string[] args)
    {
        int runs = 3;
        double seconds = 0.3;
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--runs": runs = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--seconds": seconds = double.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
            }
        }

        if (!Sodium.IsAvailable)
        {
            Console.Error.WriteLine("libsodium did not load (or NEARML_ED25519_MANAGED=1)");
            return 1;
        }

        var rng = new Random(7);
        byte[] seed = Bytes(rng, 32), pub = CoreEd25519.GetPublicKey(seed);
        byte[] msg64 = Bytes(rng, 64), msg1k = Bytes(rng, 1024);
        byte[] sig64 = CoreEd25519.Sign(seed, msg64), sig1k = CoreEd25519.Sign(seed, msg1k);
        byte[] sig = new byte[64], pkOut = new byte[32];
        byte[] sodiumSk = [.. seed, .. pub]; // libsodium's 64-byte secret key: seed ‖ public key
        var ed = SignatureAlgorithm.Ed25519;
        var keyParams = new KeyCreationParameters { ExportPolicy = KeyExportPolicies.None };
        using var nsecKey = Key.Import(ed, seed, KeyBlobFormat.RawPrivateKey, keyParams);

        byte[] xsk = new byte[32], xpeerSk = new byte[32], xpk = new byte[32], secret = new byte[32];
        CoreX25519.GeneratePrivateKey(xsk);
        CoreX25519.GeneratePrivateKey(xpeerSk);
        CoreX25519.GetPublicKey(xpeerSk, xpk);
        var xa = KeyAgreementAlgorithm.X25519;
        using var nsecXKey = Key.Import(xa, xsk, KeyBlobFormat.RawPrivateKey, keyParams);
        byte[] bsk = Bytes(rng, Batch * 32), bpk = new byte[Batch * 32], bout = new byte[Batch * 32];
        var bok = new bool[Batch];
        for (int i = 0; i < Batch; i++)
        {
            CoreX25519.GetPublicKey(Bytes(rng, 32), bpk.AsSpan(i * 32, 32));
        }

        bool ossl = OpenSslCurve25519.IsAvailable;
        var cells = new List<(string Op, string Path, Action Body)>();
        void Add(string op, string path, Action body) => cells.Add((op, path, body));

        // Cross-check before timing: every path gives the same bytes.
        Check(ed, keyParams, seed, pub, msg64, xsk, xpk, bsk, bpk);

        if (ossl) Add("ed25519 keygen", "openssl", () => OpenSslCurve25519.TryGetPublicKey(false, seed, pkOut));
        Add("ed25519 keygen", "bouncycastle", () => CoreEd25519.Managed.GetPublicKey(seed, pkOut));
        Add("ed25519 keygen", "nsec", () => { using var k = Key.Import(ed, seed, KeyBlobFormat.RawPrivateKey, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.None }); k.PublicKey.Export(KeyBlobFormat.RawPublicKey); });
        Add("ed25519 keygen", "libsodium", () => Sodium.SeedKeypair(seed, pkOut, sodiumSk));
        foreach (var (name, m, s) in new[] { ("64 B", msg64, sig64), ("1 KiB", msg1k, sig1k) })
        {
            if (ossl) Add($"ed25519 sign {name}", "openssl", () => OpenSslCurve25519.TrySign(seed, m, sig));
            Add($"ed25519 sign {name}", "bouncycastle", () => CoreEd25519.Managed.Sign(seed, m, sig));
            Add($"ed25519 sign {name}", "nsec", () => ed.Sign(nsecKey, m, sig));
            Add($"ed25519 sign {name}", "libsodium", () => Sodium.Sign(sodiumSk, m, sig));
            if (ossl) Add($"ed25519 verify {name}", "openssl", () => OpenSslCurve25519.Verify(pub, m, s));
            Add($"ed25519 verify {name}", "bouncycastle", () => CoreEd25519.Managed.Verify(pub, m, s));
            Add($"ed25519 verify {name}", "nsec", () => ed.Verify(NSec.Cryptography.PublicKey.Import(ed, pub, KeyBlobFormat.RawPublicKey), m, s));
            Add($"ed25519 verify {name}", "libsodium", () => Sodium.Verify(pub, m, s));
        }

        if (ossl) Add("x25519 agree", "openssl", () => OpenSslCurve25519.Agree(xsk, xpk, secret));
        Add("x25519 agree", "bouncycastle", () => CoreX25519.Managed.TryAgree(xsk, xpk, secret));
        Add("x25519 agree", "nsec", () => { using var s = xa.Agree(nsecXKey, NSec.Cryptography.PublicKey.Import(xa, xpk, KeyBlobFormat.RawPublicKey)); });
        Add("x25519 agree", "libsodium", () => Sodium.ScalarMult(xsk, xpk, secret));
        if (X25519Batch.IsSupported) Add("x25519 agree ×8", "avx512 batch", () => X25519Batch.ScalarMult(bsk, bpk, bout, bok));
        if (ossl) Add("x25519 agree ×8", "openssl", () => { for (int i = 0; i < Batch; i++) OpenSslCurve25519.Agree(bsk.AsSpan(i * 32, 32), bpk.AsSpan(i * 32, 32), bout.AsSpan(i * 32, 32)); });
        Add("x25519 agree ×8", "bouncycastle", () => { for (int i = 0; i < Batch; i++) CoreX25519.Managed.TryAgree(bsk.AsSpan(i * 32, 32), bpk.AsSpan(i * 32, 32), bout.AsSpan(i * 32, 32)); });
        Add("x25519 agree ×8", "libsodium", () => { for (int i = 0; i < Batch; i++) Sodium.ScalarMult(bsk.AsSpan(i * 32, 32), bpk.AsSpan(i * 32, 32), bout.AsSpan(i * 32, 32)); });

        foreach (var c in cells)
        {
            for (int i = 0; i < 200; i++) c.Body(); // warm-up, tiered JIT
        }

        var results = cells.Select(_ => new List<(double Wall, double Cpu, double Bytes)>()).ToArray();
        for (int r = 0; r < runs; r++)
        {
            for (int i = 0; i < cells.Count; i++)
            {
                results[i].Add(Measure(cells[i].Body, seconds));
            }
        }

        Console.WriteLine($"# crypto paths: {Environment.ProcessorCount} cores, {RuntimeInformation.OSArchitecture}, AVX-512 {X25519Batch.IsSupported}, openssl {ossl}, runs {runs} × {seconds} s, load average {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine("| operation | path | ops/s (wall, median) | ops/s (thread CPU, median) | allocated B/op |");
        Console.WriteLine("|---|---|---:|---:|---:|");
        for (int i = 0; i < cells.Count; i++)
        {
            double wall = Median(results[i].Select(x => x.Wall)), cpu = Median(results[i].Select(x => x.Cpu)), bytes = Median(results[i].Select(x => x.Bytes));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {cells[i].Op} | {cells[i].Path} | {wall:N0} | {cpu:N0} | {bytes:N0} |"));
        }

        return 0;
    }

    private static (double Wall, double Cpu, double Bytes) Measure(Action body, double seconds)
    {
        long ops = 0;
        long allocated0 = GC.GetAllocatedBytesForCurrentThread();
        double cpu0 = ThreadCpuSeconds();
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            for (int i = 0; i < 20; i++)
            {
                body();
            }

            ops += 20;
        }

        double wall = sw.Elapsed.TotalSeconds, cpu = ThreadCpuSeconds() - cpu0;
        long allocated = GC.GetAllocatedBytesForCurrentThread() - allocated0;
        return (ops / wall, ops / Math.Max(cpu, 1e-6), (double)allocated / ops);
    }

    private static double Median(IEnumerable<double> values)
    {
        var v = values.Order().ToArray();
        return v.Length % 2 == 1 ? v[v.Length / 2] : (v[(v.Length / 2) - 1] + v[v.Length / 2]) / 2;
    }

    private static byte[] Bytes(Random rng, int n)
    {
        var b = new byte[n];
        rng.NextBytes(b);
        return b;
    }

    private static void Check(SignatureAlgorithm ed, KeyCreationParameters keyParams, byte[] seed, byte[] pub, byte[] msg, byte[] xsk, byte[] xpk, byte[] bsk, byte[] bpk)
    {
        var a = new byte[64];
        var b = new byte[64];
        CoreEd25519.Managed.Sign(seed, msg, a);
        using (var k = Key.Import(ed, seed, KeyBlobFormat.RawPrivateKey, keyParams))
        {
            ed.Sign(k, msg, b);
        }

        Require(a.AsSpan().SequenceEqual(b) && (!OpenSslCurve25519.IsAvailable || (OpenSslCurve25519.TrySign(seed, msg, b) && a.AsSpan().SequenceEqual(b))), "ed25519 signatures differ between paths");
        Require(Sodium.Verify(pub, msg, a) && CoreEd25519.Managed.Verify(pub, msg, a), "ed25519 verify disagrees");
        var s1 = new byte[32];
        var s2 = new byte[32];
        CoreX25519.Managed.TryAgree(xsk, xpk, s1);
        Sodium.ScalarMult(xsk, xpk, s2);
        Require(s1.AsSpan().SequenceEqual(s2), "x25519 secrets differ between BouncyCastle and libsodium");
        if (X25519Batch.IsSupported)
        {
            var outs = new byte[Batch * 32];
            X25519Batch.ScalarMult(bsk, bpk, outs, new bool[Batch]);
            CoreX25519.Managed.TryAgree(bsk.AsSpan(0, 32), bpk.AsSpan(0, 32), s1);
            Require(outs.AsSpan(0, 32).SequenceEqual(s1), "x25519 batch differs from BouncyCastle");
        }
    }

    private static void Require(bool condition, string what)
    {
        if (!condition)
        {
            throw new InvalidOperationException(what);
        }
    }

    private static double ThreadCpuSeconds()
    {
        // struct rusage begins with ru_utime and ru_stime (timeval: 64-bit seconds, 64-bit microseconds on Linux x64).
        Span<long> usage = stackalloc long[18];
        if (Native.getrusage(1 /* RUSAGE_THREAD */, ref MemoryMarshal.GetReference(usage)) != 0)
        {
            return 0;
        }

        return usage[0] + (usage[1] / 1e6) + usage[2] + (usage[3] / 1e6);
    }

    private static partial class Native
    {
        [LibraryImport("libc")]
        public static partial int getrusage(int who, ref long usage);
    }
}
