using System.Text.Json;

namespace NearML.Enclave.Internal;

internal sealed record TcbLevel(byte[] SgxComponents, int PceSvn, byte[] TdxComponents, DateTimeOffset TcbDate, TcbStatus Status, string[] Advisories);

internal sealed record ModuleLevel(int IsvSvn, DateTimeOffset TcbDate, TcbStatus Status, string[] Advisories);

internal sealed record ModuleIdentity(string Id, byte[] MrSigner, byte[] Attributes, byte[] AttributesMask, ModuleLevel[] Levels);

/// <summary>A signed Intel collateral document: the exact signed bytes, the r‖s signature, and its issuer chain.</summary>
internal abstract class SignedIntelDocument
{
    protected SignedIntelDocument(ReadOnlyMemory<byte> signed, byte[] signature, List<Cert> chain)
    {
        SignedBytes = signed;
        Signature = signature;
        IssuerChain = chain;
    }

    public ReadOnlyMemory<byte> SignedBytes { get; }

    public byte[] Signature { get; }

    public List<Cert> IssuerChain { get; }

    public required string Id { get; init; }

    public required int Version { get; init; }

    public required DateTimeOffset IssueDate { get; init; }

    public required DateTimeOffset NextUpdate { get; init; }

    public required int TcbEvaluationDataNumber { get; init; }

    private bool? _signatureValid;

    /// <summary>Checks the ECDSA P-256 signature with the first issuer certificate (cached: the inputs are immutable).</summary>
    public bool SignatureValid => _signatureValid ??= Signature.Length == 64
        && IssuerChain.Count > 0 && IssuerChain[0].Ec is not null && VerifyMemoised(IssuerChain[0]);

    private bool VerifyMemoised(Cert signer)
    {
        UInt128 key = VerificationMemo.Key(signer.Fingerprint, "ecdsa-p256-sha256-p1363", SignedBytes.Span, Signature);
        if (VerificationMemo.TryGet(key, out bool known))
        {
            return known;
        }

        bool ok;
        lock (signer.Ec!)
        {
            ok = signer.Ec.VerifyData(SignedBytes.Span, Signature, System.Security.Cryptography.HashAlgorithmName.SHA256);
        }

        return VerificationMemo.Remember(key, ok);
    }
}

internal sealed class TcbInfo : SignedIntelDocument
{
    public TcbInfo(ReadOnlyMemory<byte> signed, byte[] signature, List<Cert> chain) : base(signed, signature, chain) { }

    public required byte[] Fmspc { get; init; }

    public required byte[] PceId { get; init; }

    public ModuleIdentity? TdxModule { get; init; }

    public required ModuleIdentity[] ModuleIdentities { get; init; }

    public required TcbLevel[] Levels { get; init; }

    /// <summary>Parses the signed JSON; any shape it does not expect is an <see cref="AttestationFormatException"/>.</summary>
    public static TcbInfo Parse(ReadOnlyMemory<byte> signed, byte[] signature, List<Cert> chain)
    {
        try
        {
            return ParseCore(signed, signature, chain);
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException or FormatException or OverflowException or KeyNotFoundException)
        {
            // JsonElement throws InvalidOperationException for a value of another kind than the schema's (an array where an
            // object belongs, a number where a string does); a short hex field throws ArgumentOutOfRangeException.
            throw new AttestationFormatException("TCB Info", "json", -1, $"does not have the expected shape: {e.Message}", e);
        }
    }

    private static TcbInfo ParseCore(ReadOnlyMemory<byte> signed, byte[] signature, List<Cert> chain)
    {
        const string W = "TCB Info";
        JsonElement t;
        try
        {
            using var doc = JsonDocument.Parse(signed);
            t = doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new AttestationFormatException(W, "tcbInfo", e.BytePositionInLine ?? -1, e.Message, e);
        }

        var levels = new List<TcbLevel>();
        foreach (JsonElement l in Json.Arr(t, "tcbLevels", W).EnumerateArray())
        {
            JsonElement tcb = Json.Obj(l, "tcb", W);
            byte[] sgx = Components(Json.Arr(tcb, "sgxtcbcomponents", W));
            byte[] tdx = tcb.TryGetProperty("tdxtcbcomponents", out JsonElement td) ? Components(td) : new byte[16];
            levels.Add(new TcbLevel(sgx, Json.Int(tcb, "pcesvn", W), tdx, Json.Time(l, "tcbDate", W), Json.Status(Json.Str(l, "tcbStatus", W), W), Advisories(l)));
        }

        ModuleIdentity? module = null;
        if (t.TryGetProperty("tdxModule", out JsonElement m))
        {
            module = new ModuleIdentity("TDX_00", Json.Hex(m, "mrsigner", W), Json.Hex(m, "attributes", W), Json.Hex(m, "attributesMask", W), []);
        }

        var identities = new List<ModuleIdentity>();
        if (t.TryGetProperty("tdxModuleIdentities", out JsonElement ids))
        {
            foreach (JsonElement i in ids.EnumerateArray())
            {
                var ml = new List<ModuleLevel>();
                foreach (JsonElement l in Json.Arr(i, "tcbLevels", W).EnumerateArray())
                {
                    ml.Add(new ModuleLevel(Json.Int(Json.Obj(l, "tcb", W), "isvsvn", W), Json.Time(l, "tcbDate", W), Json.Status(Json.Str(l, "tcbStatus", W), W), Advisories(l)));
                }

                identities.Add(new ModuleIdentity(Json.Str(i, "id", W), Json.Hex(i, "mrsigner", W), Json.Hex(i, "attributes", W), Json.Hex(i, "attributesMask", W), [.. ml]));
            }
        }

        return new TcbInfo(signed, signature, chain)
        {
            Id = Json.Str(t, "id", W),
            Version = Json.Int(t, "version", W),
            IssueDate = Json.Time(t, "issueDate", W),
            NextUpdate = Json.Time(t, "nextUpdate", W),
            TcbEvaluationDataNumber = Json.Int(t, "tcbEvaluationDataNumber", W),
            Fmspc = Json.Hex(t, "fmspc", W),
            PceId = Json.Hex(t, "pceId", W),
            TdxModule = module,
            ModuleIdentities = [.. identities],
            Levels = [.. levels],
        };
    }

