namespace NearML.Dashboard;

/// <summary>Settings of the dashboard (<see cref="DashboardServiceCollectionExtensions.AddNearMLDashboard(Microsoft.Extensions.DependencyInjection.IServiceCollection, Action{NearMLDashboardOptions})"/>).</summary>
public sealed class NearMLDashboardOptions
{
    /// <summary>
    /// Gets or sets the access token. Requests that reach the dashboard on a non-loopback address (or every request when
    /// <see cref="RequireToken"/> is set) must present it — as <c>Authorization: Bearer …</c>, the <c>token</c> query
    /// parameter (the page then keeps it in an HttpOnly, SameSite=Strict cookie) or that cookie — or get 401. When no token
    /// is set, such requests are always refused. Use at least 16 random characters.
    /// </summary>
    public string? AccessToken { get; set; }

    /// <summary>Gets or sets a value indicating whether loopback requests need the token too (for example behind a reverse proxy on the same machine).</summary>
    public bool RequireToken { get; set; }

    /// <summary>Gets or sets the shortest interval between two pushed updates to one page (changes in between are coalesced). Default 250 ms.</summary>
    public TimeSpan MinimumPushInterval { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Gets or sets the interval of the keep-alive comment on an idle event stream. Default 15 s.</summary>
    public TimeSpan KeepAliveInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Gets or sets the most recent rounds a status carries (the chart and the rounds table). Default 1000.</summary>
    public int MaxRounds { get; set; } = 1000;

    /// <summary>
    /// Gets or sets the ledger file the "verify ledger" action reads; <see langword="null"/> (the default) means
    /// <c>ledger.db</c> in the coordinator's <c>DataDirectory</c>.
    /// </summary>
    public string? LedgerPath { get; set; }

    internal void Validate()
    {
        if (AccessToken is { Length: > 0 and < 16 })
        {
            throw new ArgumentException($"{nameof(AccessToken)} must have at least 16 characters (it is the only thing between the network and the dashboard).");
        }

        if (MinimumPushInterval < TimeSpan.Zero || KeepAliveInterval <= TimeSpan.Zero || MaxRounds < 1)
        {
            throw new ArgumentException($"{nameof(MinimumPushInterval)} must not be negative, {nameof(KeepAliveInterval)} must be positive and {nameof(MaxRounds)} at least 1.");
        }
    }
}
