using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using NearML.Hosting;
using NearML.Hosting.State;

namespace NearML.PostgreSql;

/// <summary>Puts the coordinator's state in PostgreSQL: <c>services.AddNearMLCoordinator(…).UsePostgreSql(…)</c>.</summary>
public static class PostgreSqlCoordinatorBuilderExtensions
{
    /// <summary>Keeps the coordinator state, ledger and settlement stores in PostgreSQL instead of SQLite files.</summary>
    /// <param name="builder">The coordinator builder.</param>
    /// <param name="connectionString">The Npgsql connection string.</param>
    /// <param name="schema">The schema for this job's tables.</param>
    /// <returns>The builder.</returns>
    public static NearMLCoordinatorBuilder UsePostgreSql(this NearMLCoordinatorBuilder builder, string connectionString, string schema = PostgreSqlStateOptions.DefaultSchema)
    {
        ArgumentException.ThrowIfNullOrEmpty(connectionString);
        ArgumentException.ThrowIfNullOrEmpty(schema);
        return builder.UsePostgreSql(o =>
        {
            o.ConnectionString = connectionString;
            o.Schema = schema;
        });
    }

    /// <summary>Keeps the coordinator's stores in PostgreSQL, configured by a delegate.</summary>
    /// <param name="builder">The coordinator builder.</param>
    /// <param name="configure">Sets the connection string and schema.</param>
    /// <returns>The builder.</returns>
    public static NearMLCoordinatorBuilder UsePostgreSql(this NearMLCoordinatorBuilder builder, Action<PostgreSqlStateOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        builder.Services.AddOptions<PostgreSqlStateOptions>().Configure(configure);
        return Register(builder);
    }

    /// <summary>Keeps the coordinator's stores in PostgreSQL, configured from a section (conventionally <c>NearML:Coordinator:PostgreSql</c> with <c>ConnectionString</c> and <c>Schema</c>).</summary>
    /// <param name="builder">The coordinator builder.</param>
    /// <param name="configuration">The section.</param>
    /// <returns>The builder.</returns>
    public static NearMLCoordinatorBuilder UsePostgreSql(this NearMLCoordinatorBuilder builder, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configuration);
        builder.Services.AddOptions<PostgreSqlStateOptions>().Bind(configuration);
        return Register(builder);
    }

    private static NearMLCoordinatorBuilder Register(NearMLCoordinatorBuilder builder)
    {
        builder.Services.TryAddSingleton(sp => new PostgreSqlStateBackend(sp.GetRequiredService<IOptions<PostgreSqlStateOptions>>().Value));
        builder.Services.Replace(ServiceDescriptor.Singleton<ICoordinatorStateBackend>(sp => sp.GetRequiredService<PostgreSqlStateBackend>()));
        return builder;
    }
}
