using Microsoft.Data.Sqlite;
using NearML.Core;
using NearML.Hosting.State;
using NearML.Ledger;

namespace NearML.Cli.Tests;

/// <summary>
/// A coordinator-like state folder made by the libraries themselves: a real <c>ledger.db</c> of signed receipts
/// (two epochs), a <c>coordinator.db</c> with the job, rounds, membership and a settlement record, and a real checkpoint
/// written by <see cref="CheckpointStore"/>.
/// </summary>
internal sealed class StateFolder : IDisposable
{
    public static readonly string[] Workers = ["alice.testnet", "bob.testnet", "carol.testnet"];

    private StateFolder(string root) => Root = root;

    public string Root { get; }

    public string LedgerPath => Path.Combine(Root, "ledger.db");

    public string CheckpointPath { get; private set; } = string.Empty;

    /// <summary>Entries per epoch.</summary>
    public const int PerEpoch = 6;

    public static async Task<StateFolder> CreateAsync()
    {
        var root = Path.Combine(Path.GetTempPath(), "nearml-cli-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(root);
        var folder = new StateFolder(root);
        using var coordinator = NearKeyPair.Generate();
        File.WriteAllText(Path.Combine(root, "ledger-signer.key"), coordinator.ExportSecretKey());
        using (var ledger = ContributionLedger.OpenSqlite(folder.LedgerPath))
        {
            for (long epoch = 0; epoch < 2; epoch++)
            {
                var batch = new List<SignedReceipt>();
                for (var i = 0; i < PerEpoch; i++)
                {
                    var round = epoch * 2 + i / Workers.Length;
                    var receipt = new ContributionReceipt("cli-job", round, Workers[i % Workers.Length], (ulong)(640 * (1 + i % Workers.Length)), 0, 10, 1234,
                        AttestationVerdict.Verified, System.Security.Cryptography.SHA256.HashData(BitConverter.GetBytes(epoch * 100 + i)), 1_700_000_000_000 + i);
                    batch.Add(SignedReceipt.Sign(receipt, coordinator));
                }

                ledger.AppendBatch(epoch, batch);
            }
        }

        using var state = new CoordinatorStateStore(Path.Combine(root, "coordinator.db"));
        state.EnsureJob("cli-job", "mlp", """{"hidden":8}""", "ab12", "rounds=4 H=10 batch=32 lr=0.001 wd=0.01 outer_lr=0.7 outer_momentum=0.9 compression=int8 seed=1 shards=4", 1_700_000_000_000);
        for (var r = 0; r < 3; r++)
        {
            state.RecordRound(new RoundRecord(r, r + 1, 3, 3, 0, 0.5 - r * 0.1, r == 2 ? 0.71 : null, 1000, 1_700_000_000_000 + r * 1000, 1_700_000_000_500 + r * 1000));
        }

        state.RecordMembership(1_700_000_000_000, "alice.testnet", "00", "join", 0, "admitted");
        state.RecordSettlement([new SettlementRecord(0, 0, 1, "HASH0", "alice.testnet", "5", true)]);
        var layout = new ParameterLayout([("w", new[] { 4, 3 }), ("b", new[] { 3 })]);
        var parameters = new ParameterSet(layout);
        var momentum = new ParameterSet(layout);
        for (var i = 0; i < parameters.Data.Length; i++)
        {
            parameters.Data[i] = i * 0.25f - 1;
            momentum.Data[i] = i * 0.01f;
        }

        await using (var checkpoints = new CheckpointStore(Path.Combine(root, "checkpoints"), state, "cli-job", 3, TimeProvider.System))
        {
            folder.CheckpointPath = checkpoints.Write(new CoordinatorCheckpoint(2, 3, parameters, momentum)).Path;
        }

        return folder;
    }

    /// <summary>Runs SQL on the ledger with the append-only triggers removed (what an attacker with file access can do).</summary>
    public void TamperLedger(string sql, Action<SqliteCommand>? bind = null)
    {
        using var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = LedgerPath, Pooling = false }.ToString());
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "DROP TRIGGER IF EXISTS entries_no_update; DROP TRIGGER IF EXISTS entries_no_delete; " + sql;
        bind?.Invoke(cmd);
        cmd.ExecuteNonQuery();
    }

    /// <summary>Reads one entry's payload.</summary>
    public byte[] Payload(long seq)
    {
        using var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = LedgerPath, Pooling = false }.ToString());
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT payload FROM entries WHERE seq = $s";
        cmd.Parameters.AddWithValue("$s", seq);
        return (byte[])cmd.ExecuteScalar()!;
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
