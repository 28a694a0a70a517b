using System.Diagnostics;
using System.Security.Cryptography;
using NearML.Aggregation.Internal;

namespace NearML.Aggregation.Benchmarks;

internal static class KaProbe
{
    public static void Run()
    {
        var (a, apk) = KeyAgreement.Generate();
        var (b, bpk) = KeyAgreement.Generate();
        var s = new byte[32];
        for (int i = 0; i < 200; i++) KeyAgreement.TryAgree(a, bpk, s);
        var sw = Stopwatch.StartNew();
        int n = 2000;
        for (int i = 0; i < n; i++) KeyAgreement.TryAgree(a, bpk, s);
        Console.WriteLine($"X25519 (BouncyCastle): {n / sw.Elapsed.TotalSeconds:F0} agreements/s");

        using var e1 = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        using var e2 = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var pub = e2.PublicKey.ExportSubjectPublicKeyInfo();
        for (int i = 0; i < 100; i++) { using var p = ECDiffieHellman.Create(); p.ImportSubjectPublicKeyInfo(pub, out _); e1.DeriveRawSecretAgreement(p.PublicKey); }
        sw.Restart();
        for (int i = 0; i < n; i++) { using var p = ECDiffieHellman.Create(); p.ImportSubjectPublicKeyInfo(pub, out _); e1.DeriveRawSecretAgreement(p.PublicKey); }
        Console.WriteLine($"P-256 ECDH (.NET/OpenSSL, incl. peer key import): {n / sw.Elapsed.TotalSeconds:F0} agreements/s");
        sw.Restart();
        for (int i = 0; i < n; i++) e1.DeriveRawSecretAgreement(e2.PublicKey);
        Console.WriteLine($"P-256 ECDH (.NET/OpenSSL, key object reused): {n / sw.Elapsed.TotalSeconds:F0} agreements/s");
    }
}
