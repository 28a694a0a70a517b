using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using NearML.Hosting.Worker;

namespace NearML.Hosting.Tests.Worker;

/// <summary>A <see cref="WorkerService"/> started directly (no host), pointed at a <see cref="FakeCoordinator"/>, in a temp data folder.</summary>
internal sealed class WorkerTestHost : IAsyncDisposable
{
    private bool _stopped;

    public WorkerTestHost(FakeCoordinator coordinator, Action<NearMLWorkerOptions>? configure = null, TimeProvider? timeProvider = null)
    {
        DataDirectory = Path.Combine(Path.GetTempPath(), "nearml-worker-test-" + Guid.NewGuid().ToString("n"));
        Options = new NearMLWorkerOptions
        {
            WorkerId = "worker-a",
            CoordinatorHost = "127.0.0.1",
            CoordinatorPort = coordinator.Port,
            CoordinatorFingerprint = coordinator.Fingerprint,
            DataDirectory = DataDirectory,
            DatasetDirectory = TestJob.DatasetDirectory,
            AttestationProvider = "none",
            InitialReconnectDelay = TimeSpan.FromMilliseconds(50),
            MaxReconnectDelay = TimeSpan.FromMilliseconds(200),
        };
        configure?.Invoke(Options);
        Metrics = new NearMLMetrics(new TestMeterFactory());
        Service = new WorkerService(Microsoft.Extensions.Options.Options.Create(Options), Status, NullLoggerFactory.Instance, timeProvider ?? TimeProvider.System, null, Metrics);
    }

    public string DataDirectory { get; }

    public NearMLWorkerOptions Options { get; }

    public WorkerStatus Status { get; } = new();

    public WorkerService Service { get; }

    /// <summary>Gets the worker's own meter (not shared with other tests), for <see cref="MeterListener"/>s.</summary>
    public NearMLMetrics Metrics { get; }

    public Task StartAsync() => Service.StartAsync(CancellationToken.None);

    public async Task StopAsync()
    {
        if (_stopped)
        {
            return;
        }

        _stopped = true;
        using var timeout = new CancellationTokenSource(FakeCoordinator.WaitTimeout);
        await Service.StopAsync(timeout.Token);
    }

    /// <summary>Waits (bounded) until <paramref name="condition"/> holds on the status.</summary>
    public async Task WaitUntilAsync(Func<WorkerStatus, bool> condition, string what)
    {
        using var timeout = new CancellationTokenSource(FakeCoordinator.WaitTimeout);
        while (!condition(Status))
        {
            try
            {
                await Task.Delay(20, timeout.Token);
            }
            catch (OperationCanceledException)
            {
                throw new AssertFailedException($"timed out waiting until {what}; status: {Status}");
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        Service.Dispose();
        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>A meter factory that gives each test its own meter instance.</summary>
internal sealed class TestMeterFactory : IMeterFactory
{
    private readonly List<Meter> _meters = [];

    public Meter Create(MeterOptions options)
    {
        var meter = new Meter(options);
        _meters.Add(meter);
        return meter;
    }

    public void Dispose()
    {
        foreach (var meter in _meters)
        {
            meter.Dispose();
        }
    }
}

/// <summary>A wall clock the test can move: timers and timestamps stay real, only <see cref="GetUtcNow"/> is controlled.</summary>
internal sealed class SettableClock(DateTimeOffset now) : TimeProvider
{
    private long _ticks = now.UtcTicks;

    public DateTimeOffset Now
    {
        get => new(Interlocked.Read(ref _ticks), TimeSpan.Zero);
        set => Interlocked.Exchange(ref _ticks, value.UtcTicks);
    }

    public override DateTimeOffset GetUtcNow() => Now;
}
