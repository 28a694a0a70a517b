using Microsoft.Data.Sqlite;

namespace NearML.Ledger.Tests;

/// <summary>SQLite errors of the ledger store surface as <see cref="LedgerStorageException"/> naming the file.</summary>
[TestClass]
public sealed class LedgerStorageErrorTests
{
    [TestMethod]
    public void A_file_that_is_not_a_database_is_named_in_the_error()
    {
        var path = TestData.TempFile("ledger.db");
        var garbage = new byte[8192];
        new Random(3).NextBytes(garbage);
        File.WriteAllBytes(path, garbage);
        var ex = Assert.ThrowsExactly<LedgerStorageException>(() => ContributionLedger.OpenSqlite(path));
        Assert.AreEqual(Path.GetFullPath(path), ex.Path);
        StringAssert.Contains(ex.Message, Path.GetFullPath(path));
        Assert.IsInstanceOfType<SqliteException>(ex.InnerException);
    }

    [TestMethod]
    public void Errors_after_opening_name_the_file_for_head_append_index_and_reads()
    {
        var path = TestData.TempFile("ledger.db");
        using var ledger = ContributionLedger.OpenSqlite(path);
        ledger.AppendBatch(0, [TestData.Signed(0)]);
        using (var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString()))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "DROP TABLE entries; DROP TABLE epochs;";
            cmd.ExecuteNonQuery();
        }

        foreach (var action in new Action[]
        {
            () => _ = ledger.Head,
            () => ledger.AppendBatch(0, [TestData.Signed(1)]),
            () => ledger.Store.GetEpochRange(0),
            () => ledger.Store.ListEpochs(),
            () => _ = ledger.Store.Read(0).Count(),
        })
        {
            var ex = Assert.ThrowsExactly<LedgerStorageException>(action);
            StringAssert.Contains(ex.Message, Path.GetFullPath(path));
        }
    }
}
