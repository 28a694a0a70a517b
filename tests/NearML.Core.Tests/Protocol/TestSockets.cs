using System.Net;
using System.Net.Sockets;

namespace NearML.Core.Tests.Protocol;

/// <summary>Pairs of connected loopback TCP streams (127.0.0.1 only).</summary>
internal static class TestSockets
{
    public static async Task<(NetworkStream Left, NetworkStream Right)> PairAsync()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        var accept = listener.AcceptAsync();
        await client.ConnectAsync(listener.LocalEndPoint!);
        var server = await accept;
        server.NoDelay = true;
        return (new NetworkStream(client, ownsSocket: true), new NetworkStream(server, ownsSocket: true));
    }

    public static byte[] Header(uint length, ushort type)
    {
        var header = new byte[6];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(header, length);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(4), type);
        return header;
    }
}
