using System.Diagnostics;
using System.Security.Cryptography;
using NearML.Aggregation.Internal;

namespace NearML.Aggregation.Benchmarks;

/// <summary>
/// Per-operation cost of each primitive on one thread (wall and process CPU µs), to see where a round's time goes:
/// `micro`. Cheap enough to run under load; the CPU column is the one to trust then.
/// </summary>
internal static class Micro
{
    public static int Run()
    {
        Console.WriteLine($"# {Environment.ProcessorCount} cores, load {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
        Console.WriteLine("| operation | wall µs/op | CPU µs/op |");
        Console.WriteLine("|---|---|---|");
        var (a, _) = KeyAgreement.Generate();
        var (_, bpk) = KeyAgreement.Generate();
        var secret = new byte[32];
        Time("X25519 agreement (NearML.Core: OpenSSL, else BouncyCastle)", 400, () => KeyAgreement.TryAgree(a, bpk, secret));
        Time("X25519 key generation", 400, () => KeyAgreement.Generate());
        if (Core.Crypto.X25519.BatchWidth == 8)
        {
            var batchScalars = new byte[8 * 32];
            var batchPoints = new byte[8 * 32];
            for (int i = 0; i < 8; i++)
            {
                a.CopyTo(batchScalars, i * 32);
                bpk.CopyTo(batchPoints, i * 32);
            }

            var batchOut = new byte[8 * 32];
            var batchOk = new bool[8];
            Time("X25519 batch of 8 agreements (AVX-512)", 100, () => Core.Crypto.X25519.AgreeMany(batchScalars, batchPoints, batchOut, batchOk));
        }
        var cfg = new Session(AggregationRound.CreateConfig("bench", 1, Core.Contracts.Aggregation.AggregationProtocol.SecaggPlus, 100, 100_001, 15));
        Time("HKDF pairwise mask key", 4000, () => Protocol.PairwiseMaskKey(cfg, secret, 3, 7));
        var key = Protocol.PairwiseMaskKey(cfg, secret, 3, 7);
        Time("MaskPrg key schedule", 4000, () => GC.KeepAlive(new MaskPrg(key)));
        var prg = new MaskPrg(key);
        var acc = new uint[100_001];
        Time("MaskPrg apply 100,001 elements", 400, () => prg.Apply(acc, 0, subtract: false));
        var gcmKey = RandomNumberGenerator.GetBytes(32);
        var aad = Protocol.ShareAad(cfg, 3, 7);
        var pt = new byte[80];
        var ct = ShareCipher.Encrypt(gcmKey, aad, pt);
        Time("AES-GCM share encrypt", 4000, () => ShareCipher.Encrypt(gcmKey, aad, pt));
        Time("AES-GCM share decrypt", 4000, () => ShareCipher.TryDecrypt(gcmKey, aad, ct, pt));
        var xs = Enumerable.Range(1, 16).Select(i => (ulong)i).ToArray();
        Time("Shamir split 6-of-16", 2000, () => Shamir.Split(secret, 6, xs));
        var shares = Shamir.Split(secret, 6, xs);
        var lambda = Shamir.LagrangeAtZero(xs.AsSpan(0, 6));
        Time("Shamir Lagrange (t = 6)", 2000, () => Shamir.LagrangeAtZero(xs.AsSpan(0, 6)));
        Time("Shamir reconstruct (t = 6)", 20000, () => Shamir.TryReconstruct(shares, lambda, secret));
        var values = new uint[100_001];
        new Random(1).NextBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
        var packed = new byte[RingPacking.PackedLength(values.Length, 15)];
        Time("pack 100,001 × 15 bits", 400, () => RingPacking.Pack(values, 15, packed));
        Time("unpack-add 100,001 × 15 bits", 400, () => RingPacking.UnpackAdd(packed, 15, acc));
        Time("SHA-256 of a packed input", 400, () => SHA256.HashData(packed));
        return 0;
    }

    private static void Time(string name, int iterations, Action action)
    {
        for (int i = 0; i < Math.Max(10, iterations / 10); i++)
        {
            action();
        }

        double cpu0 = Process.GetCurrentProcess().TotalProcessorTime.TotalMicroseconds;
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < iterations; i++)
        {
            action();
        }

        double wall = sw.Elapsed.TotalMicroseconds / iterations;
        double cpu = (Process.GetCurrentProcess().TotalProcessorTime.TotalMicroseconds - cpu0) / iterations;
        Console.WriteLine($"| {name} | {wall:F2} | {cpu:F2} |");
    }
}
