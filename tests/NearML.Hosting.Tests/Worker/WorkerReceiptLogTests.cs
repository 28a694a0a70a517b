using System.Security.Cryptography;
using Google.Protobuf;
using NearML.Hosting.Worker;
using NearML.Ledger;
using ReceiptFrame = NearML.Core.Contracts.Receipt;

namespace NearML.Hosting.Tests.Worker;

[TestClass]
public sealed class WorkerReceiptLogTests
{
    private string _directory = null!;

    [TestInitialize]
    public void CreateDirectory() => _directory = Directory.CreateTempSubdirectory("nearml-receipts-").FullName;

    [TestCleanup]
    public void DeleteDirectory() => Directory.Delete(_directory, recursive: true);

    private static (ReceiptFrame Frame, byte[] UpdateHash) Frame(NearKeyPair key, ulong round, string job = "job-1")
    {
        var updateHash = SHA256.HashData(BitConverter.GetBytes(round));
        var signed = SignedReceipt.Sign(new ContributionReceipt(job, (long)round, "worker-a.testnet", 640, 0, 20, 900, AttestationVerdict.Unattested, updateHash, 1_700_000_000_000), key);
        return (new ReceiptFrame
        {
            JobId = job,
            Round = round,
            Sequence = round + 100,
            Entry = ByteString.CopyFrom(signed.ToBorsh()),
            Signature = ByteString.CopyFrom(signed.CoordinatorSignature),
        }, updateHash);
    }

    [TestMethod]
    public void Verified_receipts_are_appended_and_read_back_after_reopening()
    {
        using var key = NearKeyPair.Generate();
        var log = new WorkerReceiptLog(_directory);
        foreach (var round in new ulong[] { 3, 4 })
        {
            var (frame, hash) = Frame(key, round);
            log.VerifyAndAppend(frame, "job-1", round, hash, 42);
        }

        var reopened = new WorkerReceiptLog(_directory);
        Assert.AreEqual(key.PublicKey, reopened.CoordinatorKey, "the first key is remembered (trust on first use)");
        var all = reopened.ReadAll();
        Assert.HasCount(2, all);
        Assert.AreEqual(3UL, all[0].Round);
        Assert.AreEqual(104UL, all[1].Sequence);
        Assert.AreEqual(640UL, all[1].Receipt.Receipt.SamplesProcessed);
    }

    [TestMethod]
    public void Receipt_signed_by_another_key_than_the_first_trusted_one_is_refused()
    {
        using var first = NearKeyPair.Generate();
        using var other = NearKeyPair.Generate();
        var log = new WorkerReceiptLog(_directory);
        var (f1, h1) = Frame(first, 1);
        log.VerifyAndAppend(f1, "job-1", 1, h1, 0);
        var (f2, h2) = Frame(other, 2);
        var ex = Assert.ThrowsExactly<ReceiptVerificationException>(() => new WorkerReceiptLog(_directory).VerifyAndAppend(f2, "job-1", 2, h2, 0));
        StringAssert.Contains(ex.Message, "first trusted");
        Assert.HasCount(1, new WorkerReceiptLog(_directory).ReadAll());
    }

    [TestMethod]
    public void Pinned_key_refuses_any_other_signer_from_the_first_receipt()
    {
        using var pinned = NearKeyPair.Generate();
        using var other = NearKeyPair.Generate();
        var log = new WorkerReceiptLog(_directory, pinned.PublicKey);
        var (frame, hash) = Frame(other, 1);
        var ex = Assert.ThrowsExactly<ReceiptVerificationException>(() => log.VerifyAndAppend(frame, "job-1", 1, hash, 0));
        StringAssert.Contains(ex.Message, "pins");
        Assert.IsEmpty(log.ReadAll());
    }

    [TestMethod]
    public void Receipt_for_another_update_or_round_is_refused()
    {
        using var key = NearKeyPair.Generate();
        var log = new WorkerReceiptLog(_directory);
        var (frame, _) = Frame(key, 1);
        var wrongHash = Assert.ThrowsExactly<ReceiptVerificationException>(() => log.VerifyAndAppend(frame, "job-1", 1, new byte[32], 0));
        StringAssert.Contains(wrongHash.Message, "this worker sent");
        var (frame2, hash2) = Frame(key, 2);
        var wrongRound = Assert.ThrowsExactly<ReceiptVerificationException>(() => log.VerifyAndAppend(frame2, "job-1", 3, hash2, 0));
        StringAssert.Contains(wrongRound.Message, "does not match");
        Assert.IsEmpty(log.ReadAll());
    }

    [TestMethod]
    public void Frame_signature_differing_from_the_entry_is_refused()
    {
        using var key = NearKeyPair.Generate();
        var (frame, hash) = Frame(key, 1);
        var bad = frame.Signature.ToByteArray();
        bad[0] ^= 1;
        frame.Signature = ByteString.CopyFrom(bad);
        Assert.ThrowsExactly<ReceiptVerificationException>(() => new WorkerReceiptLog(_directory).VerifyAndAppend(frame, "job-1", 1, hash, 0));
    }

    [TestMethod]
    public void A_tampered_log_line_fails_to_read()
    {
        using var key = NearKeyPair.Generate();
        var log = new WorkerReceiptLog(_directory);
        var (frame, hash) = Frame(key, 1);
        log.VerifyAndAppend(frame, "job-1", 1, hash, 0);
        var line = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(log.Path))!;
        var entry = SignedReceipt.Parse(frame.Entry.Memory);
        var forged = entry with { Receipt = entry.Receipt with { SamplesProcessed = 1_000_000 } };
        line["entry"] = Convert.ToBase64String(forged.ToBorsh());
        File.WriteAllText(log.Path, line.ToJsonString() + "\n");
        var ex = Assert.ThrowsExactly<ReceiptVerificationException>(() => log.ReadAll());
        StringAssert.Contains(ex.Message, "does not verify");
    }

    [TestMethod]
    public void Evidence_encoding_round_trips_with_auxiliary_bytes_and_rejects_bad_lengths()
    {
        var evidence = new NearML.Enclave.AttestationEvidence(NearML.Enclave.AttestationVendor.AmdSevSnp, new byte[] { 1, 2, 3 }, new byte[] { 9, 8 }, "sev_guest");
        var wire = WorkerAttestation.EncodeEvidence(evidence);
        Assert.AreEqual("sev-snp", wire.Format);
        CollectionAssert.AreEqual(new byte[] { 3, 0, 0, 0, 1, 2, 3, 9, 8 }, wire.Data.ToArray());
        var back = WorkerAttestation.DecodeEvidence(wire.Format, wire.Data);
        Assert.AreEqual(NearML.Enclave.AttestationVendor.AmdSevSnp, back.Vendor);
        CollectionAssert.AreEqual(new byte[] { 1, 2, 3 }, back.Evidence.ToArray());
        CollectionAssert.AreEqual(new byte[] { 9, 8 }, back.Auxiliary.ToArray());
        Assert.ThrowsExactly<FormatException>(() => WorkerAttestation.DecodeEvidence("sgx", wire.Data));
        Assert.ThrowsExactly<FormatException>(() => WorkerAttestation.DecodeEvidence("tdx", new byte[] { 200, 0, 0, 0, 1 }));
        Assert.ThrowsExactly<FormatException>(() => WorkerAttestation.DecodeEvidence("tdx", new byte[] { 1, 0 }));
    }
}
