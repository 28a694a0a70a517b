using System.IO.Pipelines;

namespace NearML.Core.Protocol.Internal;

/// <summary>
/// A <see cref="PipeScheduler"/> that runs continuations on the thread pool like <see cref="PipeScheduler.ThreadPool"/>, but
/// queues itself as the work item instead of allocating one per call. One instance serves one side of one pipe, which has at
/// most one continuation waiting at a time; should a second arrive while the first is still queued, it falls back to the
/// ordinary (allocating) queue.
/// </summary>
internal sealed class ThreadPoolSlotScheduler : PipeScheduler, IThreadPoolWorkItem
{
    private Action<object?>? _action;
    private object? _state;
    private int _busy;

    public override void Schedule(Action<object?> action, object? state)
    {
        if (Interlocked.CompareExchange(ref _busy, 1, 0) == 0)
        {
            _action = action;
            _state = state;
            System.Threading.ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        }
        else
        {
            System.Threading.ThreadPool.UnsafeQueueUserWorkItem(action, state, preferLocal: false);
        }
    }

    void IThreadPoolWorkItem.Execute()
    {
        var action = _action!;
        var state = _state;
        _action = null;
        _state = null;
        Volatile.Write(ref _busy, 0);
        action(state);
    }
}
