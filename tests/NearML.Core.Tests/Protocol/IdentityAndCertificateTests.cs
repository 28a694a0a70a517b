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
    public void Ed25519_matches_the_RFC_8032_test_vector()
    {
        // RFC 8032 section 7.1, TEST 1 (empty message).
        using var identity = Ed25519Identity.FromSeed(Convert.FromHexString("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"));
        Assert.AreEqual("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", Convert.ToHexStringLower(identity.PublicKey.Span));
        var signature = identity.Sign([]);
        Assert.AreEqual(
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            Convert.ToHexStringLower(signature));
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
