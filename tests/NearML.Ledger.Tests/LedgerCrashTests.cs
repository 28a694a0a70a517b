namespace NearML.Ledger.Tests;

[TestClass]
public sealed class LedgerCrashTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    [TestCategory("Slow")]
    public async Task Killed_writer_leaves_only_whole_batches()
    {
        const int batchSize = 50;
        string path = TestData.TempFile("crash.db");
        var rng = new Random(1234);
        long previous = 0;
        int grew = 0;
        for (int iteration = 0; iteration < 8; iteration++)
        {
            using System.Diagnostics.Process child = ChildProcess.Start("ledger", path, batchSize.ToString());
            await ChildProcess.WaitForLineAsync(child, "ready", TimeSpan.FromSeconds(120));
            // Let it commit at least one batch (the machine may be loaded), then kill at a random point of later batches.
            await ChildProcess.WaitForLineAsync(child, "committed", TimeSpan.FromSeconds(120));
            await Task.Delay(rng.Next(0, 400), TestContext.CancellationToken);
            ChildProcess.Kill(child);

            using ContributionLedger ledger = ContributionLedger.OpenSqlite(path);
            LedgerVerificationResult r = ledger.Verify();
            Assert.IsTrue(r.IsValid, $"iteration {iteration}: {r.Message}");
            long count = ledger.Head.Count;
            Assert.AreEqual(0, count % batchSize, $"iteration {iteration}: {count} entries is not a whole number of batches");
            Assert.IsGreaterThanOrEqualTo(previous, count);
            grew += count > previous ? 1 : 0;
            previous = count;

            // Entry k holds receipt k: nothing duplicated, skipped or half-written.
            foreach (LedgerEntry e in ledger.Store.Read(Math.Max(0, count - 3 * batchSize)))
            {
                SignedReceipt receipt = SignedReceipt.Parse(e.Payload);
                Assert.AreEqual(e.Sequence, receipt.Receipt.Round);
                Assert.IsTrue(receipt.Verify());
            }
        }

        Assert.AreEqual(8, grew, "the writer committed at least one batch in every iteration");
        using ContributionLedger final = ContributionLedger.OpenSqlite(path);
        Assert.IsTrue(final.VerifySignatures().IsValid);
    }
}
