using System.Text.Json;
using NearML.Core;
using NearML.Training.Tensors;

namespace NearML.Training.Tests.Engine;

/// <summary>The committed PyTorch fixtures (Fixtures/engine, written by torch/gen_engine.py).</summary>
internal sealed class EngineFixture
{
    private static readonly Lazy<EngineFixture> LazyInstance = new(() => new EngineFixture());
    private readonly ParameterSet _set;
    private readonly JsonElement _cases;

    private EngineFixture()
    {
        var dir = Path.Combine(AppContext.BaseDirectory, "Fixtures", "engine");
        _set = SafeTensors.ReadFile(Path.Combine(dir, "engine.safetensors")).Parameters;
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "engine.json")));
        _cases = doc.RootElement.GetProperty("cases").Clone();
    }

    public static EngineFixture Instance => LazyInstance.Value;

    public JsonElement Case(string name) => _cases.GetProperty(name);

    public IEnumerable<string> Keys(string name) => Case(name).GetProperty("keys").EnumerateArray().Select(e => e.GetString()!);

    public string Op(string name) => Case(name).GetProperty("op").GetString()!;

    public JsonElement Attr(string name, string attr) => Case(name).GetProperty("attrs").GetProperty(attr);

    public bool Has(string name, string key) => _set.Layout.TryGet(name + "." + key, out _);

    public float[] Get(string name, string key) => _set.GetSpan(name + "." + key).ToArray();

    public int[] Shape(string name, string key) => [.. _set.Layout[name + "." + key].Shape];

    public int[] Ints(string name, string key) => Get(name, key).Select(f => (int)f).ToArray();

    public Tensor Leaf(string name, string key, bool requiresGrad = true) => Tensor.FromArray(Get(name, key), requiresGrad, Shape(name, key));

    /// <summary>A parameter set holding the case's "param.*" tensors under their PyTorch names.</summary>
    public ParameterSet Params(string name)
    {
        var keys = Keys(name).Where(k => k.StartsWith("param.", StringComparison.Ordinal)).ToArray();
        var set = ParameterSet.Create(keys.Select(k => (k["param.".Length..], Shape(name, k))).ToArray());
        foreach (var k in keys)
        {
            Get(name, k).CopyTo(set.GetSpan(k["param.".Length..]));
        }

        return set;
    }
}

internal static class Check
{
    /// <summary>|a − e| ≤ atol + rtol·|e| element-wise, with a message naming the worst element.</summary>
    public static void Close(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what, double rtol = 1e-4, double atol = 1e-5)
    {
        Assert.AreEqual(expected.Length, actual.Length, $"{what}: length");
        var worst = -1;
        double worstExcess = 0;
        for (var i = 0; i < expected.Length; i++)
        {
            var diff = Math.Abs((double)actual[i] - expected[i]);
            var allowed = atol + (rtol * Math.Abs(expected[i]));
            if (!(diff <= allowed) && (worst < 0 || diff - allowed > worstExcess))
            {
                worst = i;
                worstExcess = diff - allowed;
            }
        }

        if (worst >= 0)
        {
            Assert.Fail($"{what}: element {worst} is {actual[worst]}, expected {expected[worst]} (rtol {rtol}, atol {atol}).");
        }
    }
}
