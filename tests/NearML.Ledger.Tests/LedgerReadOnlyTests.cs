using System.Security.Cryptography;

namespace NearML.Ledger.Tests;

/// <summary><see cref="SqliteLedgerStore.OpenReadOnly"/>: verification beside a writer that changes no byte and creates no file.</summary>
[TestClass]
public sealed class LedgerReadOnlyTests
{
    // The database and its WAL byte for byte; the -shm file only by name (readers record their read marks in that shared
    // memory index by design: it holds no data and is rebuilt from the WAL).
    private static Dictionary<string, string> Snapshot(string path) =>
        Directory.GetFiles(Path.GetDirectoryName(path)!, Path.GetFileName(path) + "*")
            .ToDictionary(f => f, f => f.EndsWith("-shm", StringComparison.Ordinal) ? "shm" : Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));

    [TestMethod]
    public void A_missing_file_is_refused_and_not_created()
    {
        var path = TestData.TempFile("ledger.db");
        var ex = Assert.ThrowsExactly<LedgerStorageException>(() => SqliteLedgerStore.OpenReadOnly(path));
        Assert.AreEqual(Path.GetFullPath(path), ex.Path);
        Assert.IsFalse(File.Exists(path));
    }

    [TestMethod]
    public void Reading_and_verifying_change_no_byte_with_or_without_a_live_writer_and_append_is_refused()
    {
        var path = TestData.TempFile("ledger.db");
        var writer = ContributionLedger.OpenSqlite(path);
        writer.AppendBatch(0, [TestData.Signed(1), TestData.Signed(2)]);
        writer.AppendBatch(1, [TestData.Signed(3)]);
        foreach (var live in new[] { true, false })
        {
            if (!live)
            {
                writer.Dispose(); // the writer's close checkpoints; the reader then is the only connection
            }

            var before = Snapshot(path);
            using (var reader = new ContributionLedger(SqliteLedgerStore.OpenReadOnly(path)))
            {
                var result = reader.Verify();
                Assert.IsTrue(result.IsValid, result.Message);
                Assert.AreEqual(3L, result.EntriesChecked);
                Assert.IsTrue(reader.VerifySignatures().IsValid);
                Assert.AreEqual(3L, reader.Head.Count);
                var ex = Assert.ThrowsExactly<InvalidOperationException>(() => reader.AppendBatch(1, [TestData.Signed(4)]));
                StringAssert.Contains(ex.Message, "read-only");
            }

            var after = Snapshot(path);
            if (live)
            {
                CollectionAssert.AreEquivalent(before.ToList(), after.ToList(), "beside a live writer");
            }
            else
            {
                // Alone, SQLite's reader opens the WAL index (an empty -wal and a -shm appear: a read-only connection cannot
                // remove them); the database itself is unchanged and the WAL holds nothing.
                Assert.AreEqual(before[path], after[path], "ledger.db");
                Assert.IsTrue(after.Keys.All(f => f == path || f.EndsWith("-wal", StringComparison.Ordinal) || f.EndsWith("-shm", StringComparison.Ordinal)));
                Assert.IsTrue(!File.Exists(path + "-wal") || new FileInfo(path + "-wal").Length == 0, "the WAL is empty");
            }
        }
    }
}
