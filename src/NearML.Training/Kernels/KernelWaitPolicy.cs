namespace NearML.Training.Kernels;

/// <summary>How the threads of a multi-threaded product wait: for the next product (workers) and for the last task of a
/// product (the calling thread).</summary>
/// <remarks>
/// Spinning saves the wake-up (a few to tens of microseconds) of each product of a training step on a machine whose cores
/// are free; on a machine whose cores are shared with other busy processes it burns the process's share of CPU time, and
/// a thread that spins is preempted at arbitrary points — also in the middle of a task the others then wait for. A thread
/// that blocks is woken with the scheduler's credit for the time it slept and usually finishes its task in one go.
/// </remarks>
public enum KernelWaitPolicy
{
    /// <summary>
    /// Spin while the cores appear free, block while they appear shared: a worker that finds it was descheduled while it
    /// spun, or a caller that waits on a task far longer than a task takes, switches the pool to blocking for a fifth of a second;
    /// after it, spinning is tried again.
    /// </summary>
    Adaptive = 0,

    /// <summary>
    /// Always spin: workers spin for a short while after each product before they block, and the caller spins until the
    /// last task of its product finished (the behaviour before issue 17; OpenMP's <c>OMP_WAIT_POLICY=ACTIVE</c>).
    /// </summary>
    Active = 1,

    /// <summary>
    /// Never spin (beyond a few microseconds): workers block right after each product and the caller blocks while the last
    /// tasks finish (OpenMP's <c>OMP_WAIT_POLICY=PASSIVE</c>).
    /// </summary>
    Passive = 2,
}
