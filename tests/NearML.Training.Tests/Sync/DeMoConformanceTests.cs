using System.Buffers.Binary;
using System.Text.Json;
using NearML.Core;
using NearML.Core.Collectives;
using NearML.Training.Sync;
using NearML.Training.Sync.Internal;

namespace NearML.Training.Tests.Sync;

[TestClass]
public sealed class DeMoConformanceTests
{
    private static float[] Array(JsonElement a)
    {
        var bytes = Convert.FromBase64String(a.GetProperty("data").GetString()!);
        var f = new float[bytes.Length / 4];
        for (var i = 0; i < f.Length; i++)
        {
            f[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(4 * i));
        }

        return f;
    }

    private static IEnumerable<JsonElement> Flatten(JsonElement e)
    {
        if (e.ValueKind == JsonValueKind.Array && e.GetArrayLength() > 0 && e[0].ValueKind == JsonValueKind.Array)
        {
            foreach (var x in e.EnumerateArray())
            {
                foreach (var y in Flatten(x))
                {
                    yield return y;
                }
            }
        }
        else
        {
            yield return e;
        }
    }

    [TestMethod]
    [TestCategory("Conformance")]
    public async Task ReproducesTheReferenceImplementation_CaseA()
    {
        var path = SharedFolder.Require("fixtures", "demo", "demo_reference_case_A.json");
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        var c = doc.RootElement.GetProperty("cases")[0];
        var cfg = c.GetProperty("config");

        // The DCT basis matrices (input index j, frequency b).
        foreach (var b in c.GetProperty("basis").EnumerateObject())
        {
            var n = int.Parse(b.Name, System.Globalization.CultureInfo.InvariantCulture);
            var reference = Array(b.Value.GetProperty("dct"));
            var mine = DctPlan.Basis(n);
            for (var i = 0; i < mine.Length; i++)
            {
                Assert.AreEqual(reference[i], mine[i], 2e-7, $"dct basis {n} element {i}");
            }
        }

        var layout = new ParameterLayout([("p1d", [1000]), ("p2d", [128, 96])]);
        var parameters = new ParameterSet(layout);
        Array(c.GetProperty("initial_params").GetProperty("p1d")).CopyTo(parameters.GetSpan("p1d"));
        Array(c.GetProperty("initial_params").GetProperty("p2d")).CopyTo(parameters.GetSpan("p2d"));
        var options = new DeMoOptions
        {
            LearningRate = cfg.GetProperty("lr").GetDouble(),
            CompressionDecay = cfg.GetProperty("compression_decay").GetDouble(),
            TopK = cfg.GetProperty("compression_topk").GetInt32(),
            Chunk = cfg.GetProperty("compression_chunk").GetInt32(),
            WeightDecay = cfg.GetProperty("weight_decay").GetDouble(),
        };
        var group = new InProcessCollectiveGroup();
        var demo = new DeMoStrategy(group.Join("rank0"), parameters, options);
        Assert.AreEqual(50, demo.PlanOf(0).N2);
        Assert.AreEqual(64, demo.PlanOf(1).N1);
        Assert.AreEqual(48, demo.PlanOf(1).N2);

        double worstParam = 0, worstMomentum = 0, worstValue = 0;
        foreach (var step in c.GetProperty("workers")[0].GetProperty("steps").EnumerateArray())
        {
            var grads = parameters.CreateZeros();
            var ps = step.GetProperty("params").EnumerateArray().ToList();
            foreach (var p in ps)
            {
                Array(p.GetProperty("grad_in")).CopyTo(grads.GetSpan(p.GetProperty("name").GetString()!));
            }

            await demo.StepAsync(grads, 1);
            Assert.AreEqual(step.GetProperty("data_transmit_bytes").GetInt64(), demo.ReferenceMessageBytes);
            Assert.AreEqual(768 * 6, demo.MessageBytes, "uint16 index + float32 value per kept coefficient");

            var message = demo.LastMessage.ToArray();
            var pos = 0;
            for (var t = 0; t < 2; t++)
            {
                var p = ps[t];
                var name = p.GetProperty("name").GetString()!;
                var plan = demo.PlanOf(t);
                var idxChunks = Flatten(p.GetProperty("sparse_idx")).ToList();
                var valChunks = Flatten(p.GetProperty("sparse_val")).ToList();
                Assert.HasCount(plan.ChunkCount, idxChunks);
                for (var ch = 0; ch < plan.ChunkCount; ch++)
                {
                    var refPairs = idxChunks[ch].EnumerateArray().Select(x => x.GetInt32())
                        .Zip(valChunks[ch].EnumerateArray().Select(x => x.GetDouble()))
                        .OrderBy(x => x.First).ToList();
                    var minePairs = new List<(int, float)>();
                    for (var j = 0; j < 32; j++)
                    {
                        var idx = BinaryPrimitives.ReadUInt16LittleEndian(message.AsSpan(pos));
                        var v = BinaryPrimitives.ReadSingleLittleEndian(message.AsSpan(pos + 2));
                        minePairs.Add((idx, v));
                        pos += 6;
                    }

                    CollectionAssert.AreEqual(refPairs.Select(x => x.First).ToArray(), minePairs.Select(x => x.Item1).ToArray(),
                        $"step {step.GetProperty("step")} {name} chunk {ch}: top-k index set");
                    for (var j = 0; j < 32; j++)
                    {
                        worstValue = Math.Max(worstValue, Math.Abs(refPairs[j].Second - minePairs[j].Item2));
                    }
                }

                var momentum = Array(p.GetProperty("momentum_after_removal"));
                var mine = demo.Momentum.GetSpan(name);
                for (var i = 0; i < momentum.Length; i++)
                {
                    worstMomentum = Math.Max(worstMomentum, Math.Abs(momentum[i] - mine[i]));
                }

                var sign = Array(p.GetProperty("update_sign"));
                var agg = demo.LastAggregate.GetSpan(name);
                for (var i = 0; i < sign.Length; i++)
                {
                    Assert.AreEqual(sign[i], MathF.Sign(agg[i]), $"{name} sign {i}");
                }

                var after = Array(p.GetProperty("param_after"));
                var live = parameters.GetSpan(name);
                for (var i = 0; i < after.Length; i++)
                {
                    worstParam = Math.Max(worstParam, Math.Abs(after[i] - live[i]));
                }
            }
        }

        Assert.IsLessThan(1e-8, worstValue, $"coefficient values differ by {worstValue:G3}");
        Assert.IsLessThan(1e-8, worstMomentum, $"momentum differs by {worstMomentum:G3}");
        Assert.IsLessThan(1e-7, worstParam, $"parameters differ by {worstParam:G3}");
    }

