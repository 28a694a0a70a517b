using System.Runtime.InteropServices;

namespace NearML.Core.Crypto.Internal;

/// <summary>
/// libsodium's ed25519 and X25519 functions, called directly. The native library comes with the
/// <c>NSec.Cryptography</c> package (libsodium 1.0.22 for linux-x64/arm64, macOS and Windows) — the same functions
/// NSec's <c>SignatureAlgorithm.Ed25519</c> and <c>KeyAgreementAlgorithm.X25519</c> call, without NSec's per-key
/// guarded allocation (a <c>Key.Import</c> costs as much as the signature itself; docs/performance.md). Used when the
/// library loads, initialises and passes the RFC 8032 / RFC 7748 self-test, and <c>NEARML_ED25519_MANAGED</c> is not
/// <c>1</c>; otherwise callers fall back to BouncyCastle.
/// </summary>
internal static unsafe partial class Sodium
{
    private const string Library = "libsodium";

    static Sodium()
    {
        if (Environment.GetEnvironmentVariable("NEARML_ED25519_MANAGED") == "1")
        {
            return;
        }

        try
        {
            IsAvailable = sodium_init() >= 0 && SelfTest();
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            IsAvailable = false;
        }
    }

    /// <summary>Gets a value indicating whether libsodium loaded and passed the self-test.</summary>
    public static bool IsAvailable { get; }

    /// <summary>ed25519 public key and 64-byte secret key (seed ‖ public key) from a seed.</summary>
    public static void SeedKeypair(ReadOnlySpan<byte> seed, Span<byte> publicKey, Span<byte> secretKey)
    {
        fixed (byte* d = seed, p = publicKey, s = secretKey)
        {
            Check(crypto_sign_ed25519_seed_keypair(p, s, d), "crypto_sign_ed25519_seed_keypair");
        }
    }

    /// <summary>Detached ed25519 signature with the 64-byte secret key.</summary>
    public static void Sign(ReadOnlySpan<byte> secretKey, ReadOnlySpan<byte> message, Span<byte> signature)
    {
        byte dummy = 0;
        fixed (byte* g = signature, m = message, s = secretKey)
        {
            Check(crypto_sign_ed25519_detached(g, null, message.IsEmpty ? &dummy : m, (ulong)message.Length, s), "crypto_sign_ed25519_detached");
        }
    }

    /// <summary>
    /// Verifies (libsodium 1.0.22 also refuses non-canonical S, non-canonical or small-order R and public keys).
    /// </summary>
    public static bool Verify(ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> message, ReadOnlySpan<byte> signature)
    {
        byte dummy = 0;
        fixed (byte* g = signature, m = message, p = publicKey)
        {
            return crypto_sign_ed25519_verify_detached(g, message.IsEmpty ? &dummy : m, (ulong)message.Length, p) == 0;
        }
    }

    /// <summary>X25519(k, u); false when the result is all zero (u is a low-order point).</summary>
    public static bool ScalarMult(ReadOnlySpan<byte> scalar, ReadOnlySpan<byte> point, Span<byte> output)
    {
        fixed (byte* q = output, n = scalar, p = point)
        {
            return crypto_scalarmult_curve25519(q, n, p) == 0;
        }
    }

    /// <summary>X25519(k, 9).</summary>
    public static void ScalarMultBase(ReadOnlySpan<byte> scalar, Span<byte> output)
    {
        fixed (byte* q = output, n = scalar)
        {
            Check(crypto_scalarmult_curve25519_base(q, n), "crypto_scalarmult_curve25519_base");
        }
    }

    private static void Check(int result, string function)
    {
        if (result != 0)
        {
            throw new System.Security.Cryptography.CryptographicException($"libsodium {function} failed ({result})");
        }
    }

    private static bool SelfTest()
    {
        // RFC 8032 §7.1 TEST 2 and RFC 7748 §6.1.
        ReadOnlySpan<byte> seed = [0x4c, 0xcd, 0x08, 0x9b, 0x28, 0xff, 0x96, 0xda, 0x9d, 0xb6, 0xc3, 0x46, 0xec, 0x11, 0x4e, 0x0f, 0x5b, 0x8a, 0x31, 0x9f, 0x35, 0xab, 0xa6, 0x24, 0xda, 0x8c, 0xf6, 0xed, 0x4f, 0xb8, 0xa6, 0xfb];
        byte[] expectedSignature = Convert.FromHexString("92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00");
        Span<byte> pk = stackalloc byte[32];
        Span<byte> sk = stackalloc byte[64];
        Span<byte> sig = stackalloc byte[64];
        SeedKeypair(seed, pk, sk);
        Sign(sk, [0x72], sig);
        sk.Clear();
        bool ed = sig.SequenceEqual(expectedSignature) && Verify(pk, [0x72], sig) && !Verify(pk, [0x73], sig);
        byte[] alice = Convert.FromHexString("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        byte[] bobPublic = Convert.FromHexString("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
        Span<byte> shared = stackalloc byte[32];
        return ed && ScalarMult(alice, bobPublic, shared)
            && shared.SequenceEqual(Convert.FromHexString("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"));
    }

    [LibraryImport(Library)]
    private static partial int sodium_init();

    [LibraryImport(Library)]
    private static partial int crypto_sign_ed25519_seed_keypair(byte* pk, byte* sk, byte* seed);

    [LibraryImport(Library)]
    private static partial int crypto_sign_ed25519_detached(byte* sig, ulong* siglen, byte* m, ulong mlen, byte* sk);

    [LibraryImport(Library)]
    private static partial int crypto_sign_ed25519_verify_detached(byte* sig, byte* m, ulong mlen, byte* pk);

    [LibraryImport(Library)]
    private static partial int crypto_scalarmult_curve25519(byte* q, byte* n, byte* p);

    [LibraryImport(Library)]
    private static partial int crypto_scalarmult_curve25519_base(byte* q, byte* n);
}
