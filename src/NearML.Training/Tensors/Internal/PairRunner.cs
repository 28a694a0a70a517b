using System.Runtime.ExceptionServices;

namespace NearML.Training.Tensors.Internal;

/// <summary>A unit of work split over an index range [start, end).</summary>
internal abstract class RangeJob
{
    /// <summary>Runs indices [start, end); <paramref name="lane"/> is 0 on the caller and 1 on the helper thread.</summary>
    public abstract void Run(int start, int end, int lane);
}

/// <summary>
/// Splits a job in two halves: the caller runs the first, one persistent background thread the second. Used for
/// many small independent pieces (attention heads) whose GEMMs are too small for the GEMM's own threading.
/// Allocation-free per call; when the helper is busy (another tape), the machine has one core or the engine is limited
/// to one thread (<see cref="NearML.Training.Kernels.KernelThreads.Count"/>), the caller runs everything.
/// </summary>
internal static class PairRunner
{
    private static readonly Lock Gate = new();
    private static readonly SemaphoreSlim Start = new(0);
    private static readonly SemaphoreSlim Done = new(0);
    private static Thread? s_thread;
    private static RangeJob? s_job;
    private static int s_start;
    private static int s_end;
    private static Exception? s_error;

    public static void Run(RangeJob job, int count)
    {
        if (count < 2 || Environment.ProcessorCount < 2 || NearML.Training.Kernels.KernelThreads.Count < 2 || !Gate.TryEnter())
        {
            job.Run(0, count, 0);
            return;
        }

        try
        {
            if (s_thread is null)
            {
                s_thread = new Thread(Loop) { IsBackground = true, Name = "NearML engine helper" };
                s_thread.Start();
            }

            var mid = count / 2;
            s_job = job;
            s_start = mid;
            s_end = count;
            s_error = null;
            Start.Release();
            try
            {
                job.Run(0, mid, 0);
            }
            finally
            {
                Done.Wait();
                s_job = null;
            }

            if (s_error is { } e)
            {
                s_error = null;
                ExceptionDispatchInfo.Throw(e);
            }
        }
        finally
        {
            Gate.Exit();
        }
    }

    private static void Loop()
    {
        while (true)
        {
            Start.Wait();
            try
            {
                s_job!.Run(s_start, s_end, 1);
            }
#pragma warning disable CA1031 // rethrown on the calling thread
            catch (Exception ex)
#pragma warning restore CA1031
            {
                s_error = ex;
            }
            finally
            {
                Done.Release();
            }
        }
    }
}
