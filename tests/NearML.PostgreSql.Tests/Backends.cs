using Microsoft.Data.Sqlite;
using NearML.Hosting.State;
using NearML.Ledger;
using Npgsql;

namespace NearML.PostgreSql.Tests;

/// <summary>The backends every contract test runs against (one DataRow each).</summary>
public static class Backends
{
    public const string Sqlite = "sqlite";
    public const string PostgreSql = "postgresql";

    /// <summary>A fresh, empty store location of <paramref name="kind"/>; dispose it to clean up.</summary>
    public static TestBackend Create(string kind) => kind switch
    {
        Sqlite => new SqliteTestBackend(),
        PostgreSql => new PostgreSqlTestBackend(),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };
}

/// <summary>One empty location (a folder of SQLite files, or one PostgreSQL schema) and the means to open its stores twice (two processes).</summary>
public abstract class TestBackend : IDisposable
{
    protected TestBackend()
    {
        Folder = Path.Combine(Path.GetTempPath(), $"nearml-stores-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Folder);
    }

    /// <summary>Gets the state folder (checkpoint files, signing key; SQLite files).</summary>
    public string Folder { get; }

    /// <summary>Gets the backend the coordinator would use.</summary>
    public abstract ICoordinatorStateBackend StateBackend { get; }

    public ICoordinatorStateStore OpenState(string? folder = null) => StateBackend.OpenState(folder ?? Folder);

    public ILedgerStore OpenLedger() => StateBackend.OpenLedger(Folder);

    public ISettlementStore OpenSettlement() => StateBackend.OpenSettlement(Folder);

    /// <summary>Runs raw SQL against a store's database, as an operator (or attacker) with direct access could; table names are the SQLite ones and are mapped.</summary>
    public abstract void Tamper(StateStoreKind kind, string sql);

    public virtual void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(Folder, recursive: true);
        }
        catch (IOException)
        {
        }

        GC.SuppressFinalize(this);
    }
}

internal sealed class SqliteTestBackend : TestBackend
{
    public override ICoordinatorStateBackend StateBackend => SqliteStateBackend.Instance;

    public override void Tamper(StateStoreKind kind, string sql)
    {
        using var conn = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = StateBackend.Describe(Folder, kind), Pooling = false }.ToString());
        conn.Open();
        using var cmd = conn.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }
}

internal sealed class PostgreSqlTestBackend : TestBackend
{
    private readonly PostgreSqlStateBackend _backend;

    public PostgreSqlTestBackend()
    {
        PostgreSqlServer.RequireServer();
        Schema = PostgreSqlServer.NewSchema();
        _backend = new PostgreSqlStateBackend(new PostgreSqlStateOptions { ConnectionString = PostgreSqlServer.ConnectionString, Schema = Schema });
    }

    public string Schema { get; }

    public override ICoordinatorStateBackend StateBackend => _backend;

    public override void Tamper(StateStoreKind kind, string sql)
    {
        var prefix = kind switch { StateStoreKind.State => "coord_", StateStoreKind.Ledger => "ledger_", _ => "settlement_" };
        using var conn = _backend.DataSource.OpenConnection();
        using var cmd = new NpgsqlCommand($"SET search_path TO {Schema}; " + MapTables(sql, prefix), conn);
        cmd.ExecuteNonQuery();
    }

    public override void Dispose()
    {
        try
        {
            PostgreSqlServer.Execute($"DROP SCHEMA IF EXISTS {Schema} CASCADE");
        }
        catch (NpgsqlException)
        {
        }

        _backend.Dispose();
        base.Dispose();
    }

    private static string MapTables(string sql, string prefix)
    {
        foreach (var t in new[] { "entries", "epochs", "intents", "txs", "job", "rounds", "membership", "checkpoints", "settlements", "worker_keys" })
        {
            sql = System.Text.RegularExpressions.Regex.Replace(sql, $@"\b{t}\b", prefix + t);
        }

        return sql;
    }
}
