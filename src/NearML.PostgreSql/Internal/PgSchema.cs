using System.Globalization;
using System.Text.RegularExpressions;
using Npgsql;

namespace NearML.PostgreSql.Internal;

/// <summary>A validated schema name on a data source, with the helpers every PostgreSQL store shares.</summary>
internal sealed partial class PgSchema
{
    public PgSchema(NpgsqlDataSource dataSource, string schema)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentException.ThrowIfNullOrEmpty(schema);
        if (!SchemaName().IsMatch(schema))
        {
            throw new ArgumentException($"'{schema}' is not a valid schema name: use 1–63 lowercase letters, digits and underscores, starting with a letter or underscore.", nameof(schema));
        }

        DataSource = dataSource;
        Name = schema;
        var csb = new NpgsqlConnectionStringBuilder(dataSource.ConnectionString);
        Server = string.Create(CultureInfo.InvariantCulture, $"PostgreSQL {csb.Host}:{csb.Port}/{csb.Database}");
    }

    public NpgsqlDataSource DataSource { get; }

    /// <summary>Gets the schema name (a plain identifier: safe to put in SQL text).</summary>
    public string Name { get; }

    /// <summary>Gets "PostgreSQL host:port/database".</summary>
    public string Server { get; }

    /// <summary>Describes tables of this schema for messages.</summary>
    public string Describe(string what) => $"{Server} schema {Name} ({what})";

    /// <summary>Whether a table of this schema exists (without creating anything).</summary>
    public bool TableExists(string table)
    {
        using var conn = DataSource.OpenConnection();
        using var cmd = new NpgsqlCommand("SELECT to_regclass($1) IS NOT NULL", conn);
        cmd.Parameters.AddWithValue(Name + "." + table);
        return (bool)cmd.ExecuteScalar()!;
    }

    /// <summary>
    /// Runs DDL once per schema at a time: concurrent <c>CREATE … IF NOT EXISTS</c> race in PostgreSQL, so creation is
    /// serialized by a transaction-scoped advisory lock keyed by the schema name.
    /// </summary>
    public void CreateTables(string ddl)
    {
        using var conn = DataSource.OpenConnection();
        using var tx = conn.BeginTransaction();
        using (var lockCmd = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtext('nearml-schema:' || $1))", conn, tx))
        {
            lockCmd.Parameters.AddWithValue(Name);
            lockCmd.ExecuteNonQuery();
        }

        using (var cmd = new NpgsqlCommand($"CREATE SCHEMA IF NOT EXISTS {Name};\nSET LOCAL search_path TO {Name};\n{ddl}", conn, tx))
        {
            cmd.ExecuteNonQuery();
        }

        tx.Commit();
    }

    /// <summary>Creates a command on an open connection whose SQL names tables as <c>{s}.table</c>.</summary>
    public NpgsqlCommand Command(NpgsqlConnection connection, string sql, NpgsqlTransaction? tx = null) =>
        new(sql.Replace("{s}", Name, StringComparison.Ordinal), connection, tx);

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,62}$", RegexOptions.CultureInvariant)]
    private static partial Regex SchemaName();
}
