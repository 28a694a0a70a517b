namespace NearML.Ledger.Tests;

[TestClass]
public sealed class NearCredentialsTests
{
    [TestMethod]
    public void Loads_a_near_cli_credential_file()
    {
        using NearKeyPair k = NearKeyPair.Generate();
        string home = Path.GetDirectoryName(TestData.TempFile("x"))!;
        string dir = Path.Combine(home, ".near-credentials", "testnet");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "payer.testnet.json"),
            $$"""{"account_id":"payer.testnet","public_key":"{{k.PublicKey}}","private_key":"{{k.ExportSecretKey()}}"}""");
        using NearCredentials c = NearCredentials.FromCredentialsDirectory("testnet", "payer.testnet", home);
        Assert.AreEqual("payer.testnet", c.AccountId);
        Assert.AreEqual(k.PublicKey, c.Key.PublicKey);
        Assert.DoesNotContain(k.ExportSecretKey()[8..], c.ToString());
    }

    [TestMethod]
    public void Mismatched_public_key_in_file_is_rejected_without_leaking_the_secret()
    {
        using NearKeyPair k = NearKeyPair.Generate();
        using NearKeyPair other = NearKeyPair.Generate();
        string path = TestData.TempFile("cred.json");
        File.WriteAllText(path, $$"""{"account_id":"payer.testnet","public_key":"{{other.PublicKey}}","private_key":"{{k.ExportSecretKey()}}"}""");
        var ex = Assert.ThrowsExactly<InvalidNearKeyException>(() => NearCredentials.FromFile(path));
        Assert.DoesNotContain(k.ExportSecretKey()[8..], ex.ToString());
    }

    [TestMethod]
    public void Environment_variable_source()
    {
        using NearKeyPair k = NearKeyPair.Generate();
        string name = "NEARML_TEST_KEY_" + Guid.NewGuid().ToString("N");
        Assert.ThrowsExactly<InvalidNearKeyException>(() => NearCredentials.FromEnvironment("payer.testnet", name));
        Environment.SetEnvironmentVariable(name, k.ExportSecretKey());
        try
        {
            using NearCredentials c = NearCredentials.FromEnvironment("payer.testnet", name);
            Assert.AreEqual(k.PublicKey, c.Key.PublicKey);
        }
        finally
        {
            Environment.SetEnvironmentVariable(name, null);
        }

        Environment.SetEnvironmentVariable(name, "ed25519:notbase58!!");
        try
        {
            var ex = Assert.ThrowsExactly<InvalidNearKeyException>(() => NearCredentials.FromEnvironment("payer.testnet", name));
            Assert.DoesNotContain("notbase58", ex.Message);
        }
        finally
        {
            Environment.SetEnvironmentVariable(name, null);
        }
    }
}

[TestClass]
public sealed class NearNonceManagerTests
{
    [TestMethod]
    public async Task Concurrent_callers_get_distinct_increasing_nonces_and_the_chain_is_read_once()
    {
        int reads = 0;
        var m = new NearNonceManager(async (_, _, ct) =>
        {
            Interlocked.Increment(ref reads);
            await Task.Delay(20, ct);
            return 1000;
        });
        using NearKeyPair k = NearKeyPair.Generate();
        ulong[] got = await Task.WhenAll(Enumerable.Range(0, 50).Select(_ => Task.Run(() => m.NextAsync("a.testnet", k.PublicKey))));
        CollectionAssert.AreEquivalent(Enumerable.Range(1001, 50).Select(i => (ulong)i).ToArray(), got);
        Assert.AreEqual(1, reads);
        await m.ResyncAsync("a.testnet", k.PublicKey, 5000);
        Assert.AreEqual(5001UL, await m.NextAsync("a.testnet", k.PublicKey));
        m.Invalidate("a.testnet", k.PublicKey);
        Assert.AreEqual(1001UL, await m.NextAsync("a.testnet", k.PublicKey));
        Assert.AreEqual(2, reads);
    }
}
