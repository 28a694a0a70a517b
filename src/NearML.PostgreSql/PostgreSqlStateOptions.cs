namespace NearML.PostgreSql;

/// <summary>
/// Where a coordinator keeps its state in PostgreSQL (bound from <c>NearML:Coordinator:PostgreSql</c> by the hosts
/// that use <see cref="PostgreSqlCoordinatorBuilderExtensions.UsePostgreSql(NearML.Hosting.NearMLCoordinatorBuilder, Microsoft.Extensions.Configuration.IConfiguration)"/>).
/// </summary>
public sealed class PostgreSqlStateOptions
{
    /// <summary>The schema used when none is given.</summary>
    public const string DefaultSchema = "nearml";

    /// <summary>Gets or sets the Npgsql connection string (<c>Host=…;Port=…;Database=…;Username=…;Password=…</c>).</summary>
    /// <value>The default value is <see langword="null"/>: required.</value>
    public string? ConnectionString { get; set; }

    /// <summary>Gets or sets the schema that holds this job's tables (one schema per job; created if missing).</summary>
    /// <value>The default value is <c>nearml</c>.</value>
    public string Schema { get; set; } = DefaultSchema;

    /// <summary>
    /// Gets or sets how often the coordinator that holds the lease (a session-level advisory lock on a dedicated
    /// connection; docs/failover.md) checks that its session still holds it; when the check fails the coordinator stops.
    /// </summary>
    /// <value>The default value is 1 second.</value>
    public TimeSpan LeaseCheckInterval { get; set; } = TimeSpan.FromSeconds(1);
}
