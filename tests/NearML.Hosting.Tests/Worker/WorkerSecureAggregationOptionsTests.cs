using Microsoft.Extensions.Configuration;
using NearML.Hosting.Worker;

namespace NearML.Hosting.Tests.Worker;

/// <summary>The worker's secure-aggregation floor binds from configuration and is validated at start.</summary>
[TestClass]
public sealed class WorkerSecureAggregationOptionsTests
{
    [TestMethod]
    public void SecureAggregationMinimum_BindsFromConfiguration_AndDefaultsAreSafe()
    {
        var defaults = new NearMLWorkerOptions();
        Assert.AreEqual(2, defaults.SecureAggregationMinimum.MinimumThreshold);
        Assert.AreEqual(2, defaults.SecureAggregationMinimum.MinimumDegree);
        Assert.AreEqual(0.05, defaults.SecureAggregationMinimum.CorruptFraction);
        Assert.AreEqual(40, defaults.SecureAggregationMinimum.SecurityBits);

        var config = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["NearML:Worker:SecureAggregationMinimum:MinimumThreshold"] = "5",
                ["NearML:Worker:SecureAggregationMinimum:MinimumDegree"] = "8",
                ["NearML:Worker:SecureAggregationMinimum:CorruptFraction"] = "0.1",
                ["NearML:Worker:SecureAggregationMinimum:SecurityBits"] = "60",
            })
            .Build();
        var options = new NearMLWorkerOptions();
        config.GetSection(NearMLWorkerOptions.SectionName).Bind(options);
        Assert.AreEqual(5, options.SecureAggregationMinimum.MinimumThreshold);
        Assert.AreEqual(8, options.SecureAggregationMinimum.MinimumDegree);
        Assert.AreEqual(0.1, options.SecureAggregationMinimum.CorruptFraction);
        Assert.AreEqual(60, options.SecureAggregationMinimum.SecurityBits);
    }

    [TestMethod]
    public void InvalidFloor_FailsValidation_NamingTheSetting()
    {
        var options = new NearMLWorkerOptions { WorkerId = "w" };
        options.SecureAggregationMinimum.MinimumThreshold = 1;
        options.SecureAggregationMinimum.CorruptFraction = -0.5;
        var result = new NearMLWorkerOptionsValidator().Validate(null, options);
        Assert.IsTrue(result.Failed);
        StringAssert.Contains(result.FailureMessage, "NearML:Worker:SecureAggregationMinimum:MinimumThreshold must be at least 2; got 1.");
        StringAssert.Contains(result.FailureMessage, "NearML:Worker:SecureAggregationMinimum:CorruptFraction must be in [0, 1); got -0.5.");

        options.SecureAggregationMinimum = null!;
        StringAssert.Contains(new NearMLWorkerOptionsValidator().Validate(null, options).FailureMessage, "SecureAggregationMinimum is required");
    }
}
