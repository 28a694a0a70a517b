using Microsoft.Extensions.Hosting;

namespace NearML.Samples.LocalCluster;

/// <summary>
/// The cluster's hosts do not listen to Ctrl+C themselves (the default ConsoleLifetime of each would stop only its own
/// host, in no particular order): the command line's cancellation token is the one signal, and the runner stops the
/// workers first, then the coordinator.
/// </summary>
internal sealed class QuietLifetime : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
