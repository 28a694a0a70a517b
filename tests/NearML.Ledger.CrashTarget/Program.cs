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

        LedgerHead head = ledger.AppendBatch(start / (batchSize * 4), batch);
        Console.WriteLine($"committed {head.Count}");
        Console.Out.Flush();
    }
}

// Usage: settle <endpoint> <store-path> <crash-at-step|-1>   settles epoch 1 (fixed payouts) as payer.testnet via ft_transfer
// and anchors the root; SIGKILLs itself at the given step number (1-based count of settlement steps).
if (args.Length >= 4 && args[0] == "settle")
{
    int crashAt = int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture);
    int step = 0;
    using NearKeyPair payerKey = NearKeyPair.FromSeed(SHA256.HashData("crash-payer"u8));
    using NearCredentials payer = NearCredentials.FromSecretKey("payer.testnet", payerKey.ExportSecretKey());
    using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
    var client = new NearRpcClient(http, new NearRpcClientOptions { Endpoint = new Uri(args[1]), MaxRetries = 2, RetryDelay = TimeSpan.FromMilliseconds(20) });
    using var store = new SettlementStore(args[2]);
    var options = new SettlementOptions
    {
        TokenContract = "token.testnet",
        AnchorContract = "anchor.testnet",
        MaxTransfersPerTransaction = 3,
        OnStep = (s, slot) =>
        {
            step++;
            Console.WriteLine($"step {step} {s} slot {slot}");
            Console.Out.Flush();
            if (step == crashAt)
            {
                System.Diagnostics.Process.GetCurrentProcess().Kill(); // SIGKILL: no finally, no flush, no dispose
            }
        },
    };
    var settler = new NearSettler(client, store, payer, options);
    try
    {
        SettlementResult result = await settler.SettleAsync(1, CrashReceipts.Root, CrashReceipts.Payouts);
        Console.WriteLine($"settled {result.Settled} steps {step}");
        return 0;
    }
    catch (SettlementException ex)
    {
        Console.WriteLine($"unsettled transient={ex.IsTransient}: {ex.Message}");
        return 3;
    }
}

Console.Error.WriteLine("usage: ledger <db-path> <batch-size> | settle <endpoint> <store-path> <crash-at-step>");
return 2;

internal static class CrashReceipts
{
    public static readonly byte[] Root = SHA256.HashData("crash-epoch-root"u8);

    public static readonly WorkerPayout[] Payouts = Enumerable.Range(0, 7)
        .Select(i => new WorkerPayout($"w{i}.testnet", (ulong)(i + 1), (UInt128)(1000 * (i + 1))))
        .ToArray();

    public static ContributionReceipt Receipt(long k) =>
        new("crash-job", k, $"w{k % 7}.testnet", (ulong)k + 1, 0, 1, 10, AttestationVerdict.Verified,
            SHA256.HashData(BitConverter.GetBytes(k)), 1_700_000_000_000 + k);
}
