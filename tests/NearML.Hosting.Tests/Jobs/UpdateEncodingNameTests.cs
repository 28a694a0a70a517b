using NearML.Core.Contracts;
using NearML.Hosting.Jobs;
using NearML.Training.Sync;

namespace NearML.Hosting.Tests.Jobs;

/// <summary>One name per update encoding: the wire enum, NearML.Training's enum, the codec and the option text agree.</summary>
[TestClass]
public sealed class UpdateEncodingNameTests
{
    private static IEnumerable<UpdateEncoding> WireEncodings => Enum.GetValues<UpdateEncoding>().Where(e => e != UpdateEncoding.Unspecified);

    [TestMethod]
    public void Every_wire_encoding_has_one_name_in_the_proto_enum_the_training_enum_the_codec_and_the_options()
    {
        CollectionAssert.AreEqual(UpdateEncodings.Names.ToList(), WireEncodings.Select(UpdateEncodings.NameOf).ToList(), "Names lists the enum in order");
        Assert.AreEqual(Enum.GetValues<PseudoGradientEncoding>().Length, WireEncodings.Count(), "one Training member per wire encoding");
        foreach (var e in WireEncodings)
        {
            var name = UpdateEncodings.NameOf(e);
            Assert.AreEqual(e.ToString().ToUpperInvariant(), name.ToUpperInvariant(), "C# name of the proto enum value");
            Assert.AreEqual(name, UpdateEncodings.ToTraining(e).ToString().ToLowerInvariant(), "NearML.Training member");
            Assert.AreEqual(name, UpdateEncodings.GetCodec(e).Name, "codec name");
            Assert.AreEqual(name, PayloadCodecs.Create(UpdateEncodings.ToTraining(e)).Name, "Training's codec of the same member");
            Assert.AreEqual(e, UpdateEncodings.Parse(name));
            Assert.IsTrue(UpdateEncodings.TryFromCodec(UpdateEncodings.GetCodec(e), out var back) && back == e);
        }

        Assert.AreEqual(UpdateEncodings.DefaultName, UpdateEncodings.NameOf(UpdateEncodings.Default));
    }

    [TestMethod]
    [DataRow("")]
    [DataRow("INT8")]
    [DataRow("Int8")]
    [DataRow("int8-block64")]
    [DataRow("int8-absmax-b64")]
    [DataRow("q8")]
    [DataRow("float32")]
    [DataRow(" fp32")]
    public void Other_spellings_are_refused_with_the_known_names(string text)
    {
        Assert.IsFalse(UpdateEncodings.IsKnown(text));
        var ex = Assert.ThrowsExactly<JobConfigurationException>(() => UpdateEncodings.Parse(text));
        StringAssert.Contains(ex.Message, "fp32, fp16, int8, int4");
    }

    [TestMethod]
    public void Unspecified_and_unknown_values_are_typed_errors_and_format_without_throwing()
    {
        foreach (var e in new[] { UpdateEncoding.Unspecified, (UpdateEncoding)5, (UpdateEncoding)(-1) })
        {
            Assert.ThrowsExactly<JobConfigurationException>(() => UpdateEncodings.NameOf(e));
            Assert.ThrowsExactly<JobConfigurationException>(() => UpdateEncodings.GetCodec(e));
            Assert.ThrowsExactly<JobConfigurationException>(() => UpdateEncodings.ToTraining(e));
        }

        Assert.AreEqual("unspecified", UpdateEncodings.Format(UpdateEncoding.Unspecified));
        Assert.AreEqual("unknown (5)", UpdateEncodings.Format((UpdateEncoding)5));
        Assert.AreEqual("'int4'", UpdateEncodings.Format(UpdateEncoding.Int4));
    }

    [TestMethod]
    public void A_non_default_block_size_is_not_a_wire_encoding()
    {
        var codec = PayloadCodecs.Create(PseudoGradientEncoding.Int8, 32);
        Assert.AreEqual("int8-b32", codec.Name);
        Assert.IsFalse(UpdateEncodings.TryFromCodec(codec, out _));
    }
}