    private static byte[] Components(JsonElement arr)
    {
        byte[] c = new byte[16];
        int i = 0;
        foreach (JsonElement e in arr.EnumerateArray())
        {
            if (i == 16)
            {
                throw new AttestationFormatException("TCB Info", "tcbcomponents", -1, "more than 16 components");
            }

            c[i++] = checked((byte)Json.Int(e, "svn", "TCB Info"));
        }

        return c;
    }

    internal static string[] Advisories(JsonElement l) =>
        l.TryGetProperty("advisoryIDs", out JsonElement a) && a.ValueKind == JsonValueKind.Array
            ? [.. a.EnumerateArray().Select(x => x.GetString() ?? string.Empty)]
            : [];
}

internal sealed class QeIdentity : SignedIntelDocument
{
    public QeIdentity(ReadOnlyMemory<byte> signed, byte[] signature, List<Cert> chain) : base(signed, signature, chain) { }

    public required uint MiscSelect { get; init; }

    public required uint MiscSelectMask { get; init; }

    public required byte[] Attributes { get; init; }

    public required byte[] AttributesMask { get; init; }

    public required byte[] MrSigner { get; init; }

    public required int IsvProdId { get; init; }

    public required ModuleLevel[] Levels { get; init; }

    /// <summary>Parses the signed JSON; any shape it does not expect is an <see cref="AttestationFormatException"/>.</summary>
    public static QeIdentity Parse(ReadOnlyMemory<byte> signed, byte[] signature, List<Cert> chain)
    {
        try
        {
            return ParseCore(signed, signature, chain);
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException or FormatException or OverflowException or KeyNotFoundException)
        {
            // JsonElement throws InvalidOperationException for a value of another kind than the schema's (an array where an
            // object belongs, a number where a string does); a short hex field throws ArgumentOutOfRangeException.
            throw new AttestationFormatException("QE Identity", "json", -1, $"does not have the expected shape: {e.Message}", e);
        }
    }

    private static QeIdentity ParseCore(ReadOnlyMemory<byte> signed, byte[] signature, List<Cert> chain)
    {
        const string W = "QE Identity";
        JsonElement t;
        try
        {
            using var doc = JsonDocument.Parse(signed);
            t = doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new AttestationFormatException(W, "enclaveIdentity", e.BytePositionInLine ?? -1, e.Message, e);
        }

        var levels = new List<ModuleLevel>();
        foreach (JsonElement l in Json.Arr(t, "tcbLevels", W).EnumerateArray())
        {
            levels.Add(new ModuleLevel(Json.Int(Json.Obj(l, "tcb", W), "isvsvn", W), Json.Time(l, "tcbDate", W), Json.Status(Json.Str(l, "tcbStatus", W), W), TcbInfo.Advisories(l)));
        }

        return new QeIdentity(signed, signature, chain)
        {
            Id = Json.Str(t, "id", W),
            Version = Json.Int(t, "version", W),
            IssueDate = Json.Time(t, "issueDate", W),
            NextUpdate = Json.Time(t, "nextUpdate", W),
            TcbEvaluationDataNumber = Json.Int(t, "tcbEvaluationDataNumber", W),
            MiscSelect = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(Json.Hex(t, "miscselect", W)),
            MiscSelectMask = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(Json.Hex(t, "miscselectMask", W)),
            Attributes = Json.Hex(t, "attributes", W),
            AttributesMask = Json.Hex(t, "attributesMask", W),
            MrSigner = Json.Hex(t, "mrsigner", W),
            IsvProdId = Json.Int(t, "isvprodid", W),
            Levels = [.. levels],
        };
    }
}
