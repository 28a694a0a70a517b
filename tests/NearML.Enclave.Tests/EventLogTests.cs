namespace NearML.Enclave.Tests;

[TestClass]
public sealed class EventLogTests
{
    [TestMethod]
    public void Replay_MatchesIndependentComputation_AndQuote()
    {
        byte[] log = TestEventLog.Build(out byte[][] expected, out int length);
        var parsed = TdxEventLog.Parse(log);
        Assert.AreEqual(length, parsed.Length);
        Assert.AreEqual(8, parsed.Events.Count, "EV_NO_ACTION is not measured");
        byte[][] got = parsed.ReplayRtmrs();
        for (int i = 0; i < 4; i++)
        {
            CollectionAssert.AreEqual(expected[i], got[i]);
        }

        using var pki = new TestIntelPki();
        var quote = TdxQuote.Parse(pki.Quote(new byte[64], rtmrs: expected));
        Assert.IsTrue(parsed.CompareWithQuote(quote).All(c => c.Passed));
        var other = TdxQuote.Parse(pki.Quote(new byte[64]));
        Assert.IsTrue(parsed.CompareWithQuote(other).All(c => !c.Passed));
    }

    [TestMethod]
    public void Sha1OnlyLog_IsRejected()
    {
        byte[] log = TestEventLog.Build(out _, out _);
        log[32 + 28 + 4] = 0x04; // second algorithm id 0x000C → 0x0004 (SHA-1): no SHA-384 declared
        var e = Assert.ThrowsExactly<AttestationFormatException>(() => TdxEventLog.Parse(log));
        Assert.AreEqual("header.digestSizes", e.Field);
    }
}
