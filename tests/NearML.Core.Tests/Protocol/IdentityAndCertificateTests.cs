using System.Security.Cryptography.X509Certificates;
using NearML.Core.Protocol;

namespace NearML.Core.Tests.Protocol;

[TestClass]
public sealed class IdentityAndCertificateTests
{
    private static string TempDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), "nearml-protocol-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    [TestMethod]
    public void Ed25519_identity_verifies_what_it_signs_and_refuses_other_bytes()
    {
        // The RFC 8032 vectors themselves are in Crypto/Ed25519Tests (one implementation, one set of vectors).
        using var identity = Ed25519Identity.FromSeed(Convert.FromHexString(Crypto.Ed25519Tests.Rfc8032[0].Seed));
        var signature = identity.Sign([]);
        Assert.AreEqual(Crypto.Ed25519Tests.Rfc8032[0].Signature, Convert.ToHexStringLower(signature));
        Assert.IsTrue(Ed25519Identity.Verify(identity.PublicKey.Span, [], signature));
        Assert.IsFalse(Ed25519Identity.Verify(identity.PublicKey.Span, [0], signature));
        Assert.IsFalse(Ed25519Identity.Verify(identity.PublicKey.Span, [], signature.AsSpan(1)));
    }

    [TestMethod]
    public void Identity_is_created_once_with_owner_only_permissions_and_reloaded()
    {
        var dir = TempDir();
        try
        {
            var path = Path.Combine(dir, "keys", "worker.key");
            using var created = Ed25519Identity.LoadOrCreate(path);
            using var loaded = Ed25519Identity.LoadOrCreate(path);
            CollectionAssert.AreEqual(created.PublicKey.ToArray(), loaded.PublicKey.ToArray());
            Assert.AreEqual(16, created.Fingerprint.Length);
            StringAssert.StartsWith(File.ReadAllText(path), "-----BEGIN PRIVATE KEY-----");
            if (!OperatingSystem.IsWindows())
            {
                Assert.AreEqual(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
            }

            var message = "nonce"u8.ToArray();
            Assert.IsTrue(Ed25519Identity.Verify(created.PublicKey.Span, message, loaded.Sign(message)));
            Assert.ThrowsExactly<IOException>(() => created.Save(path));
            Assert.AreEqual(1, Directory.GetFiles(Path.Combine(dir, "keys")).Length, "no temporary files left behind");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [TestMethod]
    public void Key_file_that_is_not_an_ed25519_key_is_refused()
    {
        var dir = TempDir();
        try
        {
            var path = Path.Combine(dir, "bad.key");
            File.WriteAllText(path, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
            var ex = Assert.ThrowsExactly<InvalidDataFormatException>(() => Ed25519Identity.Load(path));
            StringAssert.Contains(ex.Message, "RFC 8410");
            File.WriteAllText(path, "hello");
            Assert.ThrowsExactly<InvalidDataFormatException>(() => Ed25519Identity.Load(path));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [TestMethod]
    public void Development_certificate_is_persisted_and_its_fingerprint_is_stable()
    {
        var dir = TempDir();
        try
        {
            var path = Path.Combine(dir, "coordinator.pfx");
            using var first = CoordinatorCertificate.LoadOrCreateDevelopment(path, ["coordinator.example"]);
            using var second = CoordinatorCertificate.LoadOrCreateDevelopment(path);
            var fingerprint = CoordinatorCertificate.GetFingerprint(first);
            Assert.AreEqual(fingerprint, CoordinatorCertificate.GetFingerprint(second));
            Assert.AreEqual(95, fingerprint.Length);
            Assert.IsTrue(second.HasPrivateKey);
            Assert.IsNotNull(second.GetECDsaPublicKey());
            StringAssert.Contains(second.GetNameInfo(X509NameType.DnsFromAlternativeName, false), "localhost");
            if (!OperatingSystem.IsWindows())
            {
                Assert.AreEqual(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
            }

            CollectionAssert.AreEqual(
                CoordinatorCertificate.ParseFingerprint(fingerprint),
                CoordinatorCertificate.ParseFingerprint("sha256:" + fingerprint.Replace(":", "").ToLowerInvariant()));
            Assert.ThrowsExactly<FormatException>(() => CoordinatorCertificate.ParseFingerprint("AB:CD"));

            File.WriteAllText(path, "not a certificate");
            Assert.ThrowsExactly<InvalidDataFormatException>(() => CoordinatorCertificate.LoadOrCreateDevelopment(path));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
