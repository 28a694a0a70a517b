using System.Security.Cryptography;

namespace NearML.Ledger.Tests;

internal static class TestData
{
    private static readonly Lazy<NearKeyPair> s_coordinator = new(() => NearKeyPair.FromSeed(SHA256.HashData("test-coordinator"u8)));
    private static readonly Lazy<NearKeyPair> s_worker = new(() => NearKeyPair.FromSeed(SHA256.HashData("test-worker"u8)));

    public static NearKeyPair Coordinator => s_coordinator.Value;

    public static NearKeyPair Worker => s_worker.Value;

    public static ContributionReceipt Receipt(int i, string? worker = null, ulong samples = 0, AttestationVerdict verdict = AttestationVerdict.Verified) =>
        new("job-7", i / 10, worker ?? $"worker{i % 5}.testnet", samples == 0 ? (ulong)(100 + i) : samples, (ulong)(1000 + i), 50, (ulong)(2000 + i),
            verdict, SHA256.HashData(BitConverter.GetBytes(i)), 1_760_000_000_000 + i);

    public static SignedReceipt Signed(int i, bool countersign = false)
    {
        SignedReceipt r = SignedReceipt.Sign(Receipt(i), Coordinator);
        return countersign ? r.Countersign(Worker) : r;
    }

    public static string TempFile(string name)
    {
        string dir = Path.Combine(Path.GetTempPath(), "nearml-ledger-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return Path.Combine(dir, name);
    }
}
