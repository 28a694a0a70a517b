using System.Buffers.Binary;
using System.Formats.Asn1;
using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace NearML.Enclave.Tests;

/// <summary>
/// A synthetic Intel-like PKI and TDX quote builder: test root CA (P-256) → platform CA → PCK leaf with the SGX extension,
/// a TCB signing certificate, CRLs, signed TCB Info / QE Identity, and quotes signed by a test attestation key.
/// </summary>
internal sealed class TestIntelPki : IDisposable
{
    public static readonly DateTimeOffset T0 = new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);
    public static readonly DateTimeOffset At = T0.AddDays(10);
    public static readonly byte[] Fmspc = Convert.FromHexString("00A06F000000");
    public static readonly byte[] QeMrSigner = SHA256.HashData("test qe signer"u8);

    public readonly ECDsa RootKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    public readonly ECDsa PlatformKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    public readonly ECDsa PckKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    public readonly ECDsa SigningKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    public readonly ECDsa AttestationKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    public readonly X509Certificate2 Root, Platform, Pck, Signing;

    public TestIntelPki(byte[]? sgxSvns = null, int pceSvn = 11, DateTimeOffset? pckNotAfter = null, bool platformIsCa = true)
    {
        Root = SelfSigned(RootKey, "CN=Test SGX Root CA");
        Platform = Issue(Root, RootKey, PlatformKey, "CN=Test SGX PCK Platform CA", ca: platformIsCa, serial: 0x10);
        var ext = new List<X509Extension> { SgxExtension(sgxSvns ?? [5, 5, 2, 2, 3, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0], pceSvn) };
        Pck = Issue(Platform, PlatformKey, PckKey, "CN=Test SGX PCK Certificate", ca: false, serial: 0x1234, extra: ext, notAfter: pckNotAfter);
        Signing = Issue(Root, RootKey, SigningKey, "CN=Test SGX TCB Signing", ca: false, serial: 0x20);
    }

    public byte[] RootFingerprint => SHA256.HashData(Root.RawData);

    public TdxQuoteVerifier Verifier() => new([RootFingerprint]);

    private static X509Certificate2 SelfSigned(ECDsa key, string name)
    {
        var req = new CertificateRequest(name, key, HashAlgorithmName.SHA256);
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using X509Certificate2 withKey = req.CreateSelfSigned(T0.AddYears(-1), T0.AddYears(20));
        return X509CertificateLoader.LoadCertificate(withKey.RawData);
    }

    private static X509Certificate2 Issue(X509Certificate2 issuer, ECDsa issuerKey, ECDsa key, string name, bool ca, long serial, List<X509Extension>? extra = null, DateTimeOffset? notAfter = null)
    {
        var req = new CertificateRequest(name, key, HashAlgorithmName.SHA256);
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(ca, false, 0, true));
        foreach (var e in extra ?? [])
        {
            req.CertificateExtensions.Add(e);
        }

        byte[] sn = BitConverter.GetBytes(serial).Reverse().SkipWhile(b => b == 0).ToArray();
        using X509Certificate2 cert = req.Create(issuer.SubjectName, X509SignatureGenerator.CreateForECDsa(issuerKey), T0.AddYears(-1), notAfter ?? T0.AddYears(5), sn);
        return X509CertificateLoader.LoadCertificate(cert.RawData);
    }

    private static X509Extension SgxExtension(byte[] svns, int pceSvn)
    {
        const string B = "1.2.840.113741.1.13.1";
        var w = new AsnWriter(AsnEncodingRules.DER);
        using (w.PushSequence())
        {
            using (w.PushSequence())
            {
                w.WriteObjectIdentifier(B + ".1");
                w.WriteOctetString(new byte[16]);
            }

            using (w.PushSequence())
            {
                w.WriteObjectIdentifier(B + ".2");
                using (w.PushSequence())
                {
                    for (int i = 0; i < 16; i++)
                    {
                        using (w.PushSequence())
                        {
                            w.WriteObjectIdentifier($"{B}.2.{i + 1}");
                            w.WriteInteger(svns[i]);
                        }
                    }

                    using (w.PushSequence())
                    {
                        w.WriteObjectIdentifier(B + ".2.17");
                        w.WriteInteger(pceSvn);
                    }

                    using (w.PushSequence())
                    {
                        w.WriteObjectIdentifier(B + ".2.18");
                        w.WriteOctetString(svns);
                    }
                }
            }

            using (w.PushSequence())
            {
                w.WriteObjectIdentifier(B + ".3");
                w.WriteOctetString(new byte[2]);
            }

            using (w.PushSequence())
            {
                w.WriteObjectIdentifier(B + ".4");
                w.WriteOctetString(Fmspc);
            }
        }

        return new X509Extension(B, w.Encode(), false);
    }

    public static string Pem(params X509Certificate2[] certs) =>
        string.Concat(certs.Select(c => new string(PemEncoding.Write("CERTIFICATE", c.RawData)) + "\n"));

    public byte[] Crl(X509Certificate2 issuer, ECDsa issuerKey, params X509Certificate2[] revoked)
    {
        var b = new CertificateRevocationListBuilder();
        foreach (var r in revoked)
        {
            b.AddEntry(r, T0);
        }

        using var withKey = issuer.CopyWithPrivateKey(issuerKey);
        return b.Build(withKey, BigInteger.One, T0.AddDays(30), HashAlgorithmName.SHA256, thisUpdate: T0);
    }

    public string TcbInfoJson(string levelsJson, string? moduleIdentitiesJson = null, DateTimeOffset? issue = null) =>
        "{\"id\":\"TDX\",\"version\":3,\"issueDate\":\"" + Iso(issue ?? T0) + "\",\"nextUpdate\":\"" + Iso((issue ?? T0).AddDays(30)) + "\",\"fmspc\":\""
        + Convert.ToHexString(Fmspc).ToLowerInvariant() + "\",\"pceId\":\"0000\",\"tcbType\":0,\"tcbEvaluationDataNumber\":17,"
        + "\"tdxModule\":{\"mrsigner\":\"" + new string('0', 96) + "\",\"attributes\":\"0000000000000000\",\"attributesMask\":\"FFFFFFFFFFFFFFFF\"},"
        + (moduleIdentitiesJson is null ? string.Empty : "\"tdxModuleIdentities\":" + moduleIdentitiesJson + ",")
        + "\"tcbLevels\":" + levelsJson + "}";

    public static string Level(int[] sgx, int pce, int[] tdx, string status, string date = "2029-01-01T00:00:00Z", params string[] advisories) =>
        "{\"tcb\":{\"sgxtcbcomponents\":[" + string.Join(',', sgx.Select(s => "{\"svn\":" + s + "}")) + "],\"pcesvn\":" + pce
        + ",\"tdxtcbcomponents\":[" + string.Join(',', tdx.Select(s => "{\"svn\":" + s + "}")) + "]},\"tcbDate\":\"" + date + "\",\"tcbStatus\":\"" + status + "\""
        + (advisories.Length > 0 ? ",\"advisoryIDs\":[" + string.Join(',', advisories.Select(a => "\"" + a + "\"")) + "]" : string.Empty) + "}";

    public string QeIdentityJson(int isvsvnUpToDate = 4, DateTimeOffset? issue = null) =>
        "{\"id\":\"TD_QE\",\"version\":2,\"issueDate\":\"" + Iso(issue ?? T0) + "\",\"nextUpdate\":\"" + Iso((issue ?? T0).AddDays(30)) + "\",\"tcbEvaluationDataNumber\":17,"
        + "\"miscselect\":\"00000000\",\"miscselectMask\":\"FFFFFFFF\",\"attributes\":\"11000000000000000000000000000000\",\"attributesMask\":\"FBFFFFFFFFFFFFFF0000000000000000\","
        + "\"mrsigner\":\"" + Convert.ToHexString(QeMrSigner) + "\",\"isvprodid\":2,\"tcbLevels\":["
        + "{\"tcb\":{\"isvsvn\":" + isvsvnUpToDate + "},\"tcbDate\":\"2029-01-01T00:00:00Z\",\"tcbStatus\":\"UpToDate\"},"
        + "{\"tcb\":{\"isvsvn\":0},\"tcbDate\":\"2020-01-01T00:00:00Z\",\"tcbStatus\":\"OutOfDate\",\"advisoryIDs\":[\"INTEL-SA-00999\"]}]}";

    public byte[] SignedBody(string property, string json, ECDsa? key = null)
    {
        byte[] sig = (key ?? SigningKey).SignData(Encoding.UTF8.GetBytes(json), HashAlgorithmName.SHA256);
        return Encoding.UTF8.GetBytes("{\"" + property + "\":" + json + ",\"signature\":\"" + Convert.ToHexString(sig).ToLowerInvariant() + "\"}");
    }

    public TdxCollateral Collateral(string tcbInfoJson, string? qeJson = null, byte[]? pckCrl = null, byte[]? rootCrl = null) =>
        TdxCollateral.FromPcsResponses([SignedBody("tcbInfo", tcbInfoJson)], Encoding.ASCII.GetBytes(Pem(Signing, Root)),
            SignedBody("enclaveIdentity", qeJson ?? QeIdentityJson()), ReadOnlyMemory<byte>.Empty,
            pckCrl ?? Crl(Platform, PlatformKey), rootCrl ?? Crl(Root, RootKey));

    private static string Iso(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Builds a TDX quote v4 or v5 (TD 1.5 body) signed by the attestation key, with a QE report signed by the PCK key.</summary>
    public byte[] Quote(byte[] reportData, byte[]? teeTcbSvn = null, int version = 4, bool debug = false, byte[]? mrTd = null, int qeSvn = 4, int trailing = 0,
        byte[][]? rtmrs = null)
    {
        bool v5 = version == 5;
        int bodyLen = v5 ? 648 : 584;
        int bodyOff = v5 ? 54 : 48;
        var signed = new byte[bodyOff + bodyLen];
        BinaryPrimitives.WriteUInt16LittleEndian(signed, (ushort)version);
        BinaryPrimitives.WriteUInt16LittleEndian(signed.AsSpan(2), 2);
        BinaryPrimitives.WriteUInt32LittleEndian(signed.AsSpan(4), 0x81);
        BinaryPrimitives.WriteUInt16LittleEndian(signed.AsSpan(10), 11);
        Convert.FromHexString("939A7233F79C4CA9940A0DB3957F0607").CopyTo(signed, 12);
        if (v5)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(signed.AsSpan(48), 3);
            BinaryPrimitives.WriteUInt32LittleEndian(signed.AsSpan(50), 648);
        }

        Span<byte> body = signed.AsSpan(bodyOff);
        (teeTcbSvn ?? [3, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).CopyTo(body);
        body[120] = debug ? (byte)1 : (byte)0;
        (mrTd ?? SHA384.HashData("test mrtd"u8)).CopyTo(body[136..]);
        for (int i = 0; i < 4; i++)
        {
            (rtmrs?[i] ?? new byte[48]).CopyTo(body[(328 + (48 * i))..]);
        }

        reportData.CopyTo(body[520..]);

        ECParameters ak = AttestationKey.ExportParameters(false);
        byte[] akBytes = [.. ak.Q.X!, .. ak.Q.Y!];
        byte[] auth = SHA256.HashData("auth"u8);
        var qe = new byte[384];
        QeMrSigner.CopyTo(qe, 128);
        qe[48] = 0x11;
        BinaryPrimitives.WriteUInt16LittleEndian(qe.AsSpan(256), 2);
        BinaryPrimitives.WriteUInt16LittleEndian(qe.AsSpan(258), (ushort)qeSvn);
        SHA256.HashData([.. akBytes, .. auth]).CopyTo(qe, 320);
        byte[] qeSig = PckKey.SignData(qe, HashAlgorithmName.SHA256);
        byte[] pem = Encoding.ASCII.GetBytes(Pem(Pck, Platform, Root) + "\0");

        using var ms = new MemoryStream();
        ms.Write(signed);
        var inner = new List<byte>();
        inner.AddRange(qe);
        inner.AddRange(qeSig);
        inner.AddRange(BitConverter.GetBytes((ushort)auth.Length));
        inner.AddRange(auth);
        inner.AddRange(BitConverter.GetBytes((ushort)5));
        inner.AddRange(BitConverter.GetBytes(pem.Length));
        inner.AddRange(pem);
        int sigLen = 64 + 64 + 6 + inner.Count;
        ms.Write(BitConverter.GetBytes(sigLen));
        ms.Write(AttestationKey.SignData(signed, HashAlgorithmName.SHA256));
        ms.Write(akBytes);
        ms.Write(BitConverter.GetBytes((ushort)6));
        ms.Write(BitConverter.GetBytes(inner.Count));
        ms.Write(inner.ToArray());
        ms.Write(new byte[trailing]);
        return ms.ToArray();
    }

    public void Dispose()
    {
        foreach (var d in new IDisposable[] { RootKey, PlatformKey, PckKey, SigningKey, AttestationKey, Root, Platform, Pck, Signing })
        {
            d.Dispose();
        }
    }
}

