using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using NearML.Hosting;
using NearML.Hosting.State;

namespace NearML.PostgreSql.Tests;

/// <summary>How the backend is chosen: SQLite unless <c>UsePostgreSql(…)</c>; bad settings are refused with the key named.</summary>
[TestClass]
public sealed class PostgreSqlRegistrationTests
{
    [TestMethod]
    public void Without_UsePostgreSql_the_coordinator_uses_SQLite_files()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddNearMLCoordinator(_ => { });
        using var sp = services.BuildServiceProvider();
        Assert.AreSame(SqliteStateBackend.Instance, sp.GetRequiredService<ICoordinatorStateBackend>());
    }

    [TestMethod]
    public void UsePostgreSql_binds_the_connection_string_and_schema_from_configuration()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["NearML:Coordinator:PostgreSql:ConnectionString"] = "Host=db.example;Port=6543;Database=jobs;Username=u",
            ["NearML:Coordinator:PostgreSql:Schema"] = "job_42",
        }).Build();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddNearMLCoordinator(_ => { }).UsePostgreSql(config.GetSection("NearML:Coordinator:PostgreSql"));
        using var sp = services.BuildServiceProvider();
        var backend = (PostgreSqlStateBackend)sp.GetRequiredService<ICoordinatorStateBackend>();
        Assert.AreEqual("job_42", backend.Schema);
        Assert.AreEqual("PostgreSQL db.example:6543/jobs schema job_42 (ledger, ledger_* tables)", backend.Describe("/x", StateStoreKind.Ledger));
    }

    [TestMethod]
    public void A_missing_connection_string_or_an_unsafe_schema_name_is_refused_with_the_reason()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => new PostgreSqlStateBackend(new PostgreSqlStateOptions()));
        StringAssert.Contains(ex.Message, "NearML:Coordinator:PostgreSql:ConnectionString");
        foreach (var schema in new[] { "", "Job", "1job", "job;drop table x", "a-b", new string('a', 64) })
        {
            Assert.Throws<ArgumentException>(() => new PostgreSqlStateBackend(new PostgreSqlStateOptions { ConnectionString = "Host=h", Schema = schema }), schema);
        }

        using var ok = new PostgreSqlStateBackend(new PostgreSqlStateOptions { ConnectionString = "Host=h", Schema = "_" + new string('a', 62) });
        Assert.AreEqual(63, ok.Schema.Length);
    }
}
