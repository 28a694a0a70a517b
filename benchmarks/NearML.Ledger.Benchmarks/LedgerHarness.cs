using System.Diagnostics;
using System.Security.Cryptography;

namespace NearML.Ledger.Benchmarks;

/// <summary>
/// Console harness for the ledger throughput targets (wall-clock, one run). Signing 1M receipts with BouncyCastle
/// would dominate the set-up, so <see cref="UniqueReceipts"/> distinct signed receipts are cycled to fill the ledger;
/// every entry still has its own sequence, chain hash and a valid signature.
/// </summary>
internal static class LedgerHarness
{
    private const int UniqueReceipts = 20_000;
    private const int BatchSize = 1000;
    private const int SignatureSample = 20_000;

    public static void Run(int entries)
    {
        Console.WriteLine($"entries={entries} batch={BatchSize} cores={Environment.ProcessorCount} load={LoadAverage()}");
        using NearKeyPair coordinator = NearKeyPair.FromSeed(SHA256.HashData("bench-coordinator"u8));
        using NearKeyPair worker = NearKeyPair.FromSeed(SHA256.HashData("bench-worker"u8));

        // Side-by-side ed25519 rates (a ratio survives a loaded machine better than absolute figures).
        {
            byte[] msg = SHA256.HashData("bench"u8);
            byte[] sig = coordinator.Sign(msg);
            byte[] seed = SHA256.HashData("bench-coordinator"u8);
            byte[] pub = coordinator.PublicKey.Bytes.ToArray();
            const int n = 2000;
            var t = Stopwatch.StartNew();
            for (int i = 0; i < n; i++)
            {
                coordinator.PublicKey.Verify(msg, sig);
            }

            double fastVerify = n / t.Elapsed.TotalSeconds;
            t.Restart();
            for (int i = 0; i < n; i++)
            {
                Org.BouncyCastle.Math.EC.Rfc8032.Ed25519.Verify(sig, 0, pub, 0, msg, 0, msg.Length);
            }

            double bcVerify = n / t.Elapsed.TotalSeconds;
            t.Restart();
            for (int i = 0; i < n; i++)
            {
                coordinator.Sign(msg);
            }

            double fastSign = n / t.Elapsed.TotalSeconds;
            t.Restart();
            var outSig = new byte[64];
            for (int i = 0; i < n; i++)
            {
                Org.BouncyCastle.Math.EC.Rfc8032.Ed25519.Sign(seed, 0, msg, 0, msg.Length, outSig, 0);
            }

            double bcSign = n / t.Elapsed.TotalSeconds;
            Console.WriteLine($"ed25519 single thread: NearML ({NearML.Core.Crypto.Ed25519.Implementation}) verify {fastVerify:N0}/s sign {fastSign:N0}/s; BouncyCastle verify {bcVerify:N0}/s sign {bcSign:N0}/s; speed-up verify x{fastVerify / bcVerify:F1} sign x{fastSign / bcSign:F1}");
        }

        var sw = Stopwatch.StartNew();
        var receipts = new SignedReceipt[Math.Min(UniqueReceipts, entries)];
        Parallel.For(0, receipts.Length, i =>
        {
            var r = new ContributionReceipt("bench-job", i / 64, $"worker{i % 64}.testnet", (ulong)(1000 + (i % 97)), (ulong)i, 50, 12_000,
                AttestationVerdict.Verified, SHA256.HashData(BitConverter.GetBytes(i)), 1_760_000_000_000 + i);
            SignedReceipt s = SignedReceipt.Sign(r, coordinator);
            receipts[i] = i % 2 == 0 ? s.Countersign(worker) : s;
        });
        sw.Stop();
        int signatures = receipts.Length + (receipts.Length + 1) / 2;
        Console.WriteLine($"sign ({NearML.Core.Crypto.Ed25519.Implementation} ed25519): {signatures} signatures in {sw.Elapsed.TotalSeconds:F2} s = {signatures / sw.Elapsed.TotalSeconds:N0}/s on {Environment.ProcessorCount} threads");

        string dir = Path.Combine(Path.GetTempPath(), "nearml-ledger-bench", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            foreach ((LedgerDurability durability, int count) in new[] { (LedgerDurability.Full, entries), (LedgerDurability.Normal, Math.Min(entries, 200_000)) })
            {
                string path = Path.Combine(dir, $"ledger-{durability}.db");
                using ContributionLedger ledger = ContributionLedger.OpenSqlite(path, durability);
                var batch = new SignedReceipt[BatchSize];
                sw.Restart();
                for (int b = 0; b < count; b += BatchSize)
                {
                    int n = Math.Min(BatchSize, count - b);
                    for (int j = 0; j < n; j++)
                    {
                        batch[j] = receipts[(b + j) % receipts.Length];
                    }

                    ledger.AppendBatch(b / 100_000, new ArraySegment<SignedReceipt>(batch, 0, n), verifySignatures: false);
                }

                sw.Stop();
                Console.WriteLine($"append ({durability}, batches of {BatchSize}, signatures checked upstream): {count / sw.Elapsed.TotalSeconds:N0} receipts/s ({count} in {sw.Elapsed.TotalSeconds:F2} s), file {new FileInfo(path).Length / 1e6:F0} MB");

                sw.Restart();
                LedgerVerificationResult chain = ledger.Verify();
                sw.Stop();
                Console.WriteLine($"verify chain ({durability}): {chain.EntriesChecked} entries, valid={chain.IsValid}, {sw.Elapsed.TotalSeconds:F2} s = {chain.EntriesChecked / sw.Elapsed.TotalSeconds:N0} entries/s");

                if (durability == LedgerDurability.Full)
                {
                    sw.Restart();
                    byte[] root = ledger.ComputeEpochRoot(0);
                    sw.Stop();
                    Console.WriteLine($"epoch 0 Merkle root over {Math.Min(count, 100_000)} entries: {sw.Elapsed.TotalMilliseconds:F0} ms");
                    sw.Restart();
                    ReceiptInclusionProof proof = ledger.CreateInclusionProof(Math.Min(count, 100_000) / 2);
                    bool ok = proof.Verify(root, coordinator.PublicKey);
                    sw.Stop();
                    Console.WriteLine($"inclusion proof ({proof.Path.Count} hashes) built and verified: {ok}, {sw.Elapsed.TotalMilliseconds:F0} ms");
                }
            }

            // Signature verification: measured on a sample ledger, extrapolated to the full size.
            string sigPath = Path.Combine(dir, "ledger-sig.db");
            using (ContributionLedger sigLedger = ContributionLedger.OpenSqlite(sigPath, LedgerDurability.Normal))
            {
                int sample = Math.Min(SignatureSample, receipts.Length);
                for (int b = 0; b < sample; b += BatchSize)
                {
                    sigLedger.AppendBatch(0, new ArraySegment<SignedReceipt>(receipts, b, Math.Min(BatchSize, sample - b)), verifySignatures: false);
                }

                sw.Restart();
                LedgerVerificationResult sigs = sigLedger.VerifySignatures(coordinator.PublicKey);
                sw.Stop();
                double perEntry = sw.Elapsed.TotalSeconds / sigs.EntriesChecked;
                Console.WriteLine($"verify signatures ({NearML.Core.Crypto.Ed25519.Implementation}, parallel on {Environment.ProcessorCount} threads): {sigs.EntriesChecked} entries (1.5 signatures each), valid={sigs.IsValid}, {sw.Elapsed.TotalSeconds:F2} s = {sigs.EntriesChecked / sw.Elapsed.TotalSeconds:N0} entries/s; 1,000,000 entries would take ~{perEntry * 1_000_000:F0} s");

                sw.Restart();
                int checkedCount = 0;
                for (int b = 0; b < 5 * BatchSize; b += BatchSize)
                {
                    sigLedger.AppendBatch(1, new ArraySegment<SignedReceipt>(receipts, b, BatchSize), verifySignatures: true);
                    checkedCount += BatchSize;
                }

                sw.Stop();
                Console.WriteLine($"append with per-receipt signature check: {checkedCount / sw.Elapsed.TotalSeconds:N0} receipts/s");
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static string LoadAverage()
    {
        try
        {
            return File.ReadAllText("/proc/loadavg").Split(' ')[0];
        }
        catch (IOException)
        {
            return "?";
        }
    }
}
