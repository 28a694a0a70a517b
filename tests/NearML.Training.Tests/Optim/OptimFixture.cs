using System.Text.Json;
using NearML.Core;

namespace NearML.Training.Tests.Optim;

/// <summary>Loads Fixtures/optim/optim.json (written by torch/gen_optim.py) by walking up from the test assembly.</summary>
internal sealed class OptimFixture
{
    private static readonly Lazy<OptimFixture> Instance = new(Load);

    private OptimFixture(JsonElement root)
    {
        Root = root;
        var tensors = root.GetProperty("tensors").EnumerateArray()
            .Select(t => (t.GetProperty("name").GetString()!, t.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()).ToArray()))
            .ToArray();
        Layout = new ParameterLayout(tensors);
        K = root.GetProperty("k").GetInt32();
    }

    public static OptimFixture Current => Instance.Value;

    public JsonElement Root { get; }

    public ParameterLayout Layout { get; }

    public int K { get; }

    public ParameterSet InitialParameters => Decode(Root.GetProperty("params0").GetString()!);

    public ParameterSet Gradients(int step) => Decode(Root.GetProperty("grads")[step].GetString()!);

    public JsonElement Case(string name) =>
        Root.GetProperty("cases").EnumerateArray().Single(c => c.GetProperty("name").GetString() == name);

    public ParameterSet Decode(string base64)
    {
        var bytes = Convert.FromBase64String(base64);
        var data = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, data, 0, bytes.Length);
        return new ParameterSet(Layout, data);
    }

    public static string FindFixture(string relative)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "NearML.Training.Tests", "Fixtures", relative);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException($"Fixture '{relative}' not found above {AppContext.BaseDirectory}; run tests/NearML.Training.Tests/torch/gen_optim.py.");
    }

    private static OptimFixture Load()
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(FindFixture(Path.Combine("optim", "optim.json"))));
        return new OptimFixture(doc.RootElement.Clone());
    }
}

internal static class Compare
{
    /// <summary>Asserts |a − e| ≤ atol + rtol·|e| for every element, naming the tensor and index of the first failure.</summary>
    /// <returns>The largest difference in units in the last place (float32 ordering distance).</returns>
    public static long Close(ParameterSet expected, ParameterSet actual, double rtol, double atol, string what)
    {
        expected.EnsureCompatible(actual);
        long maxUlp = 0;
        foreach (var e in expected.Layout.Entries)
        {
            var x = expected.GetSpan(e.Name);
            var y = actual.GetSpan(e.Name);
            for (var i = 0; i < x.Length; i++)
            {
                var tol = atol + (rtol * Math.Abs(x[i]));
                if (!(Math.Abs(x[i] - y[i]) <= tol))
                {
                    Assert.Fail($"{what}: tensor '{e.Name}'[{i}] expected {x[i]:R} but got {y[i]:R} (|diff| {Math.Abs(x[i] - y[i]):E3} > {tol:E3}).");
                }

                maxUlp = Math.Max(maxUlp, Math.Abs(Ordered(x[i]) - Ordered(y[i])));
            }
        }

        return maxUlp;
    }

    private static long Ordered(float f)
    {
        var bits = BitConverter.SingleToInt32Bits(f);
        return bits < 0 ? int.MinValue - (long)bits : bits;
    }

    public static void BitEqual(ParameterSet expected, ParameterSet actual, string what)
    {
        expected.EnsureCompatible(actual);
        for (var i = 0; i < expected.Length; i++)
        {
            if (BitConverter.SingleToInt32Bits(expected.Data[i]) != BitConverter.SingleToInt32Bits(actual.Data[i]))
            {
                Assert.Fail($"{what}: element {i} differs: {expected.Data[i]:R} vs {actual.Data[i]:R}.");
            }
        }
    }
}
