using System.Formats.Asn1;

namespace NearML.Enclave.Internal;

/// <summary>The Intel SGX extension (OID 1.2.840.113741.1.13.1) of a PCK certificate: FMSPC, PCE id and the platform TCB.</summary>
internal sealed class PckExtensions
{
    public required byte[] Fmspc { get; init; }

    public required byte[] PceId { get; init; }

    public required int PceSvn { get; init; }

    public required byte[] SgxTcbComponents { get; init; }

    public required byte[] CpuSvn { get; init; }

    public static PckExtensions Parse(Cert pck)
    {
        const string What = "PCK certificate";
        var ext = pck.FindExtension(Oids.SgxExtensions)
            ?? throw new AttestationFormatException(What, Oids.SgxExtensions, -1, "the Intel SGX extension is missing");
        try
        {
            byte[]? fmspc = null, pceId = null, cpuSvn = null;
            int pceSvn = -1;
            byte[] comps = new byte[16];
            var seq = new AsnReader(ext.RawData, AsnEncodingRules.DER).ReadSequence();
            while (seq.HasData)
            {
                AsnReader item = seq.ReadSequence();
                string oid = item.ReadObjectIdentifier();
                switch (oid)
                {
                    case Oids.SgxExtensions + ".4":
                        fmspc = item.ReadOctetString();
                        break;
                    case Oids.SgxExtensions + ".3":
                        pceId = item.ReadOctetString();
                        break;
                    case Oids.SgxExtensions + ".2":
                        AsnReader tcb = item.ReadSequence();
                        while (tcb.HasData)
                        {
                            AsnReader c = tcb.ReadSequence();
                            string coid = c.ReadObjectIdentifier();
                            int n = int.Parse(coid.AsSpan(coid.LastIndexOf('.') + 1), System.Globalization.CultureInfo.InvariantCulture);
                            if (n is >= 1 and <= 16)
                            {
                                comps[n - 1] = checked((byte)(int)c.ReadInteger());
                            }
                            else if (n == 17)
                            {
                                pceSvn = (int)c.ReadInteger();
                            }
                            else if (n == 18)
                            {
                                cpuSvn = c.ReadOctetString();
                            }
                        }

                        break;
                    default:
                        break;
                }
            }

            if (fmspc is not { Length: 6 })
            {
                throw new AttestationFormatException(What, "sgx.fmspc", -1, "missing or not 6 bytes");
            }

            if (pceId is not { Length: 2 } || pceSvn < 0)
            {
                throw new AttestationFormatException(What, "sgx.pceid/pcesvn", -1, "missing");
            }

            return new PckExtensions { Fmspc = fmspc, PceId = pceId, PceSvn = pceSvn, SgxTcbComponents = comps, CpuSvn = cpuSvn ?? comps };
        }
        catch (Exception e) when (e is AsnContentException or OverflowException or FormatException)
        {
            throw new AttestationFormatException(What, Oids.SgxExtensions, -1, $"malformed Intel SGX extension: {e.Message}", e);
        }
    }
}
