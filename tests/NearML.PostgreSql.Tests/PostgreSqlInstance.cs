using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace NearML.PostgreSql.Tests;

/// <summary>
/// One real PostgreSQL server in a temporary data directory: Debian's <c>initdb</c> and <c>pg_ctl</c> (found under
/// <c>/usr/lib/postgresql/*/bin</c>, or <c>NEARML_PG_BIN</c>) on a free loopback port. PostgreSQL refuses to run as root,
/// so under root the server runs as the <c>postgres</c> system user (or <c>nobody</c>) through <c>runuser</c>.
/// Used by <see cref="PostgreSqlServer"/> (once per test run) and linked into the process tests (failover).
/// </summary>
internal sealed class PostgreSqlInstance : IDisposable
{
    private readonly string _root;
    private readonly string _bin;
    private readonly string? _runAs;

    private PostgreSqlInstance(string root, string bin, string? runAs, string connectionString)
    {
        _root = root;
        _bin = bin;
        _runAs = runAs;
        ConnectionString = connectionString;
    }

    /// <summary>Gets the connection string of the server's <c>postgres</c> database (superuser <c>nearml</c>, no password).</summary>
    public string ConnectionString { get; }

    /// <summary>Gets the server's log file.</summary>
    public string LogPath => Path.Combine(_root, "server.log");

    /// <summary>Finds the server binaries: <see langword="null"/> when PostgreSQL is not installed.</summary>
    public static string? FindBin()
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

    /// <summary>Creates and starts a server with the binaries in <paramref name="bin"/>.</summary>
    /// <exception cref="InvalidOperationException">It did not start; the message holds the server's log.</exception>
    public static PostgreSqlInstance Start(string bin)
    {
        var runAs = Environment.UserName == "root" ? (UserExists("postgres") ? "postgres" : "nobody") : null;
        var root = Path.Combine(Path.GetTempPath(), $"nearml-pg-{Guid.NewGuid():N}");
        Directory.CreateDirectory(root);
        try
        {
            if (runAs is not null)
            {
                Run("chown", [runAs, root]);
            }

            var data = Path.Combine(root, "data");
            var port = FreePort();
            Pg(bin, runAs, "initdb", ["-D", data, "-A", "trust", "-U", "nearml", "-E", "UTF8", "--no-sync", "--no-instructions"]);
            Pg(bin, runAs, "pg_ctl", ["-D", data, "-l", Path.Combine(root, "server.log"), "-w", "-t", "60", "-o",
                $"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200", "start"]);
            var connectionString = $"Host=127.0.0.1;Port={port};Username=nearml;Database=postgres;Pooling=true;Maximum Pool Size=50;Timeout=30;Command Timeout=60";
            using (var conn = new NpgsqlConnection(connectionString))
            {
                conn.Open();
            }

            return new PostgreSqlInstance(root, bin, runAs, connectionString);
        }
        catch (Exception ex) when (ex is InvalidOperationException or IOException or NpgsqlException or System.ComponentModel.Win32Exception)
        {
            var log = Path.Combine(root, "server.log");
            throw new InvalidOperationException(
                $"the test PostgreSQL server did not start: {ex.Message}" + (File.Exists(log) ? "\n" + File.ReadAllText(log) : string.Empty), ex);
        }
    }

    /// <summary>Stops the server (fast shutdown: sessions are ended), keeping its data for <see cref="StartAgain"/>.</summary>
    public void StopServer()
    {
        Pg(_bin, _runAs, "pg_ctl", ["-D", Path.Combine(_root, "data"), "-m", "fast", "-w", "stop"]);
    }

    /// <summary>Starts the server again on its port after <see cref="StopServer"/>.</summary>
    public void StartAgain()
    {
        var port = new NpgsqlConnectionStringBuilder(ConnectionString).Port;
        Pg(_bin, _runAs, "pg_ctl", ["-D", Path.Combine(_root, "data"), "-l", Path.Combine(_root, "server.log"), "-w", "-t", "60", "-o",
            $"-p {port} -k {_root} -c listen_addresses=127.0.0.1 -c max_connections=200", "start"]);
    }

    /// <summary>Runs SQL as the superuser.</summary>
    public void Execute(string sql)
    {
        using var conn = new NpgsqlConnection(ConnectionString);
        conn.Open();
        using var cmd = new NpgsqlCommand(sql, conn);
        cmd.ExecuteNonQuery();
    }

    /// <summary>Stops the server and deletes its folder.</summary>
    public void Dispose()
    {
        NpgsqlConnection.ClearAllPools();
        try
        {
            if (Directory.Exists(Path.Combine(_root, "data")))
            {
                Pg(_bin, _runAs, "pg_ctl", ["-D", Path.Combine(_root, "data"), "-m", "fast", "-w", "stop"]);
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

    private static void Pg(string bin, string? runAs, string tool, string[] args)
    {
        var exe = Path.Combine(bin, tool);
        if (runAs is null)
        {
            Run(exe, args);
        }
        else
        {
            Run("runuser", ["-u", runAs, "--", exe, .. args]);
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
