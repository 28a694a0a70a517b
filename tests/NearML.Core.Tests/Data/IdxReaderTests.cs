using System.IO.Compression;
using NearML.Core;

namespace NearML.Core.Tests.Data;

[TestClass]
public sealed class IdxReaderTests
{
    public TestContext TestContext { get; set; } = null!;

    private string TempFile(string name) =>
        Path.Combine(TestContext.TestRunDirectory ?? Path.GetTempPath(), $"{Guid.NewGuid():N}-{name}");

    private static byte[] Idx(params int[] dims)
    {
        long n = 1;
        foreach (var d in dims)
        {
            n *= d;
        }

        var data = new byte[n];
        for (var i = 0; i < n; i++)
        {
            data[i] = (byte)(i * 7);
        }

        using var ms = new MemoryStream();
        IdxReader.WriteUInt8(ms, dims, data);
        return ms.ToArray();
    }

    private static byte[] Gzip(byte[] raw)
    {
        using var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true))
        {
            gz.Write(raw);
        }

        return ms.ToArray();
    }

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void Round_trips_raw_and_gzip_files(bool gzip)
    {
        var path = TempFile(gzip ? "x-idx3-ubyte.gz" : "x-idx3-ubyte");
        var data = Enumerable.Range(0, 3 * 4 * 5).Select(i => (byte)(255 - i)).ToArray();
        IdxReader.WriteUInt8(path, [3, 4, 5], data);
        Assert.AreEqual(gzip, File.ReadAllBytes(path)[0] == 0x1F);
        var a = IdxReader.ReadFile(path);
        Assert.AreEqual(IdxDataType.UInt8, a.DataType);
        CollectionAssert.AreEqual(new[] { 3, 4, 5 }, a.Dimensions.ToArray());
        Assert.AreEqual(3, a.Count);
        Assert.AreEqual(20, a.ElementsPerRecord);
        CollectionAssert.AreEqual(data, a.GetBytes().ToArray());
        Assert.AreEqual(path, a.Source);
    }

    [TestMethod]
    public void Bad_magic_is_named_with_file_and_offset()
    {
        var bytes = Idx(2, 2);
        bytes[1] = 0x01;
        var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => IdxReader.Parse(bytes, "bad.idx"));
        Assert.AreEqual("bad.idx", ex.Source);
        Assert.AreEqual(0, ex.Offset);
        StringAssert.Contains(ex.Message, "magic");
    }

    [TestMethod]
    public void Unknown_dtype_is_rejected_at_offset_2()
    {
        var bytes = Idx(2, 2);
        bytes[2] = 0x0A;
        var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => IdxReader.Read(new MemoryStream(bytes), "t.idx"));
        Assert.AreEqual(2, ex.Offset);
        StringAssert.Contains(ex.Message, "0x0A");
    }

    [TestMethod]
    public void Non_byte_dtype_reads_but_GetBytes_refuses()
    {
        var bytes = Idx(2, 2);
        bytes[2] = 0x0C; // int32: 4 elements need 16 bytes, we have 4
        Assert.ThrowsExactly<InvalidDataFormatException>(() => IdxReader.Parse(bytes, "t.idx"));
        var ok = bytes.Take(4 + 8).Concat(new byte[16]).ToArray();
        var a = IdxReader.Parse(ok, "t.idx");
        Assert.AreEqual(IdxDataType.Int32, a.DataType);
        var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => a.GetBytes().ToArray());
        StringAssert.Contains(ex.Message, "Int32");
    }

    [TestMethod]
    public void Zero_dimension_is_rejected()
    {
        var bytes = Idx(2, 2);
        bytes[8] = bytes[9] = bytes[10] = bytes[11] = 0;
        var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => IdxReader.Parse(bytes, "t.idx"));
        Assert.AreEqual(8, ex.Offset);
    }

    [TestMethod]
    public void Huge_lying_dimensions_are_rejected_without_allocating()
    {
        var bytes = Idx(2, 2);
        bytes[4] = bytes[8] = 0x7F;
        var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => IdxReader.Read(new MemoryStream(Gzip(bytes)), "lie.gz"));
        StringAssert.Contains(ex.Message, "payload bytes");
    }

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void Truncated_payload_names_the_offset(bool gzip)
    {
        var bytes = Idx(10, 28, 28);
        var cut = bytes.AsSpan(0, bytes.Length - 100).ToArray();
        var stream = new MemoryStream(gzip ? Gzip(cut) : cut);
        var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => IdxReader.Read(stream, "cut.idx"));
        Assert.AreEqual(cut.Length, ex.Offset);
        StringAssert.Contains(ex.Message, "truncated");
        StringAssert.Contains(ex.Message, "cut.idx");
    }

    [TestMethod]
    public void Truncated_header_is_rejected()
    {
        var bytes = Idx(10, 28, 28);
        var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => IdxReader.Read(new MemoryStream(bytes[..10]), "h.idx"));
        StringAssert.Contains(ex.Message, "truncated");
        ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => IdxReader.Read(new MemoryStream(bytes[..3]), "h.idx"));
        StringAssert.Contains(ex.Message, "magic");
        Assert.ThrowsExactly<InvalidDataFormatException>(() => IdxReader.Read(new MemoryStream([]), "empty.idx"));
    }

    [TestMethod]
    public void Trailing_bytes_are_rejected()
    {
        var bytes = Idx(3, 3).Concat(new byte[] { 1 }).ToArray();
        var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => IdxReader.Read(new MemoryStream(bytes), "t.idx"));
        Assert.AreEqual(4 + 8 + 9, ex.Offset);
    }

    [TestMethod]
    public void Corrupt_gzip_is_a_format_error()
    {
        var gz = Gzip(Idx(50, 28, 28));
        for (var i = 20; i < 60; i++)
        {
            gz[i] ^= 0x5A;
        }

        var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => IdxReader.Read(new MemoryStream(gz), "c.gz"));
        StringAssert.Contains(ex.Message, "c.gz");
    }

    [TestMethod]
    public void A_prefix_parse_reads_back_to_back_arrays_without_copying_and_reports_offsets_from_the_base()
    {
        byte[] records = Build([3, 2], [1, 2, 3, 4, 5, 6]);
        byte[] labels = Build([3], [7, 8, 9]);
        byte[] both = [.. records, .. labels];
        var first = IdxReader.ParsePrefix(both, "shard", 0, out int used);
        Assert.AreEqual(records.Length, used);
        CollectionAssert.AreEqual(new[] { 3, 2 }, first.Dimensions.ToArray());
        Assert.IsTrue(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(first.Payload, out ArraySegment<byte> segment) && ReferenceEquals(segment.Array, both), "the payload is a slice, not a copy");
        var second = IdxReader.ParsePrefix(both.AsMemory(used), "shard", used, out int used2);
        CollectionAssert.AreEqual(new byte[] { 7, 8, 9 }, second.GetBytes().ToArray());
        Assert.AreEqual(labels.Length, used2);

        byte[] truncated = both[..^1];
        var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => IdxReader.ParsePrefix(truncated.AsMemory(used), "shard", used, out _));
        Assert.AreEqual(truncated.Length, ex.Offset, "the offset counts from the start of the source");
        byte[] badDim = (byte[])both.Clone();
        badDim[used + 4 + 3] = 0; badDim[used + 4 + 2] = 0; badDim[used + 4 + 1] = 0; badDim[used + 4] = 0;
        ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => IdxReader.ParsePrefix(badDim.AsMemory(used), "shard", used, out _));
        Assert.AreEqual(used + 4, ex.Offset);
    }

    internal static byte[] Build(int[] dims, byte[] data)
    {
        using var ms = new MemoryStream();
        IdxReader.WriteUInt8(ms, dims, data);
        return ms.ToArray();
    }
}
