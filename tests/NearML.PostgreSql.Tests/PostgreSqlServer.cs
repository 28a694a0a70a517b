using System.Globalization;
using Npgsql;

namespace NearML.PostgreSql.Tests;

/// <summary>
/// The real PostgreSQL server of this test run (<see cref="PostgreSqlInstance"/>): started once per run, stopped at the
/// end. When the binaries are absent the PostgreSQL cases report Inconclusive with the reason; when they are present but
/// the server does not start, they fail with the server's log.
/// </summary>
[TestClass]
public static class PostgreSqlServer
{
    private static PostgreSqlInstance? _instance;
    private static string? _unavailable;
    private static string? _startError;
    private static NpgsqlDataSource? _admin;
    private static int _schemas;

    /// <summary>Gets the connection string of the test server's <c>postgres</c> database.</summary>
    public static string ConnectionString { get; private set; } = string.Empty;

    [AssemblyInitialize]
    public static void Start(TestContext context)
    {
        var bin = PostgreSqlInstance.FindBin();
        if (bin is null)
        {
            _unavailable = "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin or NEARML_PG_BIN: install Debian's 'postgresql' package (.ci/run does).";
            return;
        }

        try
        {
            _instance = PostgreSqlInstance.Start(bin);
            ConnectionString = _instance.ConnectionString;
            _admin = NpgsqlDataSource.Create(ConnectionString);
        }
        catch (InvalidOperationException ex)
        {
            _startError = ex.Message;
        }
    }

    [AssemblyCleanup]
    public static void Stop()
    {
        _admin?.Dispose();
        _instance?.Dispose();
    }

    /// <summary>A fresh, empty schema name (each test gets its own: no test sees another's rows).</summary>
    /// <returns>The schema name.</returns>
    public static string NewSchema() => "t" + Interlocked.Increment(ref _schemas).ToString(CultureInfo.InvariantCulture) + "_" + Guid.NewGuid().ToString("N")[..8];

    /// <summary>A data source on the test server; reports Inconclusive when PostgreSQL is not installed.</summary>
    /// <returns>A new data source (dispose it).</returns>
    public static NpgsqlDataSource Open()
    {
        RequireServer();
        return NpgsqlDataSource.Create(ConnectionString);
    }

    /// <summary>Runs SQL on the test server as its superuser (to tamper with tables as an operator or attacker could).</summary>
    /// <param name="sql">The statement.</param>
    public static void Execute(string sql)
    {
        RequireServer();
        using var conn = _admin!.OpenConnection();
        using var cmd = new NpgsqlCommand(sql, conn);
        cmd.ExecuteNonQuery();
    }

    /// <summary>Reports Inconclusive when PostgreSQL is not installed, fails when it is but did not start.</summary>
    public static void RequireServer()
    {
        if (_unavailable is not null)
        {
            Assert.Inconclusive(_unavailable);
        }

        if (_startError is not null)
        {
            Assert.Fail(_startError);
        }
    }
}
