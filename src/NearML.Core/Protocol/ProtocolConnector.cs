using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using NearML.Core.Contracts;

namespace NearML.Core.Protocol;

/// <summary>Opens TLS 1.3 connections to a coordinator.</summary>
public static class ProtocolConnector
{
    /// <summary>Connects over TCP, negotiates TLS 1.3 and checks the coordinator's certificate against <paramref name="trust"/>.</summary>
    /// <param name="host">Host name or IP address (also the TLS target host for CA validation).</param>
    /// <param name="port">TCP port.</param>
    /// <param name="trust">How the coordinator's certificate is trusted.</param>
    /// <param name="options">Frame limits; <see langword="null"/> for the defaults.</param>
    /// <param name="timeProvider">Clock for the connection; <see langword="null"/> for the system clock.</param>
    /// <param name="cancellationToken">Cancels connecting.</param>
    /// <returns>The connection, ready for <see cref="WorkerHandshake.RunAsync"/>.</returns>
    /// <exception cref="ProtocolException">
    /// <see cref="ErrorCode.AuthenticationFailed"/> when the certificate is not trusted (the message says why) or TLS 1.3 cannot
    /// be negotiated; <see cref="ErrorCode.ConnectionClosed"/> (transient) when the coordinator cannot be reached.
    /// </exception>
    public static async Task<FrameConnection> ConnectAsync(
        string host, int port, CoordinatorTrust trust, FrameConnectionOptions? options = null, TimeProvider? timeProvider = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(host);
        ArgumentOutOfRangeException.ThrowIfLessThan(port, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, 65535);
        ArgumentNullException.ThrowIfNull(trust);
        (options ?? new FrameConnectionOptions()).Validate();

        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(host, port, cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            throw new ProtocolException(ErrorCode.ConnectionClosed, $"cannot connect to {host}:{port}: {ex.Message}", ex);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var remote = socket.RemoteEndPoint;
        var ssl = new SslStream(new NetworkStream(socket, ownsSocket: true), leaveInnerStreamOpen: false);
        string? rejection = null;
        try
        {
            await ssl.AuthenticateAsClientAsync(
                new SslClientAuthenticationOptions
                {
                    TargetHost = host,
                    EnabledSslProtocols = SslProtocols.Tls13,
                    CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                    RemoteCertificateValidationCallback = (_, certificate, chain, errors) =>
                    {
                        var ok = trust.Validate(certificate, chain, errors, out var reason);
                        rejection = ok ? null : reason;
                        return ok;
                    },
                },
                cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is AuthenticationException or IOException)
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw new ProtocolException(
                ErrorCode.AuthenticationFailed,
                $"TLS 1.3 with {host}:{port} failed: {rejection ?? ex.Message}",
                ex);
        }
        catch
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        var binding = SHA256.HashData(ssl.RemoteCertificate!.GetRawCertData());
        return new FrameConnection(ssl, options, timeProvider, remote, binding);
    }
}
