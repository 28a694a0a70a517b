// One command, a whole NearML cluster on this machine:
//   dotnet run -c Release --project samples/NearML.Samples.LocalCluster
// starts a coordinator and N workers (each its own generic host, in this process) talking over loopback TLS, trains
// Fashion-MNIST with DiLoCo, shows live progress and ends with a summary. See docs/readme-hosting.md.
using System.CommandLine;
using NearML.Samples;
using NearML.Samples.LocalCluster;

PlainConsole.Configure();

var workers = new Option<int>("--workers") { Description = "Number of workers", DefaultValueFactory = _ => 4 };
var rounds = new Option<int>("--rounds") { Description = "Outer (DiLoCo) rounds", DefaultValueFactory = _ => 10 };
var steps = new Option<int>("--steps") { Description = "Inner steps per round (H)", DefaultValueFactory = _ => 100 };
var model = new Option<string>("--model") { Description = "Model: mlp or cnn", DefaultValueFactory = _ => "mlp" };
model.AcceptOnlyFromAmong("mlp", "cnn");
var data = new Option<string?>("--data") { Description = "Fashion-MNIST folder (default: $FASHION_MNIST_DIR, else /usr/share/datasets/fashion-mnist when installed, else the subset shipped next to this program)" };
var dataDir = new Option<string>("--state") { Description = "Cluster state folder (SQLite, checkpoints, ledger, keys)", DefaultValueFactory = _ => "nearml-data" };
var secure = new Option<bool>("--secure") { Description = "Secure aggregation (SecAgg+): the coordinator learns only the sum of updates" };
var fresh = new Option<bool>("--fresh") { Description = "Delete the cluster state folder first (otherwise a finished job is reported, an unfinished one resumes)" };
var encoding = new Option<string>("--encoding", "--compression") { Description = "Update encoding (--compression: deprecated alias)", DefaultValueFactory = _ => "int8" };
encoding.AcceptOnlyFromAmong("int8", "int4", "fp16", "fp32");
var plain = new Option<bool>("--plain") { Description = "No live display: one line per round (also used when output is redirected)" };
var dashboardPort = new Option<int>("--dashboard-port") { Description = "Port of the live dashboard on 127.0.0.1 (0: a free port)", DefaultValueFactory = _ => 5080 };
var noDashboard = new Option<bool>("--no-dashboard") { Description = "Do not serve the live dashboard" };
var settlementKey = new Option<string?>("--settlement-key") { Description = "Payer key file (ed25519:<base58>) that signs the dry-run settlement (default: a key generated once in the coordinator's state folder, settlement-payer.key; never the ledger key)", HelpName = "FILE" };

var root = new RootCommand("NearML local cluster: a coordinator and N workers on loopback training Fashion-MNIST with DiLoCo.")
{
    workers, rounds, steps, model, data, dataDir, secure, fresh, encoding, plain, dashboardPort, noDashboard, settlementKey,
};
root.SetAction(async (parse, cancellationToken) =>
{
    SampleCommandLine.WarnDeprecatedAlias(parse, encoding, "--compression");
    var settings = new ClusterSettings
    {
        Workers = parse.GetValue(workers),
        Rounds = parse.GetValue(rounds),
        InnerSteps = parse.GetValue(steps),
        Model = parse.GetValue(model)!,
        DatasetDirectory = parse.GetValue(data),
        StateDirectory = Path.GetFullPath(parse.GetValue(dataDir)!),
        Secure = parse.GetValue(secure),
        Fresh = parse.GetValue(fresh),
        UpdateEncoding = parse.GetValue(encoding)!,
        Plain = parse.GetValue(plain) || Console.IsOutputRedirected,
        DashboardPort = parse.GetValue(noDashboard) ? null : parse.GetValue(dashboardPort),
        SettlementKeyPath = parse.GetValue(settlementKey) is { } key ? Path.GetFullPath(key) : null,
    };
    return await ClusterRunner.RunAsync(settings, cancellationToken).ConfigureAwait(false);
});

// Ctrl+C cancels the token; the runner then stops the workers and the coordinator (up to 20 s each).
return await SampleCommandLine.RunAsync(root, args, TimeSpan.FromSeconds(60)).ConfigureAwait(false);