/// <summary>A synthetic AMD-like PKI: ARK and ASK (RSA-2048, RSASSA-PSS SHA-384) → VCEK (P-384) with TCB extensions, and signed SNP reports.</summary>
internal sealed class TestAmdPki : IDisposable
{
    private static readonly Dictionary<string, TestAmdPki> Cache = new();

    /// <summary>RSA key generation is slow: PKIs are shared across tests (they are immutable once built).</summary>
    public static TestAmdPki Get(SnpTcbVersion tcb, SnpProduct product = SnpProduct.Milan, string subject = "CN=SEV-VCEK")
    {
        lock (Cache)
        {
            string key = $"{tcb}|{product}|{subject}";
            if (!Cache.TryGetValue(key, out TestAmdPki? p))
            {
                Cache[key] = p = new TestAmdPki(tcb, product, subject);
            }

            return p;
        }
    }

    public static readonly DateTimeOffset At = TestIntelPki.At;
    public static readonly byte[] ChipId = SHA512.HashData("test chip"u8);

    private static readonly RSA SharedArkKey = RSA.Create(2048);
    private static readonly RSA SharedAskKey = RSA.Create(2048);
    public readonly RSA ArkKey = SharedArkKey;
    public readonly RSA AskKey = SharedAskKey;
    public readonly ECDsa VcekKey = ECDsa.Create(ECCurve.NamedCurves.nistP384);
    public readonly X509Certificate2 Ark, Ask, Vcek;

