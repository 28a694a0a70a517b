using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using NearML.Core.Contracts;

namespace NearML.Core.Protocol;

/// <summary>Settings of a <see cref="ProtocolListener"/>.</summary>
public sealed class ProtocolListenerOptions
{
    /// <summary>Gets or sets the frame limits of accepted connections.</summary>
    /// <value>The default value is a default <see cref="FrameConnectionOptions"/>.</value>
    public FrameConnectionOptions Connection { get; set; } = new();

    /// <summary>Gets or sets the deadline for a client to complete the TLS handshake.</summary>
    /// <value>The default value is 10 seconds.</value>
    public TimeSpan TlsHandshakeTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Gets or sets the most connections served at once (admitted and not); further clients are closed on accept.</summary>
    /// <value>The default value is 10000.</value>
    public int MaxConnections { get; set; } = 10_000;

    /// <summary>
    /// Gets or sets the most connections not yet admitted (TLS or the coordinator handshake still running) served at once:
    /// unauthenticated clients get this small budget of their own, so a flood of them cannot take the slots admitted
    /// workers and joining workers need. A connection leaves the budget when the handshake admits it
    /// (<see cref="FrameConnection.IsAdmitted"/>) or when it closes.
    /// </summary>
    /// <value>The default value is 64.</value>
    public int MaxPendingHandshakes { get; set; } = 64;

    /// <summary>Gets or sets the most not-yet-admitted connections from one IP address at once.</summary>
    /// <value>The default value is 16.</value>
    public int MaxPendingHandshakesPerAddress { get; set; } = 16;

    /// <summary>Gets or sets the sustained rate of new connections accepted from one IP address, per second (a token bucket).</summary>
    /// <value>The default value is 10.</value>
    public double HandshakeRatePerAddress { get; set; } = 10;

    /// <summary>Gets or sets the burst of new connections accepted from one IP address (the token bucket's size).</summary>
    /// <value>The default value is 32.</value>
    public int HandshakeBurstPerAddress { get; set; } = 32;

    /// <summary>
    /// Gets or sets a callback told about every connection that ended with an error (failed TLS handshake, protocol
    /// violation, handler exception). It must not throw. Use it for logging.
    /// </summary>
    /// <value>The default value is <see langword="null"/>.</value>
    public Action<EndPoint?, Exception>? ConnectionFaulted { get; set; }

    /// <summary>Gets or sets the clock given to connections.</summary>
    /// <value>The default value is <see langword="null"/> (<see cref="TimeProvider.System"/>).</value>
    public TimeProvider? TimeProvider { get; set; }
}

