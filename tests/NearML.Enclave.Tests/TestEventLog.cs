using System.Security.Cryptography;

namespace NearML.Enclave.Tests;

internal static class TestEventLog
{
    /// <summary>Builds a crypto-agile log (SHA-256 + SHA-384) with events for MR 1..4, EV_NO_ACTION noise and 0xFF padding.</summary>
    public static byte[] Build(out byte[][] rtmrs, out int length)
    {
        var b = new List<byte>();
        void U32(uint v) => b.AddRange(BitConverter.GetBytes(v));
        void U16(ushort v) => b.AddRange(BitConverter.GetBytes(v));
        // header (legacy format)
        var spec = new List<byte>();
        spec.AddRange("Spec ID Event03\0"u8.ToArray());
        spec.AddRange(BitConverter.GetBytes(0u));
        spec.AddRange(new byte[] { 0, 2, 0, 2 });
        spec.AddRange(BitConverter.GetBytes(2u));
        spec.AddRange(BitConverter.GetBytes((ushort)0x000B));
        spec.AddRange(BitConverter.GetBytes((ushort)32));
        spec.AddRange(BitConverter.GetBytes((ushort)0x000C));
        spec.AddRange(BitConverter.GetBytes((ushort)48));
        spec.Add(0);
        U32(0);
        U32(3);
        b.AddRange(new byte[20]);
        U32((uint)spec.Count);
        b.AddRange(spec);

        rtmrs = [new byte[48], new byte[48], new byte[48], new byte[48]];
        for (int i = 0; i < 9; i++)
        {
            uint mr = (uint)(i % 4) + 1;
            byte[] data = [.. "event "u8.ToArray(), (byte)i, 1, 2, 3];
            uint type = i == 4 ? 3u : 0x80000001u;
            byte[] d384 = SHA384.HashData(data);
            U32(mr);
            U32(type);
            U32(2);
            U16(0x000B);
            b.AddRange(SHA256.HashData(data));
            U16(0x000C);
            b.AddRange(d384);
            U32((uint)data.Length);
            b.AddRange(data);
            if (type != 3)
            {
                rtmrs[mr - 1] = SHA384.HashData([.. rtmrs[mr - 1], .. d384]);
            }
        }

        length = b.Count;
        b.AddRange(Enumerable.Repeat((byte)0xFF, 256));
        return [.. b];
    }
}
