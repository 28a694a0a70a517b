namespace NearML.Cli.Tests;

/// <summary>
/// The update encoding's flag is <c>--encoding</c> (the coordinator option <c>UpdateEncoding</c>); <c>--compression</c>
/// still works as a deprecated alias: the Coordinator sample maps it to the deprecated <c>Compression</c> key (validated and
/// warned about under that name), LocalCluster accepts it for <c>--encoding</c>.
/// </summary>
[TestClass]
public sealed class EncodingFlagTests
{
    [TestMethod]
    [DataRow("Coordinator", "--data|/tmp/nearml-cli-never|--encoding|int3", "UpdateEncoding 'int3' is unknown")]
    [DataRow("Coordinator", "--data|/tmp/nearml-cli-never|--compression|int3", "Compression 'int3' (deprecated alias of UpdateEncoding) is unknown")]
    [DataRow("Coordinator", "--data|/tmp/nearml-cli-never|--encoding|int4|--compression|fp32", "Compression 'fp32' (deprecated) and UpdateEncoding 'int4' disagree")]
    [DataRow("LocalCluster", "--encoding|int3", "int3")]
    [DataRow("LocalCluster", "--compression|int3", "int3")]
    public async Task A_bad_encoding_under_either_name_exits_2_with_one_line_naming_the_key(string sample, string args, string expected)
    {
        var r = await CliProcess.SampleAsync(sample, args.Split('|'));
        Assert.AreEqual(2, r.ExitCode, r.ToString());
        Assert.HasCount(1, r.StderrLines, "expected exactly one line on stderr:\n" + r);
        StringAssert.Contains(r.StderrLines[0], expected, r.ToString());
        Assert.DoesNotContain("   at ", r.Stderr, r.ToString());
    }
}
