using System.Globalization;

namespace NearML.Hosting.Worker;

/// <summary>One coordinator address a worker can connect to.</summary>
/// <param name="Host">The host name or IP address (also the TLS host name checked under CA validation).</param>
/// <param name="Port">The TCP port.</param>
internal sealed record CoordinatorAddress(string Host, int Port)
{
    /// <summary>Parses <c>host</c>, <c>host:port</c>, <c>[v6]</c> or <c>[v6]:port</c>; a missing port is <paramref name="defaultPort"/>.</summary>
    /// <exception cref="FormatException">The text is not an address.</exception>
    public static CoordinatorAddress Parse(string text, int defaultPort)
    {
        ArgumentNullException.ThrowIfNull(text);
        var t = text.Trim();
        if (t.Length == 0)
        {
            throw new FormatException("the address is empty");
        }

        string host;
        string? port = null;
        if (t[0] == '[')
        {
            var close = t.IndexOf(']', StringComparison.Ordinal);
            if (close < 2)
            {
                throw new FormatException($"'{text}' has no closing ']' after an IPv6 address");
            }

            host = t[1..close];
            var after = t[(close + 1)..];
            if (after.Length > 0)
            {
                port = after[0] == ':' ? after[1..] : throw new FormatException($"'{text}': expected ':port' after ']'");
            }
        }
        else
        {
            var colon = t.LastIndexOf(':');
            if (colon >= 0 && t.IndexOf(':', StringComparison.Ordinal) != colon)
            {
                throw new FormatException($"'{text}': write an IPv6 address in brackets ([::1]:7420)");
            }

            host = colon < 0 ? t : t[..colon];
            port = colon < 0 ? null : t[(colon + 1)..];
        }

        if (host.Length == 0 || host.Any(char.IsWhiteSpace))
        {
            throw new FormatException($"'{text}' has no valid host");
        }

        var p = defaultPort;
        if (port is not null && (!int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out p) || p is < 1 or > 65535))
        {
            throw new FormatException($"'{text}': the port must be a number from 1 to 65535");
        }

        return new CoordinatorAddress(host, p);
    }

    /// <inheritdoc/>
    public override string ToString() => Host.Contains(':', StringComparison.Ordinal)
        ? string.Create(CultureInfo.InvariantCulture, $"[{Host}]:{Port}")
        : string.Create(CultureInfo.InvariantCulture, $"{Host}:{Port}");
}

/// <summary>
/// The coordinators a worker knows (docs/failover.md): it connects to the current one; after a failure it moves on to the
/// next at once, and backs off (<see cref="ReconnectBackoff"/>) only when every address has failed since the last
/// admission. With one address this is the plain reconnect-with-backoff of before.
/// </summary>
internal sealed class CoordinatorAddresses
{
    private int _current;
    private int _failedInCycle;

    public CoordinatorAddresses(IReadOnlyList<CoordinatorAddress> addresses)
    {
        ArgumentNullException.ThrowIfNull(addresses);
        ArgumentOutOfRangeException.ThrowIfZero(addresses.Count);
        All = addresses;
    }

    /// <summary>Gets every address, in the configured order.</summary>
    public IReadOnlyList<CoordinatorAddress> All { get; }

    /// <summary>Gets the address to connect to now.</summary>
    public CoordinatorAddress Current => All[_current];

    /// <summary>Gets the index of <see cref="Current"/>.</summary>
    public int CurrentIndex => _current;

    /// <summary>The worker was admitted by <see cref="Current"/>: it stays there, and a later failure starts a new cycle.</summary>
    public void Admitted() => _failedInCycle = 0;

    /// <summary>The session with <see cref="Current"/> failed (or ended): moves to the next address.</summary>
    /// <returns><see langword="true"/> when every address has failed since the last admission (back off before the next
    /// attempt); <see langword="false"/> when an untried address remains (try it after a short pause).</returns>
    public bool Failed()
    {
        _current = (_current + 1) % All.Count;
        _failedInCycle++;
        if (_failedInCycle >= All.Count)
        {
            _failedInCycle = 0;
            return true;
        }

        return false;
    }

    /// <summary>The addresses of <paramref name="options"/>: <see cref="NearMLWorkerOptions.CoordinatorAddresses"/> when
    /// any are set, otherwise <see cref="NearMLWorkerOptions.CoordinatorHost"/>:<see cref="NearMLWorkerOptions.CoordinatorPort"/>.</summary>
    /// <exception cref="FormatException">An address does not parse.</exception>
    public static CoordinatorAddresses FromOptions(NearMLWorkerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var list = options.CoordinatorAddresses is { Count: > 0 } configured
            ? configured.Select(a => CoordinatorAddress.Parse(a, options.CoordinatorPort)).ToList()
            : [new CoordinatorAddress(options.CoordinatorHost, options.CoordinatorPort)];
        return new CoordinatorAddresses(list);
    }
}