    public TestAmdPki(SnpTcbVersion tcb, SnpProduct product = SnpProduct.Milan, string subject = "CN=SEV-VCEK")
    {
        var arkReq = new CertificateRequest("CN=ARK-Test", ArkKey, HashAlgorithmName.SHA384, RSASignaturePadding.Pss);
        arkReq.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using (var ark = arkReq.CreateSelfSigned(TestIntelPki.T0.AddYears(-1), TestIntelPki.T0.AddYears(20)))
        {
            Ark = X509CertificateLoader.LoadCertificate(ark.RawData);
        }

        var askReq = new CertificateRequest("CN=SEV-Test", AskKey, HashAlgorithmName.SHA384, RSASignaturePadding.Pss);
        askReq.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using (var ask = askReq.Create(Ark.SubjectName, X509SignatureGenerator.CreateForRSA(ArkKey, RSASignaturePadding.Pss), TestIntelPki.T0.AddYears(-1), TestIntelPki.T0.AddYears(10), [2]))
        {
            Ask = X509CertificateLoader.LoadCertificate(ask.RawData);
        }

        var vReq = new CertificateRequest(new X500DistinguishedName(subject), new PublicKey(VcekKey), HashAlgorithmName.SHA384, RSASignaturePadding.Pss);
        void Int(string oid, int v)
        {
            var w = new AsnWriter(AsnEncodingRules.DER);
            w.WriteInteger(v);
            vReq.CertificateExtensions.Add(new X509Extension(oid, w.Encode(), false));
        }

        Int("1.3.6.1.4.1.3704.1.3.1", tcb.Bootloader);
        Int("1.3.6.1.4.1.3704.1.3.2", tcb.Tee);
        Int("1.3.6.1.4.1.3704.1.3.3", tcb.Snp);
        Int("1.3.6.1.4.1.3704.1.3.8", tcb.Microcode);
        if (product == SnpProduct.Turin)
        {
            Int("1.3.6.1.4.1.3704.1.3.9", tcb.Fmc);
        }

        var name = new AsnWriter(AsnEncodingRules.DER);
        name.WriteCharacterString(UniversalTagNumber.IA5String, product + "-B0");
        vReq.CertificateExtensions.Add(new X509Extension("1.3.6.1.4.1.3704.1.2", name.Encode(), false));
        vReq.CertificateExtensions.Add(new X509Extension("1.3.6.1.4.1.3704.1.4", product == SnpProduct.Turin ? ChipId[..8] : ChipId, false));
        using (var v = vReq.Create(Ask.SubjectName, X509SignatureGenerator.CreateForRSA(AskKey, RSASignaturePadding.Pss), TestIntelPki.T0.AddYears(-1), TestIntelPki.T0.AddYears(7), [3]))
        {
            Vcek = X509CertificateLoader.LoadCertificate(v.RawData);
        }
    }

