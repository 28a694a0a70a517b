using System.Security.Cryptography;
using NearML.Ledger;

// Usage: ledger <db-path> <batch-size>   appends batches forever (until killed); entry k holds receipt k.
if (args.Length >= 3 && args[0] == "ledger")
{
    string path = args[1];
    int batchSize = int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture);
    using NearKeyPair coordinator = NearKeyPair.FromSeed(SHA256.HashData("crash-coordinator"u8));
    using ContributionLedger ledger = ContributionLedger.OpenSqlite(path);
    Console.WriteLine("ready");
    Console.Out.Flush();
    while (true)
    {
        long start = ledger.Head.Count;
        var batch = new SignedReceipt[batchSize];
        for (int j = 0; j < batchSize; j++)
        {
            batch[j] = SignedReceipt.Sign(CrashReceipts.Receipt(start + j), coordinator);
        }

        ledger.AppendBatch(start / (batchSize * 4), batch);
    }
}

Console.Error.WriteLine("usage: ledger <db-path> <batch-size>");
return 2;

internal static class CrashReceipts
{
    public static ContributionReceipt Receipt(long k) =>
        new("crash-job", k, $"w{k % 7}.testnet", (ulong)k + 1, 0, 1, 10, AttestationVerdict.Verified,
            SHA256.HashData(BitConverter.GetBytes(k)), 1_700_000_000_000 + k);
}
