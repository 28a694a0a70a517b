using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using NearML.Core;

namespace NearML.Core.Tests;

[TestClass]
public sealed class SafeTensorsTests
{
    public TestContext TestContext { get; set; } = null!;

    private static ParameterSet Sample()
    {
        var set = ParameterSet.Create(("embed.weight", [5, 3]), ("ln.bias", [3]), ("head.weight", [2, 1, 3, 3]));
        for (var i = 0; i < set.Length; i++)
        {
            set.Data[i] = MathF.Sin(i * 0.37f) * (i + 1);
        }

        return set;
    }

    private static byte[] Bytes(ParameterSet set, IReadOnlyDictionary<string, string>? meta = null)
    {
        using var ms = new MemoryStream();
        SafeTensors.Write(ms, set, meta);
        return ms.ToArray();
    }

    private static byte[] Build(string headerJson, int dataBytes)
    {
        var h = Encoding.UTF8.GetBytes(headerJson);
        var bytes = new byte[8 + h.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)h.Length);
        h.CopyTo(bytes, 8);
        return bytes;
    }

    private static InvalidDataFormatException ReadFails(byte[] bytes) =>
        Assert.ThrowsExactly<InvalidDataFormatException>(() => SafeTensors.Read(new MemoryStream(bytes), "test.safetensors"));

    [TestMethod]
    public void Round_trip_preserves_names_order_shapes_values_and_metadata()
    {
        var set = Sample();
        var meta = new Dictionary<string, string> { ["round"] = "7", ["job"] = "fmnist" };
        var bytes = Bytes(set, meta);
        Assert.AreEqual(0, (BinaryPrimitives.ReadInt64LittleEndian(bytes) + 8) % 8, "data section is 8-byte aligned");
        var back = SafeTensors.Read(new MemoryStream(bytes));
        Assert.AreEqual(set.Layout, back.Parameters.Layout);
        CollectionAssert.AreEqual(set.Buffer, back.Parameters.Buffer);
        Assert.AreEqual("7", back.Metadata["round"]);
        Assert.AreEqual("fmnist", back.Metadata["job"]);
    }

    [TestMethod]
    public void WriteFile_is_atomic_and_leaves_no_temporary_files()
    {
        var dir = Directory.CreateTempSubdirectory("nearml-st-");
        try
        {
            var path = Path.Combine(dir.FullName, "ckpt.safetensors");
            SafeTensors.WriteFile(path, Sample());
            var before = File.ReadAllBytes(path);

            // A write that fails midway (an illegal tensor name) must leave the previous file intact.
            var bad = ParameterSet.Create(("__metadata__", [2]));
            Assert.ThrowsExactly<ArgumentException>(() => SafeTensors.WriteFile(path, bad));
            CollectionAssert.AreEqual(before, File.ReadAllBytes(path));
            Assert.AreEqual(1, dir.GetFiles().Length, string.Join(", ", dir.GetFiles().Select(f => f.Name)));
            Assert.AreEqual(Sample().Layout, SafeTensors.ReadFile(path).Parameters.Layout);
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [TestMethod]
    public void Reads_a_file_written_by_PyTorch_side_tooling()
    {
        // Written by tests/NearML.Core.Tests/torch/safetensors_interop.py (json + numpy from seeded torch tensors).
        var content = SafeTensors.ReadFile(SharedFolder.Fixture("safetensors", "torch_written.safetensors"));
        using var expected = JsonDocument.Parse(File.ReadAllText(SharedFolder.Fixture("safetensors", "torch_written.json")));
        Assert.AreEqual("pt", content.Metadata["format"]);
        var count = 0;
        foreach (var t in expected.RootElement.EnumerateObject())
        {
            var entry = content.Parameters.Layout[t.Name];
            CollectionAssert.AreEqual(t.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()).ToArray(), entry.Shape.ToArray());
            var values = t.Value.GetProperty("values").EnumerateArray().Select(e => (float)e.GetDouble()).ToArray();
            CollectionAssert.AreEqual(values, content.Parameters.GetSpan(t.Name).ToArray(), t.Name);
            count++;
        }

        Assert.AreEqual(4, count);
    }

    [TestMethod]
    [TestCategory("Interop")]
    public void A_file_NearML_writes_loads_in_PyTorch()
    {
        var python = "/usr/bin/python3";
        var root = SharedFolder.RepoRoot();
        if (!File.Exists(python) || root is null)
        {
            Assert.Inconclusive("needs /usr/bin/python3 with numpy and torch (Debian python3-torch) and the repository checkout");
        }

        var script = Path.Combine(root, "tests", "NearML.Core.Tests", "torch", "safetensors_interop.py");
        var path = Path.Combine(Path.GetTempPath(), $"nearml-interop-{Guid.NewGuid():N}.safetensors");
        var set = Sample();
        SafeTensors.WriteFile(path, set, new Dictionary<string, string> { ["writer"] = "NearML" });
        try
        {
            var psi = new ProcessStartInfo(python, [script, "read", path]) { RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEnd();
            var stderr = p.StandardError.ReadToEnd();
            p.WaitForExit();
            if (p.ExitCode != 0 && stderr.Contains("No module named", StringComparison.Ordinal))
            {
                Assert.Inconclusive("python3 lacks numpy/torch: " + stderr);
            }

            Assert.AreEqual(0, p.ExitCode, stderr);
            using var doc = JsonDocument.Parse(stdout);
            Assert.AreEqual("NearML", doc.RootElement.GetProperty("__metadata__").GetProperty("writer").GetString());
            foreach (var e in set.Layout.Entries)
            {
                var t = doc.RootElement.GetProperty(e.Name);
                CollectionAssert.AreEqual(e.Shape.ToArray(), t.GetProperty("shape").EnumerateArray().Select(x => x.GetInt32()).ToArray());
                double sum = 0;
                foreach (var v in set.GetSpan(e.Name))
                {
                    sum += v;
                }

                Assert.AreEqual(sum, t.GetProperty("sum").GetDouble(), 1e-9 * Math.Max(1, Math.Abs(sum)));
                Assert.AreEqual(set.GetSpan(e.Name)[0], (float)t.GetProperty("first")[0].GetDouble());
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void Converts_F16_BF16_and_F64_to_float32()
    {
        var header = """{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[4,6]},"d":{"dtype":"F64","shape":[1],"data_offsets":[6,14]}}""";
        var bytes = Build(header, 14);
        var data = bytes.AsSpan(bytes.Length - 14);
        BinaryPrimitives.WriteHalfLittleEndian(data, (Half)1.5f);
        BinaryPrimitives.WriteHalfLittleEndian(data[2..], (Half)(-2f));
        BinaryPrimitives.WriteUInt16LittleEndian(data[4..], (ushort)(BitConverter.SingleToInt32Bits(3.25f) >> 16));
        BinaryPrimitives.WriteDoubleLittleEndian(data[6..], 0.125);
        var set = SafeTensors.Read(new MemoryStream(bytes)).Parameters;
        CollectionAssert.AreEqual(new[] { 1.5f, -2f, 3.25f, 0.125f }, set.Buffer);
    }

    [TestMethod]
    public void Truncation_at_every_byte_is_a_typed_error()
    {
        var bytes = Bytes(Sample());
        for (var len = 0; len < bytes.Length; len++)
        {
            var ex = ReadFails(bytes[..len]);
            StringAssert.Contains(ex.Message, "test.safetensors");
        }
    }

    [TestMethod]
    public void Truncation_is_also_detected_on_non_seekable_streams()
    {
        var bytes = Bytes(Sample());
        var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => SafeTensors.Read(new NonSeekable(bytes[..^3]), "pipe"));
        StringAssert.Contains(ex.Message, "unexpected end of data");
        StringAssert.Contains(ex.Message, "head.weight");
    }

    [TestMethod]
    public void Lying_headers_are_rejected_with_the_reason()
    {
        StringAssert.Contains(ReadFails(Build("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}""", 4)).Message, "needs 8 bytes");
        StringAssert.Contains(ReadFails(Build("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8)).Message, "gap");
        StringAssert.Contains(ReadFails(Build("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8)).Message, "overlaps");
        StringAssert.Contains(ReadFails(Build("""{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}""", 8)).Message, "dtype I64");
        StringAssert.Contains(ReadFails(Build("""{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}""", 4)).Message, "invalid dimension");
        StringAssert.Contains(ReadFails(Build("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 12)).Message, "12 follow");
        StringAssert.Contains(ReadFails(Build("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8)).Message, "twice");
        StringAssert.Contains(ReadFails(Build("""[1,2]""", 0)).Message, "not a JSON object");
        StringAssert.Contains(ReadFails(Build("""{"a":""", 0)).Message, "not valid JSON");
        StringAssert.Contains(ReadFails(Build("""{"a":{"dtype":"F32","shape":[1]}}""", 4)).Message, "data_offsets");
        StringAssert.Contains(ReadFails(Build("""{"__metadata__":{"k":1}}""", 0)).Message, "not a string");

        var huge = new byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(huge, ulong.MaxValue);
        StringAssert.Contains(ReadFails(huge).Message, "exceeds the limit");
        BinaryPrimitives.WriteUInt64LittleEndian(huge, 1000);
        var ex = ReadFails(huge);
        StringAssert.Contains(ex.Message, "larger than the 8 bytes");
        Assert.AreEqual(0, ex.Offset);
    }

    [TestMethod]
    public void Random_corruption_never_escapes_as_an_untyped_exception()
    {
        var good = Bytes(Sample());
        var rng = new Random(99);
        for (var trial = 0; trial < 2000; trial++)
        {
            var bytes = (byte[])good.Clone();
            var flips = 1 + rng.Next(3);
            for (var f = 0; f < flips; f++)
            {
                // Mostly corrupt the length and header, where parsing decisions are made.
                var pos = rng.Next(Math.Min(bytes.Length, 8 + 200));
                bytes[pos] = (byte)rng.Next(256);
            }

            try
            {
                SafeTensors.Read(new MemoryStream(bytes), "fuzz");
            }
            catch (InvalidDataFormatException)
            {
            }
        }
    }

    private sealed class NonSeekable(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;

        public override long Length => throw new NotSupportedException();
    }
}
