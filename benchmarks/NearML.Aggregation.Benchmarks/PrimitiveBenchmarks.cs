using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using NearML.Aggregation;
using NearML.Aggregation.Internal;

namespace NearML.Aggregation.Benchmarks;

/// <summary>Mask PRG throughput: 1,000,000 ring elements (4 MB of AES-128-CTR keystream) added into an accumulator.</summary>
[MemoryDiagnoser]
public class PrgBenchmarks
{
    private readonly uint[] _acc = new uint[1_000_000];
    private MaskPrg _prg = null!;

    [GlobalSetup]
    public void Setup() => _prg = new MaskPrg(RandomNumberGenerator.GetBytes(16));

    [Benchmark(Baseline = true, Description = "AES-NI CTR, 8 blocks in flight (4 MB)")]
    public void Intrinsics() => _prg.Apply(_acc, 0, subtract: false);

    [Benchmark(Description = ".NET Aes.EncryptEcb over counter blocks (4 MB)")]
    public void Portable()
    {
        MaskPrg.ForcePortable = true;
        try
        {
            _prg.Apply(_acc, 0, subtract: false);
        }
        finally
        {
            MaskPrg.ForcePortable = false;
        }
    }
}

/// <summary>Key agreement: X25519 (BouncyCastle) vs P-256 ECDH (.NET / OpenSSL) including the peer-key import.</summary>
[MemoryDiagnoser]
public class KeyAgreementBenchmarks
{
    private byte[] _sk = null!;
    private byte[] _peer = null!;
    private readonly byte[] _secret = new byte[32];
    private ECDiffieHellman _p256 = null!;
    private byte[] _p256Peer = null!;

    [GlobalSetup]
    public void Setup()
    {
        (_sk, _) = KeyAgreement.Generate();
        (_, _peer) = KeyAgreement.Generate();
        _p256 = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        using var other = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        _p256Peer = other.PublicKey.ExportSubjectPublicKeyInfo();
    }

    [GlobalCleanup]
    public void Cleanup() => _p256.Dispose();

    [Benchmark(Baseline = true)]
    public bool X25519() => KeyAgreement.TryAgree(_sk, _peer, _secret);

    [Benchmark]
    public byte[] P256()
    {
        using var peer = ECDiffieHellman.Create();
        peer.ImportSubjectPublicKeyInfo(_p256Peer, out _);
        return _p256.DeriveRawSecretAgreement(peer.PublicKey);
    }
}

/// <summary>Shamir t-of-n over GF(2^61−1) for a 32-byte secret.</summary>
[MemoryDiagnoser]
public class ShamirBenchmarks
{
    private readonly byte[] _secret = RandomNumberGenerator.GetBytes(32);
    private readonly byte[] _out = new byte[32];
    private ulong[] _xs = null!;
    private byte[][] _shares = null!;
    private ulong[] _lambda = null!;

    [Params(30, 1000)]
    public int N { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _xs = Enumerable.Range(1, N).Select(i => (ulong)i).ToArray();
        _shares = Shamir.Split(_secret, (N / 2) + 1, _xs);
        _lambda = Shamir.LagrangeAtZero(_xs.AsSpan(0, (N / 2) + 1));
    }

    [Benchmark(Baseline = true)]
    public byte[][] Split() => Shamir.Split(_secret, (N / 2) + 1, _xs);

    [Benchmark]
    public bool ReconstructPrecomputed() => Shamir.TryReconstruct(_shares, _lambda, _out);

    [Benchmark]
    public ulong[] Lagrange() => Shamir.LagrangeAtZero(_xs.AsSpan(0, (N / 2) + 1));
}

/// <summary>Bit-packing and the server's unpack-and-add for 1,000,000 elements of an 18-bit ring (n = 1000, B = 8).</summary>
[MemoryDiagnoser]
public class PackingBenchmarks
{
    private readonly uint[] _values = Enumerable.Range(0, 1_000_000).Select(i => (uint)(i * 2654435761u) & 0x3FFFF).ToArray();
    private readonly uint[] _acc = new uint[1_000_000];
    private readonly byte[] _packed = new byte[RingPacking.PackedLength(1_000_000, 18)];

    [Benchmark(Baseline = true)]
    public void Pack() => RingPacking.Pack(_values, 18, _packed);

    [Benchmark]
    public void UnpackAdd() => RingPacking.UnpackAdd(_packed, 18, _acc);
}
