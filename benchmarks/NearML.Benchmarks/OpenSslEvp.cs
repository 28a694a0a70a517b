using System.Runtime.InteropServices;

namespace NearML.Benchmarks;

/// <summary>
/// ed25519 and X25519 through the platform's OpenSSL 3 libcrypto, called through EVP: NearML's native path before
/// issue 15, kept here only so <see cref="CryptoPaths"/> can measure it next to libsodium and BouncyCastle. It lost
/// every cell (docs/performance.md, "Crypto paths"), so the library no longer uses it.
/// </summary>
internal static unsafe class OpenSslCurve25519
{
    private const int EvpPkeyEd25519 = 1087; // NID_ED25519
    private const int EvpPkeyX25519 = 1034; // NID_X25519

    private static readonly delegate* unmanaged<int, nint, byte*, nuint, nint> s_newRawPublic;
    private static readonly delegate* unmanaged<int, nint, byte*, nuint, nint> s_newRawPrivate;
    private static readonly delegate* unmanaged<nint, void> s_pkeyFree;
    private static readonly delegate* unmanaged<nint> s_ctxNew;
    private static readonly delegate* unmanaged<nint, void> s_ctxFree;
    private static readonly delegate* unmanaged<nint, nint, nint, nint, nint, int> s_verifyInit;
    private static readonly delegate* unmanaged<nint, byte*, nuint, byte*, nuint, int> s_verify;
    private static readonly delegate* unmanaged<nint, nint, nint, nint, nint, int> s_signInit;
    private static readonly delegate* unmanaged<nint, byte*, nuint*, byte*, nuint, int> s_sign;
    private static readonly delegate* unmanaged<nint, nint, nint> s_pkeyCtxNew;
    private static readonly delegate* unmanaged<nint, void> s_pkeyCtxFree;
    private static readonly delegate* unmanaged<nint, int> s_deriveInit;
    private static readonly delegate* unmanaged<nint, nint, int> s_deriveSetPeer;
    private static readonly delegate* unmanaged<nint, byte*, nuint*, int> s_derive;
    private static readonly delegate* unmanaged<nint, byte*, nuint*, int> s_getRawPublic;

    static OpenSslCurve25519()
    {
        string[] names = OperatingSystem.IsMacOS() ? ["libcrypto.3.dylib"] : OperatingSystem.IsWindows() ? ["libcrypto-3-x64.dll"] : ["libcrypto.so.3"];
        foreach (string name in names)
        {
            if (!NativeLibrary.TryLoad(name, out nint lib))
            {
                continue;
            }

            if (NativeLibrary.TryGetExport(lib, "EVP_PKEY_new_raw_public_key", out nint a)
                && NativeLibrary.TryGetExport(lib, "EVP_PKEY_new_raw_private_key", out nint b)
                && NativeLibrary.TryGetExport(lib, "EVP_PKEY_free", out nint c)
                && NativeLibrary.TryGetExport(lib, "EVP_MD_CTX_new", out nint d)
                && NativeLibrary.TryGetExport(lib, "EVP_MD_CTX_free", out nint e)
                && NativeLibrary.TryGetExport(lib, "EVP_DigestVerifyInit", out nint f)
                && NativeLibrary.TryGetExport(lib, "EVP_DigestVerify", out nint g)
                && NativeLibrary.TryGetExport(lib, "EVP_DigestSignInit", out nint h)
                && NativeLibrary.TryGetExport(lib, "EVP_DigestSign", out nint i)
                && NativeLibrary.TryGetExport(lib, "EVP_PKEY_CTX_new", out nint j)
                && NativeLibrary.TryGetExport(lib, "EVP_PKEY_CTX_free", out nint k)
                && NativeLibrary.TryGetExport(lib, "EVP_PKEY_derive_init", out nint l)
                && NativeLibrary.TryGetExport(lib, "EVP_PKEY_derive_set_peer", out nint m)
                && NativeLibrary.TryGetExport(lib, "EVP_PKEY_derive", out nint n)
                && NativeLibrary.TryGetExport(lib, "EVP_PKEY_get_raw_public_key", out nint o))
            {
                s_newRawPublic = (delegate* unmanaged<int, nint, byte*, nuint, nint>)a;
                s_newRawPrivate = (delegate* unmanaged<int, nint, byte*, nuint, nint>)b;
                s_pkeyFree = (delegate* unmanaged<nint, void>)c;
                s_ctxNew = (delegate* unmanaged<nint>)d;
                s_ctxFree = (delegate* unmanaged<nint, void>)e;
                s_verifyInit = (delegate* unmanaged<nint, nint, nint, nint, nint, int>)f;
                s_verify = (delegate* unmanaged<nint, byte*, nuint, byte*, nuint, int>)g;
                s_signInit = (delegate* unmanaged<nint, nint, nint, nint, nint, int>)h;
                s_sign = (delegate* unmanaged<nint, byte*, nuint*, byte*, nuint, int>)i;
                s_pkeyCtxNew = (delegate* unmanaged<nint, nint, nint>)j;
                s_pkeyCtxFree = (delegate* unmanaged<nint, void>)k;
                s_deriveInit = (delegate* unmanaged<nint, int>)l;
                s_deriveSetPeer = (delegate* unmanaged<nint, nint, int>)m;
                s_derive = (delegate* unmanaged<nint, byte*, nuint*, int>)n;
                s_getRawPublic = (delegate* unmanaged<nint, byte*, nuint*, int>)o;
                IsAvailable = SelfTest();
                return;
            }
        }
    }

