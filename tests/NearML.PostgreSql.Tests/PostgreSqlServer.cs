using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace NearML.PostgreSql.Tests;

/// <summary>
/// A real PostgreSQL server for the tests: Debian's <c>initdb</c> and <c>pg_ctl</c> (found under
/// <c>/usr/lib/postgresql/*/bin</c>, or <c>NEARML_PG_BIN</c>) start one in a temporary data directory on a free loopback
/// port, once per test run, and stop it at the end. PostgreSQL refuses to run as root, so under root the server runs as
/// the <c>postgres</c> system user (or <c>nobody</c>) through <c>runuser</c>. When the binaries are absent the
/// PostgreSQL cases report Inconclusive with the reason; when they are present but the server does not start, they fail
/// with the server's log.
/// </summary>
[TestClass]
public static class PostgreSqlServer
{
    private static string? _root;
    private static string? _bin;
    private static string? _runAs;
    private static string? _unavailable;
    private static string? _startError;
    private static NpgsqlDataSource? _admin;
    private static int _schemas;

    /// <summary>Gets the connection string of the test server's <c>postgres</c> database.</summary>
    public static string ConnectionString { get; private set; } = string.Empty;

    [AssemblyInitialize]
    public static void Start(TestContext context)
    {
        _bin = FindBin();
        if (_bin is null)
        {
            _unavailable = "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin or NEARML_PG_BIN: install Debian's 'postgresql' package (.ci/run does).";
            return;
        }

        try
        {
            _runAs = Environment.UserName == "root" ? (UserExists("postgres") ? "postgres" : "nobody") : null;
            _root = Path.Combine(Path.GetTempPath(), $"nearml-pg-{Guid.NewGuid():N}");
            Directory.CreateDirectory(_root);
            if (_runAs is not null)
            {
                Run("chown", [_runAs, _root]);
            }

            var data = Path.Combine(_root, "data");
            var port = FreePort();
            Pg("initdb", ["-D", data, "-A", "trust", "-U", "nearml", "-E", "UTF8", "--no-sync", "--no-instructions"]);
            Pg("pg_ctl", ["-D", data, "-l", Path.Combine(_root, "server.log"), "-w", "-t", "60", "-o",
                $"-p {port} -k {_root} -c listen_addresses=127.0.0.1 -c max_connections=200", "start"]);
            ConnectionString = $"Host=127.0.0.1;Port={port};Username=nearml;Database=postgres;Pooling=true;Maximum Pool Size=50;Timeout=30;Command Timeout=60";
            _admin = NpgsqlDataSource.Create(ConnectionString);
            using var conn = _admin.OpenConnection();
        }
        catch (Exception ex) when (ex is InvalidOperationException or IOException or NpgsqlException or System.ComponentModel.Win32Exception)
        {
            var log = _root is null ? null : Path.Combine(_root, "server.log");
            _startError = $"the test PostgreSQL server did not start: {ex.Message}" + (log is not null && File.Exists(log) ? "\n" + File.ReadAllText(log) : string.Empty);
        }
    }

    [AssemblyCleanup]
    public static void Stop()
    {
        _admin?.Dispose();
        NpgsqlConnection.ClearAllPools();
        if (_root is null || _bin is null)
        {
            return;
        }

        try
        {
            if (Directory.Exists(Path.Combine(_root, "data")))
            {
                Pg("pg_ctl", ["-D", Path.Combine(_root, "data"), "-m", "fast", "-w", "stop"]);
            }
        }
        catch (InvalidOperationException)
        {
        }

        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
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

    private static string? FindBin()
    {
        var env = Environment.GetEnvironmentVariable("NEARML_PG_BIN");
        if (!string.IsNullOrEmpty(env))
        {
            return File.Exists(Path.Combine(env, "initdb")) ? env : null;
        }

        if (!Directory.Exists("/usr/lib/postgresql"))
        {
            return null;
        }

        return Directory.EnumerateDirectories("/usr/lib/postgresql")
            .Select(d => (Version: int.TryParse(Path.GetFileName(d), NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : -1, Bin: Path.Combine(d, "bin")))
            .Where(x => x.Version > 0 && File.Exists(Path.Combine(x.Bin, "initdb")) && File.Exists(Path.Combine(x.Bin, "pg_ctl")))
            .OrderByDescending(x => x.Version)
            .Select(x => x.Bin)
            .FirstOrDefault();
    }

    private static bool UserExists(string user)
    {
        try
        {
            Run("id", ["-u", user]);
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private static void Pg(string tool, string[] args)
    {
        var exe = Path.Combine(_bin!, tool);
        if (_runAs is null)
        {
            Run(exe, args);
        }
        else
        {
            Run("runuser", ["-u", _runAs, "--", exe, .. args]);
        }
    }

    private static string Run(string file, string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = "/" };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"{file} did not start");
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(120_000))
        {
            p.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} did not finish in 120 s");
        }

        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} exited with {p.ExitCode}: {stderr.Result}{stdout}");
        }

        return stdout;
    }
}
