using NearML.Core;
using NearML.Core.Collectives;
using NearML.Training.Sync;

namespace NearML.Training.Tests.Sync;

[TestClass]
public sealed class CheckpointTests
{
    private static readonly ParameterLayout Layout = Quadratic.SmallLayout();

    public static IEnumerable<object[]> Kinds => [["diloco"], ["streaming"], ["demo"], ["ddp"]];

    private static SyncStrategy Create(string kind, ICollective c, ParameterSet p) => kind switch
    {
        "diloco" => new DiLoCoStrategy(c, p, new PlainSgd(Layout, 0.05), new DiLoCoOptions { InnerSteps = 3, Encoding = PseudoGradientEncoding.Int8 }),
        "streaming" => new StreamingDiLoCoStrategy(c, p, new PlainSgd(Layout, 0.05),
            new StreamingDiLoCoOptions { Outer = new DiLoCoOptions { InnerSteps = 4 }, Fragments = 2, Overlap = 0, Partition = FragmentPartition.StridedLayers }),
        "demo" => new DeMoStrategy(c, p, new DeMoOptions { LearningRate = 0.01, TopK = 4, Chunk = 4 }),
        _ => new DdpStrategy(c, p, new PlainSgd(Layout, 0.05)),
    };

    [TestMethod]
    [DynamicData(nameof(Kinds))]
    public async Task ResumedRun_ContinuesBitForBit(string kind)
    {
        var problem = new Quadratic(Layout, 2, 37);
        var start = Quadratic.Start(Layout, 5);

        var g1 = new InProcessCollectiveGroup();
        var straight = Enumerable.Range(0, 2).Select(i => Create(kind, g1.Join("w" + i), start.Clone())).ToList();
        await Cluster.RunAsync(straight, problem, 14);

        var g2 = new InProcessCollectiveGroup();
        var first = Enumerable.Range(0, 2).Select(i => Create(kind, g2.Join("w" + i), start.Clone())).ToList();
        await Cluster.RunAsync(first, problem, 6); // mid-round for diloco (H=3 → boundary) and streaming (H=4)
        var dir = Path.Combine(Path.GetTempPath(), "nearml-sync-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            for (var i = 0; i < 2; i++)
            {
                first[i].SaveCheckpoint(Path.Combine(dir, $"w{i}.safetensors"));
            }

            var g3 = new InProcessCollectiveGroup();
            var resumed = Enumerable.Range(0, 2).Select(i => Create(kind, g3.Join("w" + i), Quadratic.Start(Layout, 77))).ToList();
            for (var i = 0; i < 2; i++)
            {
                resumed[i].LoadCheckpoint(Path.Combine(dir, $"w{i}.safetensors"));
            }

            await Cluster.RunAsync(resumed, problem, 8);
            for (var i = 0; i < 2; i++)
            {
                CollectionAssert.AreEqual(straight[i].Parameters.ComputeHash(), resumed[i].Parameters.ComputeHash(), $"worker {i} local");
                CollectionAssert.AreEqual(straight[i].GlobalParameters.ComputeHash(), resumed[i].GlobalParameters.ComputeHash(), $"worker {i} global");
                Assert.AreEqual(straight[i].LocalStep, resumed[i].LocalStep);
            }
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [TestMethod]
    public void Checkpoint_HoldsTheOuterState_AndRejectsAnotherKind()
    {
        var c = new InProcessCollectiveGroup().Join("a");
        var d = new DiLoCoStrategy(c, Quadratic.Start(Layout, 1), new PlainSgd(Layout, 0.1));
        var state = d.CaptureState();
        Assert.IsTrue(state.Tensors.Layout.TryGet("outer_momentum:l0.weight", out _));
        Assert.IsTrue(state.Tensors.Layout.TryGet("global:l1.bias", out _));
        Assert.AreEqual("diloco", state.Metadata["nearml.sync.kind"]);
        var demo = new DeMoStrategy(new InProcessCollectiveGroup().Join("b"), Quadratic.Start(Layout, 1));
        Assert.IsTrue(demo.CaptureState().Tensors.Layout.TryGet("demo_momentum:l0.weight", out _));
        var path = Path.Combine(Path.GetTempPath(), "nearml-ckpt-" + Guid.NewGuid().ToString("N") + ".safetensors");
        try
        {
            d.SaveCheckpoint(path);
            var s = new StreamingDiLoCoStrategy(new InProcessCollectiveGroup().Join("c"), Quadratic.Start(Layout, 1), new PlainSgd(Layout, 0.1),
                new StreamingDiLoCoOptions { Fragments = 2 });
            var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => s.LoadCheckpoint(path));
            StringAssert.Contains(ex.Message, "expected 'streaming-diloco'");
        }
        finally
        {
            File.Delete(path);
        }
    }
}
