namespace NearML.Aggregation;

/// <summary>The phase an aggregation server or client is in: the message it collects or awaits next.</summary>
public enum AggregationPhase
{
    /// <summary>Round 0: collecting the clients' public keys (secure) or their inputs (plain).</summary>
    AdvertiseKeys = 0,

    /// <summary>Round 1: collecting the encrypted Shamir shares.</summary>
    ShareKeys = 1,

    /// <summary>Round 2: collecting the masked inputs.</summary>
    MaskedInputCollection = 2,

    /// <summary>Round 3 (active variant): collecting signatures over the survivor set.</summary>
    ConsistencyCheck = 3,

    /// <summary>Round 4: collecting the shares that remove the masks.</summary>
    Unmasking = 4,

    /// <summary>The sum is available.</summary>
    Completed = 5,

    /// <summary>The round failed; no sum is released.</summary>
    Failed = 6,
}
