using System.Buffers.Binary;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using Google.Protobuf;
using NearML.Core.Contracts;
using NearML.Core.Protocol;

namespace NearML.Hosting.ProcessTests;

/// <summary>
/// A hostile client for the bad-input tests: a TLS 1.3 connection to the coordinator (certificate pinned) on which it
/// writes whatever bytes it likes, and reads back raw frames.
/// </summary>
internal sealed class RawClient : IAsyncDisposable
{
    private readonly TcpClient _tcp;

    private RawClient(TcpClient tcp, SslStream ssl, byte[] channelBinding)
    {
        _tcp = tcp;
        Stream = ssl;
        ChannelBinding = channelBinding;
    }

    public SslStream Stream { get; }

    /// <summary>Gets SHA-256 of the coordinator's certificate, as the handshake transcript uses it.</summary>
    public byte[] ChannelBinding { get; }

    public static async Task<RawClient> ConnectAsync(int port, string fingerprint, CancellationToken cancellationToken)
    {
        var tcp = new TcpClient { NoDelay = true };
        await tcp.ConnectAsync("127.0.0.1", port, cancellationToken).ConfigureAwait(false);
        var trust = CoordinatorTrust.Pinned(fingerprint);
        var ssl = new SslStream(tcp.GetStream(), leaveInnerStreamOpen: false);
        await ssl.AuthenticateAsClientAsync(
            new SslClientAuthenticationOptions
            {
                TargetHost = "localhost",
                EnabledSslProtocols = SslProtocols.Tls13,
                RemoteCertificateValidationCallback = (_, certificate, chain, errors) => trust.Validate(certificate, chain, errors, out string _),
            },
            cancellationToken).ConfigureAwait(false);
        return new RawClient(tcp, ssl, SHA256.HashData(ssl.RemoteCertificate!.GetRawCertData()));
    }

    public static byte[] Header(uint length, ushort type)
    {
        var header = new byte[6];
        BinaryPrimitives.WriteUInt32BigEndian(header, length);
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(4), type);
        return header;
    }

    public static byte[] Frame(FrameType type, byte[] payload) => [.. Header((uint)payload.Length, (ushort)type), .. payload];

    public async Task WriteAsync(byte[] bytes, CancellationToken cancellationToken)
    {
        await Stream.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
        await Stream.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads one frame; <see langword="null"/> when the coordinator closed the connection.</summary>
    public async Task<(FrameType Type, byte[] Payload)?> ReadFrameAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            var header = new byte[6];
            if (!await ReadExactlyOrEndAsync(header, deadline.Token).ConfigureAwait(false))
            {
                return null;
            }

            var length = BinaryPrimitives.ReadUInt32BigEndian(header);
            var type = (FrameType)BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(4));
            if (length > 16 << 20)
            {
                throw new InvalidDataException($"coordinator sent a {length}-byte frame");
            }

            var payload = new byte[length];
            if (!await ReadExactlyOrEndAsync(payload, deadline.Token).ConfigureAwait(false))
            {
                return null;
            }

            return (type, payload);
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Reads frames until an Error frame or the end of the connection.</summary>
    public async Task<Error?> ReadUntilErrorAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        while (await ReadFrameAsync(timeout, cancellationToken).ConfigureAwait(false) is { } frame)
        {
            if (frame.Type == FrameType.Error)
            {
                return Error.Parser.ParseFrom(frame.Payload);
            }
        }

        return null;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Stream.DisposeAsync().ConfigureAwait(false);
        }
        catch (IOException)
        {
        }

        _tcp.Dispose();
    }

    private async Task<bool> ReadExactlyOrEndAsync(byte[] buffer, CancellationToken cancellationToken)
    {
        var read = 0;
        while (read < buffer.Length)
        {
            var n = await Stream.ReadAsync(buffer.AsMemory(read), cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                return false;
            }

            read += n;
        }

        return true;
    }
}

/// <summary>The handshake transcript of docs/protocol.md, computed here independently to build (and replay) a real handshake.</summary>
internal static class Transcript
{
    public static byte[] Compute(byte[] hello, byte[] challenge, byte[] channelBinding)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData("NearML.Handshake.v1\0"u8);
        Span<byte> length = stackalloc byte[4];
        foreach (var part in new[] { hello, challenge, channelBinding })
        {
            BinaryPrimitives.WriteUInt32BigEndian(length, (uint)part.Length);
            hash.AppendData(length);
            hash.AppendData(part);
        }

        return hash.GetHashAndReset();
    }

    public static byte[] SignedMessage(byte[] transcript) => [.. "NearML.HandshakeSignature.v1\0"u8.ToArray(), .. transcript];

    public static byte[] ReportData(byte[] transcript) => SHA512.HashData([.. "NearML.AttestationReportData.v1\0"u8.ToArray(), .. transcript]);

    /// <summary>Evidence bytes as the worker sends them: u32 LE length of the vendor evidence ‖ evidence ‖ auxiliary bytes.</summary>
    public static byte[] EncodeEvidence(ReadOnlySpan<byte> evidence, ReadOnlySpan<byte> auxiliary)
    {
        var result = new byte[4 + evidence.Length + auxiliary.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(result, (uint)evidence.Length);
        evidence.CopyTo(result.AsSpan(4));
        auxiliary.CopyTo(result.AsSpan(4 + evidence.Length));
        return result;
    }

    public static Hello Hello(string workerId, Ed25519Identity identity) => new()
    {
        Version = WireProtocol.CurrentVersion,
        WorkerId = workerId,
        IdentityPublicKey = ByteString.CopyFrom(identity.PublicKey.Span),
        Capabilities = new WorkerCapabilities { EvidenceFormats = { "simulated" }, Software = "NearML.Hosting.ProcessTests" },
        WorkerNonce = ByteString.CopyFrom(RandomNumberGenerator.GetBytes(32)),
    };
}
