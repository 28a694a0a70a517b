using System.Numerics;
using System.Text.Json;

namespace NearML.Ledger.Tests;

/// <summary>Byte-for-byte agreement with @near-js/transactions (vectors from near-vectors/gen-vectors.mjs).</summary>
[TestClass]
public sealed class NearVectorTests
{
    private static JsonDocument? s_doc;

    private static JsonElement Root
    {
        get
        {
            s_doc ??= JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "near-vectors", "vectors.json")));
            return s_doc.RootElement;
        }
    }

    private static NearKeyPair Key(string name) =>
        NearKeyPair.FromSeed(Convert.FromHexString(Root.GetProperty("keys").GetProperty(name).GetProperty("seedHex").GetString()!));

    public static IEnumerable<object[]> VectorNames() =>
        Root.GetProperty("vectors").EnumerateArray().Select(v => new object[] { v.GetProperty("name").GetString()! });

    [TestMethod]
    public void Vectors_cover_at_least_ten_transactions_and_every_action_type()
    {
        JsonElement[] vectors = Root.GetProperty("vectors").EnumerateArray().ToArray();
        Assert.IsGreaterThanOrEqualTo(10, vectors.Length);
        var types = new HashSet<string>();
        foreach (JsonElement v in vectors)
        {
            foreach (JsonElement a in v.GetProperty("spec").GetProperty("actions").EnumerateArray())
            {
                types.Add(a.GetProperty("type").GetString()!);
            }
        }

        CollectionAssert.IsSubsetOf(
            new[] { "CreateAccount", "DeployContract", "FunctionCall", "Transfer", "Stake", "AddKey", "DeleteKey", "DeleteAccount", "Delegate" },
            types.ToArray());
    }

    [TestMethod]
    public void Keys_match_the_js_library()
    {
        foreach (JsonProperty k in Root.GetProperty("keys").EnumerateObject())
        {
            using NearKeyPair fromSeed = Key(k.Name);
            Assert.AreEqual(k.Value.GetProperty("publicKey").GetString(), fromSeed.PublicKey.ToString(), k.Name);
            Assert.AreEqual(k.Value.GetProperty("secretKey").GetString(), fromSeed.ExportSecretKey(), k.Name);
            Assert.AreEqual(k.Value.GetProperty("implicitAccountId").GetString(), fromSeed.PublicKey.ImplicitAccountId, k.Name);
            using NearKeyPair parsed = NearKeyPair.Parse(k.Value.GetProperty("secretKey").GetString()!);
            Assert.AreEqual(fromSeed.PublicKey, parsed.PublicKey);
            Assert.AreEqual(fromSeed.PublicKey, NearPublicKey.Parse(k.Value.GetProperty("publicKey").GetString()!));
        }
    }

    [TestMethod]
    [DynamicData(nameof(VectorNames))]
    public void Transaction_bytes_hash_and_signature_match(string name)
    {
        JsonElement v = Root.GetProperty("vectors").EnumerateArray().Single(x => x.GetProperty("name").GetString() == name);
        JsonElement spec = v.GetProperty("spec");
        using NearKeyPair key = Key(spec.GetProperty("signerKey").GetString()!);
        Assert.AreEqual(spec.GetProperty("publicKey").GetString(), key.PublicKey.ToString());

        var tx = new NearTransaction(
            spec.GetProperty("signerId").GetString()!,
            key.PublicKey,
            ulong.Parse(spec.GetProperty("nonce").GetString()!),
            spec.GetProperty("receiverId").GetString()!,
            SimpleBase.Base58.Bitcoin.Decode(spec.GetProperty("blockHash").GetString()!),
            spec.GetProperty("actions").EnumerateArray().Select(BuildAction).ToArray());

        Assert.AreEqual(v.GetProperty("transactionHex").GetString(), Convert.ToHexStringLower(tx.ToBorsh()), "borsh");
        Assert.AreEqual(v.GetProperty("hashHex").GetString(), Convert.ToHexStringLower(tx.ComputeHash()), "hash");
        SignedNearTransaction signed = tx.Sign(key);
        Assert.AreEqual(v.GetProperty("signatureHex").GetString(), Convert.ToHexStringLower(signed.Signature), "signature");
        Assert.AreEqual(v.GetProperty("signedTransactionHex").GetString(), Convert.ToHexStringLower(signed.ToBorsh()), "signed borsh");
        Assert.AreEqual(v.GetProperty("signedTransactionBase64").GetString(), signed.ToBase64());
        Assert.AreEqual(v.GetProperty("hashBase58").GetString(), signed.HashBase58);
        Assert.IsTrue(signed.Verify());

        // Round trip through the reader gives the same bytes.
        SignedNearTransaction parsed = SignedNearTransaction.Parse(Convert.FromHexString(v.GetProperty("signedTransactionHex").GetString()!));
        CollectionAssert.AreEqual(signed.ToBorsh(), parsed.ToBorsh());
        Assert.IsTrue(parsed.Verify());
    }

    private static NearAction BuildAction(JsonElement a)
    {
        string type = a.GetProperty("type").GetString()!;
        return type switch
        {
            "CreateAccount" => new CreateAccountAction(),
            "DeployContract" => new DeployContractAction(Convert.FromHexString(a.GetProperty("codeHex").GetString()!)),
            "FunctionCall" => new FunctionCallAction(a.GetProperty("methodName").GetString()!, Convert.FromHexString(a.GetProperty("argsHex").GetString()!),
                ulong.Parse(a.GetProperty("gas").GetString()!), U128(a.GetProperty("deposit"))),
            "Transfer" => new TransferAction(U128(a.GetProperty("deposit"))),
            "Stake" => new StakeAction(U128(a.GetProperty("stake")), NearPublicKey.Parse(a.GetProperty("publicKey").GetString()!)),
            "AddKey" => new AddKeyAction(NearPublicKey.Parse(a.GetProperty("publicKey").GetString()!),
                new AccessKey(ulong.Parse(a.GetProperty("accessKeyNonce").GetString()!), Permission(a.GetProperty("permission")))),
            "DeleteKey" => new DeleteKeyAction(NearPublicKey.Parse(a.GetProperty("publicKey").GetString()!)),
            "DeleteAccount" => new DeleteAccountAction(a.GetProperty("beneficiaryId").GetString()!),
            "Delegate" => BuildDelegate(a),
            _ => throw new InvalidOperationException(type),
        };
    }

    private static SignedDelegateAction BuildDelegate(JsonElement a)
    {
        using NearKeyPair key = Key(a.GetProperty("signerKey").GetString()!);
        var d = new DelegateAction(a.GetProperty("senderId").GetString()!, a.GetProperty("receiverId").GetString()!,
            a.GetProperty("actions").EnumerateArray().Select(BuildAction).ToArray(),
            ulong.Parse(a.GetProperty("nonce").GetString()!), ulong.Parse(a.GetProperty("maxBlockHeight").GetString()!), key.PublicKey);
        Assert.AreEqual(a.GetProperty("expectedDelegateEncodedHex").GetString(), Convert.ToHexStringLower(d.ToSigningBytes()), "delegate encoding");
        Assert.AreEqual(a.GetProperty("expectedDelegateHashHex").GetString(), Convert.ToHexStringLower(d.ComputeHash()), "delegate hash");
        SignedDelegateAction signed = d.Sign(key);
        Assert.AreEqual(a.GetProperty("expectedDelegateSignatureHex").GetString(), Convert.ToHexStringLower(signed.Signature), "delegate signature");
        Assert.IsTrue(signed.Verify());
        return signed;
    }

    private static AccessKeyPermission Permission(JsonElement p) =>
        p.GetProperty("type").GetString() == "FullAccess"
            ? FullAccessPermission.Instance
            : new FunctionCallPermission(
                p.GetProperty("allowance").ValueKind == JsonValueKind.Null ? null : U128(p.GetProperty("allowance")),
                p.GetProperty("receiverId").GetString()!,
                p.GetProperty("methodNames").EnumerateArray().Select(m => m.GetString()!).ToArray());

    private static UInt128 U128(JsonElement e) => UInt128.Parse(e.GetString()!, System.Globalization.CultureInfo.InvariantCulture);
}