    [TestMethod]
    public async Task TwoWorkers_AverageEachCoefficientOverItsSenders_AndStayIdentical()
    {
        var layout = new ParameterLayout([("w", [8, 6]), ("b", [10])]);
        var group = new InProcessCollectiveGroup();
        var start = Quadratic.Start(layout, 4);
        var opts = new DeMoOptions { LearningRate = 0.01, TopK = 3, Chunk = 4 };
        var a = new DeMoStrategy(group.Join("a"), start.Clone(), opts);
        var b = new DeMoStrategy(group.Join("b"), start.Clone(), opts);
        var problem = new Quadratic(layout, 2, 8);
        await Cluster.RunAsync([a, b], problem, 5);
        CollectionAssert.AreEqual(a.Parameters.ComputeHash(), b.Parameters.ComputeHash());
        // w [8,6]: chunks 4×3 → 2×2 chunks of 12 coefficients, k 3; b [10]: chunk 2 (largest divisor ≤ 4 is 2) → 5 chunks, k 2.
        Assert.AreEqual(((4 * 3) + (5 * 2)) * 6, a.MessageBytes);
        Assert.AreEqual(5L * a.MessageBytes, a.Collective.Statistics.BytesSent);
        Assert.AreEqual(5L * a.MessageBytes, a.Collective.Statistics.BytesReceived);
        Assert.IsLessThan(problem.Loss(start), problem.Loss(a.Parameters));
    }

    [TestMethod]
    public async Task MalformedOrNonFiniteMessages_AreRejectedWithReason()
    {
        var layout = new ParameterLayout([("w", [8])]);
        var group = new InProcessCollectiveGroup();
        var opts = new DeMoOptions { LearningRate = 0.1, TopK = 2, Chunk = 4 };
        var honest = new DeMoStrategy(group.Join("a"), Quadratic.Start(layout, 1), opts);
        var evil = group.Join("z");
        var g = honest.Parameters.CreateZeros();
        g.Data.Fill(1);
        var bad = new byte[honest.MessageBytes];
        BinaryPrimitives.WriteUInt16LittleEndian(bad, 9); // index 9 ≥ 4 coefficients per chunk
        var t1 = honest.StepAsync(g, 1).AsTask();
        await evil.AllGatherAsync(0, bad);
        var r1 = await t1;
        Assert.AreEqual(1, r1.Participants);
        Assert.AreEqual(RejectionReason.Malformed, honest.Rejections.Single().Reason);
        StringAssert.Contains(honest.Rejections.Single().Detail, "index 9");

        var nan = honest.LastMessage.ToArray();
        BinaryPrimitives.WriteSingleLittleEndian(nan.AsSpan(2), float.NaN);
        var t2 = honest.StepAsync(g, 1).AsTask();
        await evil.AllGatherAsync(1, nan);
        await t2;
        Assert.AreEqual(RejectionReason.NonFinite, honest.Rejections[^1].Reason);
        Assert.IsTrue(honest.Parameters.IsFinite);
    }
}