/// <summary>
/// Accepts TLS 1.3 connections over TCP and runs a handler per connection. A connection that fails (bad TLS, malformed frame,
/// handler exception) is closed — with an <see cref="Error"/> frame naming the reason when TLS is up — and nothing else is touched.
/// </summary>
/// <remarks>
/// Connections that are not admitted yet get a budget of their own (<see cref="ProtocolListenerOptions.MaxPendingHandshakes"/>,
/// per address <see cref="ProtocolListenerOptions.MaxPendingHandshakesPerAddress"/> and a token bucket of
/// <see cref="ProtocolListenerOptions.HandshakeRatePerAddress"/>): a client over a limit is closed on accept, before any
/// TLS work, and reported to <see cref="ProtocolListenerOptions.ConnectionFaulted"/> with <see cref="ErrorCode.Refused"/>.
/// </remarks>
public sealed class ProtocolListener : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly SslStreamCertificateContext _certificate;
    private readonly byte[] _channelBinding;
    private readonly Func<FrameConnection, CancellationToken, Task> _handler;
    private readonly ProtocolListenerOptions _options;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<int, Task> _connections = new();
    private readonly Dictionary<IPAddress, AddressState> _addresses = [];
    private readonly Lock _gate = new();
    private readonly TimeProvider _time;
    private Task? _acceptLoop;
    private int _nextId;
    private int _disposed;
    private int _pending;
    private long _lastSweep;

    /// <summary>Binds a listener (call <see cref="Start"/> to accept).</summary>
    /// <param name="endPoint">Where to listen; port 0 picks a free port (see <see cref="LocalEndPoint"/>).</param>
    /// <param name="certificate">The coordinator's certificate with its private key.</param>
    /// <param name="handler">Serves one connection; when it returns the connection is closed. Exceptions are contained.</param>
    /// <param name="options">Settings; <see langword="null"/> for the defaults.</param>
    public ProtocolListener(
        IPEndPoint endPoint, X509Certificate2 certificate, Func<FrameConnection, CancellationToken, Task> handler, ProtocolListenerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        ArgumentNullException.ThrowIfNull(certificate);
        ArgumentNullException.ThrowIfNull(handler);
        if (!certificate.HasPrivateKey)
        {
            throw new ArgumentException("The coordinator certificate needs its private key.", nameof(certificate));
        }

        _options = options ?? new ProtocolListenerOptions();
        _options.Connection.Validate();
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.MaxConnections, 1, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.MaxPendingHandshakes, 1, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.MaxPendingHandshakesPerAddress, 1, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.HandshakeBurstPerAddress, 1, nameof(options));
        if (!double.IsFinite(_options.HandshakeRatePerAddress) || _options.HandshakeRatePerAddress <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), _options.HandshakeRatePerAddress, "HandshakeRatePerAddress must be positive and finite.");
        }

        _time = _options.TimeProvider ?? TimeProvider.System;
        _handler = handler;
        _certificate = SslStreamCertificateContext.Create(certificate, additionalCertificates: null);
        _channelBinding = SHA256.HashData(certificate.RawData);
        _socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            _socket.Bind(endPoint);
            _socket.Listen(512);
        }
        catch
        {
            _socket.Dispose();
            throw;
        }

        LocalEndPoint = (IPEndPoint)_socket.LocalEndPoint!;
    }

    /// <summary>Gets the bound address (with the actual port).</summary>
    public IPEndPoint LocalEndPoint { get; }

    /// <summary>Gets the number of connections being served.</summary>
    public int ActiveConnections => _connections.Count;

    /// <summary>Gets the number of connections served that are not admitted yet (TLS or handshake running).</summary>
    public int PendingHandshakes => Volatile.Read(ref _pending);

    /// <summary>Starts accepting connections in the background.</summary>
    /// <exception cref="InvalidOperationException">Already started.</exception>
    public void Start()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (_acceptLoop is not null)
        {
            throw new InvalidOperationException("The listener is already started.");
        }

        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    /// <summary>Stops accepting, cancels every handler's token, and waits for the connections to close.</summary>
    /// <returns>A task that completes when everything has stopped.</returns>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        _socket.Dispose();
        if (_acceptLoop is not null)
        {
            await _acceptLoop.ConfigureAwait(false);
        }

        await Task.WhenAll(_connections.Values).ConfigureAwait(false);
        _stopping.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _socket.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException && _stopping.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException ex)
            {
                Report(null, ex);
                continue;
            }

            var remote = client.RemoteEndPoint;
            var address = Normalize((remote as IPEndPoint)?.Address);
            if (TryReserve(address) is { } refusal)
            {
                // Refused before any TLS work: closing costs nothing, and the report callback is expected to rate-limit.
                Report(remote, new ProtocolException(ErrorCode.Refused, refusal));
                client.Dispose();
                continue;
            }

            var id = Interlocked.Increment(ref _nextId);
            var serve = new TaskCompletionSource();
            _connections[id] = serve.Task;
            var slot = new PendingSlot(this, address);
            _ = Task.Run(async () =>
            {
                try
                {
                    await ServeAsync(client, slot).ConfigureAwait(false);
                }
                finally
                {
                    slot.Release();
                    _connections.TryRemove(id, out _);
                    serve.SetResult();
                }
            });
        }
    }

    private static IPAddress Normalize(IPAddress? address) =>
        address is null ? IPAddress.None : address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;

    /// <summary>Takes a pending-handshake slot for a new connection from <paramref name="address"/>, or says why not.</summary>
    private string? TryReserve(IPAddress address)
    {
        lock (_gate)
        {
            var now = _time.GetTimestamp();
            if (_time.GetElapsedTime(_lastSweep, now) > TimeSpan.FromSeconds(10))
            {
                // Forget addresses with nothing pending whose bucket has refilled: memory stays bounded by the active ones.
                _lastSweep = now;
                foreach (var (key, state) in _addresses.ToList())
                {
                    if (state.Pending == 0 && Refill(state, now) >= _options.HandshakeBurstPerAddress)
                    {
                        _addresses.Remove(key);
                    }
                }
            }

            if (_connections.Count >= _options.MaxConnections)
            {
                return $"connection limit of {_options.MaxConnections} reached";
            }

            if (_pending >= _options.MaxPendingHandshakes)
            {
                return $"pending-handshake limit of {_options.MaxPendingHandshakes} reached";
            }

            if (!_addresses.TryGetValue(address, out var a))
            {
                a = new AddressState { Tokens = _options.HandshakeBurstPerAddress, Refilled = now };
                _addresses[address] = a;
            }

            if (a.Pending >= _options.MaxPendingHandshakesPerAddress)
            {
                return $"per-address pending-handshake limit of {_options.MaxPendingHandshakesPerAddress} reached for {address}";
            }

            if (Refill(a, now) < 1)
            {
                return $"per-address handshake rate of {_options.HandshakeRatePerAddress:0.##}/s (burst {_options.HandshakeBurstPerAddress}) exceeded by {address}";
            }

            a.Tokens -= 1;
            a.Pending++;
            _pending++;
            return null;
        }
    }

    private double Refill(AddressState a, long now)
    {
        var seconds = _time.GetElapsedTime(a.Refilled, now).TotalSeconds;
        a.Tokens = Math.Min(_options.HandshakeBurstPerAddress, a.Tokens + (seconds * _options.HandshakeRatePerAddress));
        a.Refilled = now;
        return a.Tokens;
    }

    private void ReleasePending(IPAddress address)
    {
        lock (_gate)
        {
            _pending--;
            if (_addresses.TryGetValue(address, out var a))
            {
                a.Pending--;
            }
        }
    }

    private async Task ServeAsync(Socket client, PendingSlot slot)
    {
        var remote = client.RemoteEndPoint;
        client.NoDelay = true;
        var ssl = new SslStream(new NetworkStream(client, ownsSocket: true), leaveInnerStreamOpen: false);
        try
        {
            using var tlsDeadline = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            tlsDeadline.CancelAfter(_options.TlsHandshakeTimeout);
            await ssl.AuthenticateAsServerAsync(
                new SslServerAuthenticationOptions
                {
                    ServerCertificateContext = _certificate,
                    EnabledSslProtocols = SslProtocols.Tls13,
                    ClientCertificateRequired = false,
                    CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                },
                tlsDeadline.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            if (!_stopping.IsCancellationRequested)
            {
                Report(remote, new ProtocolException(ErrorCode.AuthenticationFailed, $"TLS handshake with {remote} failed: {ex.Message}", ex));
            }

            return;
        }

        var connection = new FrameConnection(ssl, _options.Connection, _options.TimeProvider, remote, _channelBinding) { Admitted = slot.Release };
        try
        {
            await _handler(connection, _stopping.Token).ConfigureAwait(false);
            await connection.DisposeAsync().ConfigureAwait(false);
        }
        catch (AdmissionRefusedException ex)
        {
            // The Refusal frame already told the worker why.
            Report(remote, ex);
            await connection.DisposeAsync().ConfigureAwait(false);
        }
        catch (ProtocolException ex)
        {
            Report(remote, ex);
            await connection.FailAsync(ex).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
            await connection.FailAsync(new ProtocolException(ErrorCode.ConnectionClosed, "the coordinator is shutting down")).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Report(remote, ex);
            await connection.FailAsync(new ProtocolException(ErrorCode.Internal, "internal error while serving this connection", ex)).ConfigureAwait(false);
        }
    }

    private sealed class AddressState
    {
        public int Pending { get; set; }

        public double Tokens { get; set; }

        public long Refilled { get; set; }
    }

    /// <summary>A connection's place in the pending-handshake budget, given back exactly once (on admission or close).</summary>
    private sealed class PendingSlot(ProtocolListener owner, IPAddress address)
    {
        private int _released;

        public void Release()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                owner.ReleasePending(address);
            }
        }
    }

    private void Report(EndPoint? remote, Exception ex)
    {
        try
        {
            _options.ConnectionFaulted?.Invoke(remote, ex);
        }
        catch (Exception callbackFailure) when (callbackFailure is not OutOfMemoryException)
        {
            // A faulty logging callback must not take the listener down.
        }
    }
}
