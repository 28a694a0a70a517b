namespace NearML.Hosting.State;

/// <summary>
/// The right to serve a job's state: while a coordinator holds it, no other coordinator on the same state does. A
/// coordinator takes it from <see cref="ICoordinatorStateBackend.TryAcquireLease"/> before it opens the state, keeps it
/// for its whole life, and stops serving when <see cref="Lost"/> fires. Disposing it releases it.
/// </summary>
/// <remarks>
/// With SQLite the state folder belongs to one process and the lease is always granted
/// (<see cref="CoordinatorLease.Unshared"/>). With PostgreSQL it is a session-level advisory lock on a dedicated
/// connection: PostgreSQL releases it when that connection ends, so a coordinator that dies (even by SIGKILL) gives it up
/// at once and a standby takes over (docs/failover.md).
/// </remarks>
public interface ICoordinatorLease : IDisposable
{
    /// <summary>Gets what the lease is, for logs ("PostgreSQL advisory lock … on schema nearml").</summary>
    string Description { get; }

    /// <summary>Gets a token that is cancelled when the lease is lost (its database connection broke): the holder must stop serving.</summary>
    CancellationToken Lost { get; }
}

/// <summary>Leases that need no database.</summary>
public static class CoordinatorLease
{
    /// <summary>Gets the lease of a backend whose state one process owns (SQLite files in the state folder): always granted, never lost.</summary>
    public static ICoordinatorLease Unshared { get; } = new UnsharedLease();

    private sealed class UnsharedLease : ICoordinatorLease
    {
        public string Description => "none needed (the state folder belongs to this process)";

        public CancellationToken Lost => CancellationToken.None;

        public void Dispose()
        {
        }
    }
}