    /// <summary>Gets a value indicating whether libcrypto was loaded and passed a self-test.</summary>
    public static bool IsAvailable { get; }

    /// <summary>Derives a public key (ed25519 or X25519) from a 32-byte private key; false when unavailable or refused.</summary>
    public static bool TryGetPublicKey(bool x25519, ReadOnlySpan<byte> privateKey, Span<byte> publicKey)
    {
        if (!IsAvailable || privateKey.Length != 32 || publicKey.Length < 32)
        {
            return false;
        }

        nint pkey;
        fixed (byte* sk = privateKey)
        {
            pkey = s_newRawPrivate(x25519 ? EvpPkeyX25519 : EvpPkeyEd25519, 0, sk, 32);
        }

        if (pkey == 0)
        {
            return false;
        }

        try
        {
            nuint len = 32;
            fixed (byte* pk = publicKey)
            {
                return s_getRawPublic(pkey, pk, &len) == 1 && len == 32;
            }
        }
        finally
        {
            s_pkeyFree(pkey);
        }
    }

    /// <summary>
    /// X25519 agreement; null when the native path is unavailable, false when OpenSSL refuses the peer key (a
    /// low-order point gives the all-zero secret, which OpenSSL rejects).
    /// </summary>
    public static bool? Agree(ReadOnlySpan<byte> privateKey, ReadOnlySpan<byte> peerPublicKey, Span<byte> secret)
    {
        if (!IsAvailable)
        {
            return null;
        }

        nint own, peer;
        fixed (byte* sk = privateKey)
        {
            own = s_newRawPrivate(EvpPkeyX25519, 0, sk, 32);
        }

        fixed (byte* pk = peerPublicKey)
        {
            peer = s_newRawPublic(EvpPkeyX25519, 0, pk, 32);
        }

        nint ctx = own == 0 ? 0 : s_pkeyCtxNew(own, 0);
        try
        {
            if (own == 0 || peer == 0 || ctx == 0 || s_deriveInit(ctx) != 1 || s_deriveSetPeer(ctx, peer) != 1)
            {
                return own == 0 || ctx == 0 ? null : false;
            }

            nuint len = 32;
            fixed (byte* s = secret)
            {
                return s_derive(ctx, s, &len) == 1 && len == 32;
            }
        }
        finally
        {
            if (ctx != 0)
            {
                s_pkeyCtxFree(ctx);
            }

            if (peer != 0)
            {
                s_pkeyFree(peer);
            }

            if (own != 0)
            {
                s_pkeyFree(own);
            }
        }
    }

    /// <summary>Verifies; returns null when the native path is unavailable or failed to set up.</summary>
    public static bool? Verify(ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> message, ReadOnlySpan<byte> signature)
    {
        if (!IsAvailable || publicKey.Length != 32 || signature.Length != 64)
        {
            return null;
        }

        return VerifyCore(publicKey, message, signature);
    }

    /// <summary>Signs into <paramref name="signature"/>; returns false when the native path is unavailable.</summary>
    public static bool TrySign(ReadOnlySpan<byte> seed, ReadOnlySpan<byte> message, Span<byte> signature)
    {
        if (!IsAvailable || seed.Length != 32 || signature.Length != 64)
        {
            return false;
        }

        return SignCore(seed, message, signature);
    }

    private static bool? VerifyCore(ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> message, ReadOnlySpan<byte> signature)
    {
        nint pkey;
        fixed (byte* pk = publicKey)
        {
            pkey = s_newRawPublic(EvpPkeyEd25519, 0, pk, 32);
        }

        if (pkey == 0)
        {
            return false; // not a valid point encoding
        }

        nint ctx = s_ctxNew();
        try
        {
            if (ctx == 0 || s_verifyInit(ctx, 0, 0, 0, pkey) != 1)
            {
                return null;
            }

            fixed (byte* m = message)
            fixed (byte* s = signature)
            {
                byte dummy = 0;
                return s_verify(ctx, s, 64, message.Length == 0 ? &dummy : m, (nuint)message.Length) == 1;
            }
        }
        finally
        {
            if (ctx != 0)
            {
                s_ctxFree(ctx);
            }

            s_pkeyFree(pkey);
        }
    }

    private static bool SignCore(ReadOnlySpan<byte> seed, ReadOnlySpan<byte> message, Span<byte> signature)
    {
        nint pkey;
        fixed (byte* sk = seed)
        {
            pkey = s_newRawPrivate(EvpPkeyEd25519, 0, sk, 32);
        }

        if (pkey == 0)
        {
            return false;
        }

        nint ctx = s_ctxNew();
        try
        {
            if (ctx == 0 || s_signInit(ctx, 0, 0, 0, pkey) != 1)
            {
                return false;
            }

            nuint len = 64;
            fixed (byte* m = message)
            fixed (byte* s = signature)
            {
                byte dummy = 0;
                return s_sign(ctx, s, &len, message.Length == 0 ? &dummy : m, (nuint)message.Length) == 1 && len == 64;
            }
        }
        finally
        {
            if (ctx != 0)
            {
                s_ctxFree(ctx);
            }

            s_pkeyFree(pkey);
        }
    }

    private static bool SelfTest()
    {
        // RFC 8032 test 1: empty message.
        byte[] seed = Convert.FromHexString("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        byte[] pub = Convert.FromHexString("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        byte[] expected = Convert.FromHexString("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
        Span<byte> sig = stackalloc byte[64];
        return SignCore(seed, [], sig) && sig.SequenceEqual(expected) && VerifyCore(pub, [], expected) == true;
    }
}
