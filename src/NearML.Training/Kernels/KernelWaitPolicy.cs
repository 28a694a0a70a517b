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
    /// Spin while the cores appear free, block while they appear shared: when more than 30 % of a window of products'
    /// time is lost on descheduled workers (a caller waiting on a task far longer than a task takes, a worker finding it
    /// was descheduled while it spun), the pool blocks for a tenth of a second, doubled up to 1.6 s while the load
    /// persists; then spinning is tried again. Blocking costs about a tenth of the throughput of small products on a
    /// free machine, spinning several times that on a shared one: quick to block, slow to spin again.
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
