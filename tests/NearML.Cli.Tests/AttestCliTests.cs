using System.Text.Json;

namespace NearML.Cli.Tests;

/// <summary><c>nearml attest verify --json</c> on real third-party evidence from ../shared (category Conformance).</summary>
[TestClass]
public sealed class AttestCliTests
{
    private static string Fixture(params string[] parts)
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            var candidate = Path.Combine([d.FullName, "shared", "fixtures", "attestation", .. parts]);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        Assert.Inconclusive("../shared/fixtures/attestation not found next to the repository");
        return string.Empty;
    }

    [TestMethod]
    [TestCategory("Conformance")]
    public async Task Tdx_quote_verifies_to_json_with_checks_and_a_verdict()
    {
        var quote = Fixture("tdx", "phala-dcap-qvl_tdx_quote");
        var collateral = Fixture("tdx", "phala-dcap-qvl_tdx_quote_collateral.json");
        var r = await CliProcess.NearmlAsync("attest", "verify", quote, "--collateral", collateral, "--at", "2025-01-01T00:00:00Z", "--json");
        Assert.IsTrue(r.ExitCode is 0 or 1, r.ToString());
        using var doc = JsonDocument.Parse(r.Stdout);
        StringAssert.StartsWith(doc.RootElement.GetProperty("evidence").GetString(), "Intel TDX quote");
        Assert.AreEqual(64 * 2, doc.RootElement.GetProperty("fields").GetProperty("REPORTDATA").GetString()!.Length);
        Assert.IsGreaterThan(0, doc.RootElement.GetProperty("checks").GetArrayLength());
        Assert.AreEqual(r.ExitCode == 0, doc.RootElement.GetProperty("accepted").GetBoolean());

        var text = await CliProcess.NearmlAsync("attest", "verify", quote, "--collateral", collateral, "--at", "2025-01-01T00:00:00Z");
        Assert.AreEqual(r.ExitCode, text.ExitCode, text.ToString());
        StringAssert.Contains(text.Stdout, "MRTD");
        Assert.AreEqual(-1, Array.IndexOf(text.StdoutBytes, (byte)0x1B), "ANSI escape in redirected output");
    }
}
