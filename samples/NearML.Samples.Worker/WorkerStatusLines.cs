using System.Globalization;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using NearML.Hosting;
using NearML.Hosting.Worker;

namespace NearML.Samples.Worker;

/// <summary>Settings of <see cref="WorkerStatusLines"/>.</summary>
internal sealed class WorkerStatusLinesOptions
{
    public bool PrintProgress { get; init; }

    public bool StopHostOnFailure { get; init; }
}

/// <summary>
/// Prints one machine-readable line on stdout per worker event, for people and for the process tests:
/// <c>STATE id=w1 state=Training</c>, <c>ROUND id=w1 round=3</c>, <c>PROGRESS id=w1 round=3 step=40 loss=0.53</c>,
/// <c>RECEIPT id=w1 round=3 count=2</c>, <c>ERROR id=w1 message=...</c>, <c>REFUSED id=w1 message=...</c>.
/// It watches the registered <see cref="WorkerStatus"/> (event-driven, with a 200 ms poll as a safety net).
/// </summary>
internal sealed class WorkerStatusLines(WorkerStatus status, IOptions<NearMLWorkerOptions> options, WorkerStatusLinesOptions settings, IHostApplicationLifetime lifetime)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var id = options.Value.WorkerId;
        using var signal = new SemaphoreSlim(0, int.MaxValue);
        void OnChanged(object? sender, EventArgs e)
        {
            try
            {
                signal.Release();
            }
            catch (ObjectDisposedException)
            {
                // raised after this service stopped
            }
        }

        status.StatusChanged += OnChanged;
        string? lastState = null;
        ulong? lastRound = null;
        var lastStep = -1;
        var lastReceipts = 0L;
        string? lastError = null;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                var state = status.State.ToString();
                if (state != lastState)
                {
                    Emit($"STATE id={id} state={state}");
                    lastState = state;
                }

                if (status.Round != lastRound && status.State is WorkerState.Downloading or WorkerState.Training or WorkerState.Uploading)
                {
                    lastRound = status.Round;
                    Emit($"ROUND id={id} round={lastRound}");
                }

                if (settings.PrintProgress && status.Step != lastStep && status.State == WorkerState.Training)
                {
                    lastStep = status.Step;
                    Emit(string.Create(CultureInfo.InvariantCulture, $"PROGRESS id={id} round={status.Round} step={status.Step} loss={status.Loss:0.0000} sent={status.BytesSent}"));
                }

                var receipts = status.Receipts;
                if (receipts != lastReceipts)
                {
                    lastReceipts = receipts;
                    Emit($"RECEIPT id={id} round={status.LastReceiptRound} count={receipts}");
                }

                if (status.LastError is { } error && error != lastError)
                {
                    lastError = error;
                    Emit($"ERROR id={id} message={error.ReplaceLineEndings(" ")}");
                }

                if (status.State == WorkerState.Failed)
                {
                    Emit($"FAILED id={id} message={status.LastError?.ReplaceLineEndings(" ")}");
                    if (settings.StopHostOnFailure)
                    {
                        lifetime.StopApplication();
                    }

                    return;
                }

                try
                {
                    await signal.WaitAsync(TimeSpan.FromMilliseconds(200), stoppingToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }

            // A failure that stopped the host before this loop woke up is still reported.
            if (status.State == WorkerState.Failed)
            {
                Emit($"FAILED id={id} message={status.LastError?.ReplaceLineEndings(" ")}");
            }
        }
        finally
        {
            status.StatusChanged -= OnChanged;
            Emit($"STOPPED id={id}");
        }
    }

    private static void Emit(string line) => Console.Out.WriteLine(line);
}
