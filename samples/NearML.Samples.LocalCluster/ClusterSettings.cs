namespace NearML.Samples.LocalCluster;

/// <summary>What the local cluster runs (from the command line).</summary>
internal sealed class ClusterSettings
{
    public int Workers { get; init; } = 4;

    public int Rounds { get; init; } = 10;

    public int InnerSteps { get; init; } = 100;

    public string Model { get; init; } = "mlp";

    public string? DatasetDirectory { get; init; }

    public string StateDirectory { get; init; } = Path.GetFullPath("nearml-data");

    public bool Secure { get; init; }

    public bool Fresh { get; init; }

    public string UpdateEncoding { get; init; } = "int8";

    public bool Plain { get; init; }

    /// <summary>Gets the payer key file that signs the dry-run settlement, or null for the generated one.</summary>
    public string? SettlementKeyPath { get; init; }

    /// <summary>Gets the dashboard's port on 127.0.0.1 (0: any free port), or null for none.</summary>
    public int? DashboardPort { get; init; } = 5080;

    public string CoordinatorDirectory => Path.Combine(StateDirectory, "coordinator");

    public string WorkerDirectory(int index) => Path.Combine(StateDirectory, WorkerId(index));

    public static string WorkerId(int index) => $"worker-{index + 1}";
}
