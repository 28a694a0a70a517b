using System.Security.Cryptography;

namespace NearML.Ledger.Tests;

[TestClass]
public sealed class SettlementCrashTests
{
    public TestContext TestContext { get; set; } = null!;

    private static NearRpcTestServer NewServer(out List<WorkerPayout> payouts)
    {
        var server = new NearRpcTestServer();
        using NearKeyPair payer = NearKeyPair.FromSeed(SHA256.HashData("crash-payer"u8)); // the crash target's key
        server.AddAccount("payer.testnet", UInt128.Parse("1000000000000000000000000000"), payer.PublicKey);
        server.FtMint("payer.testnet", 1_000_000_000);
        payouts = Enumerable.Range(0, 7).Select(i => new WorkerPayout($"w{i}.testnet", (ulong)(i + 1), (UInt128)(1000 * (i + 1)))).ToList();
        foreach (WorkerPayout p in payouts)
        {
            server.FtRegister(p.WorkerId);
        }

        return server;
    }

    private async Task<(int ExitCode, string Output)> RunAsync(NearRpcTestServer server, string store, int crashAt)
    {
        using System.Diagnostics.Process p = ChildProcess.Start("settle", server.Endpoint.ToString(), store, crashAt.ToString());
        Task<string> output = p.StandardOutput.ReadToEndAsync(TestContext.CancellationToken);
        Task<string> error = p.StandardError.ReadToEndAsync(TestContext.CancellationToken);
        await p.WaitForExitAsync(TestContext.CancellationToken);
        return (p.ExitCode, await output + await error);
    }

    [TestMethod]
    [TestCategory("Slow")]
    public async Task Killing_the_settler_at_every_step_still_pays_every_worker_exactly_once()
    {
        int totalSteps = int.MaxValue;
        for (int k = 1; k <= totalSteps; k++)
        {
            using NearRpcTestServer server = NewServer(out List<WorkerPayout> payouts);
            string store = TestData.TempFile("settle-crash.db");
            (int crashCode, string crashOut) = await RunAsync(server, store, k);
            if (crashCode == 0)
            {
                // The settlement finished before reaching step k: every step has been covered.
                Assert.IsGreaterThan(10, k, crashOut);
                break;
            }

            Assert.AreNotEqual(3, crashCode, $"step {k}: {crashOut}");
            StringAssert.Contains(crashOut, $"step {k} ", $"the child died at step {k}: {crashOut}");

            (int code, string output) = await RunAsync(server, store, -1);
            Assert.AreEqual(0, code, $"resume after a kill at step {k}: {output}");
            StringAssert.Contains(output, "settled True");
            if (totalSteps == int.MaxValue && output.Split("settled True steps ")[1].Trim() is { } s && k == 1)
            {
                // Step count of a clean run = steps of the resumed run after a kill before anything was stored.
                totalSteps = int.Parse(s) + 1;
            }

            foreach (WorkerPayout p in payouts)
            {
                Assert.AreEqual(p.Amount, server.FtBalance(p.WorkerId), $"kill at step {k}: {p.WorkerId}");
            }

            Assert.HasCount(payouts.Count, server.FtTransfers, $"kill at step {k}");
            Assert.HasCount(1, server.Anchors, $"kill at step {k}");
            Assert.AreEqual(1, server.MaxExecutionsOfOneTransaction, $"kill at step {k}");
        }

        Assert.AreNotEqual(int.MaxValue, totalSteps);
    }
}