    public SnpReportVerifier Verifier(SnpProduct product = SnpProduct.Milan) =>
        new(new Dictionary<SnpProduct, string> { [product] = Convert.ToHexString(SHA256.HashData(Ark.RawData)) });

    public SnpCertificates Certificates() => SnpCertificates.Parse(Vcek.RawData, Encoding.ASCII.GetBytes(TestIntelPki.Pem(Ask, Ark)));

    public static ulong EncodeTcb(SnpTcbVersion t, SnpProduct product) => product == SnpProduct.Turin
        ? t.Fmc | ((ulong)t.Bootloader << 8) | ((ulong)t.Tee << 16) | ((ulong)t.Snp << 24) | ((ulong)t.Microcode << 56)
        : t.Bootloader | ((ulong)t.Tee << 8) | ((ulong)t.Snp << 48) | ((ulong)t.Microcode << 56);

    public byte[] Report(byte[] reportData, ulong reportedTcb, ulong policy = 0x30000, uint version = 2, byte[]? measurement = null, uint signingKey = 0,
        byte family = 0, byte model = 0)
    {
        var r = new byte[SnpReport.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(r, version);
        BinaryPrimitives.WriteUInt64LittleEndian(r.AsSpan(0x08), policy);
        BinaryPrimitives.WriteUInt32LittleEndian(r.AsSpan(0x34), 1);
        BinaryPrimitives.WriteUInt64LittleEndian(r.AsSpan(0x38), reportedTcb);
        BinaryPrimitives.WriteUInt32LittleEndian(r.AsSpan(0x48), signingKey << 2);
        reportData.CopyTo(r, 0x50);
        (measurement ?? SHA384.HashData("test measurement"u8)).CopyTo(r, 0x90);
        BinaryPrimitives.WriteUInt64LittleEndian(r.AsSpan(0x180), reportedTcb);
        r[0x188] = family;
        r[0x189] = model;
        ChipId.CopyTo(r, 0x1A0);
        BinaryPrimitives.WriteUInt64LittleEndian(r.AsSpan(0x1E0), reportedTcb);
        BinaryPrimitives.WriteUInt64LittleEndian(r.AsSpan(0x1F0), reportedTcb);
        byte[] sig = VcekKey.SignData(r.AsSpan(0, 0x2A0), HashAlgorithmName.SHA384);
        for (int i = 0; i < 48; i++)
        {
            r[0x2A0 + i] = sig[47 - i];
            r[0x2A0 + 72 + i] = sig[95 - i];
        }

        return r;
    }

    public void Dispose()
    {
        foreach (var d in new IDisposable[] { VcekKey, Ark, Ask, Vcek })
        {
            d.Dispose();
        }
    }
}
